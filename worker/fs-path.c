/* SPDX-License-Identifier: MIT */
#include "fs-path.h"

#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "buf.h"
#include "path-util.h"

/* The kernel's own limit on symlinks followed in one lookup. */
#define CHASE_MAX_LINKS 40

struct FsRoots {
        char **paths;
        size_t *lens;
        int *fds;
        size_t n;
};

/* glibc 2.36 has no wrapper for openat2(). */
static int sys_openat2(int dir_fd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
        struct open_how how = {
            .flags = (uint64_t)(unsigned)flags,
            .mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0,
            .resolve = resolve,
        };
        long fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));

        return fd < 0 ? negative_errno() : (int)fd;
}

int fs_open_component(int dir_fd, const char *name, int flags, mode_t mode)
{
        assert(name && !strchr(name, '/'));
        return sys_openat2(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode,
                           RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

FsRoots *fs_roots_free(FsRoots *r)
{
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n; i++) {
                free(r->paths[i]);
                safe_close(r->fds[i]);
        }
        free(r->paths);
        free(r->lens);
        free(r->fds);
        free(r);
        return NULL;
}

int fs_roots_new(char *const *paths, size_t n, FsRoots **ret)
{
        _cleanup_(fs_roots_freep) FsRoots *r = NULL;

        assert(paths && ret);
        if (n == 0)
                return -EINVAL;
        r = calloc(1, sizeof(FsRoots));
        if (!r)
                return -ENOMEM;
        r->paths = calloc(n, sizeof(char *));
        r->lens = calloc(n, sizeof(size_t));
        r->fds = calloc(n, sizeof(int));
        if (!r->paths || !r->lens || !r->fds)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                if (paths[i][0] != '/')
                        return -EINVAL;
                r->paths[i] = strdup(paths[i]);
                if (!r->paths[i])
                        return -ENOMEM;
                r->lens[i] = strlen(paths[i]);
                r->n = i + 1;
                /* Opened with openat2() so a kernel without it fails here, loudly, at start. */
                r->fds[i] = sys_openat2(AT_FDCWD, paths[i], O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
                if (r->fds[i] < 0)
                        return r->fds[i];
        }
        *ret = TAKE_PTR(r);
        return 0;
}

size_t fs_roots_count(const FsRoots *r)
{
        return r->n;
}

const char *fs_roots_path(const FsRoots *r, size_t i)
{
        assert(i < r->n);
        return r->paths[i];
}

int fs_roots_find(const FsRoots *r, const char *abs, size_t *ret_index, const char **ret_rel)
{
        size_t best = SIZE_MAX, best_len = 0;

        assert(abs);
        if (abs[0] != '/')
                return -EXDEV;
        for (size_t i = 0; i < r->n; i++) {
                size_t len = r->lens[i];

                if (len == 1) /* the root "/" holds everything */
                        len = 0;
                else if (strncmp(abs, r->paths[i], len) != 0 || (abs[len] != '\0' && abs[len] != '/'))
                        continue;
                if (best == SIZE_MAX || len > best_len) {
                        best = i;
                        best_len = len;
                }
        }
        if (best == SIZE_MAX)
                return -EXDEV;
        if (ret_index)
                *ret_index = best;
        if (ret_rel)
                *ret_rel = abs + best_len + (abs[best_len] == '/');
        return 0;
}

void fs_location_done(FsLocation *l)
{
        if (!l)
                return;
        if (!l->dir_fd_borrowed)
                safe_close(l->dir_fd);
        free(l->name);
        free(l->path);
        *l = FS_LOCATION_NULL;
}

/* dir_fd is either a root's fd (*owned_fd is -1) or *owned_fd, which the location then takes. */
static int location_set(FsLocation *ret, int dir_fd, int *owned_fd, const char *parent, const char *name,
                        mode_t type, bool is_root, unsigned n_created)
{
        _cleanup_free_ char *n = strdup(name), *p = is_root ? strdup(parent) : path_join(parent, name);

        assert(*owned_fd < 0 || *owned_fd == dir_fd);
        if (!n || !p)
                return -ENOMEM;
        *ret = (FsLocation){
            .dir_fd = dir_fd,
            .name = TAKE_PTR(n),
            .path = TAKE_PTR(p),
            .type = type,
            .is_root = is_root,
            .dir_fd_borrowed = *owned_fd < 0,
            .n_created = n_created,
        };
        *owned_fd = -1;
        return 0;
}

/* For FS_CHASE_MKDIR: a directory someone else made in the meantime will do as well. */
static int chase_mkdir(int dir_fd, const char *name, unsigned *n_created)
{
        if (mkdirat(dir_fd, name, 0777) >= 0) {
                (*n_created)++;
                return 0;
        }
        return errno == EEXIST ? 0 : negative_errno();
}

/* lstat() of name beneath dir_fd (one component: nothing is followed); with make_dir, a missing name
 * is made a directory first. */
static int chase_stat(int dir_fd, const char *name, bool make_dir, unsigned *n_created, struct stat *ret)
{
        int r;

        if (fstatat(dir_fd, name, ret, AT_SYMLINK_NOFOLLOW) >= 0)
                return 0;
        if (errno != ENOENT || !make_dir)
                return negative_errno();
        r = chase_mkdir(dir_fd, name, n_created);
        if (r < 0)
                return r;
        return fstatat(dir_fd, name, ret, AT_SYMLINK_NOFOLLOW) < 0 ? negative_errno() : 0;
}

/* The path a symlink at phys/<link> with target `target` leads to, followed by the components not yet
 * walked. */
static int link_destination(const char *phys, const char *target, const char *rest, char **ret)
{
        _cleanup_free_ char *t = NULL;
        int r;

        if (!*target)
                return -ENOENT; /* as the kernel treats an empty symlink */
        r = path_normalize(phys, target, &t);
        if (r < 0)
                return r;
        if (*rest) {
                char *j = path_join(t, rest);
                if (!j)
                        return -ENOMEM;
                free(t);
                t = j;
                /* rest is normalized and t holds no "..", so the join is too; still bounded: */
                if (strlen(t) >= PATH_MAX)
                        return -ENAMETOOLONG;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

int fs_chase(const FsRoots *roots, const char *abs, FsChaseFlags flags, FsLocation *ret)
{
        _cleanup_free_ char *cur = NULL;
        unsigned links = 0, n_created = 0;
        bool make_dirs = flags & FS_CHASE_MKDIR;
        int r;

        assert(roots && abs && ret);
        cur = strdup(abs);
        if (!cur)
                return -ENOMEM;

        for (;;) {
                _cleanup_(buf_done) Buf phys = {};
                /* The walk starts at the root's own fd; the directories below it are opened, and owned,
                 * one at a time. */
                _cleanup_close_ int owned_fd = -1;
                _cleanup_free_ char *next = NULL;
                const char *rel, *p;
                size_t root;
                int fd;

                r = fs_roots_find(roots, cur, &root, &rel);
                if (r < 0)
                        return r;
                fd = roots->fds[root];
                if (buf_append_str(&phys, roots->paths[root]) < 0)
                        return -ENOMEM;
                if (!*rel)
                        return location_set(ret, fd, &owned_fd, phys.data, ".", S_IFDIR, true, n_created);

                for (p = rel; *p;) {
                        char name[NAME_MAX + 1], target[PATH_MAX];
                        size_t len = strcspn(p, "/");
                        const char *rest = p + len + (p[len] == '/');
                        bool last = !*rest;
                        struct stat st;
                        ssize_t n;

                        /* cur is normalized, so every component is a real name; refuse anything else
                         * rather than trust the caller. */
                        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
                            (len == 2 && p[0] == '.' && p[1] == '.'))
                                return -EINVAL;
                        memcpy(name, p, len);
                        name[len] = '\0';

                        if (!last) {
                                /* A directory on the way is opened as one: anything else, a symlink
                                 * included, fails with ENOTDIR and is looked at below. */
                                int child = fs_open_component(fd, name, O_PATH | O_DIRECTORY, 0);

                                if (child == -ENOENT && make_dirs) {
                                        r = chase_mkdir(fd, name, &n_created);
                                        if (r < 0)
                                                return r;
                                        child = fs_open_component(fd, name, O_PATH | O_DIRECTORY, 0);
                                }
                                if (child >= 0) {
                                        safe_close(owned_fd);
                                        fd = owned_fd = child;
                                        if ((phys.len > 1 && buf_append(&phys, "/", 1) < 0) ||
                                            buf_append(&phys, name, len) < 0)
                                                return -ENOMEM;
                                        p = rest;
                                        continue;
                                }
                                if (child != -ENOTDIR)
                                        return child;
                        }

                        /* The object itself, or what is in the way where a directory should be. An
                         * lstat() of the name is enough: one component other than "." and ".." is an
                         * entry of fd's directory and nothing else, and a symlink there is only
                         * read, never followed, here. */
                        r = chase_stat(fd, name, make_dirs, &n_created, &st);
                        if (r == -ENOENT && last)
                                return location_set(ret, fd, &owned_fd, phys.data, name, 0, false,
                                                    n_created);
                        if (r < 0)
                                return r;

                        if (!S_ISLNK(st.st_mode) || (last && (flags & FS_CHASE_NOFOLLOW))) {
                                if (last)
                                        return location_set(ret, fd, &owned_fd, phys.data, name,
                                                            st.st_mode & S_IFMT, false, n_created);
                                if (!S_ISDIR(st.st_mode))
                                        return -ENOTDIR;
                                /* A directory after all: it replaced whatever was there when it was
                                 * opened. Look again (counted, so that a tree changing forever under
                                 * the walk cannot keep it here). */
                                if (++links > CHASE_MAX_LINKS)
                                        return -ELOOP;
                                continue;
                        }

                        if (++links > CHASE_MAX_LINKS)
                                return -ELOOP;
                        n = readlinkat(fd, name, target, sizeof(target));
                        if (n < 0 && (errno == EINVAL || errno == ENOENT))
                                continue; /* no longer a symlink: look again */
                        if (n < 0)
                                return negative_errno();
                        if ((size_t)n >= sizeof(target))
                                return -ENAMETOOLONG;
                        target[n] = '\0';
                        r = link_destination(phys.data, target, rest, &next);
                        if (r < 0)
                                return r;
                        break; /* walk again from whichever root holds the destination */
                }
                assert(next);
                free(cur);
                cur = TAKE_PTR(next);
        }
}

int fs_location_open(const FsLocation *l, int flags, mode_t mode)
{
        assert(l && l->dir_fd >= 0 && l->name);
        return fs_open_component(l->dir_fd, l->name, flags, mode);
}

int fs_location_stat(const FsLocation *l, struct stat *ret)
{
        assert(l && l->dir_fd >= 0 && l->name);
        if (fstatat(l->dir_fd, l->name, ret, AT_SYMLINK_NOFOLLOW) < 0)
                return negative_errno();
        return 0;
}
