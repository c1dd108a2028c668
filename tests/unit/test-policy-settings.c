/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"

static char dir[] = "/tmp/helios-test-settings-XXXXXX";

static void write_file(const char *name, const char *text, mode_t mode)
{
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(chmod(path, mode), 0);
}

static void remove_files(void)
{
        char path[256];

        snprintf(path, sizeof(path), "%s/sandbox.conf", dir);
        (void)unlink(path);
        snprintf(path, sizeof(path), "%s/sandbox.d/alice.conf", dir);
        (void)unlink(path);
}

static void test_table(void **state)
{
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++) {
                const PolicySetting *s = &policy_settings[i];
                assert_non_null(s->key);
                assert_non_null(s->reason);
                assert_true(s->min <= s->value && s->value <= s->max);
                for (size_t j = 0; j < i; j++)
                        assert_string_not_equal(s->key, policy_settings[j].key);
                /* A cgroup file always comes with the controller it needs. */
                assert_true(!s->cgroup_file == !s->controller);
        }
}

static void test_defaults_without_files(void **state)
{
        PolicyValues v;
        PolicyBounds b;

        remove_files();
        assert_int_equal(policy_values_load(dir, "alice", &v), 0);
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++)
                assert_true(v.v[i] == policy_settings[i].value);
        policy_values_bounds(&v, &b);
        assert_true(b.tmp_size == policy_bounds.tmp_size && b.ptys == policy_bounds.ptys);
}

static void test_server_then_user(void **state)
{
        PolicyValues v;
        PolicyBounds b;

        remove_files();
        write_file("sandbox.conf", "# everyone\nmemory_max = 1G\ncpu_weight = 50\npty_max = 64\n", 0644);
        write_file("sandbox.d/alice.conf", "memory_max = infinity\ntmp_size = 100M\n", 0644);
        assert_int_equal(policy_values_load(dir, "alice", &v), 0);
        assert_true(v.v[POLICY_SETTING_MEMORY_MAX] == POLICY_INFINITY);
        assert_true(v.v[POLICY_SETTING_CPU_WEIGHT] == 50);
        assert_true(v.v[POLICY_SETTING_TMP_SIZE] == 100 << 20);
        policy_values_bounds(&v, &b);
        assert_true(b.tmp_size == 100 << 20 && b.ptys == 64 && b.shm_size == policy_bounds.shm_size);
        assert_true(b.tmp_inodes == policy_bounds.tmp_inodes);
        /* Someone else gets the server's. */
        assert_int_equal(policy_values_load(dir, "bob", &v), 0);
        assert_true(v.v[POLICY_SETTING_MEMORY_MAX] == 1ULL << 30);
}

static void test_refused(void **state)
{
        static const char *const bad[] = {
            "fork_bombs = 1\n",      /* unknown */
            "memory_max = 2X\n",     /* malformed */
            "memory_max = 1M\n",     /* below the minimum */
            "cpu_weight = 0\n",      /* below */
            "cpu_weight = 10001\n",  /* above */
            "cpu_weight = max\n",    /* no "no limit" for a weight */
            "tmp_size = infinity\n", /* nor for a tmpfs */
            "pty_max = -1\n",        "just words\n",
        };
        PolicyValues v;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                remove_files();
                write_file("sandbox.d/alice.conf", bad[i], 0644);
                assert_int_not_equal(policy_values_load(dir, "alice", &v), 0);
        }
        /* Writable by others, or not root's: it would let them choose bounds. */
        remove_files();
        write_file("sandbox.conf", "memory_max = 4G\n", 0664);
        assert_int_equal(policy_values_load(dir, NULL, &v), -EPERM);
        if (geteuid() == 0) {
                char path[256];
                write_file("sandbox.conf", "memory_max = 4G\n", 0644);
                snprintf(path, sizeof(path), "%s/sandbox.conf", dir);
                assert_int_equal(chown(path, 65534, 65534), 0);
                assert_int_equal(policy_values_load(dir, NULL, &v), -EPERM);
        }
        /* A name is never a path. */
        remove_files();
        assert_int_equal(policy_values_load(dir, "../alice", &v), -EINVAL);
        assert_int_equal(policy_values_load(dir, "", &v), -EINVAL);
}

static void test_format(void **state)
{
        char buf[32];

        assert_int_equal(policy_value_format(POLICY_SETTING_MEMORY_MAX, 2ULL << 30, false, buf, sizeof(buf)),
                         0);
        assert_string_equal(buf, "2G");
        assert_int_equal(policy_value_format(POLICY_SETTING_MEMORY_MAX, 2ULL << 30, true, buf, sizeof(buf)),
                         0);
        assert_string_equal(buf, "2147483648");
        assert_int_equal(
            policy_value_format(POLICY_SETTING_TASKS_MAX, POLICY_INFINITY, true, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "max");
        assert_int_equal(
            policy_value_format(POLICY_SETTING_TASKS_MAX, POLICY_INFINITY, false, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "infinity");
        assert_int_equal(policy_value_format(POLICY_SETTING_MEMORY_MAX, 3ULL << 30, false, buf, 2),
                         -ENOBUFS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table),
            cmocka_unit_test(test_defaults_without_files),
            cmocka_unit_test(test_server_then_user),
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_format),
        };
        char sub[300];
        int r;

        if (getuid() != 0)
                /* The files must be root's: as anyone else every file is refused. */
                return 77;
        if (!mkdtemp(dir))
                return 1;
        snprintf(sub, sizeof(sub), "%s/sandbox.d", dir);
        if (mkdir(sub, 0755) < 0)
                return 1;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        remove_files();
        (void)rmdir(sub);
        (void)rmdir(dir);
        return r;
}
