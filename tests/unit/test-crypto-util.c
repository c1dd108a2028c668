/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "crypto-util.h"

static void test_base64url(void **state)
{
        uint8_t in[64], out[64];
        char text[BASE64URL_LEN(sizeof(in)) + 1];

        for (size_t n = 0; n <= sizeof(in); n++) {
                assert_int_equal(random_bytes(in, n), 0);
                base64url_encode(in, n, text);
                assert_int_equal(strlen(text), BASE64URL_LEN(n));
                assert_null(strpbrk(text, "+/="));
                assert_int_equal(base64url_decode(text, strlen(text), out, n), 0);
                assert_memory_equal(in, out, n);
        }
        base64url_encode((const uint8_t *)"\xfb\xff", 2, text);
        assert_string_equal(text, "-_8");
        /* Wrong length, wrong alphabet, non-zero leftover bits: all refused. */
        assert_int_equal(base64url_decode("-_8", 3, out, 1), -EINVAL);
        assert_int_equal(base64url_decode("+/8", 3, out, 2), -EINVAL);
        assert_int_equal(base64url_decode("-_9", 3, out, 2), -EINVAL);
        assert_int_equal(base64url_decode("-_8=", 4, out, 2), -EINVAL);
}

static void test_secret_equal(void **state)
{
        assert_true(secret_equal("abc", 3, "abc", 3));
        assert_false(secret_equal("abd", 3, "abc", 3));
        assert_false(secret_equal("ab", 2, "abc", 3));
        assert_false(secret_equal("abcd", 4, "abc", 3));
        assert_false(secret_equal("", 0, "abc", 3));
        assert_true(secret_equal("", 0, "", 0));
}

/* The reference vector of the SipHash paper (appendix A). */
static void test_siphash(void **state)
{
        uint8_t key[16], msg[15];

        for (unsigned i = 0; i < 16; i++)
                key[i] = (uint8_t)i;
        for (unsigned i = 0; i < 15; i++)
                msg[i] = (uint8_t)i;
        assert_true(siphash24(msg, sizeof(msg), key) == 0xa129ca6149be45e5ULL);
        assert_true(siphash24("", 0, key) == 0x726fdb47dd0e0e31ULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_base64url),
            cmocka_unit_test(test_secret_equal),
            cmocka_unit_test(test_siphash),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
