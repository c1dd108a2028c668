/* SPDX-License-Identifier: MIT */
#include "line-reader.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* An idle connection keeps at most this much (or what one read needs, if that is more); a big message's
 * buffer is given back after it. */
#define LINE_READER_KEEP (64u * 1024u)

void line_reader_init(LineReader *r, size_t max_line)
{
        *r = (LineReader){.max_line = max_line};
}

void line_reader_done(LineReader *r)
{
        free(r->buf);
        *r = (LineReader){.max_line = r->max_line};
}

/* The capacity a buffer of cap bytes grows to for need bytes (a new one starts at 4 KiB). */
static size_t grow_cap(size_t cap, size_t need)
{
        if (cap == 0)
                cap = 4096;
        while (cap < need)
                cap *= 2;
        return cap;
}

int line_reader_space(LineReader *r, size_t want, char **ret_buf, size_t *ret_len)
{
        if (r->pos > 0) {
                memmove(r->buf, r->buf + r->pos, r->len - r->pos);
                r->len -= r->pos;
                r->scan = r->scan > r->pos ? r->scan - r->pos : 0;
                r->pos = 0;
        }
        /* A buffer grown for a big message goes once it is empty. One no bigger than this read would
         * allocate anyway stays: freeing it would only mean allocating it again right away. */
        if (r->len == 0 && r->cap > MAX(LINE_READER_KEEP, grow_cap(0, want + 1))) {
                free(r->buf);
                r->buf = NULL;
                r->cap = 0;
        }
        if (r->cap - r->len < want + 1) {
                size_t cap = grow_cap(r->cap, r->len + want + 1);
                char *p = realloc(r->buf, cap);

                if (!p)
                        return -ENOMEM;
                r->buf = p;
                r->cap = cap;
        }
        *ret_buf = r->buf + r->len;
        /* Keep one byte for the NUL that terminates a line handed out without its LF. */
        *ret_len = r->cap - r->len - 1;
        return 0;
}

int line_reader_detach(LineReader *r, char **ret_buf)
{
        size_t rest = r->len - r->pos, cap = grow_cap(0, rest + 1);
        char *p = malloc(cap);

        assert(ret_buf);
        if (!p)
                return -ENOMEM;
        /* What follows the lines handed out is at most what the last read brought: small beside a
         * big message, which is not copied. */
        memcpy(p, r->buf + r->pos, rest);
        *ret_buf = r->buf;
        r->buf = p;
        r->cap = cap;
        r->len = rest;
        r->pos = 0;
        return 0;
}

void line_reader_commit(LineReader *r, size_t n)
{
        r->len += n;
}

LineReaderEvent line_reader_next(LineReader *r, char **ret_line, size_t *ret_len)
{
        for (;;) {
                size_t from = r->pos + r->scan;
                char *lf = from < r->len ? memchr(r->buf + from, '\n', r->len - from) : NULL;

                if (r->discarding) {
                        if (!lf) {
                                r->pos = r->len;
                                r->scan = 0;
                                return LINE_READER_NONE;
                        }
                        r->discarding = false;
                        r->pos = (size_t)(lf - r->buf) + 1;
                        r->scan = 0;
                        continue;
                }

                if (!lf) {
                        r->scan = r->len - r->pos;
                        if (r->scan > r->max_line) {
                                r->discarding = true;
                                r->pos = r->len;
                                r->scan = 0;
                                return LINE_READER_OVERSIZE;
                        }
                        return LINE_READER_NONE;
                }

                size_t start = r->pos, len = (size_t)(lf - r->buf) - start;
                *lf = '\0';
                r->pos = start + len + 1;
                r->scan = 0;
                if (len > r->max_line)
                        return LINE_READER_OVERSIZE;
                *ret_line = r->buf + start;
                *ret_len = len;
                return LINE_READER_LINE;
        }
}
