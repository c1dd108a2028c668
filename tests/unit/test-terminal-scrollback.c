/* SPDX-License-Identifier: MIT */
/* The scrollback ring and its JSON snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "terminal-scrollback.h"

/* The snapshot with a generous budget, as a C string. */
static char *snapshot(const Scrollback *sb, size_t budget)
{
        Buf out = {};

        assert_int_equal(scrollback_escape_append(sb, budget, &out), 0);
        if (!out.data)
                return strdup("");
        return buf_steal(&out, NULL);
}

static void append(Scrollback *sb, const char *s)
{
        assert_int_equal(scrollback_append(sb, s, strlen(s)), 0);
}

static void test_empty(void **state)
{
        Scrollback sb;
        char *s;

        scrollback_init(&sb, 16);
        s = snapshot(&sb, 1000);
        assert_string_equal(s, "");
        free(s);
        scrollback_done(&sb);
}

static void test_keeps_newest_bytes_across_wraps(void **state)
{
        char expect[64];
        Scrollback sb;
        char *s;

        scrollback_init(&sb, 10);
        append(&sb, "abc");
        append(&sb, "defg");
        s = snapshot(&sb, 1000);
        assert_string_equal(s, "abcdefg");
        free(s);

        /* Every split point of the wrap, over several laps. */
        for (int i = 0; i < 40; i++) {
                char c[2] = {(char)('A' + i % 26), 0};
                append(&sb, c);
        }
        for (int i = 30; i < 40; i++)
                expect[i - 30] = (char)('A' + i % 26);
        expect[10] = '\0';
        s = snapshot(&sb, 1000);
        assert_string_equal(s, expect);
        free(s);
        assert_int_equal(sb.len, 10);
        assert_true(sb.alloc <= 10);

        /* A write larger than the ring keeps only its tail. */
        append(&sb, "0123456789abcdefXYZ");
        s = snapshot(&sb, 1000);
        assert_string_equal(s, "9abcdefXYZ");
        free(s);
        scrollback_done(&sb);
}

static void test_memory_grows_with_use(void **state)
{
        Scrollback sb;

        scrollback_init(&sb, 1024 * 1024);
        append(&sb, "hello");
        assert_true(sb.alloc < 64 * 1024);
        scrollback_done(&sb);
}

static void test_starts_on_a_character(void **state)
{
        Scrollback sb;
        char *s;

        /* "€" is three bytes: after 5 of them in a ring of 8, the oldest kept byte is inside one. */
        scrollback_init(&sb, 8);
        for (int i = 0; i < 5; i++)
                append(&sb, "\xe2\x82\xac");
        s = snapshot(&sb, 1000);
        assert_string_equal(s, "\xe2\x82\xac\xe2\x82\xac");
        free(s);
        scrollback_done(&sb);
}

static void test_budget_counts_escapes(void **state)
{
        Scrollback sb;
        char *s;

        scrollback_init(&sb, 100);
        append(&sb, "ab\"c\x01\n");
        /* Escaped: a b \" c \u0001 \n = 1+1+2+1+6+2 = 13 bytes. */
        s = snapshot(&sb, 13);
        assert_string_equal(s, "ab\\\"c\\u0001\\n");
        free(s);
        s = snapshot(&sb, 12);
        assert_string_equal(s, "b\\\"c\\u0001\\n");
        free(s);
        s = snapshot(&sb, 8);
        assert_string_equal(s, "\\u0001\\n");
        free(s);
        s = snapshot(&sb, 7);
        assert_string_equal(s, "\\n");
        free(s);
        s = snapshot(&sb, 1);
        assert_string_equal(s, "");
        free(s);

        /* A budget cut inside a character moves forward to the next one. */
        scrollback_done(&sb);
        append(&sb, "x\xe2\x82\xacy");
        s = snapshot(&sb, 3);
        assert_string_equal(s, "y");
        free(s);
        s = snapshot(&sb, 4);
        assert_string_equal(s, "\xe2\x82\xacy");
        free(s);
        scrollback_done(&sb);
}

static void test_nul_is_escaped(void **state)
{
        Scrollback sb;
        char *s;

        scrollback_init(&sb, 100);
        assert_int_equal(scrollback_append(&sb, "a\0b", 3), 0);
        s = snapshot(&sb, 100);
        assert_string_equal(s, "a\\u0000b");
        free(s);
        scrollback_done(&sb);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_keeps_newest_bytes_across_wraps),
            cmocka_unit_test(test_memory_grows_with_use),
            cmocka_unit_test(test_starts_on_a_character),
            cmocka_unit_test(test_budget_counts_escapes),
            cmocka_unit_test(test_nul_is_escaped),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
