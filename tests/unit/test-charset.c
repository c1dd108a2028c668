/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "charset.h"

static void test_names(void **state)
{
        for (Charset c = 0; c < _CHARSET_MAX; c++)
                assert_int_equal(charset_from_string(charset_to_string(c)), c);
        assert_int_equal(charset_from_string("latin-1"), -EINVAL);
        assert_int_equal(charset_from_string("UTF-8"), -EINVAL);
        assert_null(charset_to_string(_CHARSET_MAX));
}

static void test_detect(void **state)
{
        assert_int_equal(charset_detect_legacy("caf\xe9\r\n\t\f", 8), CHARSET_LATIN1);
        assert_int_equal(charset_detect_legacy("\x93q\x94 \x80", 5), CHARSET_CP1252);
        /* Control characters and the five bytes Windows-1252 leaves undefined are binary. */
        assert_int_equal(charset_detect_legacy("a\0b", 3), -EINVAL);
        assert_int_equal(charset_detect_legacy("\x1b[0m\xe9", 5), -EINVAL);
        assert_int_equal(charset_detect_legacy("\x7f\xe9", 2), -EINVAL);
        for (const char *p = "\x81\x8d\x8f\x90\x9d"; *p; p++)
                assert_int_equal(charset_detect_legacy(p, 1), -EINVAL);
}

/* Every byte Windows-1252 defines decodes and encodes back to itself; Latin-1 does so for all 256. */
static void test_every_byte_round_trips(void **state)
{
        for (Charset c = CHARSET_LATIN1; c < _CHARSET_MAX; c++)
                for (unsigned b = 1; b < 256; b++) {
                        char in = (char)b;
                        Buf text = {}, back = {};
                        int r = charset_decode_append(c, &in, 1, &text);

                        if (c == CHARSET_CP1252 && strchr("\x81\x8d\x8f\x90\x9d", (int)b)) {
                                assert_int_equal(r, -EINVAL);
                                buf_done(&text);
                                continue;
                        }
                        assert_int_equal(r, 0);
                        assert_int_equal(charset_encode_append(c, text.data, text.len, &back, NULL), 0);
                        assert_int_equal(back.len, 1);
                        assert_int_equal((unsigned char)back.data[0], b);
                        buf_done(&text);
                        buf_done(&back);
                }
}

static void test_decode(void **state)
{
        Buf out = {};

        assert_int_equal(charset_decode_append(CHARSET_CP1252, "\x80 \x93x\x94 \xe9", 7, &out), 0);
        assert_string_equal(out.data, "\xe2\x82\xac \xe2\x80\x9cx\xe2\x80\x9d \xc3\xa9");
        buf_done(&out);
        /* In Latin-1, 0x80 is the C1 control U+0080, not the euro sign. */
        assert_int_equal(charset_decode_append(CHARSET_LATIN1, "\x80\xff", 2, &out), 0);
        assert_string_equal(out.data, "\xc2\x80\xc3\xbf");
        buf_done(&out);
}

static void test_encode_refuses(void **state)
{
        CharsetBadChar bad = {};
        Buf out = {};

        /* The euro sign is not Latin-1; its offset counts UTF-16 units. */
        assert_int_equal(charset_encode_append(CHARSET_LATIN1, "ab\xc3\xa9\xe2\x82\xac", 7, &out, &bad),
                         -EILSEQ);
        assert_int_equal(bad.code_point, 0x20ac);
        assert_int_equal(bad.offset, 3);
        buf_done(&out);
        assert_int_equal(charset_check(CHARSET_CP1252, "\xe2\x82\xac\xf0\x9f\x98\x80", 7, &bad), -EILSEQ);
        assert_int_equal(bad.code_point, 0x1f600);
        assert_int_equal(bad.offset, 1);
        /* C1 controls are not Windows-1252 characters. */
        assert_int_equal(charset_check(CHARSET_CP1252, "\xc2\x81", 2, &bad), -EILSEQ);
        assert_int_equal(charset_check(CHARSET_LATIN1, "\xc2\x81", 2, &bad), 0);
        assert_int_equal(charset_check(CHARSET_CP1252, "\xe2\x80\x9c\xe2\x80\x9d", 6, &bad), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_detect),
            cmocka_unit_test(test_every_byte_round_trips),
            cmocka_unit_test(test_decode),
            cmocka_unit_test(test_encode_refuses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
