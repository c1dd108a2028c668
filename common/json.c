/* SPDX-License-Identifier: MIT */
#include "json.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Whether the 8 bytes at p go into a JSON string as they are: none below 0x20, '"' or '\\'. */
static bool unescaped_bytes(const uint8_t *p)
{
        const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
        uint64_t w, quote, backslash, bad;

        memcpy(&w, p, sizeof(w));
        quote = w ^ (ones * '"');
        backslash = w ^ (ones * '\\');
        bad = ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash);
        return (bad & highs) == 0;
}

/* Whether the 8 bytes at p are all ASCII that a string holds as it is: nothing for the scan to check. */
static bool plain_string_bytes(const uint8_t *p)
{
        uint64_t w;

        memcpy(&w, p, sizeof(w));
        return !(w & UINT64_C(0x8080808080808080)) && unescaped_bytes(p);
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

/* The printer writes at out + *pos, or only counts when out is NULL: one pass measures, the next
 * writes into a buffer of that size. */
static void put(char *out, size_t *pos, const char *s, size_t n)
{
        if (out)
                memcpy(out + *pos, s, n);
        *pos += n;
}

/* A string as cJSON writes it: the short escapes, \u00xx for other control bytes, the rest verbatim. */
static void print_string(const char *str, char *out, size_t *pos)
{
        const uint8_t *s = (const uint8_t *)(str ? str : "");
        size_t n = strlen((const char *)s), i = 0;

        put(out, pos, "\"", 1);
        while (i < n) {
                size_t run = i;
                char esc[8];

                while (run + 8 <= n && unescaped_bytes(s + run))
                        run += 8;
                while (run < n && s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
                        run++;
                put(out, pos, (const char *)s + i, run - i);
                if (run == n)
                        break;
                switch (s[run]) {
                case '"':
                case '\\':
                        esc[0] = '\\', esc[1] = (char)s[run];
                        break;
                case '\b':
                        memcpy(esc, "\\b", 2);
                        break;
                case '\f':
                        memcpy(esc, "\\f", 2);
                        break;
                case '\n':
                        memcpy(esc, "\\n", 2);
                        break;
                case '\r':
                        memcpy(esc, "\\r", 2);
                        break;
                case '\t':
                        memcpy(esc, "\\t", 2);
                        break;
                default:
                        (void)snprintf(esc, sizeof(esc), "\\u%04x", s[run]);
                        put(out, pos, esc, 6);
                        i = run + 1;
                        continue;
                }
                put(out, pos, esc, 2);
                i = run + 1;
        }
        put(out, pos, "\"", 1);
}

/* A number as cJSON 1.7 writes it: %.15g, or %.17g where that does not read back as the same double;
 * "null" for what JSON cannot write. */
static size_t format_number(const cJSON *item, char buf[static 32])
{
        double d = item->valuedouble, back;

        if (isnan(d) || isinf(d))
                return (size_t)snprintf(buf, 32, "null");
        (void)snprintf(buf, 32, "%1.15g", d);
        if (sscanf(buf, "%lg", &back) != 1 || fabs(back - d) > fmax(fabs(back), fabs(d)) * DBL_EPSILON)
                (void)snprintf(buf, 32, "%1.17g", d);
        return strlen(buf);
}

static bool print_value(const cJSON *item, char *out, size_t *pos)
{
        char number[32];

        switch (item->type & 0xFF) {
        case cJSON_NULL:
                put(out, pos, "null", 4);
                return true;
        case cJSON_False:
                put(out, pos, "false", 5);
                return true;
        case cJSON_True:
                put(out, pos, "true", 4);
                return true;
        case cJSON_Number:
                put(out, pos, number, format_number(item, number));
                return true;
        case cJSON_Raw:
                if (!item->valuestring)
                        return false;
                put(out, pos, item->valuestring, strlen(item->valuestring));
                return true;
        case cJSON_String:
                print_string(item->valuestring, out, pos);
                return true;
        case cJSON_Array:
        case cJSON_Object: {
                bool object = (item->type & 0xFF) == cJSON_Object;
                put(out, pos, object ? "{" : "[", 1);
                for (const cJSON *c = item->child; c; c = c->next) {
                        if (object) {
                                print_string(c->string, out, pos);
                                put(out, pos, ":", 1);
                        }
                        if (!print_value(c, out, pos))
                                return false;
                        if (c->next)
                                put(out, pos, ",", 1);
                }
                put(out, pos, object ? "}" : "]", 1);
                return true;
        }
        default:
                return false;
        }
}

char *json_print(const cJSON *item, size_t *ret_len)
{
        size_t len = 0, written = 0;
        char *text;

        /* The same text as cJSON_PrintUnformatted(), in one allocation of the right size and with long
         * strings copied a run at a time rather than a byte at a time. */
        if (!item || !print_value(item, NULL, &len))
                return NULL;
        text = malloc(len + 1);
        if (!text)
                return NULL;
        (void)print_value(item, text, &written);
        assert(written == len);
        text[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return text;
}

/* Counts at least one byte an item and the bytes of its strings, up to *left; false once that is used. */
static bool size_below(const cJSON *item, size_t *left)
{
        for (; item; item = item->next) {
                size_t n = 1;
                if (item->string)
                        n += strnlen(item->string, *left);
                if ((cJSON_IsString(item) || cJSON_IsRaw(item)) && item->valuestring)
                        n += strnlen(item->valuestring, *left);
                if (n >= *left)
                        return false;
                *left -= n;
                if (item->child && !size_below(item->child, left))
                        return false;
        }
        return true;
}

bool json_size_at_least(const cJSON *item, size_t n)
{
        size_t left = n;

        assert(item);
        if (n == 0)
                return true;
        /* The item alone, not what follows it in its parent. */
        n = 1;
        if ((cJSON_IsString(item) || cJSON_IsRaw(item)) && item->valuestring)
                n += strnlen(item->valuestring, left);
        if (n >= left)
                return true;
        left -= n;
        return item->child && !size_below(item->child, &left);
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
