/* SPDX-License-Identifier: MIT */
#include "document.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "macro.h"
#include "utf8.h"

/* Slack added whenever the gap has to grow, so a run of keystrokes does not reallocate each time. */
#define GAP_MIN (4u * 1024u)
/* A gap larger than this and the text itself (left by a large deletion) is given back at commit. */
#define GAP_SHRINK_ABOVE (1u * 1024u * 1024u)

/* What doc_rollback() needs to take one applied change back. */
typedef struct UndoStep {
        size_t pos, pos16;              /* where the change was made: bytes, UTF-16 units */
        size_t ins_len, ins16;          /* what it inserted */
        size_t del_off, del_len, del16; /* what it removed: undo.data[del_off..del_off + del_len) */
} UndoStep;

/* The text is data[0..gap_start) followed by data[gap_end..cap). The gap is never empty, so the text
 * can always be NUL-terminated in place once the gap is at the end. */
struct Document {
        char *data;
        size_t cap;
        size_t gap_start, gap_end;
        size_t gap16; /* UTF-16 units before the gap */
        size_t len16;

        UndoStep *steps;
        size_t n_steps, cap_steps;
        Buf undo;
};

static size_t after_len(const Document *d)
{
        return d->cap - d->gap_end;
}

static size_t gap_len(const Document *d)
{
        return d->gap_end - d->gap_start;
}

size_t doc_size(const Document *d)
{
        return d->gap_start + after_len(d);
}

size_t doc_length16(const Document *d)
{
        return d->len16;
}

static bool text_ok(const char *s, size_t n)
{
        if (n == 0)
                return true;
        return !memchr(s, '\0', n) && utf8_is_valid(s, n);
}

int doc_new(const char *s, size_t n, Document **ret)
{
        Document *d;

        assert(s || n == 0);
        assert(ret);
        if (n > SIZE_MAX / 2)
                return -ENOMEM;
        if (!text_ok(s, n))
                return -EINVAL;
        d = calloc(1, sizeof(Document));
        if (!d)
                return -ENOMEM;
        d->cap = n + n / 8 + GAP_MIN;
        d->data = malloc(d->cap);
        if (!d->data) {
                free(d);
                return -ENOMEM;
        }
        if (n > 0)
                memcpy(d->data, s, n);
        d->gap_start = n;
        d->gap_end = d->cap;
        d->gap16 = d->len16 = utf16_length(s, n);
        *ret = d;
        return 0;
}

Document *doc_free(Document *d)
{
        if (!d)
                return NULL;
        free(d->data);
        free(d->steps);
        buf_done(&d->undo);
        free(d);
        return NULL;
}

/* Move the gap so that it starts at byte pos (pos16 UTF-16 units), which must be a character
 * boundary. Returns the bytes moved. */
static size_t gap_move(Document *d, size_t pos, size_t pos16)
{
        size_t n = 0;

        assert(pos <= doc_size(d));
        if (pos < d->gap_start) {
                n = d->gap_start - pos;
                memmove(d->data + d->gap_end - n, d->data + pos, n);
                d->gap_start -= n;
                d->gap_end -= n;
        } else if (pos > d->gap_start) {
                n = pos - d->gap_start;
                memmove(d->data + d->gap_start, d->data + d->gap_end, n);
                d->gap_start += n;
                d->gap_end += n;
        }
        d->gap16 = pos16;
        return n;
}

/* Make the gap at least need bytes long. */
static int gap_reserve(Document *d, size_t need)
{
        size_t size = doc_size(d), after = after_len(d), cap;
        char *p;

        if (gap_len(d) >= need)
                return 0;
        if (need > SIZE_MAX / 4 - size)
                return -ENOMEM;
        cap = size + need;
        cap += cap / 2 + GAP_MIN; /* geometric growth: appending n bytes costs O(n) overall */
        p = realloc(d->data, cap);
        if (!p)
                return -ENOMEM;
        memmove(p + cap - after, p + d->gap_end, after);
        d->data = p;
        d->gap_end = cap - after;
        d->cap = cap;
        return 0;
}

/* After a large deletion the gap may be most of the allocation: give it back. */
static void gap_shrink(Document *d)
{
        size_t size = doc_size(d), after = after_len(d), gap, cap;
        char *p;

        if (gap_len(d) <= MAX(size, (size_t)GAP_SHRINK_ABOVE))
                return;
        gap = size / 8 + GAP_MIN;
        cap = size + gap;
        memmove(d->data + d->gap_start + gap, d->data + d->gap_end, after);
        d->gap_end = d->gap_start + gap;
        d->cap = cap;
        /* If shrinking fails the old, larger block simply stays in use. */
        p = realloc(d->data, cap);
        if (p)
                d->data = p;
}

const char *doc_text(Document *d)
{
        (void)gap_move(d, doc_size(d), d->len16);
        d->data[d->gap_start] = '\0';
        return d->data;
}

int doc_segments(const Document *d, struct iovec ret[2])
{
        int n = 0;

        if (d->gap_start > 0)
                ret[n++] = (struct iovec){d->data, d->gap_start};
        if (after_len(d) > 0)
                ret[n++] = (struct iovec){d->data + d->gap_end, after_len(d)};
        return n;
}

bool doc_equal(const Document *d, const char *s, size_t n)
{
        return doc_size(d) == n && memcmp(d->data, s, d->gap_start) == 0 &&
               memcmp(d->data + d->gap_end, s + d->gap_start, after_len(d)) == 0;
}

static bool ascii8(const uint8_t *s)
{
        uint64_t w;

        memcpy(&w, s, sizeof(w));
        return !(w & UINT64_C(0x8080808080808080));
}

/* Walk forward from the start of s[0..n) over units UTF-16 code units; *ret is the bytes crossed.
 * What utf16_to_byte_offset() does, with runs of ASCII taken eight bytes at a time: this is the walk
 * every edit far from the previous one pays for. */
static int utf16_walk(const char *str, size_t n, size_t units, size_t *ret)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = 0;

        while (units > 0) {
                uint8_t c;

                if (units >= 8 && i + 8 <= n && ascii8(s + i)) {
                        i += 8;
                        units -= 8;
                        continue;
                }
                if (i >= n)
                        return -ERANGE;
                c = s[i];
                if (c < 0x80)
                        i += 1;
                else if (c < 0xE0)
                        i += 2;
                else if (c < 0xF0)
                        i += 3;
                else {
                        if (units == 1)
                                return -EILSEQ; /* between the halves of a surrogate pair */
                        i += 4;
                        units--;
                }
                units--;
        }
        if (i > n)
                return -ERANGE;
        *ret = i;
        return 0;
}

/* The same backwards, from the end of s[0..n). */
static int utf16_walk_back(const char *str, size_t n, size_t units, size_t *ret)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = n;

        while (units > 0) {
                size_t j;

                if (units >= 8 && i >= 8 && ascii8(s + i - 8)) {
                        i -= 8;
                        units -= 8;
                        continue;
                }
                if (i == 0)
                        return -ERANGE;
                j = i - 1;
                while (j > 0 && (s[j] & 0xC0) == 0x80)
                        j--;
                if (s[j] >= 0xF0) {
                        if (units == 1)
                                return -EILSEQ;
                        units -= 2;
                } else
                        units--;
                i = j;
        }
        *ret = n - i;
        return 0;
}

/* The byte position of UTF-16 offset p. The walk starts from whichever is nearest of the start, the gap
 * (where the last edit was) and the end. */
static int locate(const Document *d, size_t p, size_t *ret_pos, size_t *ret_walked)
{
        size_t b;
        int r;

        if (p > d->len16)
                return -ERANGE;
        if (p >= d->gap16) {
                if (p - d->gap16 <= d->len16 - p) {
                        r = utf16_walk(d->data + d->gap_end, after_len(d), p - d->gap16, &b);
                        *ret_pos = d->gap_start + b;
                } else {
                        r = utf16_walk_back(d->data + d->gap_end, after_len(d), d->len16 - p, &b);
                        *ret_pos = doc_size(d) - b;
                }
        } else {
                if (d->gap16 - p <= p) {
                        r = utf16_walk_back(d->data, d->gap_start, d->gap16 - p, &b);
                        *ret_pos = d->gap_start - b;
                } else {
                        r = utf16_walk(d->data, d->gap_start, p, &b);
                        *ret_pos = b;
                }
        }
        if (r < 0)
                return r;
        *ret_walked = b;
        return 0;
}

static size_t add_sat(size_t a, size_t b)
{
        return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static int push_step(Document *d, const UndoStep *s)
{
        if (d->n_steps == d->cap_steps) {
                size_t n = d->cap_steps ? d->cap_steps * 2 : 8;
                UndoStep *p = reallocarray(d->steps, n, sizeof(UndoStep));
                if (!p)
                        return -ENOMEM;
                d->steps = p;
                d->cap_steps = n;
        }
        d->steps[d->n_steps++] = *s;
        return 0;
}

static int apply_one(Document *d, const DocChange *c, size_t max_size, size_t max_cost, size_t *cost)
{
        size_t pos, walked, del_len, ins16, size = doc_size(d);
        UndoStep step;
        int r;

        if (c->from > c->to || c->to > d->len16)
                return -ERANGE;
        if (!text_ok(c->insert, c->insert_len))
                return -EILSEQ;

        r = locate(d, (size_t)c->from, &pos, &walked);
        if (r < 0)
                return r;
        *cost = add_sat(*cost, walked);
        if (*cost > max_cost)
                return -E2BIG;
        *cost = add_sat(*cost, gap_move(d, pos, (size_t)c->from));

        /* The deleted text must be whole characters too: it starts the part after the gap now. */
        r = utf16_walk(d->data + d->gap_end, after_len(d), (size_t)(c->to - c->from), &del_len);
        if (r < 0)
                return r;
        /* Growing past the limit is refused; shrinking never is, even above it (the limit may have
         * come down since the text was loaded). */
        if (c->insert_len > del_len && c->insert_len - del_len > (max_size > size ? max_size - size : 0))
                return -EFBIG;
        *cost = add_sat(*cost, add_sat(del_len, c->insert_len));
        if (*cost > max_cost)
                return -E2BIG;

        ins16 = utf16_length(c->insert, c->insert_len);
        step = (UndoStep){
            .pos = pos,
            .pos16 = (size_t)c->from,
            .ins_len = c->insert_len,
            .ins16 = ins16,
            .del_off = d->undo.len,
            .del_len = del_len,
            .del16 = (size_t)(c->to - c->from),
        };
        /* Everything that can fail comes before the first byte changes. */
        r = buf_append(&d->undo, d->data + d->gap_end, del_len);
        if (r < 0)
                return r;
        r = push_step(d, &step);
        if (r < 0) {
                d->undo.len = step.del_off;
                return r;
        }
        r = gap_reserve(d, c->insert_len + 1 > del_len ? c->insert_len + 1 - del_len : 0);
        if (r < 0) {
                d->n_steps--;
                d->undo.len = step.del_off;
                return r;
        }

        d->gap_end += del_len;
        if (c->insert_len > 0)
                memcpy(d->data + d->gap_start, c->insert, c->insert_len);
        d->gap_start += c->insert_len;
        d->gap16 = step.pos16 + ins16;
        d->len16 = d->len16 - step.del16 + ins16;
        return 0;
}

void doc_rollback(Document *d)
{
        while (d->n_steps > 0) {
                const UndoStep *s = &d->steps[--d->n_steps];

                (void)gap_move(d, s->pos + s->ins_len, s->pos16 + s->ins16);
                d->gap_start -= s->ins_len;
                d->gap16 -= s->ins16;
                /* The allocation never shrinks inside a transaction, and it held this text before. */
                assert(gap_len(d) > s->del_len);
                d->gap_end -= s->del_len;
                memcpy(d->data + d->gap_end, d->undo.data + s->del_off, s->del_len);
                d->len16 = d->len16 - s->ins16 + s->del16;
        }
        d->undo.len = 0;
}

void doc_commit(Document *d)
{
        d->n_steps = 0;
        /* Do not keep the copy of a large deletion around for the next keystroke. */
        if (d->undo.cap > GAP_SHRINK_ABOVE)
                buf_done(&d->undo);
        d->undo.len = 0;
        gap_shrink(d);
}

int doc_edit(Document *d, const DocChange *changes, size_t n, size_t max_size, size_t max_cost,
             size_t *ret_cost, size_t *ret_failed)
{
        size_t cost = 0;

        assert(d);
        assert(changes || n == 0);
        doc_commit(d);
        for (size_t i = 0; i < n; i++) {
                int r = apply_one(d, &changes[i], max_size, max_cost, &cost);
                if (r < 0) {
                        doc_rollback(d);
                        if (ret_failed)
                                *ret_failed = i;
                        return r;
                }
        }
        if (ret_cost)
                *ret_cost = cost;
        return 0;
}
