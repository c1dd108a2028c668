/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void test_valid(void **state)
{
        assert_true(utf8_is_valid("", 0));
        assert_true(utf8_is_valid("hello, world and more ascii", 27));
        assert_true(utf8_is_valid("\xc3\xa9", 2));         /* é */
        assert_true(utf8_is_valid("\xe2\x82\xac", 3));     /* € */
        assert_true(utf8_is_valid("\xf0\x9f\x98\x80", 4)); /* 😀 */
        assert_true(utf8_is_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
        assert_true(utf8_is_valid("a\0b", 3));             /* NUL is valid UTF-8 */
}

static void test_invalid(void **state)
{
        assert_false(utf8_is_valid("\xff", 1));
        assert_false(utf8_is_valid("\xc0\xaf", 2));         /* overlong / */
        assert_false(utf8_is_valid("\xe0\x80\xaf", 3));     /* overlong */
        assert_false(utf8_is_valid("\xed\xa0\x80", 3));     /* surrogate D800 */
        assert_false(utf8_is_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
        assert_false(utf8_is_valid("\xc3", 1));             /* truncated */
        assert_false(utf8_is_valid("abcdefgh\x80", 9));     /* lone continuation after the fast path */
}

/* Every way of cutting valid text into pieces validates; invalid text fails wherever it is cut. */
static void test_stream(void **state)
{
        static const char text[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
        static const char *const bad[] = {"\xc3\xc3",     "\xe2\x82", "\xed\xa0\x80",
                                          "\xf0\x9f\x98", "\x80",     "ok\xff"};
        size_t n = strlen(text);

        for (size_t cut1 = 0; cut1 <= n; cut1++)
                for (size_t cut2 = cut1; cut2 <= n; cut2++) {
                        Utf8Stream st = {};
                        assert_true(utf8_stream_feed(&st, text, cut1, false));
                        assert_true(utf8_stream_feed(&st, text + cut1, cut2 - cut1, false));
                        assert_true(utf8_stream_feed(&st, text + cut2, n - cut2, true));
                }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                size_t m = strlen(bad[i]);
                for (size_t cut = 0; cut <= m; cut++) {
                        Utf8Stream st = {};
                        bool ok = utf8_stream_feed(&st, bad[i], cut, false) &&
                                  utf8_stream_feed(&st, bad[i] + cut, m - cut, true);
                        assert_false(ok);
                }
        }
        /* Incomplete at a piece's end is fine; at the end of the text it is not. */
        Utf8Stream st = {};
        assert_true(utf8_stream_feed(&st, "\xe2\x82", 2, false));
        assert_false(utf8_stream_feed(&st, "", 0, true));
}

static void sanitize(const char *in, size_t n, bool final, const char *want, size_t want_consumed)
{
        Buf b = {};
        size_t consumed;

        assert_int_equal(utf8_sanitize_append(&b, in, n, final, &consumed), 0);
        assert_int_equal(consumed, want_consumed);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        assert_true(utf8_is_valid(b.data, b.len));
        buf_done(&b);
}

static void test_sanitize(void **state)
{
        sanitize("abc", 3, false, "abc", 3);
        sanitize("a\xff"
                 "b",
                 3, false,
                 "a\xef\xbf\xbd"
                 "b",
                 3);
        /* An incomplete sequence at the end is carried over unless this is the final chunk. */
        sanitize("ab\xe2\x82", 4, false, "ab", 2);
        sanitize("ab\xe2\x82", 4, true, "ab\xef\xbf\xbd\xef\xbf\xbd", 4);
        /* A sequence broken in the middle is replaced, and what follows is kept. */
        sanitize("\xe2"
                 "x",
                 2, false,
                 "\xef\xbf\xbd"
                 "x",
                 2);
        sanitize("\xed\xa0\x80", 3, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3);
}

static void test_sanitize_split_stream(void **state)
{
        /* Feed "é€😀" one byte at a time, carrying leftovers as a terminal reader does. */
        const char *text = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
        size_t n = strlen(text);
        char carry[8];
        size_t carried = 0;
        Buf out = {};

        for (size_t i = 0; i < n; i++) {
                size_t consumed;
                carry[carried++] = text[i];
                assert_int_equal(utf8_sanitize_append(&out, carry, carried, false, &consumed), 0);
                memmove(carry, carry + consumed, carried - consumed);
                carried -= consumed;
        }
        assert_int_equal(carried, 0);
        assert_int_equal(out.len, n);
        assert_memory_equal(out.data, text, n);
        buf_done(&out);
}

static void test_utf16(void **state)
{
        /* "a😀é" = a (1 unit), 😀 (2 units, 4 bytes), é (1 unit, 2 bytes) */
        const char *s = "a\xf0\x9f\x98\x80\xc3\xa9";
        size_t n = strlen(s), off;

        assert_int_equal(utf16_length(s, n), 4);
        assert_int_equal(utf16_to_byte_offset(s, n, 0, &off), 0);
        assert_int_equal(off, 0);
        assert_int_equal(utf16_to_byte_offset(s, n, 1, &off), 0);
        assert_int_equal(off, 1);
        assert_int_equal(utf16_to_byte_offset(s, n, 2, &off), -EINVAL); /* inside the surrogate pair */
        assert_int_equal(utf16_to_byte_offset(s, n, 3, &off), 0);
        assert_int_equal(off, 5);
        assert_int_equal(utf16_to_byte_offset(s, n, 4, &off), 0);
        assert_int_equal(off, 7);
        assert_int_equal(utf16_to_byte_offset(s, n, 5, &off), -ERANGE);
}

static void test_json_escape(void **state)
{
        Buf b = {};
        const char in[] = "q\"b\\n\n\r\t\x01\x1f/\xc3\xa9\0z";

        assert_int_equal(json_escape_append(&b, in, sizeof(in) - 1), 0);
        assert_string_equal(b.data, "q\\\"b\\\\n\\n\\r\\t\\u0001\\u001f/\xc3\xa9\\u0000z");
        buf_done(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_valid),
            cmocka_unit_test(test_invalid),
            cmocka_unit_test(test_stream),
            cmocka_unit_test(test_sanitize),
            cmocka_unit_test(test_sanitize_split_stream),
            cmocka_unit_test(test_utf16),
            cmocka_unit_test(test_json_escape),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
