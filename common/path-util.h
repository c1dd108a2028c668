/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Paths by their spelling alone: nothing here looks at the file system. */

/* Lexically normalize path: relative paths are taken relative to base (absolute and normalized);
 * "//" and "." collapse; ".." drops the previous component. Returns -EINVAL for an empty path (or a
 * relative one without base), -EXDEV for a ".." above "/", -ENAMETOOLONG for a component longer than
 * NAME_MAX or a path of PATH_MAX bytes or more. */
int path_normalize(const char *base, const char *path, char **ret);

/* True if a is b or lies below it (both normalized absolute). */
bool path_is_below_or_same(const char *a, const char *b);

/* dir "/" name, without doubling the slash of "/"; NULL on allocation failure. */
char *path_join(const char *dir, const char *name);
