/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "line-reader.h"

static void feed(LineReader *r, const char *data)
{
        size_t n = strlen(data);
        char *buf;
        size_t len;

        assert_int_equal(line_reader_space(r, n, &buf, &len), 0);
        assert_true(len >= n);
        memcpy(buf, data, n);
        line_reader_commit(r, n);
}

static void expect_line(LineReader *r, const char *want)
{
        char *line;
        size_t len;

        assert_int_equal(line_reader_next(r, &line, &len), LINE_READER_LINE);
        assert_int_equal(len, strlen(want));
        assert_string_equal(line, want);
}

static void test_lines(void **state)
{
        LineReader r;

        line_reader_init(&r, 100);
        feed(&r, "one\ntwo\nthr");
        expect_line(&r, "one");
        expect_line(&r, "two");
        char *line;
        size_t len;
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);
        feed(&r, "ee\n\n");
        expect_line(&r, "three");
        expect_line(&r, "");
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);
        assert_int_equal(line_reader_pending(&r), 0);
        line_reader_done(&r);
}

static void test_oversize_is_skipped_once(void **state)
{
        LineReader r;
        char big[64];
        char *line;
        size_t len;

        line_reader_init(&r, 10);
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';

        /* The oversize line arrives in pieces with no LF yet: reported once, then dropped. */
        feed(&r, big);
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_OVERSIZE);
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);
        feed(&r, big);
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);
        feed(&r, "tail\nok\n");
        expect_line(&r, "ok");
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);

        /* An oversize line that arrives whole with its LF is reported too. */
        feed(&r, "0123456789ABCDEF\nfine\n");
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_OVERSIZE);
        expect_line(&r, "fine");

        /* Exactly at the limit is fine. */
        feed(&r, "0123456789\n");
        expect_line(&r, "0123456789");
        line_reader_done(&r);
}

static void test_memory_is_bounded(void **state)
{
        LineReader r;
        char chunk[4096];

        line_reader_init(&r, 8192);
        memset(chunk, 'y', sizeof(chunk) - 1);
        chunk[sizeof(chunk) - 1] = '\0';
        for (int i = 0; i < 1000; i++) {
                char *line;
                size_t len;
                feed(&r, chunk);
                while (line_reader_next(&r, &line, &len) != LINE_READER_NONE)
                        ;
                assert_true(r.cap <= 4 * 8192 + 4 * sizeof(chunk));
        }
        line_reader_done(&r);
}

static void test_big_buffer_is_given_back(void **state)
{
        LineReader r;
        char *buf, *line, *big;
        size_t len, want = 65536, n = 1 << 20;

        line_reader_init(&r, 2 * n);
        /* Reads of the same size reuse one buffer. */
        for (int i = 0; i < 3; i++) {
                assert_int_equal(line_reader_space(&r, want, &buf, &len), 0);
                memcpy(buf, "ping\n", 5);
                line_reader_commit(&r, 5);
                expect_line(&r, "ping");
                assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);
        }
        assert_int_equal(r.cap, 2 * want);

        /* One big message grows it; the next read after it starts small again. */
        big = malloc(n + 1);
        assert_non_null(big);
        memset(big, 'b', n - 1);
        big[n - 1] = '\n';
        big[n] = '\0';
        feed(&r, big);
        assert_true(r.cap > n);
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_LINE);
        assert_int_equal(len, n - 1);
        assert_int_equal(line_reader_space(&r, want, &buf, &len), 0);
        assert_int_equal(r.cap, 2 * want);
        free(big);
        line_reader_done(&r);
}

static void test_detach(void **state)
{
        LineReader r;
        char *line, *first, *owned;
        size_t len;

        line_reader_init(&r, 100);
        feed(&r, "first line\nsecond ");
        assert_int_equal(line_reader_next(&r, &first, &len), LINE_READER_LINE);
        assert_int_equal(len, 10);
        /* The line handed out stays in the buffer the caller now owns; the rest stays with the reader. */
        assert_int_equal(line_reader_detach(&r, &owned), 0);
        assert_true(first >= owned && first < owned + 32);
        assert_string_equal(first, "first line");
        assert_int_equal(line_reader_pending(&r), 7);
        feed(&r, "line\n");
        assert_string_equal(first, "first line");
        expect_line(&r, "second line");
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_NONE);
        free(owned);
        line_reader_done(&r);

        /* Detached inside an oversize line: the reader still skips it up to its LF. */
        line_reader_init(&r, 8);
        feed(&r, "ok\n0123456789");
        expect_line(&r, "ok");
        assert_int_equal(line_reader_next(&r, &line, &len), LINE_READER_OVERSIZE);
        assert_int_equal(line_reader_detach(&r, &owned), 0);
        free(owned);
        feed(&r, "abc\nnext\n");
        expect_line(&r, "next");
        line_reader_done(&r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_lines),
            cmocka_unit_test(test_oversize_is_skipped_once),
            cmocka_unit_test(test_memory_is_bounded),
            cmocka_unit_test(test_big_buffer_is_given_back),
            cmocka_unit_test(test_detach),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
