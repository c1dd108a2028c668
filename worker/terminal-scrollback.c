/* SPDX-License-Identifier: MIT */
#include "terminal-scrollback.h"

#include <assert.h>
#include <stdlib.h>

#include "utf8.h"

void scrollback_init(Scrollback *sb, size_t max)
{
        assert(sb && max > 0);
        *sb = (Scrollback){.max = max};
}

void scrollback_done(Scrollback *sb)
{
        free(sb->data);
        *sb = (Scrollback){.max = sb->max};
}

int scrollback_append(Scrollback *sb, const char *p, size_t n)
{
        size_t end, first;

        if (n >= sb->max) {
                p += n - sb->max;
                n = sb->max;
        }
        if (sb->alloc < sb->max && sb->len + n > sb->alloc) {
                size_t a = MAX(sb->alloc * 2, sb->len + n);
                char *d;

                a = MAX(a, (size_t)4096);
                a = MIN(a, sb->max);
                d = realloc(sb->data, a);
                if (!d)
                        return -ENOMEM;
                sb->data = d;
                sb->alloc = a;
        }
        if (sb->alloc < sb->max) {
                /* Still linear: it fits, or the buffer would have grown to max above. */
                memcpy(sb->data + sb->len, p, n);
                sb->len += n;
                return 0;
        }
        end = (sb->start + sb->len) % sb->max;
        first = MIN(n, sb->max - end);
        memcpy(sb->data + end, p, first);
        memcpy(sb->data, p + first, n - first);
        if (sb->len + n > sb->max) {
                sb->start = (sb->start + sb->len + n - sb->max) % sb->max;
                sb->len = sb->max;
        } else
                sb->len += n;
        return 0;
}

static size_t escaped_size(unsigned char c)
{
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
                return 2;
        return c < 0x20 ? 6 : 1; /* \u00XX */
}

/* Byte i of the scrollback, oldest first. */
static unsigned char byte_at(const Scrollback *sb, size_t i)
{
        return (unsigned char)sb->data[(sb->start + i) % sb->alloc];
}

int scrollback_escape_append(const Scrollback *sb, size_t budget, Buf *out)
{
        size_t from = sb->len, size = 0, pos, n, first;
        int r;

        /* Walk back from the newest byte while the escaped text still fits, then forward to the start
         * of a character: the cut may have fallen inside one, and so may the oldest byte kept. */
        while (from > 0 && size + escaped_size(byte_at(sb, from - 1)) <= budget)
                size += escaped_size(byte_at(sb, --from));
        while (from < sb->len && (byte_at(sb, from) & 0xC0) == 0x80)
                from++;
        if (from == sb->len)
                return 0;

        /* At most two runs in the buffer. The escaper goes byte by byte and copies bytes >= 0x80
         * unchanged, so a character split between the runs comes out whole. */
        pos = (sb->start + from) % sb->alloc;
        n = sb->len - from;
        first = MIN(n, sb->alloc - pos);
        r = json_escape_append(out, sb->data + pos, first);
        if (r >= 0 && n > first)
                r = json_escape_append(out, sb->data, n - first);
        return r;
}
