/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs-encoding.h"
#include "json.h"
#include "macro.h"

static void test_base64_rfc4648_vectors(void **state)
{
        static const struct {
                const char *plain, *encoded;
        } vectors[] = {
                {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
                {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
        };

        for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
                _cleanup_free_ char *enc = NULL;
                _cleanup_free_ uint8_t *dec = NULL;
                size_t len;

                assert_int_equal(base64_encode(vectors[i].plain, strlen(vectors[i].plain), &enc, &len), 0);
                assert_string_equal(enc, vectors[i].encoded);
                assert_int_equal(len, strlen(vectors[i].encoded));
                assert_int_equal(base64_encoded_size(strlen(vectors[i].plain)), len);

                assert_int_equal(base64_decode(enc, len, &dec, &len), 0);
                assert_int_equal(len, strlen(vectors[i].plain));
                assert_memory_equal(dec, vectors[i].plain, len);
        }
}

static void test_base64_all_bytes_round_trip(void **state)
{
        uint8_t all[256];

        for (size_t i = 0; i < sizeof(all); i++)
                all[i] = (uint8_t)i;
        /* Every length modulo 3, so every padding case meets every byte value. */
        for (size_t n = 253; n <= 256; n++) {
                _cleanup_free_ char *enc = NULL;
                _cleanup_free_ uint8_t *dec = NULL;
                size_t len, dlen;

                assert_int_equal(base64_encode(all, n, &enc, &len), 0);
                assert_int_equal(base64_decode(enc, len, &dec, &dlen), 0);
                assert_int_equal(dlen, n);
                assert_memory_equal(dec, all, n);
        }
}

static void test_base64_strict(void **state)
{
        static const char *const bad[] = {
                "Zg",        /* unpadded */
                "Zg=",       /* short padding */
                "Z===",      /* one digit cannot hold a byte */
                "====",      /* padding only */
                "Zh==",      /* non-zero bits under the padding */
                "Zm9=",      /* ditto, one pad */
                "Zm9v\n",    /* whitespace */
                "Zm 9v",     /* ditto */
                "Zm9v====",  /* padding beyond the last group */
                "Zg==Zm9v",  /* padding in the middle */
                "Zm-v",      /* URL-safe alphabet is not this one */
                "Zm_v",
                "Zm9v\303\251AA", /* non-ASCII (é) */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t *dec = NULL;
                size_t len = 0;

                assert_int_equal(base64_decode(bad[i], strlen(bad[i]), &dec, &len), -EINVAL);
                assert_null(dec);
        }
}

static void test_text_is_json_safe(void **state)
{
        assert_true(fs_text_is_json_safe("", 0));
        assert_true(fs_text_is_json_safe("h\xc3\xa9llo\n\t", 8));
        assert_false(fs_text_is_json_safe("a\0b", 3));
        assert_false(fs_text_is_json_safe("\xff", 1));
        assert_false(fs_text_is_json_safe("\xed\xa0\x80", 3)); /* a surrogate */
        assert_false(fs_text_is_json_safe("\xc3", 1));         /* truncated */
}

/* The size estimate must be exactly what cJSON prints, or a read could overshoot the message limit. */
static void test_json_string_size_matches_cjson(void **state)
{
        char all[128 + 6];
        size_t n = 0;

        for (int c = 1; c < 128; c++)
                all[n++] = (char)c;
        memcpy(all + n, "\xc3\xa9\xe2\x82\xac", 5); /* é € */
        n += 5;
        all[n] = '\0';

        for (size_t len = 0; len <= n; len++) {
                char s[sizeof(all)];
                _cleanup_json_ cJSON *str = NULL;
                _cleanup_free_ char *printed = NULL;

                memcpy(s, all + (n - len), len); /* suffixes, so the multi-byte tail stays whole */
                s[len] = '\0';
                str = cJSON_CreateString(s);
                assert_non_null(str);
                printed = cJSON_PrintUnformatted(str);
                assert_non_null(printed);
                assert_int_equal(fs_json_string_size(s, len) + 2, strlen(printed));
        }
}

/* s as a JSON string, by fs_json_quote() and by cJSON: they must agree to the byte, as must the limit. */
static void check_quote(const char *s, size_t n)
{
        _cleanup_json_ cJSON *str = cJSON_CreateString(s);
        _cleanup_free_ char *want = NULL, *got = NULL;
        size_t len, body = fs_json_string_size(s, n);

        assert_int_equal(strlen(s), n);
        assert_non_null(str);
        want = cJSON_PrintUnformatted(str);
        assert_non_null(want);
        assert_int_equal(fs_json_quote(s, n, body, &got, &len), 0);
        if (!streq(got, want))
                fail_msg("fs_json_quote() wrote %s, cJSON %s", got, want);
        assert_int_equal(len, strlen(want));
        assert_int_equal(len, body + 2);
        free(TAKE_PTR(got));
        if (body > 0) {
                assert_int_equal(fs_json_quote(s, n, body - 1, &got, &len), -EFBIG);
                assert_null(got);
        }
}

static void test_json_quote_matches_cjson(void **state)
{
        char s[64];
        uint64_t x = 0x2545f4914f6cdd1d;

        check_quote("", 0);
        /* Every byte cJSON takes (it stops at NUL, and does not look at UTF-8), alone and at every
         * position of a 20-byte string, so that it falls at each place in and beyond an 8-byte word. */
        for (int c = 1; c < 256; c++) {
                s[0] = (char)c;
                s[1] = '\0';
                check_quote(s, 1);
                for (size_t pos = 0; pos < 20; pos++) {
                        memset(s, 'x', 20);
                        s[pos] = (char)c;
                        s[20] = '\0';
                        check_quote(s, 20);
                }
        }
        /* Text that needs escapes here and there, of every length up to 63. */
        for (int i = 0; i < 20000; i++) {
                size_t n = i % 64;

                for (size_t k = 0; k < n; k++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        s[k] = "ab \t\n\"\\\x01\x1f\x7f/\xc3\xa9"[x % 13];
                }
                s[n] = '\0';
                check_quote(s, n);
        }
}

static void test_base64_quoted(void **state)
{
        uint8_t data[32];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 37 + 200);
        for (size_t n = 0; n <= sizeof(data); n++) {
                _cleanup_free_ char *plain = NULL, *quoted = NULL;
                size_t plain_len, quoted_len;

                assert_int_equal(base64_encode(data, n, &plain, &plain_len), 0);
                assert_int_equal(base64_encode_quoted(data, n, &quoted, &quoted_len), 0);
                assert_int_equal(quoted_len, plain_len + 2);
                assert_int_equal(strlen(quoted), quoted_len);
                assert_true(quoted[0] == '"' && quoted[quoted_len - 1] == '"');
                assert_memory_equal(quoted + 1, plain, plain_len);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_base64_rfc4648_vectors),
                cmocka_unit_test(test_base64_all_bytes_round_trip),
                cmocka_unit_test(test_base64_strict),
                cmocka_unit_test(test_text_is_json_safe),
                cmocka_unit_test(test_json_string_size_matches_cjson),
                cmocka_unit_test(test_json_quote_matches_cjson),
                cmocka_unit_test(test_base64_quoted),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
