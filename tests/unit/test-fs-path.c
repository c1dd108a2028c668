/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fs-path.h"
#include "macro.h"

typedef struct Tree {
        char base[PATH_MAX];
        char r[PATH_MAX], nested[PATH_MAX], r2[PATH_MAX];
        FsRoots *roots;
} Tree;

static void make_file(const char *path, const char *content)
{
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_true(fputs(content, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static void at(char *buf, const Tree *t, const char *rel)
{
        assert_true((size_t)snprintf(buf, PATH_MAX, "%s/%s", t->base, rel) < PATH_MAX);
}

static int tree_setup(void **state)
{
        Tree *t = calloc(1, sizeof(Tree));
        char p[PATH_MAX], q[PATH_MAX];
        char *roots[3];

        assert_non_null(t);
        strcpy(t->base, "/tmp/helios-test-fs-path-XXXXXX");
        assert_non_null(mkdtemp(t->base));
        at(t->r, t, "r");
        at(t->nested, t, "r/nested");
        at(t->r2, t, "r2");

        assert_int_equal(mkdir(t->r, 0755), 0);
        assert_int_equal(mkdir(t->nested, 0755), 0);
        assert_int_equal(mkdir(t->r2, 0755), 0);
        at(p, t, "r/sub");
        assert_int_equal(mkdir(p, 0755), 0);
        at(p, t, "outside");
        assert_int_equal(mkdir(p, 0755), 0);

        at(p, t, "r/a");
        make_file(p, "A");
        at(p, t, "r/sub/f");
        make_file(p, "F");
        at(p, t, "r2/g");
        make_file(p, "G");
        at(p, t, "outside/secret");
        make_file(p, "SECRET");

        static const struct {
                const char *link, *target;
        } links[] = {
            {"r/sub/up", "../a"},
            {"r/abs-out", "/etc"},
            {"r/rel-out", "../outside"},
            {"r/rel-out-file", "../outside/secret"},
            {"r/deep-out", "sub/../../outside"},
            {"r/loop1", "loop2"},
            {"r/loop2", "loop1"},
            {"r/to-r2", "../r2/g"},
            {"r/dangling-in", "missing-dir/x"},
            {"r/nested/esc", "../a"},
            {"r/empty-parent", "sub/f/x"},
        };
        for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                at(p, t, links[i].link);
                assert_int_equal(symlink(links[i].target, p), 0);
        }
        /* Absolute links into the tree: only the path user space sees them by. */
        at(p, t, "r/abs-in");
        at(q, t, "r/a");
        assert_int_equal(symlink(q, p), 0);
        at(p, t, "r/abs-out-file");
        at(q, t, "outside/secret");
        assert_int_equal(symlink(q, p), 0);

        roots[0] = t->r;
        roots[1] = t->nested;
        roots[2] = t->r2;
        assert_int_equal(fs_roots_new(roots, 3, &t->roots), 0);
        *state = t;
        return 0;
}

static int tree_teardown(void **state)
{
        Tree *t = *state;
        char cmd[PATH_MAX + 16];

        fs_roots_free(t->roots);
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->base);
        assert_int_equal(system(cmd), 0);
        free(t);
        return 0;
}

static void test_roots_find(void **state)
{
        Tree *t = *state;
        char p[PATH_MAX];
        const char *rel;
        size_t i;

        at(p, t, "r/sub/f");
        assert_int_equal(fs_roots_find(t->roots, p, &i, &rel), 0);
        assert_int_equal(i, 0);
        assert_string_equal(rel, "sub/f");

        /* The longest root wins. */
        at(p, t, "r/nested/x");
        assert_int_equal(fs_roots_find(t->roots, p, &i, &rel), 0);
        assert_int_equal(i, 1);
        assert_string_equal(rel, "x");

        assert_int_equal(fs_roots_find(t->roots, t->r2, &i, &rel), 0);
        assert_int_equal(i, 2);
        assert_string_equal(rel, "");

        /* A string prefix is not a path prefix. */
        at(p, t, "r22/g");
        assert_int_equal(fs_roots_find(t->roots, p, &i, &rel), -EXDEV);
        assert_int_equal(fs_roots_find(t->roots, t->base, &i, &rel), -EXDEV);
        assert_int_equal(fs_roots_find(t->roots, "/", &i, &rel), -EXDEV);
}

/* Chase rel (below base) and compare the result's physical path with expect (below base), or the error. */
static void check_chase(const Tree *t, const char *rel, FsChaseFlags flags, const char *expect, int error)
{
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        char p[PATH_MAX], e[PATH_MAX];
        int r;

        at(p, t, rel);
        r = fs_chase(t->roots, p, flags, &loc);
        if (r != error)
                fail_msg("chase %s: got %d (%s), expected %d", rel, r, strerror(-r), error);
        if (r < 0) {
                assert_int_equal(loc.dir_fd, -1);
                return;
        }
        at(e, t, expect);
        assert_string_equal(loc.path, e);
        assert_true(loc.dir_fd >= 0);
}

static void test_chase_plain(void **state)
{
        Tree *t = *state;
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        struct stat st;

        check_chase(t, "r/sub/f", 0, "r/sub/f", 0);
        check_chase(t, "r/sub/new-file", 0, "r/sub/new-file", 0); /* the object need not exist */
        check_chase(t, "r/missing/x", 0, NULL, -ENOENT);          /* its parent must */
        check_chase(t, "r/a/x", 0, NULL, -ENOTDIR);
        check_chase(t, "r2/g", 0, "r2/g", 0);
        check_chase(t, "outside/secret", 0, NULL, -EXDEV);
        check_chase(t, "r22", 0, NULL, -EXDEV);

        /* A root itself: its own fd, named ".". */
        assert_int_equal(fs_chase(t->roots, t->r, 0, &loc), 0);
        assert_true(loc.is_root);
        assert_string_equal(loc.name, ".");
        assert_string_equal(loc.path, t->r);
        assert_int_equal(fs_location_stat(&loc, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
}

static void test_chase_symlinks_inside(void **state)
{
        Tree *t = *state;

        check_chase(t, "r/sub/up", 0, "r/a", 0);
        check_chase(t, "r/abs-in", 0, "r/a", 0);     /* absolute, but inside */
        check_chase(t, "r/to-r2", 0, "r2/g", 0);     /* into another root */
        check_chase(t, "r/nested/esc", 0, "r/a", 0); /* out of one root, into the enclosing one */
        check_chase(t, "r/dangling-in", 0, NULL, -ENOENT);
        check_chase(t, "r/empty-parent", 0, NULL, -ENOTDIR);
        check_chase(t, "r/loop1", 0, NULL, -ELOOP);
        /* Not following the final link gives the link itself. */
        check_chase(t, "r/sub/up", FS_CHASE_NOFOLLOW, "r/sub/up", 0);
        check_chase(t, "r/loop1", FS_CHASE_NOFOLLOW, "r/loop1", 0);
}

static void test_chase_symlinks_outside(void **state)
{
        Tree *t = *state;

        check_chase(t, "r/abs-out", 0, NULL, -EXDEV);
        check_chase(t, "r/abs-out/hostname", 0, NULL, -EXDEV);
        check_chase(t, "r/abs-out-file", 0, NULL, -EXDEV);
        check_chase(t, "r/rel-out", 0, NULL, -EXDEV);
        check_chase(t, "r/rel-out/secret", 0, NULL, -EXDEV);
        check_chase(t, "r/rel-out-file", 0, NULL, -EXDEV);
        check_chase(t, "r/deep-out/secret", 0, NULL, -EXDEV);
        /* Even as a parent of something to be created, and even when told not to follow the last. */
        check_chase(t, "r/rel-out/new", FS_CHASE_NOFOLLOW, NULL, -EXDEV);
        check_chase(t, "r/rel-out/new", FS_CHASE_MKDIR, NULL, -EXDEV);
        /* The link itself is inside, and may be looked at, renamed or deleted. */
        check_chase(t, "r/abs-out", FS_CHASE_NOFOLLOW, "r/abs-out", 0);
}

static void test_chase_mkdir(void **state)
{
        Tree *t = *state;
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL, again = FS_LOCATION_NULL;
        char p[PATH_MAX], e[PATH_MAX];
        struct stat st;

        at(p, t, "r/sub/m1/m2/m3");
        assert_int_equal(fs_chase(t->roots, p, FS_CHASE_MKDIR, &loc), 0);
        assert_int_equal(loc.n_created, 3);
        assert_string_equal(loc.path, p);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));

        assert_int_equal(fs_chase(t->roots, p, FS_CHASE_MKDIR, &again), 0);
        assert_int_equal(again.n_created, 0);

        /* Through a dangling link inside the workspace: its destination is made. */
        fs_location_done(&loc);
        at(p, t, "r/dangling-in");
        assert_int_equal(fs_chase(t->roots, p, FS_CHASE_MKDIR, &loc), 0);
        at(e, t, "r/missing-dir/x");
        assert_string_equal(loc.path, e);
        assert_int_equal(loc.n_created, 2);
}

static void test_location_open_refuses_swapped_symlink(void **state)
{
        Tree *t = *state;
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        char p[PATH_MAX], out[PATH_MAX];
        int fd;

        at(p, t, "r/swap");
        make_file(p, "mine");
        assert_int_equal(fs_chase(t->roots, p, 0, &loc), 0);

        /* Between the chase and the open, someone puts a link to the outside in its place. */
        assert_int_equal(unlink(p), 0);
        at(out, t, "outside/secret");
        assert_int_equal(symlink(out, p), 0);
        fd = fs_location_open(&loc, O_RDONLY, 0);
        assert_int_equal(fd, -ELOOP);
        fd = fs_location_open(&loc, O_WRONLY | O_TRUNC, 0);
        assert_int_equal(fd, -ELOOP);
}

/* The type the walk saw at rel (below base), 0 for nothing there. */
static void check_type(const Tree *t, const char *rel, FsChaseFlags flags, mode_t type)
{
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        char p[PATH_MAX];

        at(p, t, rel);
        assert_int_equal(fs_chase(t->roots, p, flags, &loc), 0);
        if (loc.type != type)
                fail_msg("chase %s: type %o, expected %o", rel, (unsigned)loc.type, (unsigned)type);
}

static void test_chase_type(void **state)
{
        Tree *t = *state;
        char p[PATH_MAX];

        at(p, t, "r/sub/fifo");
        assert_int_equal(mkfifo(p, 0600), 0);
        check_type(t, "r/a", 0, S_IFREG);
        check_type(t, "r/sub", 0, S_IFDIR);
        check_type(t, "r/sub/f", 0, S_IFREG);
        check_type(t, "r/sub/fifo", 0, S_IFIFO);
        check_type(t, "r/sub/up", 0, S_IFREG); /* what the link leads to */
        check_type(t, "r/sub/up", FS_CHASE_NOFOLLOW, S_IFLNK);
        check_type(t, "r/abs-out", FS_CHASE_NOFOLLOW, S_IFLNK);
        check_type(t, "r/sub/new-file", 0, 0);
        check_type(t, "r", 0, S_IFDIR);
        check_type(t, "r/nested", 0, S_IFDIR); /* a root inside another */
}

static void test_chase_type_of_a_device(void **state)
{
        _cleanup_(fs_roots_freep) FsRoots *roots = NULL;
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        char *dev[] = {(char *)"/dev"};
        struct stat st;

        /* What fs:read_file looks at before it would open anything. */
        if (lstat("/dev/null", &st) < 0 || !S_ISCHR(st.st_mode)) {
                print_message("/dev/null is not a character device here\n");
                skip();
        }
        assert_int_equal(fs_roots_new(dev, 1, &roots), 0);
        assert_int_equal(fs_chase(roots, "/dev/null", 0, &loc), 0);
        assert_int_equal(loc.type, S_IFCHR);
}

static unsigned count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void test_chase_keeps_root_fds_and_leaks_none(void **state)
{
        Tree *t = *state;
        static const char *const rels[] = {
            "r", "r/a", "r/sub", "r/sub/f", "r/sub/up", "r/to-r2", "r/nested/esc", "r/sub/new-file",
        };
        unsigned before = count_fds();

        /* Locations directly beneath a root share its fd; deeper ones have their own. Done with, neither
         * may close a root's fd or keep one open. */
        for (unsigned i = 0; i < 16; i++) {
                for (size_t k = 0; k < ELEMENTSOF(rels); k++) {
                        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
                        char p[PATH_MAX];

                        at(p, t, rels[k]);
                        assert_int_equal(fs_chase(t->roots, p, 0, &loc), 0);
                }
                check_chase(t, "r/rel-out/secret", 0, NULL, -EXDEV);
                check_chase(t, "r/a/x", 0, NULL, -ENOTDIR);
                check_chase(t, "r/loop1", 0, NULL, -ELOOP);
        }
        assert_int_equal(count_fds(), before);
        for (size_t k = 0; k < ELEMENTSOF(rels); k++)
                check_chase(t, rels[k], FS_CHASE_NOFOLLOW, rels[k], 0);
}

typedef struct Flipper {
        char a[PATH_MAX], b[PATH_MAX];
        atomic_bool stop;
        int error; /* cmocka's checks belong to the main thread */
} Flipper;

static void *flip(void *userdata)
{
        Flipper *f = userdata;

        while (!atomic_load(&f->stop))
                if (renameat2(AT_FDCWD, f->a, AT_FDCWD, f->b, RENAME_EXCHANGE) < 0) {
                        f->error = errno;
                        break;
                }
        return NULL;
}

static void test_chase_race_never_leaves_the_roots(void **state)
{
        Tree *t = *state;
        Flipper f = {};
        char p[PATH_MAX], file[PATH_MAX], dir[PATH_MAX], failure[PATH_MAX + 64] = "";
        unsigned n_inside = 0, n_refused = 0;
        pthread_t thread;

        /* r/flip is a directory one moment and a symlink out of the workspace the next, swapped
         * atomically and as fast as a thread can. A walk through it ends inside the roots or refuses,
         * whatever it saw at each step. */
        at(f.a, t, "r/flip");
        at(f.b, t, "r/flop");
        assert_int_equal(mkdir(f.a, 0755), 0);
        at(p, t, "r/flip/secret");
        make_file(p, "inside");
        assert_int_equal(symlink("../outside", f.b), 0);
        at(file, t, "r/flip/secret");
        at(dir, t, "r/flip");

        if (renameat2(AT_FDCWD, f.a, AT_FDCWD, f.b, RENAME_EXCHANGE) < 0 && errno == EINVAL) {
                print_message("the file system here has no RENAME_EXCHANGE\n");
                skip();
        }
        assert_int_equal(pthread_create(&thread, NULL, flip, &f), 0);
        /* Failures are noted and reported once the thread is stopped. */
        for (unsigned i = 0; i < 20000 && !*failure; i++) {
                _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL, d = FS_LOCATION_NULL;
                int r = fs_chase(t->roots, file, 0, &loc);

                if (r >= 0) {
                        char buf[16] = {};
                        _cleanup_close_ int fd = fs_location_open(&loc, O_RDONLY, 0);

                        if (!streq(loc.path, file) || fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0 ||
                            !streq(buf, "inside"))
                                (void)snprintf(failure, sizeof(failure), "%s (fd %d) holds \"%s\"", loc.path,
                                               fd, buf);
                        n_inside++;
                } else if (r == -EXDEV || r == -ELOOP)
                        n_refused++;
                else
                        (void)snprintf(failure, sizeof(failure), "chase through a flipping link: %s",
                                       strerror(-r));

                r = fs_chase(t->roots, dir, 0, &d);
                if (r >= 0 && (!streq(d.path, dir) || d.type != S_IFDIR))
                        (void)snprintf(failure, sizeof(failure), "%s has type %o", d.path, (unsigned)d.type);
                else if (r < 0 && r != -EXDEV && r != -ELOOP)
                        (void)snprintf(failure, sizeof(failure), "chase of a flipping link: %s",
                                       strerror(-r));
        }
        atomic_store(&f.stop, true);
        assert_int_equal(pthread_join(thread, NULL), 0);
        assert_int_equal(f.error, 0);
        if (*failure)
                fail_msg("%s", failure);
        print_message("%u walks ended inside, %u were refused\n", n_inside, n_refused);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_roots_find, tree_setup, tree_teardown),
            cmocka_unit_test_setup_teardown(test_chase_plain, tree_setup, tree_teardown),
            cmocka_unit_test_setup_teardown(test_chase_symlinks_inside, tree_setup, tree_teardown),
            cmocka_unit_test_setup_teardown(test_chase_symlinks_outside, tree_setup, tree_teardown),
            cmocka_unit_test_setup_teardown(test_chase_mkdir, tree_setup, tree_teardown),
            cmocka_unit_test_setup_teardown(test_location_open_refuses_swapped_symlink, tree_setup,
                                            tree_teardown),
            cmocka_unit_test_setup_teardown(test_chase_type, tree_setup, tree_teardown),
            cmocka_unit_test(test_chase_type_of_a_device),
            cmocka_unit_test_setup_teardown(test_chase_keeps_root_fds_and_leaks_none, tree_setup,
                                            tree_teardown),
            cmocka_unit_test_setup_teardown(test_chase_race_never_leaves_the_roots, tree_setup,
                                            tree_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
