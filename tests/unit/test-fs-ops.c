/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

#include <cmocka.h>

#include "fs-ops.h"
#include "macro.h"

typedef struct Dir {
        char path[PATH_MAX];
        int fd; /* O_PATH, as fs_chase() hands out */
} Dir;

static int dir_setup(void **state)
{
        Dir *d = calloc(1, sizeof(Dir));

        assert_non_null(d);
        strcpy(d->path, "/tmp/helios-test-fs-ops-XXXXXX");
        assert_non_null(mkdtemp(d->path));
        d->fd = open(d->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(d->fd >= 0);
        *state = d;
        return 0;
}

static int dir_teardown(void **state)
{
        Dir *d = *state;
        char cmd[PATH_MAX + 16];

        safe_close(d->fd);
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
        assert_int_equal(system(cmd), 0);
        free(d);
        return 0;
}

static void write_at(int dir_fd, const char *name, const char *content)
{
        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        assert_int_equal(close(fd), 0);
}

static void tag_at(int dir_fd, const char *name, char tag[static FS_TAG_MAX])
{
        struct stat st;

        assert_int_equal(fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
        fs_tag_format(&st, tag);
}

/* Names in the directory, in readdir order, joined by spaces. */
static void names_in(const Dir *d, char *out, size_t size)
{
        DIR *dir = opendir(d->path);
        struct dirent *de;

        assert_non_null(dir);
        out[0] = '\0';
        while ((de = readdir(dir)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        strncat(out, de->d_name, size - strlen(out) - 2);
                        strcat(out, " ");
                }
        closedir(dir);
}

static void test_tag_changes_with_content(void **state)
{
        Dir *d = *state;
        char t1[FS_TAG_MAX], t2[FS_TAG_MAX], t3[FS_TAG_MAX], t4[FS_TAG_MAX];

        write_at(d->fd, "f", "one");
        tag_at(d->fd, "f", t1);
        tag_at(d->fd, "f", t2);
        assert_string_equal(t1, t2);

        /* Same size, new content: only the times tell. */
        write_at(d->fd, "f", "two");
        tag_at(d->fd, "f", t3);
        assert_string_not_equal(t1, t3);

        /* Metadata only (chmod): ctime changes. */
        assert_int_equal(fchmodat(d->fd, "f", 0600, 0), 0);
        tag_at(d->fd, "f", t4);
        assert_string_not_equal(t3, t4);
}

static struct timespec timespec_of(uint64_t a, uint64_t b)
{
        return (struct timespec){.tv_sec = (time_t)(a >> 36), .tv_nsec = (long)(b % 1000000000)};
}

static void test_tag_format_is_printf_hex(void **state)
{
        uint64_t x = 0x853c49e6748fea9b;
        Dir *d = *state;

        for (int i = 0; i < 20000; i++) {
                struct stat st = {};
                char tag[FS_TAG_MAX], want[FS_TAG_MAX + 16];
                uint64_t v[7];

                for (size_t k = 0; k < ELEMENTSOF(v); k++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        /* Every length of hex, zero and the largest values included. */
                        v[k] = i == 0 ? 0 : i == 1 ? UINT64_MAX : x >> (x % 64);
                }
                st.st_dev = (dev_t)v[0];
                st.st_ino = (ino_t)v[1];
                st.st_size = (off_t)(v[2] >> 1);
                st.st_mtim = timespec_of(v[3], v[4]);
                st.st_ctim = timespec_of(v[5], v[6]);
                (void)snprintf(want, sizeof(want),
                               "%" PRIx64 ".%" PRIx64 ".%" PRIx64 ".%" PRIx64 ".%" PRIx64,
                               (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
                               (v[3] >> 36) * 1000000000 + v[4] % 1000000000,
                               (v[5] >> 36) * 1000000000 + v[6] % 1000000000);
                fs_tag_format(&st, tag);
                assert_string_equal(tag, want);
        }
        (void)d;
}

static void test_write_atomic_keeps_mode(void **state)
{
        Dir *d = *state;
        struct stat st, after;
        char names[256];
        int fd;

        write_at(d->fd, "script", "old");
        assert_int_equal(fchmodat(d->fd, "script", 0751, 0), 0);
        assert_int_equal(fstatat(d->fd, "script", &st, 0), 0);
        assert_int_equal(fs_write_atomic(d->fd, "script", "new content", 11, &st, &st), 0);

        assert_int_equal(fstatat(d->fd, "script", &after, 0), 0);
        assert_int_equal(after.st_mode & 07777, 0751);
        assert_int_equal(after.st_size, 11);
        /* The stat handed back is the file's as it now is (the tag a client gets must match). */
        assert_int_equal(st.st_ino, after.st_ino);
        assert_int_equal(st.st_ctim.tv_nsec, after.st_ctim.tv_nsec);
        assert_int_equal(st.st_ctim.tv_sec, after.st_ctim.tv_sec);

        fd = openat(d->fd, "script", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        char buf[32] = {};
        assert_int_equal(read(fd, buf, sizeof(buf)), 11);
        assert_string_equal(buf, "new content");
        close(fd);

        names_in(d, names, sizeof(names));
        assert_string_equal(names, "script ");
}

/* In a child where openat() with O_TMPFILE fails as on a file system without it: the named temporary
 * file must do. Exit status: 0 done, else the step that failed. */
static int write_without_tmpfile(int dir_fd)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        char buf[32] = {};
        struct stat st;
        int fd;

        if (!ctx ||
            seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EOPNOTSUPP), SCMP_SYS(openat), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, __O_TMPFILE, __O_TMPFILE)) < 0 ||
            seccomp_load(ctx) < 0)
                return 2;
        fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY, 0600);
        if (fd >= 0 || errno != EOPNOTSUPP)
                return 3;
        if (fstatat(dir_fd, "script", &st, 0) < 0 ||
            fs_write_atomic(dir_fd, "script", "named", 5, &st, &st) < 0)
                return 4;
        fd = openat(dir_fd, "script", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof(buf)) != 5 || !streq(buf, "named"))
                return 5;
        close(fd);
        if (fstatat(dir_fd, "script", &st, 0) < 0 || (st.st_mode & 07777) != 0751)
                return 6;
        return 0;
}

static void test_write_atomic_without_tmpfile(void **state)
{
        Dir *d = *state;
        char names[256];
        int status;
        pid_t pid;

        write_at(d->fd, "script", "old");
        assert_int_equal(fchmodat(d->fd, "script", 0751, 0), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(write_without_tmpfile(d->fd));
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        names_in(d, names, sizeof(names));
        assert_string_equal(names, "script ");
}

static void test_write_atomic_keeps_group(void **state)
{
        Dir *d = *state;
        gid_t groups[64];
        int n = getgroups(ELEMENTSOF(groups), groups);
        struct stat st;
        gid_t other = (gid_t)-1;

        /* A group other than the one new files get, that we may give a file. */
        for (int i = 0; i < n; i++)
                if (groups[i] != getegid())
                        other = groups[i];
        if (other == (gid_t)-1 && geteuid() == 0)
                other = getegid() + 1;
        if (other == (gid_t)-1) {
                print_message("not root and in no second group: no other group to keep\n");
                skip();
        }

        write_at(d->fd, "f", "old");
        assert_int_equal(fchownat(d->fd, "f", (uid_t)-1, other, 0), 0);
        assert_int_equal(fstatat(d->fd, "f", &st, 0), 0);
        assert_int_equal(fs_write_atomic(d->fd, "f", "new", 3, &st, &st), 0);
        assert_int_equal(fstatat(d->fd, "f", &st, 0), 0);
        assert_int_equal(st.st_gid, other);
}

static void test_write_atomic_new_file_uses_umask(void **state)
{
        Dir *d = *state;
        mode_t old = umask(027);
        struct stat st;

        assert_int_equal(fs_write_atomic(d->fd, "new", "x", 1, NULL, &st), 0);
        umask(old);
        assert_int_equal(st.st_mode & 07777, 0640);
}

static void test_write_atomic_failure_leaves_nothing(void **state)
{
        Dir *d = *state;
        struct stat st;
        char names[256];

        /* A directory is in the way: the rename fails after the temporary file was written. */
        assert_int_equal(mkdirat(d->fd, "dir", 0755), 0);
        assert_int_equal(fs_write_atomic(d->fd, "dir", "x", 1, NULL, &st), -EISDIR);
        names_in(d, names, sizeof(names));
        assert_string_equal(names, "dir ");
}

static void test_temp_names(void **state)
{
        Dir *d = *state;

        assert_true(fs_is_temp_name(".helios-0123456789abcdef.tmp"));
        assert_false(fs_is_temp_name(".helios-0123456789abcdeg.tmp"));
        assert_false(fs_is_temp_name(".helios-0123456789abcdef.tmpx"));
        assert_false(fs_is_temp_name("helios-0123456789abcdef.tmp"));
        assert_false(fs_is_temp_name(".helios-.tmp"));
        assert_false(fs_is_temp_name("file.txt"));
        (void)d;
}

static void test_read_bounded(void **state)
{
        Dir *d = *state;
        _cleanup_free_ char *data = NULL;
        size_t size;
        int fd;

        write_at(d->fd, "f", "0123456789");
        fd = openat(d->fd, "f", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fs_read_bounded(fd, 10, &data, &size), 0);
        assert_int_equal(size, 10);
        assert_string_equal(data, "0123456789");
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        free(TAKE_PTR(data));
        assert_int_equal(fs_read_bounded(fd, 9, &data, &size), -EFBIG);
        assert_null(data);
        close(fd);

        /* A file that claims no size (like those in /proc) is still read to its end. */
        fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                assert_int_equal(fs_read_bounded(fd, 1 << 20, &data, &size), 0);
                assert_true(size > 0);
                assert_non_null(strstr(data, "Name:"));
                close(fd);
        }
}

/* Read f (which holds "0123456789") as if fstat() had said it held size bytes. */
static int read_sized(const Dir *d, uint64_t size, size_t limit, char **ret, size_t *ret_size)
{
        int fd = openat(d->fd, "f", O_RDONLY | O_CLOEXEC), r;

        assert_true(fd >= 0);
        r = fs_read_bounded_size(fd, size, limit, ret, ret_size);
        close(fd);
        return r;
}

static void test_read_bounded_size(void **state)
{
        Dir *d = *state;
        _cleanup_free_ char *data = NULL;
        size_t size;
        int fd;

        write_at(d->fd, "f", "0123456789");
        assert_int_equal(read_sized(d, 10, 10, &data, &size), 0);
        assert_int_equal(size, 10);
        assert_string_equal(data, "0123456789");
        free(TAKE_PTR(data));

        /* Grown since it was looked at: all of it, not just what fstat() saw. */
        for (uint64_t seen = 1; seen < 10; seen++) {
                assert_int_equal(read_sized(d, seen, 100, &data, &size), 0);
                assert_int_equal(size, 10);
                assert_string_equal(data, "0123456789");
                free(TAKE_PTR(data));
        }
        /* ... unless that no longer fits. */
        assert_int_equal(read_sized(d, 4, 9, &data, &size), -EFBIG);
        assert_null(data);

        /* Shrunk since: what is there. */
        assert_int_equal(read_sized(d, 4096, 1 << 20, &data, &size), 0);
        assert_int_equal(size, 10);
        assert_string_equal(data, "0123456789");
        free(TAKE_PTR(data));

        write_at(d->fd, "f", "");
        assert_int_equal(read_sized(d, 0, 100, &data, &size), 0);
        assert_int_equal(size, 0);
        assert_string_equal(data, "");
        free(TAKE_PTR(data));

        /* A file whose size says nothing is read to its end. */
        fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                assert_int_equal(fs_read_bounded_size(fd, 0, 1 << 20, &data, &size), 0);
                assert_true(size > 0);
                assert_non_null(strstr(data, "VmRSS:")); /* well beyond the first line */
                close(fd);
        }
}

static void test_remove_tree_does_not_follow_symlinks(void **state)
{
        Dir *d = *state;
        char outside[PATH_MAX], p[PATH_MAX];
        struct stat st;
        int fd;

        /* Outside the tree: a directory a link inside points to. */
        strcpy(outside, "/tmp/helios-test-fs-ops-outside-XXXXXX");
        assert_non_null(mkdtemp(outside));
        (void)snprintf(p, sizeof(p), "%s/precious", outside);
        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);

        assert_int_equal(mkdirat(d->fd, "t", 0755), 0);
        assert_int_equal(mkdirat(d->fd, "t/a", 0755), 0);
        assert_int_equal(mkdirat(d->fd, "t/a/b", 0755), 0);
        write_at(d->fd, "t/a/b/f", "x");
        write_at(d->fd, "t/g", "y");
        assert_int_equal(symlinkat(outside, d->fd, "t/a/link"), 0);
        assert_int_equal(symlinkat(p, d->fd, "t/a/b/file-link"), 0);

        assert_int_equal(fs_remove_tree(d->fd, "t"), 0);
        assert_int_equal(fstatat(d->fd, "t", &st, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(stat(p, &st), 0);

        (void)unlink(p);
        (void)rmdir(outside);
}

static void test_remove_tree_file_and_missing(void **state)
{
        Dir *d = *state;

        write_at(d->fd, "f", "x");
        assert_int_equal(fs_remove_tree(d->fd, "f"), 0);
        assert_int_equal(fs_remove_tree(d->fd, "f"), -ENOENT);
}

static void test_remove_tree_depth_limit(void **state)
{
        Dir *d = *state;
        char rel[2 * (FS_REMOVE_MAX_DEPTH + 2) + 1] = "";

        for (unsigned i = 0; i < FS_REMOVE_MAX_DEPTH + 1; i++) {
                strcat(rel, i ? "/d" : "d");
                assert_int_equal(mkdirat(d->fd, rel, 0755), 0);
        }
        assert_int_equal(fs_remove_tree(d->fd, "d"), -ELOOP);
}

static void test_list_directory(void **state)
{
        Dir *d = *state;
        _cleanup_(fs_listing_done) FsListing l = {};
        int fd;

        write_at(d->fd, "b", "bb");
        write_at(d->fd, "a", "a");
        write_at(d->fd, "C", "");
        assert_int_equal(mkdirat(d->fd, "dir", 0755), 0);
        assert_int_equal(symlinkat("a", d->fd, "link"), 0);
        write_at(d->fd, "bad-\xff-name", "");

        fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fs_list_directory(fd, 100, NULL, &l), 0);
        assert_int_equal(l.n, 5);
        assert_false(l.truncated);
        assert_int_equal(l.skipped, 1);
        /* Bytewise order: upper case first. */
        assert_string_equal(l.entries[0].name, "C");
        assert_string_equal(l.entries[1].name, "a");
        assert_string_equal(l.entries[2].name, "b");
        assert_string_equal(l.entries[3].name, "dir");
        assert_string_equal(l.entries[4].name, "link");
        assert_string_equal(fs_type_name(l.entries[2].mode), "file");
        assert_int_equal(l.entries[2].size, 2);
        assert_string_equal(fs_type_name(l.entries[3].mode), "dir");
        assert_string_equal(fs_type_name(l.entries[4].mode), "symlink");
        assert_true(l.entries[2].mtime_ms > (int64_t)(time(NULL) - 3600) * 1000);
        fs_listing_done(&l);

        fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fs_list_directory(fd, 2, NULL, &l), 0);
        assert_int_equal(l.n, 2);
        assert_true(l.truncated);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)
        const struct CMUnitTest tests[] = {
            T(test_tag_changes_with_content),
            T(test_tag_format_is_printf_hex),
            T(test_write_atomic_keeps_mode),
            T(test_write_atomic_without_tmpfile),
            T(test_write_atomic_keeps_group),
            T(test_write_atomic_new_file_uses_umask),
            T(test_write_atomic_failure_leaves_nothing),
            T(test_temp_names),
            T(test_read_bounded),
            T(test_read_bounded_size),
            T(test_remove_tree_does_not_follow_symlinks),
            T(test_remove_tree_file_and_missing),
            T(test_remove_tree_depth_limit),
            T(test_list_directory),
        };
#undef T

        return cmocka_run_group_tests(tests, NULL, NULL);
}
