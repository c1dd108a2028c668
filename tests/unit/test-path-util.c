/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "path-util.h"

static void test_normalize(void **state)
{
        static const struct {
                const char *base, *path, *expect;
                int error;
        } cases[] = {
            {"/a/b", "c", "/a/b/c", 0},
            {"/a/b", "./c//d/", "/a/b/c/d", 0},
            {"/a/b", "../c", "/a/c", 0},
            {"/a/b", "../../../", NULL, -EXDEV},
            {"/a/b", "/x/./y/../z", "/x/z", 0},
            {"/a/b", "/x/../../y", NULL, -EXDEV},
            {"/a/b", "/..", NULL, -EXDEV},
            {"/a", "/", "/", 0},
            {"/a", "//", "/", 0},
            {"/a", ".", "/a", 0},
            {"/a", "..", "/", 0},
            {"/a", "", NULL, -EINVAL},
            {NULL, "relative", NULL, -EINVAL},
            {NULL, "/abs//x/", "/abs/x", 0},
            {"/a", "b\nc", "/a/b\nc", 0},
            {"/a", "...", "/a/...", 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                int r = path_normalize(cases[i].base, cases[i].path, &out);

                assert_int_equal(r, cases[i].error);
                if (r == 0)
                        assert_string_equal(out, cases[i].expect);
                else
                        assert_null(out);
        }
}

static void test_normalize_limits(void **state)
{
        char name[NAME_MAX + 3], *longpath;
        _cleanup_free_ char *out = NULL;

        memset(name, 'n', sizeof(name));
        name[0] = '/';
        name[NAME_MAX + 1] = '\0'; /* "/" + NAME_MAX characters */
        assert_int_equal(path_normalize(NULL, name, &out), 0);
        free(out);
        out = NULL;
        name[NAME_MAX + 1] = 'n';
        name[NAME_MAX + 2] = '\0'; /* one more */
        assert_int_equal(path_normalize(NULL, name, &out), -ENAMETOOLONG);

        longpath = malloc(PATH_MAX + 2);
        assert_non_null(longpath);
        for (size_t i = 0; i < PATH_MAX; i += 2)
                memcpy(longpath + i, "/x", 2);
        longpath[PATH_MAX] = '\0';
        assert_int_equal(path_normalize(NULL, longpath, &out), -ENAMETOOLONG);
        /* A relative path that only grows too long once joined to the base. */
        longpath[PATH_MAX - 10] = '\0';
        assert_int_equal(path_normalize("/base/directory/name", longpath + 1, &out), -ENAMETOOLONG);
        free(longpath);
}

static void test_is_below_or_same(void **state)
{
        assert_true(path_is_below_or_same("/a/b", "/a"));
        assert_true(path_is_below_or_same("/a", "/a"));
        assert_true(path_is_below_or_same("/a", "/"));
        assert_false(path_is_below_or_same("/ab", "/a"));
        assert_false(path_is_below_or_same("/a", "/a/b"));
}

static void test_join(void **state)
{
        char *p = path_join("/a/b", "c");

        assert_string_equal(p, "/a/b/c");
        free(p);
        p = path_join("/", "c");
        assert_string_equal(p, "/c");
        free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_normalize),
            cmocka_unit_test(test_normalize_limits),
            cmocka_unit_test(test_is_below_or_same),
            cmocka_unit_test(test_join),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
