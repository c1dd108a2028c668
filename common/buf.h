/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <string.h>

#include "macro.h"

/* A growable byte buffer. data is always NUL-terminated when non-NULL, so text can be used as a C
 * string; len does not count the terminator. */
typedef struct Buf {
        char *data;
        size_t len;
        size_t cap;
} Buf;

int buf_reserve(Buf *b, size_t extra);
int buf_append(Buf *b, const void *p, size_t n);
static inline int buf_append_str(Buf *b, const char *s)
{
        return buf_append(b, s, strlen(s));
}
int buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_done(Buf *b);
/* Hand the bytes to the caller (who frees them) and reset the buffer. */
char *buf_steal(Buf *b, size_t *ret_len);
