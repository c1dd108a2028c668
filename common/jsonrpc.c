/* SPDX-License-Identifier: MIT */
#include "jsonrpc.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

RpcError rpc_error_from_errno(int error)
{
        switch (-abs(error)) {
        case -ENOENT:
        case -ESRCH:
                return RPC_NOT_FOUND;
        case -EACCES:
        case -EPERM:
        case -EXDEV:
        case -EROFS:
        case -ELOOP:
                return RPC_PERMISSION_DENIED;
        case -ESTALE:
                return RPC_CONFLICT;
        case -EFBIG:
        case -E2BIG:
        case -EMSGSIZE:
        case -ENOSPC:
        case -EDQUOT:
                return RPC_TOO_LARGE;
        case -EEXIST:
                return RPC_ALREADY_EXISTS;
        case -EISDIR:
        case -ENOTDIR:
                return RPC_WRONG_TYPE;
        case -EINVAL:
                return RPC_INVALID_PARAMS;
        default:
                return RPC_SERVER_ERROR;
        }
}

const char *rpc_error_message(RpcError code)
{
        switch (code) {
        case RPC_PARSE_ERROR:
                return "Parse error";
        case RPC_INVALID_REQUEST:
                return "Invalid Request";
        case RPC_METHOD_NOT_FOUND:
                return "Method not found";
        case RPC_INVALID_PARAMS:
                return "Invalid params";
        case RPC_INTERNAL_ERROR:
                return "Internal error";
        case RPC_NOT_FOUND:
                return "No such file or directory";
        case RPC_PERMISSION_DENIED:
                return "Permission denied";
        case RPC_CONFLICT:
                return "Changed on disk";
        case RPC_TOO_LARGE:
                return "Too large";
        case RPC_ALREADY_EXISTS:
                return "Already exists";
        case RPC_WRONG_TYPE:
                return "Wrong type";
        case RPC_NO_SUCH_TERMINAL:
                return "No such terminal";
        case RPC_UNSAVED_CHANGES:
                return "Unsaved changes would be lost";
        default:
                return "Server error";
        }
}

static bool valid_id(const cJSON *id)
{
        /* A raw id is the client's own text of a string or number (jsonrpc_keep_id_text()). */
        return cJSON_IsString(id) || cJSON_IsNumber(id) || cJSON_IsNull(id) || cJSON_IsRaw(id);
}

/* Whether the JSON string text s[0..n) (between its quotes) decodes to the ASCII name. */
static bool key_is(const char *s, size_t n, const char *name)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++, k++) {
                char c = s[i];

                if (c == '\\') {
                        if (++i >= n)
                                return false;
                        switch (s[i]) {
                        case 'b':
                                c = '\b';
                                break;
                        case 'f':
                                c = '\f';
                                break;
                        case 'n':
                                c = '\n';
                                break;
                        case 'r':
                                c = '\r';
                                break;
                        case 't':
                                c = '\t';
                                break;
                        case 'u': {
                                unsigned v = 0;
                                if (n - i < 5)
                                        return false;
                                for (size_t j = 1; j <= 4; j++) {
                                        char h = s[i + j];
                                        v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                                }
                                if (v == 0 || v >= 0x80)
                                        return false;
                                c = (char)v;
                                i += 4;
                                break;
                        }
                        default:
                                c = s[i];
                        }
                }
                /* A raw NUL (in text refused for it, parsed only for its id) ends cJSON's copy of a key,
                 * not ours: such a key is not the name. */
                if (name[k] == '\0' || name[k] != c)
                        return false;
        }
        return name[k] == '\0';
}

/* The object's "id" member, whose text starts at text[i] ('{'): the first member of that name, which is
 * the one cJSON_GetObjectItemCaseSensitive() finds. */
static int object_keep_id(cJSON *obj, const char *text, size_t n, size_t i)
{
        cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id"), *raw;
        _cleanup_free_ char *copy = NULL;

        if (!cJSON_IsObject(obj) || !(cJSON_IsNumber(id) || cJSON_IsString(id)) || i >= n || text[i] != '{')
                return 0;
        for (i++;;) {
                size_t key = json_skip_space(text, n, i), key_end, value, value_end;

                if (key >= n || text[key] != '"')
                        return 0;
                key_end = json_skip_value(text, n, key);
                i = json_skip_space(text, n, key_end);
                if (i >= n || text[i] != ':')
                        return 0;
                value = json_skip_space(text, n, i + 1);
                value_end = json_skip_value(text, n, value);
                if (value_end <= value || key_end - key < 2)
                        return 0;
                if (key_is(text + key + 1, key_end - key - 2, "id")) {
                        /* Echoed verbatim, so it must be JSON as RFC 8259 writes it: text refused for a
                         * NUL is parsed for its id without the rest of json_prescan()'s checks. */
                        size_t len = value_end - value;
                        bool valid = cJSON_IsNumber(id)
                                         ? json_is_strict_number(text + value, len)
                                         : len >= 2 && text[value] == '"' && text[value_end - 1] == '"' &&
                                               json_prescan(text + value, len, 1, 1) == JSON_SCAN_OK;
                        if (!valid)
                                return 0;
                        copy = strndup(text + value, len);
                        raw = copy ? cJSON_CreateRaw(copy) : NULL;
                        if (!raw)
                                return -ENOMEM;
                        /* Replaces the first "id", which is id, and names raw so. */
                        if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, "id", raw)) {
                                cJSON_Delete(raw);
                                return -ENOMEM;
                        }
                        return 0;
                }
                i = json_skip_space(text, n, value_end);
                if (i >= n || text[i] != ',')
                        return 0;
                i++;
        }
}

int jsonrpc_keep_id_text(cJSON *msg, const char *text, size_t n)
{
        size_t i = json_skip_space(text, n, 0);
        int r;

        assert(msg && text);
        if (!cJSON_IsArray(msg))
                return object_keep_id(msg, text, n, i);
        if (i >= n || text[i] != '[')
                return 0;
        i++;
        for (cJSON *m = msg->child; m; m = m->next) {
                i = json_skip_space(text, n, i);
                r = object_keep_id(m, text, n, i);
                if (r < 0)
                        return r;
                i = json_skip_space(text, n, json_skip_value(text, n, i));
                if (i >= n || text[i] != ',')
                        return 0;
                i++;
        }
        return 0;
}

int jsonrpc_parse_request(const cJSON *msg, JsonRpcRequest *ret, const char **ret_reason)
{
        const cJSON *version, *method, *params, *id;

        *ret = (JsonRpcRequest){};
        if (!cJSON_IsObject(msg)) {
                *ret_reason = "a request must be an object";
                return -EINVAL;
        }

        id = cJSON_GetObjectItemCaseSensitive(msg, "id");
        if (id && valid_id(id))
                ret->id = id;

        version = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");
        if (!cJSON_IsString(version) || strcmp(version->valuestring, "2.0") != 0) {
                *ret_reason = "\"jsonrpc\" must be exactly \"2.0\"";
                return -EINVAL;
        }
        if (id && !valid_id(id)) {
                *ret_reason = "\"id\" must be a string, a number or null";
                return -EINVAL;
        }
        method = cJSON_GetObjectItemCaseSensitive(msg, "method");
        if (!cJSON_IsString(method)) {
                *ret_reason = "\"method\" must be a string";
                return -EINVAL;
        }
        params = cJSON_GetObjectItemCaseSensitive(msg, "params");
        if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
                *ret_reason = "\"params\" must be an object or an array";
                return -EINVAL;
        }

        ret->method = method->valuestring;
        ret->params = params;
        return 0;
}

static cJSON *envelope_new(const cJSON *id)
{
        cJSON *o = cJSON_CreateObject();
        cJSON *idc;

        if (!o)
                return NULL;
        idc = id ? cJSON_Duplicate(id, true) : cJSON_CreateNull();
        if (!cJSON_AddStringToObject(o, "jsonrpc", "2.0") || !idc || !cJSON_AddItemToObject(o, "id", idc)) {
                cJSON_Delete(idc);
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

cJSON *jsonrpc_result_new(const cJSON *id, cJSON *result)
{
        cJSON *o = envelope_new(id);

        if (!result)
                result = cJSON_CreateNull();
        if (!o || !result || !cJSON_AddItemToObject(o, "result", result)) {
                cJSON_Delete(result);
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

cJSON *jsonrpc_error_new(const cJSON *id, int code, const char *message, cJSON *data)
{
        cJSON *o = envelope_new(id), *e = cJSON_CreateObject();

        if (!o || !e || !cJSON_AddItemToObject(o, "error", e)) {
                cJSON_Delete(e);
                cJSON_Delete(data);
                cJSON_Delete(o);
                return NULL;
        }
        if (!cJSON_AddNumberToObject(e, "code", code) ||
            !cJSON_AddStringToObject(e, "message", message ? message : rpc_error_message(code))) {
                cJSON_Delete(data);
                cJSON_Delete(o);
                return NULL;
        }
        if (data && !cJSON_AddItemToObject(e, "data", data)) {
                cJSON_Delete(data);
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

cJSON *jsonrpc_notification_new(const char *method, cJSON *params)
{
        cJSON *o = cJSON_CreateObject();

        if (!o || !cJSON_AddStringToObject(o, "jsonrpc", "2.0") ||
            !cJSON_AddStringToObject(o, "method", method)) {
                cJSON_Delete(params);
                cJSON_Delete(o);
                return NULL;
        }
        if (params && !cJSON_AddItemToObject(o, "params", params)) {
                cJSON_Delete(params);
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}
