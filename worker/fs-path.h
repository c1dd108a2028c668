/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "macro.h"
#include "path-util.h"

/* The workspace boundary. Every path a client names is normalized lexically, assigned to the
 * longest workspace root that holds it, and then resolved one component at a time beneath that
 * root's directory fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). Symbolic links are
 * followed here, in user space: the target is normalized against the physical path of the
 * directory holding the link and the walk restarts from whichever root holds the result. So a link
 * (relative or absolute, or one swapped in by a racing process) can lead anywhere inside the roots,
 * and nowhere else. */

typedef struct FsRoots FsRoots;

/* paths: canonical absolute directories (no symlinks, no trailing slash). Opens one O_PATH fd each. */
int fs_roots_new(char *const *paths, size_t n, FsRoots **ret);
FsRoots *fs_roots_free(FsRoots *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(FsRoots *, fs_roots_free);

size_t fs_roots_count(const FsRoots *r);
const char *fs_roots_path(const FsRoots *r, size_t i);

/* The index of the longest root that is a path prefix of abs (a normalized absolute path) and the
 * rest of abs below it ("" for the root itself). -EXDEV if no root holds abs. */
int fs_roots_find(const FsRoots *r, const char *abs, size_t *ret_index, const char **ret_rel);

typedef enum FsChaseFlags {
        FS_CHASE_NOFOLLOW = 1 << 0, /* a final symlink is the result, not what it points to */
        FS_CHASE_MKDIR = 1 << 1,    /* create missing directories, the final component included */
} FsChaseFlags;

/* Where a path leads: the directory that holds the object, and its name there. The object itself
 * need not exist (only its parent must). */
typedef struct FsLocation {
        int dir_fd;           /* O_PATH fd of the parent directory; of the root itself for a root */
        char *name;           /* the final component; "." for a root */
        char *path;           /* physical absolute path of the object: no symlinks in it */
        mode_t type;          /* the object's S_IFMT bits when the walk looked at it (a symlink is not
                               * followed); 0 if nothing was there. Only a hint: it may change any time. */
        bool is_root;         /* the object is a workspace root: it may not be removed or renamed */
        bool dir_fd_borrowed; /* dir_fd is the root's own fd, not closed with the location */
        unsigned n_created;   /* FS_CHASE_MKDIR: how many trailing components of path were created */
} FsLocation;

#define FS_LOCATION_NULL ((FsLocation){.dir_fd = -1})

/* Resolve a normalized absolute path beneath the roots. -EXDEV if it (or a symlink on the way) leads
 * outside every root, -ENOENT/-ENOTDIR if a parent is missing or not a directory, -ELOOP after too
 * many symlinks. The location is valid only as long as the roots are (it may borrow a root's fd). */
int fs_chase(const FsRoots *r, const char *abs, FsChaseFlags flags, FsLocation *ret);
void fs_location_done(FsLocation *l);

/* openat2() the located object itself, never following a symlink at it: a link swapped in since the
 * chase fails with -ELOOP. mode is used only with O_CREAT. */
int fs_location_open(const FsLocation *l, int flags, mode_t mode);
/* lstat() of the located object. */
int fs_location_stat(const FsLocation *l, struct stat *ret);

/* openat2(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC) for a single path component, beneath dir_fd and
 * refusing symlinks and magic links. */
int fs_open_component(int dir_fd, const char *name, int flags, mode_t mode);
