/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>

#include "throttle.h"

static const ThrottlePolicy policy = {
    .burst = 3,
    .max_delay_ms = 8000,
    .forget_ms = 60000,
    .max_entries = 100,
};

static void test_burst_then_doubling(void **state)
{
        Throttle *t;
        uint64_t now = 1000000;

        assert_int_equal(throttle_new(&policy, &t), 0);
        throttle_failure(t, "user:a", now);
        throttle_failure(t, "user:a", now);
        assert_int_equal(throttle_wait(t, "user:a", now), 0);
        throttle_failure(t, "user:a", now); /* third: the burst is used up */
        assert_int_equal(throttle_wait(t, "user:a", now), 1000);
        throttle_failure(t, "user:a", now);
        assert_int_equal(throttle_wait(t, "user:a", now), 2000);
        for (int i = 0; i < 10; i++)
                throttle_failure(t, "user:a", now);
        assert_int_equal(throttle_wait(t, "user:a", now), 8000); /* the ceiling */
        assert_int_equal(throttle_wait(t, "user:a", now + 8000), 0);
        /* Other keys are untouched; forgetting resets. */
        assert_int_equal(throttle_wait(t, "user:b", now), 0);
        throttle_forget(t, "user:a");
        assert_int_equal(throttle_wait(t, "user:a", now), 0);
        assert_int_equal(throttle_size(t), 0);
        throttle_free(t);
}

static void test_forgotten_after_quiet(void **state)
{
        Throttle *t;

        assert_int_equal(throttle_new(&policy, &t), 0);
        for (int i = 0; i < 5; i++)
                throttle_failure(t, "addr:x", 1000);
        assert_true(throttle_wait(t, "addr:x", 1000) > 0);
        assert_int_equal(throttle_wait(t, "addr:x", 1000 + 60000), 0);
        assert_int_equal(throttle_size(t), 0);
        throttle_free(t);
}

static void test_bounded(void **state)
{
        char key[32];
        Throttle *t;

        assert_int_equal(throttle_new(&policy, &t), 0);
        for (int i = 0; i < 10000; i++) {
                snprintf(key, sizeof(key), "addr:%d", i);
                throttle_failure(t, key, 1000 + (uint64_t)i);
        }
        assert_int_equal(throttle_size(t), 100);
        /* The oldest went first; the newest are still counted. */
        throttle_failure(t, "addr:9999", 20000);
        throttle_failure(t, "addr:9999", 20000);
        assert_true(throttle_wait(t, "addr:9999", 20000) > 0);
        assert_int_equal(throttle_wait(t, "addr:0", 20000), 0);
        throttle_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_burst_then_doubling),
            cmocka_unit_test(test_forgotten_after_quiet),
            cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
