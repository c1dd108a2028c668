/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdio.h>

/* Configuration files made of `key = value` lines. Blank lines and lines starting with '#' or ';' are
 * ignored; whitespace around keys and values is dropped; a value may be empty. Nothing is unquoted or
 * unescaped: the value is the rest of the line. */

/* Called once per setting, in file order. line is the 1-based line number, for messages. Return < 0 to
 * stop parsing; that value is returned by conf_file_parse(). */
typedef int (*ConfFileCallback)(const char *path, unsigned line, const char *key, const char *value,
                                void *userdata);

/* Longest line accepted, in bytes. */
#define CONF_FILE_LINE_MAX 4096u

/* Parse the file at path. -ENOENT if it does not exist (callers decide whether that matters),
 * -EINVAL (after logging the line) for a line that is not a setting or is too long. A section header is
 * such a line here. */
int conf_file_parse(const char *path, ConfFileCallback cb, void *userdata);

/* The same over an open stream. */
int conf_file_parse_stream(FILE *f, const char *path, ConfFileCallback cb, void *userdata);

/* Files read by several programs are divided in sections: a line "[name]" starts one, and the settings
 * before the first belong to none. Only the settings of section (NULL: those before any header) go to cb;
 * a header must name one of sections (NULL-terminated), else -EINVAL. */
int conf_file_parse_section(const char *path, const char *section, const char *const *sections,
                            ConfFileCallback cb, void *userdata);
int conf_file_parse_section_stream(FILE *f, const char *path, const char *section,
                                   const char *const *sections, ConfFileCallback cb, void *userdata);
