/* SPDX-License-Identifier: MIT */
#include "jsonrpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
        return cJSON_IsString(id) || cJSON_IsNumber(id) || cJSON_IsNull(id);
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

        if (!o || !cJSON_AddStringToObject(o, "jsonrpc", "2.0") || !cJSON_AddStringToObject(o, "method", method)) {
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
