/* SPDX-License-Identifier: MIT */
/* Following OSC 0/2 window titles through terminal output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <string.h>

#include "terminal-title.h"

static bool feed(TitleTracker *t, const char *s)
{
        return title_feed(t, s, strlen(s));
}

static void test_bel_and_st(void **state)
{
        TitleTracker t = {};

        assert_false(feed(&t, "plain output\r\n"));
        assert_false(t.has_title);
        assert_true(feed(&t, "x\x1b]0;first\x07y"));
        assert_string_equal(t.title, "first");
        assert_true(feed(&t, "\x1b]2;second\x1b\\"));
        assert_string_equal(t.title, "second");
        /* The same title again is no change. */
        assert_false(feed(&t, "\x1b]2;second\x07"));
        /* The last of several in one read wins. */
        assert_true(feed(&t, "\x1b]0;a\x07\x1b]0;b\x07"));
        assert_string_equal(t.title, "b");
        /* An empty title is a title. */
        assert_true(feed(&t, "\x1b]0;\x07"));
        assert_true(t.has_title);
        assert_string_equal(t.title, "");
}

static void test_split_across_reads(void **state)
{
        const char *seq = "ab\x1b]0;split \xc3\xa9 title\x1b\\cd";
        size_t n = strlen(seq);

        /* Every way of cutting the sequence in two. */
        for (size_t cut = 0; cut <= n; cut++) {
                TitleTracker t = {};
                bool a = title_feed(&t, seq, cut), b = title_feed(&t, seq + cut, n - cut);

                assert_true(a || b);
                assert_string_equal(t.title, "split \xc3\xa9 title");
        }
}

static void test_other_sequences_are_ignored(void **state)
{
        TitleTracker t = {};

        /* Icon name only, a hyperlink, a colour query, CSI and a cancelled title. */
        assert_false(feed(&t, "\x1b]1;icon\x07"));
        assert_false(feed(&t, "\x1b]8;;http://example.com\x1b\\link\x1b]8;;\x1b\\"));
        assert_false(feed(&t, "\x1b]10;?\x07\x1b[1;31mred\x1b[0m"));
        assert_false(feed(&t, "\x1b]0;cancel\x18led\x07"));
        assert_false(feed(&t, "\x1b]20;x\x07\x1b]02x;y\x07"));
        assert_false(t.has_title);
        /* ESC inside the text abandons it and starts the next sequence. */
        assert_true(feed(&t, "\x1b]0;lost\x1b]2;kept\x07"));
        assert_string_equal(t.title, "kept");
}

static void test_control_characters_dropped(void **state)
{
        TitleTracker t = {};

        assert_true(feed(&t, "\x1b]0;a\tb\rc\x7f"
                             "d\x07"));
        assert_string_equal(t.title, "abcd");
}

static void test_long_title_cut_on_a_character(void **state)
{
        char seq[1024] = "\x1b]0;a";
        TitleTracker t = {};
        size_t len;

        /* "a" then "é" (2 bytes) repeated: byte TITLE_MAX falls inside a character. */
        for (int i = 0; i < 300; i++)
                strcat(seq, "\xc3\xa9");
        strcat(seq, "\x07");
        assert_true(feed(&t, seq));
        len = strlen(t.title);
        assert_int_equal(len, TITLE_MAX - 1);
        assert_memory_equal(t.title + len - 2, "\xc3\xa9", 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bel_and_st),
            cmocka_unit_test(test_split_across_reads),
            cmocka_unit_test(test_other_sequences_are_ignored),
            cmocka_unit_test(test_control_characters_dropped),
            cmocka_unit_test(test_long_title_cut_on_a_character),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
