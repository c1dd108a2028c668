/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const Base64Padding paddings[] = {BASE64_PAD_NONE, BASE64_PAD_OPTIONAL, BASE64_PAD_REQUIRED};

/* Decode, expecting success, and return the text of the bytes (NUL-terminated, static). */
static const char *decoded(const char *s, Base64Alphabet a, Base64Padding p)
{
        static char out[256];
        size_t n;

        assert_int_equal(base64_decode_into(s, strlen(s), a, p, (uint8_t *)out, sizeof(out) - 1, &n), 0);
        out[n] = '\0';
        return out;
}

static int decode_result(const char *s, Base64Alphabet a, Base64Padding p)
{
        uint8_t out[256];
        size_t n;

        return base64_decode_into(s, strlen(s), a, p, out, sizeof(out), &n);
}

static void test_rfc4648_vectors(void **state)
{
        static const struct {
                const char *plain, *padded;
        } v[] = {
            {"", ""},
            {"f", "Zg=="},
            {"fo", "Zm8="},
            {"foo", "Zm9v"},
            {"foob", "Zm9vYg=="},
            {"fooba", "Zm9vYmE="},
            {"foobar", "Zm9vYmFy"},
        };

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                size_t n = strlen(v[i].plain), bare = strcspn(v[i].padded, "=");
                char text[32] = {};

                assert_int_equal(base64_encoded_len(n, true), strlen(v[i].padded));
                assert_int_equal(base64_encoded_len(n, false), bare);
                base64_encode_into(v[i].plain, n, BASE64_STANDARD, true, text);
                assert_string_equal(text, v[i].padded);
                memset(text, 0, sizeof(text));
                base64_encode_into(v[i].plain, n, BASE64_URL, false, text);
                assert_int_equal(strlen(text), bare);
                assert_memory_equal(text, v[i].padded, bare);

                /* Padded: required or optional; bare: none or optional. */
                assert_string_equal(decoded(v[i].padded, BASE64_STANDARD, BASE64_PAD_REQUIRED), v[i].plain);
                assert_string_equal(decoded(v[i].padded, BASE64_STANDARD, BASE64_PAD_OPTIONAL), v[i].plain);
                assert_string_equal(decoded(text, BASE64_URL, BASE64_PAD_NONE), v[i].plain);
                assert_string_equal(decoded(text, BASE64_STANDARD, BASE64_PAD_OPTIONAL), v[i].plain);
                if (bare != strlen(v[i].padded)) {
                        assert_int_equal(decode_result(v[i].padded, BASE64_URL, BASE64_PAD_NONE), -EINVAL);
                        assert_int_equal(decode_result(text, BASE64_STANDARD, BASE64_PAD_REQUIRED), -EINVAL);
                }
        }
}

static void test_alphabets_are_kept_apart(void **state)
{
        /* 0xfb 0xff: "+/8" in the standard alphabet, "-_8" in the URL one. */
        assert_memory_equal(decoded("+/8=", BASE64_STANDARD, BASE64_PAD_REQUIRED), "\xfb\xff", 2);
        assert_memory_equal(decoded("-_8", BASE64_URL, BASE64_PAD_NONE), "\xfb\xff", 2);
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(decode_result("-_8=", BASE64_STANDARD, paddings[i]), -EINVAL);
                assert_int_equal(decode_result("+/8", BASE64_URL, paddings[i]), -EINVAL);
        }
}

static void test_only_one_text_per_byte_string(void **state)
{
        static const char *const bad[] = {
            "Zh==",     /* unused bits set */
            "Zm9=",     /* unused bits set */
            "Z===",     /* three pads */
            "Zg=",      /* padding short of a multiple of four */
            "Zg===",    /* too much padding */
            "Z",        /* one character cannot be a byte */
            "Zm9vY",    /* nor can five */
            "Zg==Zg==", /* padding in the middle */
            "Z g=",     /* whitespace */
            "Zm9v\n",   /* a newline */
            "Zm9v\0",   /* (length stops at the NUL: valid) */
        };

        for (size_t i = 0; i + 1 < sizeof(bad) / sizeof(bad[0]); i++)
                for (size_t p = 0; p < 3; p++)
                        assert_int_equal(decode_result(bad[i], BASE64_STANDARD, paddings[p]), -EINVAL);
        /* Without padding a length of 4k + 2 or 4k + 3 is fine, but not where padding is required. */
        assert_int_equal(decode_result("Zg", BASE64_STANDARD, BASE64_PAD_REQUIRED), -EINVAL);
        assert_int_equal(decode_result("Zm8", BASE64_STANDARD, BASE64_PAD_REQUIRED), -EINVAL);
}

static void test_output_limit(void **state)
{
        uint8_t out[12];
        size_t n;

        assert_int_equal(base64_decode_into("YWxpY2U6c2VjcmV0", 16, BASE64_STANDARD, BASE64_PAD_OPTIONAL,
                                            out, sizeof(out), &n),
                         0);
        assert_int_equal(n, 12);
        assert_memory_equal(out, "alice:secret", 12);
        assert_int_equal(
            base64_decode_into("YWxpY2U6c2VjcmV0", 16, BASE64_STANDARD, BASE64_PAD_OPTIONAL, out, 11, &n),
            -EINVAL);
        assert_int_equal(base64_decoded_max(16), 12);
        assert_int_equal(base64_decoded_max(4), 3);
        assert_int_equal(base64_decoded_max(3), 2);
        assert_int_equal(base64_decoded_max(2), 1);
        assert_int_equal(base64_decoded_max(1), 0);
}

static void test_round_trips(void **state)
{
        uint8_t data[100], back[100];
        char text[200];

        srand(42);
        for (size_t n = 0; n <= sizeof(data); n++) {
                for (size_t i = 0; i < n; i++)
                        data[i] = (uint8_t)rand();
                for (int a = BASE64_STANDARD; a <= BASE64_URL; a++)
                        for (int pad = 0; pad <= 1; pad++) {
                                size_t len = base64_encoded_len(n, pad), k;
                                base64_encode_into(data, n, a, pad, text);
                                assert_true(len <= sizeof(text));
                                assert_int_equal(
                                    base64_decode_into(text, len, a,
                                                       pad ? BASE64_PAD_REQUIRED : BASE64_PAD_NONE, back,
                                                       base64_decoded_max(len), &k),
                                    0);
                                assert_int_equal(k, n);
                                assert_memory_equal(back, data, n);
                        }
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_rfc4648_vectors),
            cmocka_unit_test(test_alphabets_are_kept_apart),
            cmocka_unit_test(test_only_one_text_per_byte_string),
            cmocka_unit_test(test_output_limit),
            cmocka_unit_test(test_round_trips),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
