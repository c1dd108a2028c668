/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* File operations on directory fds from fs_chase(): they act on (dir_fd, name), never on a path
 * string, and never follow a symlink at name. All return 0 or -errno. */

/* "dev.ino.size.mtime.ctime" in hex, nanoseconds: changes whenever the content may have. */
#define FS_TAG_MAX (5 * 17)
void fs_tag_format(const struct stat *st, char ret[static FS_TAG_MAX]);

/* "file", "dir", "symlink" or "other". */
const char *fs_type_name(mode_t mode);
/* Milliseconds since the epoch. */
int64_t fs_mtime_ms(const struct stat *st);

/* Read all of fd (a regular file). -EFBIG as soon as it holds more than limit bytes. The data is
 * NUL-terminated (not counted). */
int fs_read_bounded(int fd, size_t limit, char **ret, size_t *ret_size);
/* The same for a caller that has just fstat()ed fd: size is the st_size it saw. A file still that size
 * is read with a single read(). */
int fs_read_bounded_size(int fd, uint64_t size, size_t limit, char **ret, size_t *ret_size);

/* The name of the temporary file an atomic write uses: hidden, fixed length, never a user's name in
 * practice. Watchers use this to ignore our own temporary files. */
bool fs_is_temp_name(const char *name);

/* Replace (dir_fd, name) atomically with data: a temporary file in the same directory, written and
 * fsync'ed, renamed over name, then the directory fsync'ed. old: the stat of the file replaced, whose
 * mode (and, as far as permitted, owner and group) the new one gets; NULL for a new file (0666 minus
 * the umask). On failure nothing is left behind. *ret_st is the new file's stat after the rename.
 * The temporary file is unnamed (O_TMPFILE) until it is complete where the file system allows, so a
 * process killed while writing leaves nothing; elsewhere it is named, and left behind. */
int fs_write_atomic(int dir_fd, const char *name, const void *data, size_t size, const struct stat *old,
                    struct stat *ret_st);

/* Whether name with stat st is a temporary file of ours that a write killed before it finished left
 * behind: our name pattern, a regular file of our uid with no other name, last written before
 * `before` (the worker's start: no write of this worker made it). */
bool fs_is_stale_temp(const char *name, const struct stat *st, const struct timespec *before);
/* Remove such leftovers in the directory; the number removed, or -errno. */
int fs_remove_stale_temps(int dir_fd, const struct timespec *before);

/* Remove (dir_fd, name) and, for a directory, everything below it, descending with fds and never
 * following symlinks. -ELOOP for trees deeper than FS_REMOVE_MAX_DEPTH. */
#define FS_REMOVE_MAX_DEPTH 256
int fs_remove_tree(int dir_fd, const char *name);

typedef struct FsEntry {
        char *name;
        mode_t mode;
        uint64_t size;
        int64_t mtime_ms;
} FsEntry;

typedef struct FsListing {
        FsEntry *entries; /* sorted by name, bytewise */
        size_t n;
        bool truncated; /* the directory holds more than the limit */
        size_t skipped; /* names that are not valid UTF-8 cannot be named in JSON */
} FsListing;

/* List a directory (fd opened O_RDONLY|O_DIRECTORY; consumed). At most max entries are kept. With
 * stale_before, leftover temporary files (fs_is_stale_temp()) are removed, not listed. */
int fs_list_directory(int fd, size_t max, const struct timespec *stale_before, FsListing *ret);
void fs_listing_done(FsListing *l);
