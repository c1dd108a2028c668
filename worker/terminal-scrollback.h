/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "buf.h"

/* A terminal's scrollback: the newest max bytes of its (valid UTF-8) output. Memory grows with use,
 * since most terminals never print a megabyte; start stays 0 until the buffer has reached max, and
 * from then on the buffer wraps. */
typedef struct Scrollback {
        char *data;
        size_t alloc, max, start, len;
} Scrollback;

void scrollback_init(Scrollback *sb, size_t max);
void scrollback_done(Scrollback *sb);

/* Add output; the oldest bytes make room. */
int scrollback_append(Scrollback *sb, const char *p, size_t n);

/* Append to out the newest part of the scrollback as the body of a JSON string (escaped, no quotes),
 * at most budget bytes long once escaped, and beginning on a character boundary. */
int scrollback_escape_append(const Scrollback *sb, size_t budget, Buf *out);
