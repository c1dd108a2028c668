/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Splits a byte stream into LF-terminated lines without ever holding more than one maximum-size
 * message (plus one read) in memory. A line over the limit is reported once as oversize and skipped up
 * to its LF, so the stream survives it. Lines are handed out in place, NUL-terminated. */
typedef struct LineReader {
        char *buf;
        size_t len;  /* bytes held */
        size_t pos;  /* start of the first unconsumed line */
        size_t scan; /* bytes before this (from pos) are known to hold no LF */
        size_t cap;
        size_t max_line;
        bool discarding; /* inside an oversize line, dropping bytes up to its LF */
} LineReader;

typedef enum LineReaderEvent {
        LINE_READER_NONE,     /* no complete line: read more */
        LINE_READER_LINE,     /* *ret_line is a line (LF stripped, NUL-terminated) */
        LINE_READER_OVERSIZE, /* a line exceeded max_line and is being skipped */
} LineReaderEvent;

void line_reader_init(LineReader *r, size_t max_line);
void line_reader_done(LineReader *r);

/* Room for the next read: at least want bytes (fewer only at the memory limit). The pointer handed
 * out by line_reader_next() is invalidated by this call. */
int line_reader_space(LineReader *r, size_t want, char **ret_buf, size_t *ret_len);
void line_reader_commit(LineReader *r, size_t n);
/* Hand the buffer over to the caller, who frees it: the lines handed out so far stay valid in it. The
 * bytes not handed out yet move to a new buffer of the reader's. */
int line_reader_detach(LineReader *r, char **ret_buf);

LineReaderEvent line_reader_next(LineReader *r, char **ret_line, size_t *ret_len);

/* Bytes held that have not been handed out yet. */
static inline size_t line_reader_pending(const LineReader *r)
{
        return r->len - r->pos;
}
