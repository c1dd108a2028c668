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
            {"", ""},
            {"f", "Zg=="},
            {"fo", "Zm8="},
            {"foo", "Zm9v"},
            {"foob", "Zm9vYg=="},
            {"fooba", "Zm9vYmE="},
            {"foobar", "Zm9vYmFy"},
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
            "Zg",                         /* unpadded */
            "Zg=",                        /* short padding */
            "Z===",                       /* one digit cannot hold a byte */
            "====",                       /* padding only */
            "Zh==",                       /* non-zero bits under the padding */
            "Zm9=",                       /* ditto, one pad */
            "Zm9v\n",                     /* whitespace */
            "Zm 9v",                      /* ditto */
            "Zm9v====",                   /* padding beyond the last group */
            "Zg==Zm9v",                   /* padding in the middle */
            "Zm-v",                       /* URL-safe alphabet is not this one */
            "Zm_v",     "Zm9v\303\251AA", /* non-ASCII (é) */
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

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_base64_rfc4648_vectors),
            cmocka_unit_test(test_base64_all_bytes_round_trip),
            cmocka_unit_test(test_base64_strict),
            cmocka_unit_test(test_text_is_json_safe),
            cmocka_unit_test(test_json_string_size_matches_cjson),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
