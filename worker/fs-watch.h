/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "fs-path.h"

/* A recursive inotify watch of one directory tree (the loaded project), on the worker's loop.
 *
 * Every directory below the root is watched, except those whose name is in config->watch_exclude,
 * and at most config->max_watches of them. A directory that appears later is watched and scanned, and
 * what it already holds is reported as created, so nothing made before its watch existed is lost.
 * Events are coalesced for a few milliseconds (an append is one "modified", a file created and removed
 * in between is nothing) and paired into moves, then handed to the owner in order. Paths are physical:
 * the root as given (a path fs_chase() returned) followed by real directory names. */

typedef struct FsWatch FsWatch;

typedef enum FsChangeKind {
        FS_CHANGE_CREATED,
        FS_CHANGE_MODIFIED,
        FS_CHANGE_DELETED,
        FS_CHANGE_MOVED, /* old_path → path; a half whose partner never came is deleted/created */
        _FS_CHANGE_KIND_MAX,
        _FS_CHANGE_KIND_INVALID = -EINVAL,
} FsChangeKind;

const char *fs_change_kind_to_string(FsChangeKind k);

typedef struct FsWatchOps {
        /* One coalesced change; old_path only for FS_CHANGE_MOVED. */
        void (*change)(FsChangeKind kind, const char *path, const char *old_path, void *userdata);
        /* Watching is incomplete: a watch limit was hit (-ENOSPC; once per root) or the kernel's event
         * queue overflowed (-EOVERFLOW; the tree is rescanned). limit is the limit concerned. */
        void (*error)(const char *path, int error, const char *message, uint64_t limit, void *userdata);
        /* Optional: names of temporary files. Nothing is reported about them, and one renamed over a
         * file is a modification of that file (an atomic write), not a move. */
        bool (*is_temporary)(const char *name);
        /* Optional: a scan of a directory met the temporary file name in it (dir_fd, borrowed). */
        void (*temporary_found)(int dir_fd, const char *name, void *userdata);
} FsWatchOps;

int fs_watch_new(uv_loop_t *loop, const FsRoots *roots, const WorkerConfig *config, const FsWatchOps *ops,
                 void *userdata, FsWatch **ret);

/* Drop every watch and pending change, then watch the tree at root (a physical directory path beneath
 * the roots); NULL watches nothing. The first directories are watched before this returns. */
int fs_watch_set_root(FsWatch *w, const char *root);

/* Directories currently watched. */
size_t fs_watch_count(const FsWatch *w);

/* Close the inotify fd and the handles; the memory goes in the last close callback, which then calls
 * done(userdata) if given. */
void fs_watch_close(FsWatch *w, void (*done)(void *userdata), void *userdata);
