/* SPDX-License-Identifier: MIT */
#include "splice.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* Direction 0 carries a's bytes to b, 1 b's to a. */
enum { A_TO_B = 0, B_TO_A = 1, _DIRECTIONS };

typedef union Stream {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
} Stream;

typedef struct Chunk {
        uv_write_t req;
        Splice *splice;
        int dir;
        size_t len;
        char data[];
} Chunk;

typedef struct Flow {
        size_t queued; /* handed to uv_write() towards this direction's destination, not yet written */
        uint64_t left; /* bytes the source may still pass */
        bool reading;
        bool eof;  /* its source has ended */
        bool shut; /* its destination's writing side is shut down */
        uv_shutdown_t shutdown;
} Flow;

struct Splice {
        uv_loop_t *loop;
        Stream side[2]; /* a, b */
        bool side_init[2];
        unsigned handles;
        bool closing;
        Flow flow[_DIRECTIONS];
        SpliceFilterFn filter; /* of b's first bytes, until it has finished */
        char *held;            /* b's bytes the filter has not dealt with yet */
        size_t n_held;
        SpliceClosedFn closed;
        void *userdata;
};

static uv_stream_t *source_of(Splice *s, int dir)
{
        return &s->side[dir == A_TO_B ? 0 : 1].stream;
}

static uv_stream_t *dest_of(Splice *s, int dir)
{
        return &s->side[dir == A_TO_B ? 1 : 0].stream;
}

static void on_closed(uv_handle_t *h)
{
        Splice *s = h->data;

        assert(s->handles > 0);
        if (--s->handles > 0)
                return;
        if (s->closed)
                s->closed(s->userdata);
        free(s->held);
        free(s);
}

void splice_close(Splice *s)
{
        if (!s || s->closing)
                return;
        s->closing = true;
        for (int i = 0; i < 2; i++)
                if (s->side_init[i])
                        uv_close(&s->side[i].handle, on_closed);
}

static void flow_start(Splice *s, int dir);

static void on_shutdown(uv_shutdown_t *req, int status)
{
        Splice *s = req->handle->data;

        if (s->closing)
                return;
        if (status < 0 || (s->flow[A_TO_B].shut && s->flow[B_TO_A].shut))
                splice_close(s);
}

/* The source of dir has ended and all it sent is written: pass the end on. */
static void flow_shut(Splice *s, int dir)
{
        Flow *f = &s->flow[dir];

        if (f->shut || !f->eof || f->queued > 0)
                return;
        f->shut = true;
        if (uv_shutdown(&f->shutdown, dest_of(s, dir), on_shutdown) < 0)
                splice_close(s);
}

static void on_write(uv_write_t *req, int status)
{
        Chunk *c = container_of(req, Chunk, req);
        Splice *s = c->splice;
        int dir = c->dir;
        Flow *f = &s->flow[dir];

        f->queued -= c->len;
        free(c);
        if (s->closing)
                return;
        if (status < 0) {
                splice_close(s);
                return;
        }
        if (f->eof)
                flow_shut(s, dir);
        else if (!f->reading && f->queued <= SPLICE_HIGH_WATER / 2)
                flow_start(s, dir);
}

/* Takes data (malloc'ed, len bytes at its start). */
static int flow_write(Splice *s, int dir, const char *data, size_t len)
{
        Chunk *c = malloc(sizeof(Chunk) + len);
        uv_buf_t buf;
        int r;

        if (!c)
                return -ENOMEM;
        c->splice = s;
        c->dir = dir;
        c->len = len;
        memcpy(c->data, data, len);
        buf = uv_buf_init(c->data, (unsigned)len);
        r = uv_write(&c->req, dest_of(s, dir), &buf, 1, on_write);
        if (r < 0) {
                free(c);
                return r;
        }
        s->flow[dir].queued += len;
        return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        char *p = malloc(SPLICE_READ_SIZE);

        *buf = uv_buf_init(p, p ? SPLICE_READ_SIZE : 0);
}

/* b's bytes through the filter; the rest once it has finished. */
static int filter_feed(Splice *s, const char *data, size_t len)
{
        char *p;

        if (s->n_held + len > SPLICE_FILTER_MAX)
                return -E2BIG;
        p = realloc(s->held, s->n_held + len);
        if (!p)
                return -ENOMEM;
        s->held = p;
        memcpy(s->held + s->n_held, data, len);
        s->n_held += len;
        while (s->filter && s->n_held > 0) {
                _cleanup_free_ char *out = NULL;
                size_t n_out = 0;
                bool done = false;
                int r = s->filter(s->held, s->n_held, &out, &n_out, &done, s->userdata);

                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if ((size_t)r > s->n_held)
                        return -EPROTO;
                if (out && n_out > 0) {
                        r = flow_write(s, B_TO_A, out, n_out) < 0 ? -ENOMEM : r;
                        if (r < 0)
                                return r;
                }
                memmove(s->held, s->held + r, s->n_held - (size_t)r);
                s->n_held -= (size_t)r;
                if (done)
                        s->filter = NULL;
        }
        if (!s->filter && s->n_held > 0) {
                int r = flow_write(s, B_TO_A, s->held, s->n_held);
                s->n_held = 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
        Splice *s = stream->data;
        int dir = stream == source_of(s, A_TO_B) ? A_TO_B : B_TO_A;
        Flow *f = &s->flow[dir];
        _cleanup_free_ char *data = buf->base;

        if (nread == 0)
                return;
        if (nread == UV_EOF) {
                uv_read_stop(stream);
                f->reading = false;
                f->eof = true;
                flow_shut(s, dir);
                return;
        }
        /* Past its limit a source may send nothing more: the next request of a kept-alive HTTP
         * connection, say, which must not pass unchecked. */
        if (nread < 0 || (uint64_t)nread > f->left) {
                splice_close(s);
                return;
        }
        if (dir == B_TO_A && s->filter ? filter_feed(s, data, (size_t)nread) < 0
                                       : flow_write(s, dir, data, (size_t)nread) < 0) {
                splice_close(s);
                return;
        }
        if (f->left != SPLICE_UNLIMITED)
                f->left -= (uint64_t)nread;
        if (f->queued > SPLICE_HIGH_WATER) {
                uv_read_stop(stream);
                f->reading = false;
        }
}

static void flow_start(Splice *s, int dir)
{
        Flow *f = &s->flow[dir];

        if (f->reading || f->eof || s->closing)
                return;
        if (uv_read_start(source_of(s, dir), on_alloc, on_read) < 0) {
                splice_close(s);
                return;
        }
        f->reading = true;
}

static int side_open(Splice *s, int i, int fd)
{
        int r;

        if (uv_guess_handle(fd) == UV_TCP) {
                r = uv_tcp_init(s->loop, &s->side[i].tcp);
                if (r < 0)
                        return r;
                s->side_init[i] = true;
                s->handles++;
                s->side[i].handle.data = s;
                r = uv_tcp_open(&s->side[i].tcp, fd);
        } else {
                r = uv_pipe_init(s->loop, &s->side[i].pipe, false);
                if (r < 0)
                        return r;
                s->side_init[i] = true;
                s->handles++;
                s->side[i].handle.data = s;
                r = uv_pipe_open(&s->side[i].pipe, fd);
        }
        return r;
}

static void on_failed_idle_closed(uv_handle_t *h)
{
        Splice *s = h->data;

        free(h);
        if (s->closed)
                s->closed(s->userdata);
        free(s->held);
        free(s);
}

int splice_new(uv_loop_t *loop, int fd_a, int fd_b, const char *a_pending, size_t n_pending,
               uint64_t a_limit, SpliceFilterFn b_filter, SpliceClosedFn closed, void *userdata,
               Splice **ret)
{
        Splice *s;
        int fds[2] = {fd_a, fd_b}, r = 0;

        assert(loop);
        s = calloc(1, sizeof(Splice));
        if (!s) {
                safe_close(fd_a);
                safe_close(fd_b);
                return -ENOMEM;
        }
        s->loop = loop;
        s->closed = closed;
        s->userdata = userdata;
        s->filter = b_filter;
        s->flow[A_TO_B].left = a_limit;
        s->flow[B_TO_A].left = SPLICE_UNLIMITED;
        for (int i = 0; i < 2; i++) {
                if (r >= 0)
                        r = side_open(s, i, fds[i]);
                if (r < 0 && fds[i] >= 0)
                        safe_close(fds[i]);
                fds[i] = -1;
        }
        if (r >= 0 && n_pending > 0) {
                r = n_pending > a_limit ? -EPROTO : flow_write(s, A_TO_B, a_pending, n_pending);
                if (r >= 0 && a_limit != SPLICE_UNLIMITED)
                        s->flow[A_TO_B].left -= n_pending;
        }
        if (r < 0) {
                if (s->handles == 0) {
                        /* closed must still run from the loop: a handle of our own carries it there. */
                        uv_idle_t *idle = malloc(sizeof(uv_idle_t));
                        if (!idle || uv_idle_init(loop, idle) < 0) {
                                free(idle);
                                free(s);
                                return r;
                        }
                        idle->data = s;
                        uv_close((uv_handle_t *)idle, on_failed_idle_closed);
                } else
                        splice_close(s);
                return r;
        }
        flow_start(s, A_TO_B);
        flow_start(s, B_TO_A);
        *ret = s;
        return 0;
}
