/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "jsonrpc.h"
#include "macro.h"

static cJSON *parse(const char *s)
{
        return json_parse(s, strlen(s));
}

static JsonScanResult scan(const char *s)
{
        return json_prescan(s, strlen(s), 8, 100);
}

static JsonScanResult scan6(const char *s)
{
        return json_prescan(s, strlen(s), 8, 6);
}

static void test_prescan(void **state)
{
        assert_int_equal(scan("{\"a\":[1,2,{\"b\":\"c\"}]}"), JSON_SCAN_OK);
        assert_int_equal(scan("\"caf\xc3\xa9\""), JSON_SCAN_OK);
        assert_int_equal(scan("\"\xff\""), JSON_SCAN_BAD_UTF8);
        assert_int_equal(scan("\"a\\u0000b\""), JSON_SCAN_NUL);
        assert_int_equal(scan("\"a\\\\u0000b\""), JSON_SCAN_OK); /* escaped backslash, then text */
        assert_int_equal(scan("\"a\\\"\\u0000\""), JSON_SCAN_NUL);
        assert_int_equal(scan("\"a\tb\""), JSON_SCAN_CONTROL);
        assert_int_equal(scan("[[[[[[[[1]]]]]]]]"), JSON_SCAN_OK);
        assert_int_equal(scan("[[[[[[[[[1]]]]]]]]]"), JSON_SCAN_TOO_DEEP);
        assert_int_equal(scan("\"[[[[[[[[[[[[\""), JSON_SCAN_OK); /* brackets in strings do not nest */
        /* Six values at most: the array, its elements, an object's member values. */
        assert_int_equal(scan6("[1,2,3,4,5]"), JSON_SCAN_OK);
        assert_int_equal(scan6("[1,2,3,4,5,6]"), JSON_SCAN_TOO_MANY);
        assert_int_equal(scan6("[{},[ ],{\"a\":1,\"b\":[]}]"), JSON_SCAN_OK);
        assert_int_equal(scan6("[{},[ ],{\"a\":1,\"b\":[0]}]"), JSON_SCAN_TOO_MANY);
        assert_int_equal(scan6("[\",,,,,,,,\",\"[1,1]\"]"), JSON_SCAN_OK); /* commas in strings */
        assert_int_equal(json_prescan("\"a\0\"", 4, 8, 100), JSON_SCAN_NUL);
        assert_int_equal(json_prescan("1\0", 2, 8, 100), JSON_SCAN_CONTROL);
}

/* Long strings are scanned a word at a time: whatever byte stands at whichever place in a run of
 * plain text, and whatever the run's alignment, it is seen as the byte-by-byte scan sees it. */
static void test_prescan_long_strings(void **state)
{
        static const struct {
                char byte;
                JsonScanResult want;
        } cases[] = {
            {'"', JSON_SCAN_OK}, /* ends the string early: what follows is outside it, "x" is fine */
            {'\t', JSON_SCAN_CONTROL},    {'\x1f', JSON_SCAN_CONTROL},  {'\0', JSON_SCAN_NUL},
            {'\xff', JSON_SCAN_BAD_UTF8}, {'\x80', JSON_SCAN_BAD_UTF8}, {' ', JSON_SCAN_OK},
            {'~', JSON_SCAN_OK},          {'\x7f', JSON_SCAN_OK},
        };
        char text[64];

        for (size_t k = 0; k < ELEMENTSOF(cases); k++)
                for (size_t start = 0; start < 8; start++)
                        for (size_t at = 0; at < 40; at++) {
                                size_t n = start + 1 + 40 + 1;
                                memset(text, 'x', sizeof(text));
                                memset(text, ' ', start);
                                text[start] = '"';
                                text[start + 1 + at] = cases[k].byte;
                                text[n - 1] = '"';
                                assert_int_equal(json_prescan(text, n, 8, 100), cases[k].want);
                        }
        /* An escaped quote does not end the string; an escaped backslash before a quote does. */
        for (size_t at = 0; at < 30; at++) {
                memset(text, 'x', sizeof(text));
                text[0] = '"';
                memcpy(text + 1 + at, "\\\"\x01", 3); /* \" then a control byte inside the string */
                text[40] = '"';
                assert_int_equal(json_prescan(text, 41, 8, 100), JSON_SCAN_CONTROL);
                memcpy(text + 1 + at, "\\\\\"\x01", 4); /* \\" then the byte outside of it */
                assert_int_equal(json_prescan(text, 41, 8, 100), JSON_SCAN_OK);
        }
}

/* json_print() writes what cJSON_PrintUnformatted() writes, for any tree. */
static void assert_prints_as_cjson(const cJSON *item)
{
        size_t len;
        char *mine = json_print(item, &len), *theirs = cJSON_PrintUnformatted(item);

        assert_non_null(mine);
        assert_non_null(theirs);
        assert_string_equal(mine, theirs);
        assert_int_equal(len, strlen(theirs));
        free(mine);
        free(theirs);
}

static uint32_t next_random(uint32_t *seed)
{
        *seed = *seed * 1103515245u + 12345u;
        return *seed >> 8;
}

static cJSON *random_tree(uint32_t *seed, unsigned depth)
{
        static const double numbers[] = {0,
                                         -0.0,
                                         1,
                                         -1,
                                         0.1,
                                         1e15,
                                         1e15 + 1,
                                         1e17,
                                         1e300,
                                         -1e-300,
                                         3.14159,
                                         2147483647.0,
                                         2147483648.0,
                                         -2147483649.0,
                                         1.0 / 3,
                                         123456789012345678.0,
                                         5e-324,
                                         NAN,
                                         INFINITY};
        char text[48];
        cJSON *item;

        switch (next_random(seed) % (depth > 3 ? 5 : 7)) {
        case 0:
                return cJSON_CreateNumber(numbers[next_random(seed) % ELEMENTSOF(numbers)]);
        case 1:
                return cJSON_CreateNumber((double)(int32_t)next_random(seed) /
                                          (1 << (next_random(seed) % 20)));
        case 2: {
                /* Runs of text with any byte but NUL somewhere in them. */
                size_t n = next_random(seed) % (sizeof(text) - 1);
                for (size_t i = 0; i < n; i++)
                        text[i] = next_random(seed) % 4 ? (char)('a' + i % 26)
                                                        : (char)(1 + next_random(seed) % 255);
                text[n] = '\0';
                return cJSON_CreateString(text);
        }
        case 3:
                return next_random(seed) % 2 ? cJSON_CreateBool(next_random(seed) % 2) : cJSON_CreateNull();
        case 4:
                return cJSON_CreateRaw("{\"raw\":[1,2]}");
        default:
                item = next_random(seed) % 2 ? cJSON_CreateArray() : cJSON_CreateObject();
                for (unsigned i = next_random(seed) % 5; i > 0; i--) {
                        cJSON *child = random_tree(seed, depth + 1);
                        if (cJSON_IsArray(item))
                                cJSON_AddItemToArray(item, child);
                        else {
                                (void)snprintf(text, sizeof(text), "k\x01\"%u\\", i);
                                cJSON_AddItemToObject(item, text, child);
                        }
                }
                return item;
        }
}

static void test_print(void **state)
{
        uint32_t seed = 1;
        _cleanup_json_ cJSON *big = NULL;
        char *text;

        for (int i = 0; i < 20000; i++) {
                _cleanup_json_ cJSON *t = random_tree(&seed, 0);
                assert_prints_as_cjson(t);
        }
        /* A long string with one byte to escape at every place and alignment. */
        text = malloc(4096 + 1);
        assert_non_null(text);
        for (size_t at = 0; at < 64; at++)
                for (unsigned c = 1; c < 256; c += 7) {
                        memset(text, 'x', 4096);
                        text[4096] = '\0';
                        text[at] = (char)c;
                        text[4095 - at] = (char)c;
                        big = cJSON_CreateString(text);
                        assert_prints_as_cjson(big);
                        cJSON_Delete(big);
                }
        big = NULL;
        free(text);
}

static void test_parse_strict(void **state)
{
        _cleanup_json_ cJSON *ok = parse("{\"a\":1}  ");
        _cleanup_json_ cJSON *trailing = parse("{\"a\":1} x");

        assert_non_null(ok);
        assert_null(trailing);
}

static void test_dispatch(void **state)
{
        _cleanup_json_ cJSON *o =
            parse("{\"s\":\"x\",\"n\":42,\"b\":true,\"neg\":-1,\"f\":1.5,\"nul\":null}");
        const char *s = NULL, *reason;
        uint64_t n = 0;
        bool b = false;

        assert_non_null(o);
        JsonField ok[] = {
            {"s", JSON_FIELD_STRING, true, &s},
            {"n", JSON_FIELD_UINT, true, &n, 100},
            {"b", JSON_FIELD_BOOL, false, &b},
            {"nul", JSON_FIELD_STRING, false, &s},
        };
        assert_int_equal(json_dispatch(o, ok, 4, &reason), 0);
        assert_string_equal(s, "x");
        assert_int_equal(n, 42);
        assert_true(b);

        JsonField too_big[] = {{"n", JSON_FIELD_UINT, true, &n, 10}};
        assert_int_equal(json_dispatch(o, too_big, 1, &reason), -EINVAL);
        assert_non_null(strstr(reason, "'n'"));
        JsonField negative[] = {{"neg", JSON_FIELD_UINT, true, &n}};
        assert_int_equal(json_dispatch(o, negative, 1, &reason), -EINVAL);
        JsonField fraction[] = {{"f", JSON_FIELD_UINT, true, &n}};
        assert_int_equal(json_dispatch(o, fraction, 1, &reason), -EINVAL);
        JsonField wrong_type[] = {{"n", JSON_FIELD_STRING, true, &s}};
        assert_int_equal(json_dispatch(o, wrong_type, 1, &reason), -EINVAL);
        assert_non_null(strstr(reason, "string"));
        JsonField missing[] = {{"zz", JSON_FIELD_STRING, true, &s}};
        assert_int_equal(json_dispatch(o, missing, 1, &reason), -EINVAL);
        assert_non_null(strstr(reason, "missing"));
        JsonField null_required[] = {{"nul", JSON_FIELD_STRING, true, &s}};
        assert_int_equal(json_dispatch(o, null_required, 1, &reason), -EINVAL);
}

static void test_request(void **state)
{
        JsonRpcRequest req;
        const char *reason;
        _cleanup_json_ cJSON *good = parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"m\",\"params\":{}}");
        _cleanup_json_ cJSON *note = parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\"}");
        _cleanup_json_ cJSON *badver = parse("{\"jsonrpc\":2,\"id\":\"x\",\"method\":\"m\"}");

        assert_int_equal(jsonrpc_parse_request(good, &req, &reason), 0);
        assert_string_equal(req.method, "m");
        assert_non_null(req.id);
        assert_int_equal(jsonrpc_parse_request(note, &req, &reason), 0);
        assert_null(req.id);
        assert_int_equal(jsonrpc_parse_request(badver, &req, &reason), -EINVAL);
        assert_string_equal(req.id->valuestring, "x"); /* kept so the error can carry it */
}

static void test_errno_mapping(void **state)
{
        assert_int_equal(rpc_error_from_errno(-ENOENT), RPC_NOT_FOUND);
        assert_int_equal(rpc_error_from_errno(-EXDEV), RPC_PERMISSION_DENIED);
        assert_int_equal(rpc_error_from_errno(-EEXIST), RPC_ALREADY_EXISTS);
        assert_int_equal(rpc_error_from_errno(-EISDIR), RPC_WRONG_TYPE);
        assert_int_equal(rpc_error_from_errno(-EFBIG), RPC_TOO_LARGE);
        assert_int_equal(rpc_error_from_errno(-EIO), RPC_SERVER_ERROR);
}

/* What cJSON itself writes for v as a number. */
static char *print_number(double v)
{
        _cleanup_json_ cJSON *n = cJSON_CreateNumber(v);

        assert_non_null(n);
        return cJSON_PrintUnformatted(n);
}

static void check_integer(int64_t v)
{
        _cleanup_json_ cJSON *i = json_create_integer(v);
        _cleanup_free_ char *want = print_number((double)v), *got = NULL;

        assert_non_null(i);
        got = cJSON_PrintUnformatted(i);
        assert_non_null(got);
        if (!streq(got, want))
                fail_msg("%lld: \"%s\", cJSON writes \"%s\"", (long long)v, got, want);
}

static void test_create_integer(void **state)
{
        static const int64_t values[] = {
            0,
            1,
            -1,
            9,
            10,
            1024,
            2147483647,
            2147483648,
            -2147483648,
            -2147483649,
            1795496438848,
            -62135596800000,
            99999999999999,
            999999999999999,
            -999999999999999,
            1000000000000000,
            -1000000000000000,
            1234567890123456,
            9007199254740993,
            INT64_MAX,
            INT64_MIN,
        };
        uint64_t x = 0x9e3779b97f4a7c15;

        for (size_t i = 0; i < ELEMENTSOF(values); i++)
                check_integer(values[i]);
        /* Every magnitude, both signs, odd digits. */
        for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10)
                for (int64_t k = 1; k < 10; k++) {
                        check_integer(p * k + (p > 1 ? 7 : 0));
                        check_integer(-(p * k) - 1);
                }
        for (int i = 0; i < 100000; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                check_integer((int64_t)(x >> (x % 64)) * (x & 1 ? 1 : -1));
        }
}

static void test_raw_reference(void **state)
{
        /* On the stack: cJSON_Delete() must leave it alone (ASan would see it otherwise). */
        char raw[] = "\"a\\nb\"";
        _cleanup_json_ cJSON *o = cJSON_CreateObject(), *r = json_create_raw_reference(raw);
        _cleanup_free_ char *text = NULL;

        assert_non_null(o);
        assert_non_null(r);
        assert_true(cJSON_IsRaw(r));
        assert_true(cJSON_AddItemToObject(o, "content", TAKE_PTR(r)));
        assert_non_null(cJSON_AddStringToObject(o, "after", "x"));
        text = cJSON_PrintUnformatted(o);
        assert_string_equal(text, "{\"content\":\"a\\nb\",\"after\":\"x\"}");
}

static void test_skip_and_count(void **state)
{
        const char *t = " [ {\"a\":\"]}\\\"\"} , [1,[2]] ,-1.5e3,\"x\" ,true ] ";
        size_t n = strlen(t), i = json_skip_space(t, n, 0);

        assert_int_equal(i, 1);
        assert_int_equal(json_skip_value(t, n, i), n - 1);
        assert_int_equal(json_count_members(t, n, i, 100), 5);
        assert_int_equal(json_count_members(t, n, i, 2), 3); /* stops counting past max */
        assert_int_equal(json_count_members("[ ]", 3, 0, 100), 0);
        assert_int_equal(json_count_members("{}", 2, 0, 100), 0);
        i = json_skip_space(t, n, 2);
        assert_int_equal(json_skip_value(t, n, i), i + 12); /* the object, with ]} \" inside a string */
        assert_int_equal(json_skip_value("12,", 3, 0), 2);
        assert_int_equal(json_skip_value("[[[", 3, 0), 3); /* cut short: the end of the text */
        assert_int_equal(json_skip_value("\"ab", 3, 0), 3);
}

static void test_strict_number(void **state)
{
        const char *good[] = {"0",   "-0",  "1",    "-1",      "10",
                              "1.5", "1e3", "1E+3", "-0.0e-0", "12345678901234567890"};
        const char *bad[] = {"", "-", "01", "1.", ".5", "+1", "1e", "1e+", "0x10", "1.e5", "--1", "1 "};

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(json_is_strict_number(good[i], strlen(good[i])));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(json_is_strict_number(bad[i], strlen(bad[i])));
}

static void check_id_text(const char *msg, const char *want)
{
        cJSON *m = json_parse(msg, strlen(msg));
        const cJSON *req;
        char *out;

        assert_non_null(m);
        assert_int_equal(jsonrpc_keep_id_text(m, msg, strlen(msg)), 0);
        /* In a batch, the last member. */
        req = cJSON_IsArray(m) ? cJSON_GetArrayItem(m, cJSON_GetArraySize(m) - 1) : m;
        out = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(req, "id"));
        assert_string_equal(out, want);
        free(out);
        cJSON_Delete(m);
}

static void test_keep_id_text(void **state)
{
        check_id_text("{\"id\":8000000000000001}", "8000000000000001");
        check_id_text("{\"a\":{\"id\":1},\"id\" : 12345678901234567890 }", "12345678901234567890");
        check_id_text("{\"\\u0069d\":1e3}", "1e3");
        check_id_text("{\"id\":\"a\\u00e9\\/\"}", "\"a\\u00e9\\/\"");
        check_id_text("{\"id\":1,\"id\":2}", "1"); /* the first, as cJSON reads it */
        check_id_text("{\"id\":01}", "1");         /* cJSON's leniency is not echoed */
        check_id_text("{\"id\":null}", "null");
        /* Control characters between tokens are whitespace to cJSON, and so to the scan. */
        check_id_text("{\x01\"id\"\x02:\x03\"x\"\x04}", "\"x\"");
        check_id_text("{\"id\":\x0b"
                      "8000000000000001\x0c}",
                      "8000000000000001");
        check_id_text("[{\"x\":[1,{\"id\":3}]} , 7, {\"id\":8000000000000001}]", "8000000000000001");

        /* A raw NUL ends cJSON's copy of the key "id\0\0" (such text is refused, and parsed only for its
         * id): not the member named "id" for the scan, which must not read past the name either. */
        /* Nor is an id whose text is no JSON string on its own: a raw NUL or control character in it
         * (also refused, so also parsed for its id only) is not echoed raw. */
        static const char *bad_ids[] = {"{\"id\":\"a\x01\"}", "{\"id\":\"\xff\"}", "{\"id\":\"a\\u0000\"}",
                                        "{\"id\":\x03\"a\x01\"}"};
        for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
                cJSON *b = json_parse(bad_ids[i], strlen(bad_ids[i]));
                if (!b)
                        continue;
                assert_int_equal(jsonrpc_keep_id_text(b, bad_ids[i], strlen(bad_ids[i])), 0);
                assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(b, "id")));
                cJSON_Delete(b);
        }
        static const char nul_id[] = "{\"id\":\"\0\0a\"}";
        cJSON *n = json_parse(nul_id, sizeof(nul_id) - 1);
        if (n) {
                assert_int_equal(jsonrpc_keep_id_text(n, nul_id, sizeof(nul_id) - 1), 0);
                assert_false(cJSON_IsRaw(cJSON_GetObjectItemCaseSensitive(n, "id")));
                cJSON_Delete(n);
        }

        static const char nul_key[] = "{\"id\0\0\":8000000000000001}";
        cJSON *m = json_parse(nul_key, sizeof(nul_key) - 1);
        if (m) {
                assert_int_equal(jsonrpc_keep_id_text(m, nul_key, sizeof(nul_key) - 1), 0);
                assert_false(cJSON_IsRaw(cJSON_GetObjectItemCaseSensitive(m, "id")));
                cJSON_Delete(m);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_prescan),       cmocka_unit_test(test_prescan_long_strings),
            cmocka_unit_test(test_parse_strict),  cmocka_unit_test(test_print),
            cmocka_unit_test(test_dispatch),      cmocka_unit_test(test_request),
            cmocka_unit_test(test_errno_mapping), cmocka_unit_test(test_create_integer),
            cmocka_unit_test(test_raw_reference), cmocka_unit_test(test_skip_and_count),
            cmocka_unit_test(test_strict_number), cmocka_unit_test(test_keep_id_text),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
