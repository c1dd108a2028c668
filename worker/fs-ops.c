/* SPDX-License-Identifier: MIT */
#include "fs-ops.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "fs-path.h"
#include "log.h"
#include "macro.h"
#include "utf8.h"

#define TEMP_PREFIX        ".helios-"
#define TEMP_SUFFIX        ".tmp"
#define TEMP_RANDOM_DIGITS 16
#define TEMP_NAME_LEN      (sizeof(TEMP_PREFIX) - 1 + TEMP_RANDOM_DIGITS + sizeof(TEMP_SUFFIX) - 1)

/* Writes are issued in pieces no larger than this: write(2) moves at most ~2 GiB at once anyway. */
#define WRITE_CHUNK (1u << 30)

static uint64_t timespec_ns(const struct timespec *ts)
{
        return (uint64_t)ts->tv_sec * UINT64_C(1000000000) + (uint64_t)ts->tv_nsec;
}

/* v in lowercase hex without leading zeros, as "%" PRIx64 writes it. Returns the end. */
static char *hex_format(char *p, uint64_t v)
{
        char digits[16];
        size_t n = 0;

        do {
                digits[n++] = "0123456789abcdef"[v & 15];
                v >>= 4;
        } while (v > 0);
        while (n > 0)
                *p++ = digits[--n];
        return p;
}

void fs_tag_format(const struct stat *st, char ret[static FS_TAG_MAX])
{
        const uint64_t parts[] = {
            (uint64_t)st->st_dev,      (uint64_t)st->st_ino,      (uint64_t)st->st_size,
            timespec_ns(&st->st_mtim), timespec_ns(&st->st_ctim),
        };
        char *p = ret;

        /* What snprintf("%" PRIx64 ".%" PRIx64 ...) would write, at a fraction of its cost: every read
         * and write of a file formats one. */
        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                if (i > 0)
                        *p++ = '.';
                p = hex_format(p, parts[i]);
        }
        *p = '\0';
}

const char *fs_type_name(mode_t mode)
{
        if (S_ISREG(mode))
                return "file";
        if (S_ISDIR(mode))
                return "dir";
        if (S_ISLNK(mode))
                return "symlink";
        return "other";
}

int64_t fs_mtime_ms(const struct stat *st)
{
        return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

int fs_read_bounded_size(int fd, uint64_t size, size_t limit, char **ret, size_t *ret_size)
{
        _cleanup_(buf_done) Buf b = {};

        /* Size the buffer from fstat, but trust only what read() returns: the file may change while
         * it is read, and some files report no size at all. One byte of room beyond the size lets the
         * first read() show whether the file ends there. */
        if (size > 0 && buf_reserve(&b, (size_t)MIN(size, (uint64_t)limit) + 1) < 0)
                return -ENOMEM;

        for (;;) {
                size_t want;
                ssize_t n;

                if (b.cap - b.len <= 1 && buf_reserve(&b, MAX((size_t)65536, b.len / 2)) < 0)
                        return -ENOMEM;
                /* One byte beyond the limit is enough to know the file is too large. */
                want = MIN(b.cap - b.len - 1, limit + 1 - b.len);
                n = read(fd, b.data + b.len, want);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                b.len += (size_t)n;
                if (b.len > limit)
                        return -EFBIG;
                /* A regular file gives less than asked for only at its end. If that is exactly the size
                 * fstat() saw, the file is read: had it grown since, the byte beyond would be there.
                 * Files whose size says nothing (those in /proc and /sys) read on until read() says
                 * so. */
                if (b.len == size && (size_t)n < want)
                        break;
        }
        if (buf_reserve(&b, 0) < 0)
                return -ENOMEM;
        b.data[b.len] = '\0';
        *ret_size = b.len;
        *ret = buf_steal(&b, NULL);
        return 0;
}

int fs_read_bounded(int fd, size_t limit, char **ret, size_t *ret_size)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        return fs_read_bounded_size(fd, (uint64_t)MAX(st.st_size, (off_t)0), limit, ret, ret_size);
}

bool fs_is_temp_name(const char *name)
{
        size_t pl = sizeof(TEMP_PREFIX) - 1;

        if (strlen(name) != TEMP_NAME_LEN || strncmp(name, TEMP_PREFIX, pl) != 0 ||
            !streq(name + pl + TEMP_RANDOM_DIGITS, TEMP_SUFFIX))
                return false;
        for (size_t i = pl; i < pl + TEMP_RANDOM_DIGITS; i++)
                if (!strchr("0123456789abcdef", name[i]))
                        return false;
        return true;
}

typedef struct TempFile {
        int dir_fd;
        char name[TEMP_NAME_LEN + 1];
        bool linked;
} TempFile;

static void temp_file_unlink(TempFile *t)
{
        if (t->linked)
                (void)unlinkat(t->dir_fd, t->name, 0);
        t->linked = false;
}

static void temp_file_name(TempFile *t, unsigned attempt)
{
        uint64_t rnd;

        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
                /* Uniqueness, not secrecy, is what matters: O_EXCL (or linkat) catches any clash. */
                rnd = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)t ^ attempt;
        }
        (void)snprintf(t->name, sizeof(t->name), TEMP_PREFIX "%016" PRIx64 TEMP_SUFFIX, rnd);
}

static int temp_file_create(TempFile *t, int dir_fd, mode_t mode)
{
        for (unsigned attempt = 0;; attempt++) {
                int fd;

                temp_file_name(t, attempt);
                t->dir_fd = dir_fd;
                fd = openat(dir_fd, t->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
                if (fd >= 0) {
                        t->linked = true;
                        return fd;
                }
                if (errno != EEXIST || attempt >= 16)
                        return negative_errno();
        }
}

/* Name the unnamed (O_TMPFILE) file fd in dir_fd. Through /proc/self/fd, which needs no privilege;
 * without /proc, AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH. */
static int temp_file_link(TempFile *t, int dir_fd, int fd)
{
        char proc[sizeof("/proc/self/fd/") + 11]; /* an int's digits and sign */

        (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%i", fd);
        for (unsigned attempt = 0;; attempt++) {
                temp_file_name(t, attempt);
                t->dir_fd = dir_fd;
                if (linkat(AT_FDCWD, proc, dir_fd, t->name, AT_SYMLINK_FOLLOW) >= 0 ||
                    (errno == ENOENT && linkat(fd, "", dir_fd, t->name, AT_EMPTY_PATH) >= 0)) {
                        t->linked = true;
                        return 0;
                }
                if (errno != EEXIST || attempt >= 16)
                        return negative_errno();
        }
}

static int write_all(int fd, const void *data, size_t size)
{
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, MIN(size, (size_t)WRITE_CHUNK));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

/* The new content in a temporary file in dir_fd, with old's owner and mode, fsynced, and named in tmp.
 * unnamed: an O_TMPFILE that gets its name only once complete, so that a worker killed while it writes
 * leaves nothing behind; *ret_unsupported says a failure was that of O_TMPFILE or of naming it. */
static int temp_file_write(TempFile *tmp, int dir_fd, bool unnamed, const char *name, const void *data,
                           size_t size, const struct stat *old, bool *ret_unsupported)
{
        _cleanup_close_ int fd = -1;
        /* A new file gets 0666 minus the umask from the kernel, like any file the user creates. An
         * existing file's mode is restored exactly below, so start private. */
        mode_t mode = old ? 0600 : 0666;
        int r;

        *ret_unsupported = false;
        if (unnamed) {
                fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
                if (fd < 0) {
                        *ret_unsupported = true;
                        return negative_errno();
                }
        } else {
                fd = temp_file_create(tmp, dir_fd, mode);
                if (fd < 0)
                        return fd;
        }
        if (old) {
                /* Owner and group as far as we may set them (a group we belong to; root: anything),
                 * before the mode, since a change of owner clears set-id bits. */
                if (fchown(fd, old->st_uid, old->st_gid) < 0 && fchown(fd, (uid_t)-1, old->st_gid) < 0)
                        log_debug_errno(errno, "Cannot keep the group of %s, ignoring: %m", name);
                if (fchmod(fd, old->st_mode & 07777) < 0)
                        return negative_errno();
        }
        r = write_all(fd, data, size);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return negative_errno();
        if (unnamed) {
                r = temp_file_link(tmp, dir_fd, fd);
                if (r < 0) {
                        *ret_unsupported = true;
                        return r;
                }
        }
        return TAKE_FD(fd);
}

int fs_write_atomic(int dir_fd, const char *name, const void *data, size_t size, const struct stat *old,
                    struct stat *ret_st)
{
        _cleanup_close_ int dfd = -1, fd = -1;
        /* Declared after dfd, so it is cleaned up first, while dfd is still open. */
        _cleanup_(temp_file_unlink) TempFile tmp = {};
        struct stat st;
        bool unsupported;

        assert(name && ret_st);
        /* A readable fd of the directory, to fsync the rename. A directory we may write but not read
         * still gets the file, only without that last fsync. */
        dfd = fs_open_component(dir_fd, ".", O_RDONLY | O_DIRECTORY, 0);
        if (dfd < 0 && dfd != -EACCES)
                return dfd;

        /* Where the file system (or the sandbox's /proc) cannot, a named temporary file, which a
         * killed worker leaves behind: fs_remove_stale_temps() finds it later. */
        fd = temp_file_write(&tmp, dfd >= 0 ? dfd : dir_fd, true, name, data, size, old, &unsupported);
        if (fd < 0 && unsupported)
                fd = temp_file_write(&tmp, dfd >= 0 ? dfd : dir_fd, false, name, data, size, old,
                                     &unsupported);
        if (fd < 0)
                return fd;
        if (renameat(tmp.dir_fd, tmp.name, tmp.dir_fd, name) < 0)
                return negative_errno();
        tmp.linked = false;

        /* After the rename: it changes the inode's ctime, and so its tag. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (dfd >= 0 && fsync(dfd) < 0)
                log_debug_errno(errno, "Failed to fsync the directory of %s, ignoring: %m", name);
        *ret_st = st;
        return 0;
}

static bool timespec_before(const struct timespec *a, const struct timespec *b)
{
        return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

bool fs_is_stale_temp(const char *name, const struct stat *st, const struct timespec *before)
{
        return fs_is_temp_name(name) && S_ISREG(st->st_mode) && st->st_nlink == 1 &&
               st->st_uid == geteuid() && timespec_before(&st->st_mtim, before);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* The directory name beneath dir_fd, opened as fs_open_component() opens it, for readdir(). */
static int opendir_component(int dir_fd, const char *name, DIR **ret)
{
        int fd = fs_open_component(dir_fd, name, O_RDONLY | O_DIRECTORY, 0);

        if (fd < 0)
                return fd;
        *ret = fdopendir(fd);
        if (!*ret) {
                safe_close(fd);
                return negative_errno();
        }
        return 0;
}

int fs_remove_stale_temps(int dir_fd, const struct timespec *before)
{
        _cleanup_(closedirp) DIR *d = NULL;
        int r, n = 0;

        assert(before);
        r = opendir_component(dir_fd, ".", &d);
        if (r < 0)
                return r;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;

                if (fs_is_temp_name(de->d_name) &&
                    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    fs_is_stale_temp(de->d_name, &st, before) && unlinkat(dirfd(d), de->d_name, 0) >= 0)
                        n++;
        }
        return n;
}

typedef struct RemoveLevel {
        DIR *dir;
        char *name; /* this directory's name in its parent */
} RemoveLevel;

static int remove_push(RemoveLevel *stack, size_t *depth, int parent_fd, const char *name)
{
        _cleanup_free_ char *n = NULL;
        DIR *d;
        int r;

        if (*depth >= FS_REMOVE_MAX_DEPTH)
                return -ELOOP;
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        r = opendir_component(parent_fd, name, &d);
        if (r < 0)
                return r;
        stack[(*depth)++] = (RemoveLevel){d, TAKE_PTR(n)};
        return 0;
}

int fs_remove_tree(int dir_fd, const char *name)
{
        _cleanup_free_ RemoveLevel *stack = NULL;
        size_t depth = 0;
        struct stat st;
        int r = 0;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dir_fd, name, 0) < 0 ? negative_errno() : 0;

        stack = calloc(FS_REMOVE_MAX_DEPTH, sizeof(RemoveLevel));
        if (!stack)
                return -ENOMEM;
        r = remove_push(stack, &depth, dir_fd, name);

        while (r >= 0 && depth > 0) {
                RemoveLevel *l = &stack[depth - 1];
                struct dirent *de;
                bool is_dir;

                errno = 0;
                de = readdir(l->dir);
                if (!de) {
                        int parent = depth > 1 ? dirfd(stack[depth - 2].dir) : dir_fd;

                        if (errno != 0) {
                                r = negative_errno();
                                break;
                        }
                        (void)closedir(l->dir);
                        if (unlinkat(parent, l->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                                r = negative_errno();
                        free(l->name);
                        depth--;
                        continue;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;

                is_dir = de->d_type == DT_DIR;
                if (de->d_type == DT_UNKNOWN) {
                        if (fstatat(dirfd(l->dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                                if (errno != ENOENT)
                                        r = negative_errno();
                                continue;
                        }
                        is_dir = S_ISDIR(st.st_mode);
                }
                if (is_dir) {
                        if (depth >= FS_REMOVE_MAX_DEPTH) {
                                r = -ELOOP;
                                break;
                        }
                        r = remove_push(stack, &depth, dirfd(l->dir), de->d_name);
                        if (r == -ENOENT)
                                r = 0;
                        else if (r == -ENOTDIR || r == -ELOOP) {
                                /* Replaced by a file or a symlink since readdir: remove that
                                 * instead, without following it. */
                                r = 0;
                                if (unlinkat(dirfd(l->dir), de->d_name, 0) < 0 && errno != ENOENT)
                                        r = negative_errno();
                        }
                        continue;
                }
                if (unlinkat(dirfd(l->dir), de->d_name, 0) < 0 && errno != ENOENT)
                        r = negative_errno();
        }

        while (depth > 0) {
                depth--;
                (void)closedir(stack[depth].dir);
                free(stack[depth].name);
        }
        return r;
}

void fs_listing_done(FsListing *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++)
                free(l->entries[i].name);
        free(l->entries);
        *l = (FsListing){};
}

static int entry_compare(const void *a, const void *b)
{
        return strcmp(((const FsEntry *)a)->name, ((const FsEntry *)b)->name);
}

static mode_t mode_from_dtype(unsigned char t)
{
        switch (t) {
        case DT_REG:
                return S_IFREG;
        case DT_DIR:
                return S_IFDIR;
        case DT_LNK:
                return S_IFLNK;
        default:
                return 0;
        }
}

int fs_list_directory(int fd, size_t max, const struct timespec *stale_before, FsListing *ret)
{
        _cleanup_(fs_listing_done) FsListing l = {};
        _cleanup_(closedirp) DIR *d = NULL;
        size_t cap = 0;

        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        for (;;) {
                struct dirent *de;
                struct stat st;
                FsEntry *e;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return negative_errno();
                        break;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (!utf8_is_valid(de->d_name, strlen(de->d_name))) {
                        l.skipped++;
                        continue;
                }
                if (l.n >= max) {
                        l.truncated = true;
                        break;
                }
                if (l.n == cap) {
                        size_t c = cap ? cap * 2 : 64;
                        FsEntry *p = realloc(l.entries, c * sizeof(FsEntry));
                        if (!p)
                                return -ENOMEM;
                        l.entries = p;
                        cap = c;
                }
                e = &l.entries[l.n];
                *e = (FsEntry){.mode = mode_from_dtype(de->d_type)};
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0) {
                        if (stale_before && fs_is_stale_temp(de->d_name, &st, stale_before) &&
                            unlinkat(dirfd(d), de->d_name, 0) >= 0)
                                continue;
                        e->mode = st.st_mode;
                        e->size = (uint64_t)st.st_size;
                        e->mtime_ms = fs_mtime_ms(&st);
                } else if (errno == ENOENT)
                        continue; /* removed since readdir */
                /* Otherwise (a directory we may list but not search) the name and type still help. */
                e->name = strdup(de->d_name);
                if (!e->name)
                        return -ENOMEM;
                l.n++;
        }
        if (l.n > 0)
                qsort(l.entries, l.n, sizeof(FsEntry), entry_compare);
        *ret = l;
        l = (FsListing){};
        return 0;
}
