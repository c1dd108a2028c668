/* SPDX-License-Identifier: MIT */
/* User names as helios-launcher accepts them, and their escape into unit names, checked against
 * systemd-escape itself when it is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "user-name.h"

static bool valid(const char *s)
{
        return user_name_valid(s, strlen(s));
}

static void test_valid_names(void **state)
{
        static const char *const good[] = {"alice",     "a",  "_",      "_svc",
                                           "bob-smith", "x1", "a_b-c9", "abcdefghijklmnopqrstuvwxyz012345"};
        static const char *const bad[] = {
            "",     "a/b",      "..",    "../x", "a@b",   "a\\b", "a b",
            "a\tb", "a\nb",     "a\x01", "\x7f", "Alice", "-a",   "1a",
            "a.b",  "\xc3\xa9", "a:b",   "a$",   "a*",    "~a",   "abcdefghijklmnopqrstuvwxyz0123456"};

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                assert_true(valid(good[i]));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_false(valid(bad[i]));
        /* The length given counts, not a NUL: an embedded NUL is not a short name. */
        assert_false(user_name_valid("ab\0c", 4));
        assert_true(user_name_valid("ab\0c", 2));
}

static void test_escape_known(void **state)
{
        char out[UNIT_ESCAPED_USER_MAX];

        assert_int_equal(unit_name_escape("alice", out, sizeof(out)), 0);
        assert_string_equal(out, "alice");
        assert_int_equal(unit_name_escape("bob-smith", out, sizeof(out)), 0);
        assert_string_equal(out, "bob\\x2dsmith");
        assert_int_equal(unit_name_escape("-", out, sizeof(out)), 0);
        assert_string_equal(out, "\\x2d");
        assert_int_equal(unit_name_escape(".x.y", out, sizeof(out)), 0);
        assert_string_equal(out, "\\x2ex.y");
        assert_int_equal(unit_name_escape("a/b", out, sizeof(out)), 0);
        assert_string_equal(out, "a-b");
        /* The longest valid name, all dashes but the first: every byte but one grows fourfold. */
        assert_int_equal(unit_name_escape("a-------------------------------", out, sizeof(out)), 0);
        assert_int_equal(strlen(out), 1 + 31 * 4);
        assert_int_equal(unit_name_escape("a-", out, 5), -ENOBUFS);
        assert_int_equal(unit_name_escape("a-", out, 6), 0);
}

/* systemd-escape's answer for s, or NULL when it cannot be run. */
static char *systemd_escape(const char *s)
{
        static char buf[512];
        int p[2];
        pid_t pid;
        ssize_t n, total = 0;
        int status;

        if (pipe(p) < 0)
                return NULL;
        pid = fork();
        if (pid == 0) {
                dup2(p[1], STDOUT_FILENO);
                close(p[0]);
                close(p[1]);
                execlp("systemd-escape", "systemd-escape", "--", s, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        while ((n = read(p[0], buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
                total += n;
        close(p[0]);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return NULL;
        buf[total] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return buf;
}

static void test_escape_matches_systemd(void **state)
{
        static const char *const samples[] = {"alice", "bob-smith",
                                              "_x",    "a-b-c",
                                              "x1-2",  "a b",
                                              "a\\b",  ".hidden",
                                              "a.b",   "a:b",
                                              "a/b",   "\xc3\xa9t\xc3\xa9",
                                              "a@b",   "a-------------------------------",
                                              "%",     "~"};
        char out[UNIT_ESCAPED_USER_MAX];
        const char *want;

        if (!systemd_escape("x")) {
                print_message("systemd-escape is not installed here: nothing to compare with\n");
                skip();
                return;
        }
        for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
                want = systemd_escape(samples[i]);
                assert_non_null(want);
                assert_int_equal(unit_name_escape(samples[i], out, sizeof(out)), 0);
                assert_string_equal(out, want);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_valid_names),
            cmocka_unit_test(test_escape_known),
            cmocka_unit_test(test_escape_matches_systemd),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
