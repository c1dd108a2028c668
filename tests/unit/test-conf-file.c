/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf-file.h"
#include "parse-util.h"

typedef struct Seen {
        char text[512];
        unsigned n;
} Seen;

static int collect(const char *path, unsigned line, const char *key, const char *value, void *userdata)
{
        Seen *s = userdata;
        size_t len = strlen(s->text);

        snprintf(s->text + len, sizeof(s->text) - len, "%u:%s=%s|", line, key, value);
        s->n++;
        return strcmp(key, "stop") == 0 ? -ECANCELED : 0;
}

static int parse_text(const char *text, Seen *s)
{
        FILE *f = fmemopen((void *)text, strlen(text), "r");
        int r;

        assert_non_null(f);
        *s = (Seen){};
        r = conf_file_parse_stream(f, "test", collect, s);
        fclose(f);
        return r;
}

static void test_settings(void **state)
{
        Seen s;

        assert_int_equal(
            parse_text("# comment\n\n  key = value  \n;other\nempty =\nx=a = b\n  spaced key = 1", &s), 0);
        assert_string_equal(s.text, "3:key=value|5:empty=|6:x=a = b|7:spaced key=1|");
        assert_int_equal(parse_text("no equals sign\n", &s), -EINVAL);
        assert_int_equal(parse_text(" = value\n", &s), -EINVAL);
        assert_int_equal(parse_text("a=1\nstop=now\nb=2\n", &s), -ECANCELED);
        assert_int_equal(s.n, 2);
        assert_int_equal(parse_text("a=1\0b=2\n", &s), 0); /* fmemopen sees only up to the NUL */
}

static int parse_section(const char *text, const char *section, Seen *s)
{
        static const char *const sections[] = {"worker", "other", NULL};
        FILE *f = fmemopen((void *)text, strlen(text), "r");
        int r;

        assert_non_null(f);
        *s = (Seen){};
        r = conf_file_parse_section_stream(f, "test", section, sections, collect, s);
        fclose(f);
        return r;
}

static void test_sections(void **state)
{
        static const char text[] = "top = 1\n[worker]\nw = 2\n [ other ] \no = 3\n[worker]\nw2 = 4\n";
        Seen s;

        assert_int_equal(parse_section(text, NULL, &s), 0);
        assert_string_equal(s.text, "1:top=1|");
        assert_int_equal(parse_section(text, "worker", &s), 0);
        assert_string_equal(s.text, "3:w=2|7:w2=4|");
        assert_int_equal(parse_section(text, "other", &s), 0);
        assert_string_equal(s.text, "5:o=3|");
        /* An unknown section is an error whichever is read; so is a header without its bracket. */
        assert_int_equal(parse_section("a = 1\n[workers]\nb = 2\n", NULL, &s), -EINVAL);
        assert_int_equal(parse_section("[worker\nb = 2\n", "worker", &s), -EINVAL);
        /* Where no section is allowed, a header is no setting. */
        assert_int_equal(parse_text("a = 1\n[worker]\n", &s), -EINVAL);
}

static void test_nul_and_long_lines(void **state)
{
        static char text[CONF_FILE_LINE_MAX + 16];
        Seen s;
        FILE *f;

        memset(text, 'x', sizeof(text) - 2);
        text[0] = 'k';
        text[1] = '=';
        text[sizeof(text) - 2] = '\n';
        f = fmemopen(text, sizeof(text) - 1, "r");
        assert_int_equal(conf_file_parse_stream(f, "test", collect, &s), -EINVAL);
        fclose(f);

        static const char with_nul[] = "a=1\0x\nb=2\n";
        f = fmemopen((void *)with_nul, sizeof(with_nul) - 1, "r");
        s = (Seen){};
        assert_int_equal(conf_file_parse_stream(f, "test", collect, &s), -EINVAL);
        fclose(f);
        assert_int_equal(conf_file_parse("/nonexistent/helios.conf", collect, &s), -ENOENT);
}

static void test_values(void **state)
{
        uint64_t v;
        bool b;

        assert_int_equal(parse_size("16M", 0, UINT64_MAX, &v), 0);
        assert_true(v == 16u << 20);
        assert_int_equal(parse_size("4KiB", 0, UINT64_MAX, &v), 0);
        assert_true(v == 4096);
        assert_int_equal(parse_size("1G", 0, 1024, &v), -ERANGE);
        assert_int_equal(parse_size("-1", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_size(" 1", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_size("1X", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_size("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
        assert_int_equal(parse_uint("42", 1, 100, &v), 0);
        assert_true(v == 42);
        assert_int_equal(parse_uint("0x10", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_uint("0", 1, 100, &v), -ERANGE);
        assert_int_equal(parse_duration_ms("10", 0, UINT64_MAX, &v), 0);
        assert_true(v == 10000);
        assert_int_equal(parse_duration_ms("1500ms", 0, UINT64_MAX, &v), 0);
        assert_true(v == 1500);
        assert_int_equal(parse_duration_ms("2min", 0, UINT64_MAX, &v), 0);
        assert_true(v == 120000);
        assert_int_equal(parse_duration_ms("7d", 0, UINT64_MAX, &v), 0);
        assert_true(v == 7ULL * 24 * 3600 * 1000);
        assert_int_equal(parse_duration_ms("1y", 0, UINT64_MAX, &v), -EINVAL);
        assert_int_equal(parse_bool("on", &b), 0);
        assert_true(b);
        assert_int_equal(parse_bool("false", &b), 0);
        assert_false(b);
        assert_int_equal(parse_bool("maybe", &b), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_settings),
            cmocka_unit_test(test_sections),
            cmocka_unit_test(test_nul_and_long_lines),
            cmocka_unit_test(test_values),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
