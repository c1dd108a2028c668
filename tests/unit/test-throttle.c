/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>

#include "throttle.h"

static const ThrottlePolicy policy = {
    .pair_burst = 3,
    .address_burst = 10,
    .account_burst = 6,
    .max_delay_ms = 8000,
    .forget_ms = 60000,
    .max_entries = 100,
};

static void test_pair_burst_then_doubling(void **state)
{
        Throttle *t;
        uint64_t now = 1000000;

        assert_int_equal(throttle_new(&policy, &t), 0);
        throttle_login_failed(t, "192.0.2.1", "a", now);
        throttle_login_failed(t, "192.0.2.1", "a", now);
        assert_int_equal(throttle_login_wait(t, "192.0.2.1", "a", now), 0);
        throttle_login_failed(t, "192.0.2.1", "a", now); /* third: the pair's burst is used up */
        assert_int_equal(throttle_login_wait(t, "192.0.2.1", "a", now), 1000);
        throttle_login_failed(t, "192.0.2.1", "a", now);
        assert_int_equal(throttle_login_wait(t, "192.0.2.1", "a", now), 2000);
        /* The same address may still try another account, and another address this one. */
        assert_int_equal(throttle_login_wait(t, "192.0.2.1", "b", now), 0);
        assert_int_equal(throttle_login_wait(t, "192.0.2.2", "a", now), 0);
        for (int i = 0; i < 10; i++)
                throttle_login_failed(t, "192.0.2.1", "a", now);
        assert_int_equal(throttle_login_wait(t, "192.0.2.1", "a", now), 8000); /* the ceiling */
        assert_int_equal(throttle_login_wait(t, "192.0.2.1", "a", now + 8000), 0);
        throttle_free(t);
}

static void test_address_is_looser(void **state)
{
        char user[16];
        Throttle *t;

        assert_int_equal(throttle_new(&policy, &t), 0);
        /* Nine accounts, one failure each, from one NAT: nobody behind it waits. */
        for (int i = 0; i < 9; i++) {
                snprintf(user, sizeof(user), "u%d", i);
                throttle_login_failed(t, "nat", user, 1000);
        }
        assert_int_equal(throttle_login_wait(t, "nat", "someone", 1000), 0);
        assert_int_equal(throttle_login_wait(t, "nat", NULL, 1000), 0);
        throttle_login_failed(t, "nat", "u9", 1000); /* the tenth */
        assert_true(throttle_login_wait(t, "nat", "someone", 1000) > 0);
        assert_true(throttle_login_wait(t, "nat", NULL, 1000) > 0);
        throttle_free(t);
}

static void test_account_never_locks_out_a_clean_address(void **state)
{
        char addr[16];
        Throttle *t;

        assert_int_equal(throttle_new(&policy, &t), 0);
        /* Many addresses, one failure each, against one account. */
        for (int i = 0; i < 20; i++) {
                snprintf(addr, sizeof(addr), "10.0.0.%d", i);
                throttle_login_failed(t, addr, "victim", 1000);
        }
        /* Those addresses are slowed for that account... */
        assert_true(throttle_login_wait(t, "10.0.0.3", "victim", 1000) > 0);
        assert_int_equal(throttle_login_wait(t, "10.0.0.3", "other", 1000), 0);
        /* ...its owner, from an address without failures, is not. */
        assert_int_equal(throttle_login_wait(t, "198.51.100.7", "victim", 1000), 0);
        /* A success starts the account afresh. */
        throttle_login_succeeded(t, "198.51.100.7", "victim");
        assert_int_equal(throttle_login_wait(t, "10.0.0.3", "victim", 1000), 0);
        throttle_free(t);
}

static void test_forgotten_after_quiet(void **state)
{
        Throttle *t;

        assert_int_equal(throttle_new(&policy, &t), 0);
        for (int i = 0; i < 5; i++)
                throttle_login_failed(t, "x", "a", 1000);
        assert_true(throttle_login_wait(t, "x", "a", 1000) > 0);
        assert_int_equal(throttle_login_wait(t, "x", "a", 1000 + 60000), 0);
        assert_int_equal(throttle_size(t), 0);
        throttle_free(t);
}

static void test_bounded(void **state)
{
        char addr[32];
        Throttle *t;

        assert_int_equal(throttle_new(&policy, &t), 0);
        for (int i = 0; i < 10000; i++) {
                snprintf(addr, sizeof(addr), "addr%d", i);
                throttle_login_failed(t, addr, NULL, 1000 + (uint64_t)i);
        }
        assert_int_equal(throttle_size(t), 100);
        /* The oldest went first; the newest are still counted. */
        for (int i = 0; i < 10; i++)
                throttle_login_failed(t, "addr9999", NULL, 20000);
        assert_true(throttle_login_wait(t, "addr9999", NULL, 20000) > 0);
        assert_int_equal(throttle_login_wait(t, "addr0", NULL, 20000), 0);
        throttle_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_pair_burst_then_doubling),
            cmocka_unit_test(test_address_is_looser),
            cmocka_unit_test(test_account_never_locks_out_a_clean_address),
            cmocka_unit_test(test_forgotten_after_quiet),
            cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
