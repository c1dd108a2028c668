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

#define TEMP_PREFIX ".helios-"
#define TEMP_SUFFIX ".tmp"
#define TEMP_RANDOM_DIGITS 16
#define TEMP_NAME_LEN (sizeof(TEMP_PREFIX) - 1 + TEMP_RANDOM_DIGITS + sizeof(TEMP_SUFFIX) - 1)

/* Writes are issued in pieces no larger than this: write(2) moves at most ~2 GiB at once anyway. */
#define WRITE_CHUNK (1u << 30)

static uint64_t timespec_ns(const struct timespec *ts)
{
        return (uint64_t)ts->tv_sec * UINT64_C(1000000000) + (uint64_t)ts->tv_nsec;
}

void fs_tag_format(const struct stat *st, char ret[static FS_TAG_MAX])
{
        (void)snprintf(ret, FS_TAG_MAX, "%" PRIx64 ".%" PRIx64 ".%" PRIx64 ".%" PRIx64 ".%" PRIx64,
                       (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                       timespec_ns(&st->st_mtim), timespec_ns(&st->st_ctim));
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

int fs_read_bounded(int fd, size_t limit, char **ret, size_t *ret_size)
{
        _cleanup_(buf_done) Buf b = {};
        struct stat st;

        /* Size the buffer from fstat, but trust only what read() returns: the file may change while
         * it is read, and some files report no size at all. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size > 0 && buf_reserve(&b, MIN((size_t)st.st_size, limit) + 1) < 0)
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
        }
        if (buf_reserve(&b, 0) < 0)
                return -ENOMEM;
        b.data[b.len] = '\0';
        *ret_size = b.len;
        *ret = buf_steal(&b, NULL);
        return 0;
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
}

static int temp_file_create(TempFile *t, int dir_fd, mode_t mode)
{
        for (unsigned attempt = 0;; attempt++) {
                uint64_t rnd;
                int fd;

                if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
                        /* Uniqueness, not secrecy, is what matters: O_EXCL catches any clash. */
                        rnd = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)t ^ attempt;
                }
                (void)snprintf(t->name, sizeof(t->name), TEMP_PREFIX "%016" PRIx64 TEMP_SUFFIX, rnd);
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

int fs_write_atomic(int dir_fd, const char *name, const void *data, size_t size, const struct stat *old,
                    struct stat *ret_st)
{
        _cleanup_close_ int dfd = -1, fd = -1;
        /* Declared after dfd, so it is cleaned up first, while dfd is still open. */
        _cleanup_(temp_file_unlink) TempFile tmp = {};
        struct stat st;
        int r;

        assert(name && ret_st);
        /* A readable fd of the directory, to fsync the rename. A directory we may write but not read
         * still gets the file, only without that last fsync. */
        dfd = fs_open_component(dir_fd, ".", O_RDONLY | O_DIRECTORY, 0);
        if (dfd < 0 && dfd != -EACCES)
                return dfd;

        /* A new file gets 0666 minus the umask from the kernel, like any file the user creates. An
         * existing file's mode is restored exactly below, so start private. */
        fd = temp_file_create(&tmp, dfd >= 0 ? dfd : dir_fd, old ? 0600 : 0666);
        if (fd < 0)
                return fd;
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

typedef struct RemoveLevel {
        DIR *dir;
        char *name; /* this directory's name in its parent */
} RemoveLevel;

static int remove_push(RemoveLevel *stack, size_t *depth, int parent_fd, const char *name)
{
        _cleanup_free_ char *n = NULL;
        int fd;
        DIR *d;

        if (*depth >= FS_REMOVE_MAX_DEPTH)
                return -ELOOP;
        n = strdup(name);
        if (!n)
                return -ENOMEM;
        fd = fs_open_component(parent_fd, name, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
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

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

int fs_list_directory(int fd, size_t max, FsListing *ret)
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
