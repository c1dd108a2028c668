/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessions.h"

static const SessionLimits limits = {
    .idle_ms = 1000,
    .lifetime_ms = 5000,
    .max_sessions = 4,
    .max_per_user = 2,
};

typedef struct Watcher {
        SessionLink link;
        int ended;
        SessionEnd why;
} Watcher;

static void on_ended(SessionLink *link, SessionEnd why)
{
        Watcher *w = (Watcher *)link;
        w->ended++;
        w->why = why;
}

static void test_create_find(void **state)
{
        char cookie[SESSION_COOKIE_LEN + 1], other[SESSION_COOKIE_LEN + 1];
        SessionStore *s;
        Session *a, *b;

        assert_int_equal(session_store_new(&limits, &s), 0);
        assert_int_equal(session_create(s, "alice", NULL, 0, &a, cookie), 0);
        assert_int_equal(strlen(cookie), 43);
        assert_int_equal(session_create(s, "alice", NULL, 0, &b, other), 0);
        assert_string_not_equal(cookie, other);
        assert_ptr_equal(session_find(s, cookie, strlen(cookie), 10), a);
        assert_string_equal(session_user(a), "alice");
        assert_ptr_equal(session_find_by_handle(s, "alice", session_handle(b)), b);
        assert_null(session_find_by_handle(s, "bob", session_handle(b)));
        /* One character off, or cut short, or longer: nothing. */
        cookie[10] = cookie[10] == 'A' ? 'B' : 'A';
        assert_null(session_find(s, cookie, 43, 10));
        assert_null(session_find(s, other, 42, 10));
        assert_null(session_find(s, "", 0, 10));
        session_store_free(s);
}

static void test_timeouts(void **state)
{
        char c1[SESSION_COOKIE_LEN + 1];
        SessionStore *s;
        Session *a;
        Watcher w = {.link.ended = on_ended};

        assert_int_equal(session_store_new(&limits, &s), 0);
        assert_int_equal(session_create(s, "alice", NULL, 0, &a, c1), 0);
        session_link(a, &w.link);
        /* Used often enough, it lives to its absolute lifetime, and not past it. */
        for (uint64_t t = 900; t < 5000; t += 900)
                assert_non_null(session_find(s, c1, 43, t));
        assert_int_equal(session_expires_ms(s, a), 5000);
        session_store_expire(s, 5000);
        assert_int_equal(w.ended, 1);
        assert_int_equal(w.why, SESSION_END_EXPIRED);
        assert_null(session_find(s, c1, 43, 5000));
        assert_int_equal(session_store_count(s), 0);

        /* Idle: ends a second after the last use. */
        assert_int_equal(session_create(s, "alice", NULL, 10000, &a, c1), 0);
        assert_non_null(session_find(s, c1, 43, 10999));
        assert_null(session_find(s, c1, 43, 12000));
        session_store_free(s);
}

static void test_limits(void **state)
{
        char c[6][SESSION_COOKIE_LEN + 1];
        SessionStore *s;
        Session *x;
        Watcher w = {.link.ended = on_ended};

        assert_int_equal(session_store_new(&limits, &s), 0);
        assert_int_equal(session_create(s, "alice", NULL, 0, &x, c[0]), 0);
        session_link(x, &w.link);
        assert_int_equal(session_create(s, "alice", NULL, 1, &x, c[1]), 0);
        /* The third of one user replaces the oldest. */
        assert_int_equal(session_create(s, "alice", NULL, 2, &x, c[2]), 0);
        assert_int_equal(w.ended, 1);
        assert_int_equal(w.why, SESSION_END_EVICTED);
        assert_null(session_find(s, c[0], 43, 3));
        assert_int_equal(session_create(s, "bob", NULL, 3, &x, c[3]), 0);
        assert_int_equal(session_create(s, "carol", NULL, 3, &x, c[4]), 0);
        /* Full of other users' sessions: refused. */
        assert_int_equal(session_create(s, "dave", NULL, 3, &x, c[5]), -EBUSY);
        session_store_free(s);
}

static void test_links(void **state)
{
        char c[SESSION_COOKIE_LEN + 1];
        SessionStore *s;
        Session *x;
        Watcher w1 = {.link.ended = on_ended}, w2 = {.link.ended = on_ended}, w3 = {.link.ended = on_ended};

        assert_int_equal(session_store_new(&limits, &s), 0);
        assert_int_equal(session_create(s, "alice", NULL, 0, &x, c), 0);
        session_link(x, &w1.link);
        session_link(x, &w2.link);
        session_link(x, &w3.link);
        session_unlink(x, &w2.link);
        session_end(s, x, SESSION_END_REVOKED);
        assert_int_equal(w1.ended, 1);
        assert_int_equal(w2.ended, 0);
        assert_int_equal(w3.ended, 1);
        assert_int_equal(w3.why, SESSION_END_REVOKED);
        /* The store ends what is left when it goes. */
        assert_int_equal(session_create(s, "alice", NULL, 0, &x, c), 0);
        session_link(x, &w2.link);
        session_store_free(s);
        assert_int_equal(w2.ended, 1);
        assert_int_equal(w2.why, SESSION_END_SHUTDOWN);
}

static __attribute__((noinline)) char *saved(SessionStore *s, uint64_t offset)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        assert_int_equal(session_store_save(s, f, offset), 0);
        assert_int_equal(fclose(f), 0);
        return text;
}

static int load(SessionStore *s, const char *text, uint64_t offset, uint64_t now)
{
        FILE *f = fmemopen((void *)text, strlen(text), "r");
        int r;

        assert_non_null(f);
        r = session_store_load(s, f, offset, now);
        fclose(f);
        return r;
}

static void test_save_and_load(void **state)
{
        static const SessionLimits roomy = {
            .idle_ms = 1000, .lifetime_ms = 5000, .max_sessions = 8, .max_per_user = 8};
        char a_cookie[SESSION_COOKIE_LEN + 1], b_cookie[SESSION_COOKIE_LEN + 1], *text, *bad;
        SessionStore *s, *t;
        Session *a, *b, *x;
        char long_line[600];
        int n;

        assert_int_equal(session_store_new(&roomy, &s), 0);
        assert_int_equal(session_create(s, "alice", "192.0.2.1", 100, &a, a_cookie), 0);
        assert_int_equal(session_create(s, "bob", "2001:db8::1", 900, &b, b_cookie), 0);
        text = saved(s, 1000000);
        /* Only digests: neither cookie is in the file. */
        assert_null(strstr(text, a_cookie));
        assert_null(strstr(text, b_cookie));

        /* A later process with another loop clock (offset): 1050 ms of wall time after alice's last use,
         * alice is idle past 1 s and dropped; bob is kept, with his id, address and times. */
        assert_int_equal(session_store_new(&roomy, &t), 0);
        assert_int_equal(load(t, text, 1000000 - 50000, 50000 + 1150), 1);
        assert_null(session_find(t, a_cookie, strlen(a_cookie), 50000 + 1150));
        x = session_find(t, b_cookie, strlen(b_cookie), 50000 + 1150);
        assert_non_null(x);
        assert_string_equal(session_user(x), "bob");
        assert_string_equal(session_from(x), "2001:db8::1");
        assert_string_equal(session_handle(x), session_handle(b));
        assert_int_equal(session_created_ms(x), 50000 + 900 - 0);
        session_store_free(t);

        /* Lines that are not ours are skipped, a file that is not ours is refused. */
        memset(long_line, 'a', sizeof(long_line) - 2);
        long_line[sizeof(long_line) - 2] = '\n';
        long_line[sizeof(long_line) - 1] = '\0';
        assert_int_equal(session_store_new(&roomy, &t), 0);
        n = asprintf(
            &bad, "%.*s%s%s%s%s%s%s", (int)strcspn(text, "\n") + 1, text, long_line,
            "zz 0123456789abcdef 1 2 - eve\n",
            "0000000000000000000000000000000000000000000000000000000000000000 0123456789abcdef 5 1 - eve\n",
            "0000000000000000000000000000000000000000000000000000000000000000 0123456789abcdef 1 2 - "
            "e\tve\n",
            "0000000000000000000000000000000000000000000000000000000000000000 0123456789abcdef 1 2 - eve "
            "extra\n",
            strchr(text, '\n') + 1);
        assert_true(n > 0);
        assert_int_equal(load(t, bad, 1000000, 1000), 2);
        assert_non_null(session_find(t, a_cookie, strlen(a_cookie), 1000));
        assert_null(session_find_by_handle(t, "eve", "0123456789abcdef"));
        /* The same sessions again are not taken twice. */
        assert_int_equal(load(t, text, 1000000, 1000), 0);
        assert_int_equal(session_store_count(t), 2);
        assert_int_equal(load(t, "helios-sessions 1\n", 0, 0), -EBADMSG);
        assert_int_equal(load(t, "", 0, 0), -EBADMSG);
        session_store_free(t);
        free(bad);
        free(text);
        session_store_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_create_find),   cmocka_unit_test(test_timeouts),
            cmocka_unit_test(test_limits),        cmocka_unit_test(test_links),
            cmocka_unit_test(test_save_and_load),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
