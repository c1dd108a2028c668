/* SPDX-License-Identifier: MIT */
#pragma once

/* Writes text to the existing file at path in one write(), opened O_WRONLY | O_CLOEXEC | flags (e.g.
 * O_NOFOLLOW); -EIO if the write is short. System calls only, so it may run between fork and exec. */
int write_string_file(const char *path, const char *text, int flags);
