/* SPDX-License-Identifier: MIT */
#include "json.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

/* Whether the 8 bytes at p are all printable ASCII other than '"' and '\\', which a string holds as
 * they are. One word at a time: (x - 0x01…) & ~x & 0x80… is non-zero exactly when some byte of x is 0,
 * and (x - 0x20…) & ~x & 0x80… when some byte is below 0x20. */
static bool plain_string_bytes(const uint8_t *p)
{
        const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
        uint64_t w, quote, backslash, bad;

        memcpy(&w, p, sizeof(w));
        quote = w ^ (ones * '"');
        backslash = w ^ (ones * '\\');
        bad = ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | w;
        return (bad & highs) == 0;
}

JsonScanResult json_prescan(const char *str, size_t n, unsigned max_depth, size_t max_values)
{
        const uint8_t *s = (const uint8_t *)str;
        unsigned depth = 0;
        size_t values = 1;
        bool in_string = false, opened = false;

        for (size_t i = 0; i < n; i++) {
                uint8_t c;

                /* File content is most of a big message: runs of string bytes that need no look. */
                if (in_string) {
                        while (i + 8 <= n && plain_string_bytes(s + i))
                                i += 8;
                        if (i >= n)
                                break;
                }
                c = s[i];

                /* A container holds one value more than it has commas, unless it is empty. */
                if (opened && !in_string && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                        opened = false;
                        if (c != ']' && c != '}' && ++values > max_values)
                                return JSON_SCAN_TOO_MANY;
                }

                if (c >= 0x80) {
                        int l = utf8_sequence(s + i, n - i);
                        if (l <= 0)
                                return JSON_SCAN_BAD_UTF8;
                        i += (size_t)l - 1;
                        continue;
                }
                if (c == 0)
                        return in_string ? JSON_SCAN_NUL : JSON_SCAN_CONTROL;
                if (in_string) {
                        if (c == '"')
                                in_string = false;
                        else if (c < 0x20)
                                return JSON_SCAN_CONTROL;
                        else if (c == '\\') {
                                if (i + 1 >= n)
                                        return JSON_SCAN_OK; /* cJSON reports the syntax error */
                                if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
                                        return JSON_SCAN_NUL;
                                i++; /* skip the escaped character, so \\ and \" are not seen again */
                        }
                        continue;
                }
                switch (c) {
                case '"':
                        in_string = true;
                        break;
                case '[':
                case '{':
                        if (++depth > max_depth)
                                return JSON_SCAN_TOO_DEEP;
                        opened = true;
                        break;
                case ',':
                        if (++values > max_values)
                                return JSON_SCAN_TOO_MANY;
                        break;
                case ']':
                case '}':
                        if (depth > 0)
                                depth--;
                        break;
                }
        }
        return JSON_SCAN_OK;
}

const char *json_scan_result_to_string(JsonScanResult r)
{
        switch (r) {
        case JSON_SCAN_OK:
                return "ok";
        case JSON_SCAN_BAD_UTF8:
                return "message is not valid UTF-8";
        case JSON_SCAN_CONTROL:
                return "raw control character in message";
        case JSON_SCAN_NUL:
                return "strings may not contain NUL (\\u0000); send binary data with \"encoding\": "
                       "\"base64\"";
        case JSON_SCAN_TOO_DEEP:
                return "message nested too deeply";
        case JSON_SCAN_TOO_MANY:
                return "too many values in one message";
        default:
                return "invalid";
        }
}

size_t json_skip_space(const char *s, size_t n, size_t i)
{
        /* What cJSON skips: every byte up to the space, not just JSON's four. */
        while (i < n && (unsigned char)s[i] <= ' ')
                i++;
        return i;
}

static size_t skip_string(const char *s, size_t n, size_t i)
{
        for (i++; i < n; i++) {
                if (s[i] == '\\')
                        i++;
                else if (s[i] == '"')
                        return i + 1;
        }
        return n;
}

size_t json_skip_value(const char *s, size_t n, size_t i)
{
        size_t depth = 0;

        if (i >= n)
                return n;
        if (s[i] == '"')
                return skip_string(s, n, i);
        if (s[i] != '{' && s[i] != '[') {
                while (i < n && (unsigned char)s[i] > ' ' && !strchr(",:]}", s[i]))
                        i++;
                return i;
        }
        while (i < n) {
                switch (s[i]) {
                case '"':
                        i = skip_string(s, n, i);
                        continue;
                case '{':
                case '[':
                        depth++;
                        break;
                case '}':
                case ']':
                        if (--depth == 0)
                                return i + 1;
                        break;
                }
                i++;
        }
        return n;
}

size_t json_count_members(const char *s, size_t n, size_t i, size_t max)
{
        size_t count = 0;

        if (i >= n || s[i] != '[')
                return 0;
        i = json_skip_space(s, n, i + 1);
        if (i < n && s[i] == ']')
                return 0;
        while (i < n && count <= max) {
                i = json_skip_space(s, n, json_skip_value(s, n, i));
                count++;
                if (i >= n || s[i] != ',')
                        break;
                i = json_skip_space(s, n, i + 1);
        }
        return count;
}

static size_t skip_digits(const char *s, size_t n, size_t i)
{
        while (i < n && s[i] >= '0' && s[i] <= '9')
                i++;
        return i;
}

bool json_is_strict_number(const char *s, size_t n)
{
        size_t i = 0, j;

        if (i < n && s[i] == '-')
                i++;
        if (i < n && s[i] == '0')
                i++;
        else if (i < n && s[i] >= '1' && s[i] <= '9')
                i = skip_digits(s, n, i);
        else
                return false;
        if (i < n && s[i] == '.') {
                j = skip_digits(s, n, i + 1);
                if (j == i + 1)
                        return false;
                i = j;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                j = skip_digits(s, n, i);
                if (j == i)
                        return false;
                i = j;
        }
        return i == n;
}

cJSON *json_parse(const char *s, size_t n)
{
        /* cJSON checks for trailing garbage by looking for the terminating NUL inside the given
         * length, so hand it n + 1 bytes. */
        if (s[n] != '\0')
                return NULL;
        return cJSON_ParseWithLengthOpts(s, n + 1, NULL, true);
}

char *json_print(const cJSON *item, size_t *ret_len)
{
        char *p = cJSON_PrintUnformatted(item);
        if (p && ret_len)
                *ret_len = strlen(p);
        return p;
}

cJSON *json_create_integer(int64_t v)
{
        char buf[sizeof("-999999999999999")], *p = buf + sizeof(buf);
        uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;

        /* Below 10^15 every integer has at most 15 digits, so "%1.15g" writes exactly those. */
        if (u >= UINT64_C(1000000000000000))
                return cJSON_CreateNumber((double)v);
        *--p = '\0';
        do {
                *--p = (char)('0' + u % 10);
                u /= 10;
        } while (u > 0);
        if (v < 0)
                *--p = '-';
        return cJSON_CreateRaw(p);
}

cJSON *json_create_raw_reference(const char *raw)
{
        cJSON *item;

        assert(raw);
        item = cJSON_CreateNull();
        if (item) {
                /* What cJSON_CreateStringReference() does, for a raw item. */
                item->type = cJSON_Raw | cJSON_IsReference;
                item->valuestring = (char *)raw;
        }
        return item;
}

cJSON *json_create_string_take(char *s)
{
        cJSON *item;

        assert(s);
        item = cJSON_CreateStringReference(s);
        if (!item) {
                free(s);
                return NULL;
        }
        /* No longer a reference: cJSON_Delete() frees the string with the item, through cJSON's
         * default hooks (malloc/free; Helios never installs others). */
        item->type &= ~cJSON_IsReference;
        return item;
}

bool json_get_uint(const cJSON *item, uint64_t max, uint64_t *ret)
{
        double d;

        if (!cJSON_IsNumber(item))
                return false;
        d = item->valuedouble;
        if (!isfinite(d) || d < 0 || d != floor(d) || d > 9007199254740992.0 || d > (double)max)
                return false;
        *ret = (uint64_t)d;
        return true;
}

int json_dispatch(const cJSON *obj, const JsonField *fields, size_t n_fields, const char **ret_reason)
{
        static char reason[160];

        if (!cJSON_IsObject(obj)) {
                *ret_reason = "params must be an object";
                return -EINVAL;
        }

        for (size_t i = 0; i < n_fields; i++) {
                const JsonField *f = &fields[i];
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
                const char *want = NULL;

                if (!v || cJSON_IsNull(v)) {
                        if (!f->required)
                                continue;
                        (void)snprintf(reason, sizeof(reason), "missing parameter '%s'", f->name);
                        *ret_reason = reason;
                        return -EINVAL;
                }

                switch (f->type) {
                case JSON_FIELD_STRING:
                        if (cJSON_IsString(v))
                                *(const char **)f->ret = v->valuestring;
                        else
                                want = "a string";
                        break;
                case JSON_FIELD_UINT: {
                        uint64_t max = f->max ? f->max : UINT64_MAX;
                        if (!json_get_uint(v, max, (uint64_t *)f->ret)) {
                                (void)snprintf(reason, sizeof(reason),
                                               "parameter '%s' must be an integer from 0 to %llu", f->name,
                                               (unsigned long long)MIN(max, (uint64_t)9007199254740992ULL));
                                *ret_reason = reason;
                                return -EINVAL;
                        }
                        break;
                }
                case JSON_FIELD_BOOL:
                        if (cJSON_IsBool(v))
                                *(bool *)f->ret = cJSON_IsTrue(v);
                        else
                                want = "a boolean";
                        break;
                case JSON_FIELD_OBJECT:
                        if (cJSON_IsObject(v))
                                *(const cJSON **)f->ret = v;
                        else
                                want = "an object";
                        break;
                case JSON_FIELD_ARRAY:
                        if (cJSON_IsArray(v))
                                *(const cJSON **)f->ret = v;
                        else
                                want = "an array";
                        break;
                case JSON_FIELD_ANY:
                        *(const cJSON **)f->ret = v;
                        break;
                default:
                        want = "valid";
                }
                if (want) {
                        (void)snprintf(reason, sizeof(reason), "parameter '%s' must be %s", f->name, want);
                        *ret_reason = reason;
                        return -EINVAL;
                }
        }
        return 0;
}
