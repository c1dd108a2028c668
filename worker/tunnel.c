/* SPDX-License-Identifier: MIT */
#include "tunnel.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "socket-util.h"

/* Direction 0 carries what the client sends to the port, 1 what the port answers. */
enum { TO_APP = 0, TO_CLIENT = 1, _DIRECTIONS };

typedef struct Chunk {
        uv_write_t req;
        Tunnel *tunnel;
        int dir;
        size_t len;
        char data[];
} Chunk;

typedef struct Flow {
        size_t queued; /* bytes handed to uv_write() towards this direction's destination */
        bool reading;
        bool eof;  /* its source has ended */
        bool shut; /* its destination's writing side was shut down */
        uv_shutdown_t shutdown;
} Flow;

struct Tunnel {
        uv_loop_t *loop;
        uv_tcp_t tcp[2]; /* to 127.0.0.1, then to ::1 after a refusal */
        bool tcp_open[2];
        int cur;
        uv_pipe_t client;
        bool client_init;
        uv_connect_t connect;
        uint16_t port;
        bool tried_v6;
        int first_error;
        unsigned handles; /* open handles: the tunnel is freed when the last closes */
        bool spliced;
        bool closing;
        bool aborted;
        Flow flow[_DIRECTIONS];
        TunnelConnectedFn connected;
        TunnelClosedFn closed;
        void *userdata;
};

static uv_stream_t *source_of(Tunnel *t, int dir)
{
        return dir == TO_APP ? (uv_stream_t *)&t->client : (uv_stream_t *)&t->tcp[t->cur];
}

static uv_stream_t *dest_of(Tunnel *t, int dir)
{
        return dir == TO_APP ? (uv_stream_t *)&t->tcp[t->cur] : (uv_stream_t *)&t->client;
}

static void on_handle_closed(uv_handle_t *h)
{
        Tunnel *t = h->data;

        assert(t->handles > 0);
        if (--t->handles > 0)
                return;
        if (t->spliced && !t->aborted && t->closed)
                t->closed(t->userdata);
        free(t);
}

static void tunnel_close(Tunnel *t)
{
        if (t->closing)
                return;
        t->closing = true;
        for (int i = 0; i < 2; i++)
                if (t->tcp_open[i]) {
                        t->tcp_open[i] = false;
                        uv_close((uv_handle_t *)&t->tcp[i], on_handle_closed);
                }
        if (t->client_init)
                uv_close((uv_handle_t *)&t->client, on_handle_closed);
}

void tunnel_abort(Tunnel *t)
{
        if (!t)
                return;
        t->aborted = true;
        tunnel_close(t);
}

static void flow_start(Tunnel *t, int dir);

static void maybe_finish(Tunnel *t)
{
        if (t->flow[TO_APP].shut && t->flow[TO_CLIENT].shut)
                tunnel_close(t);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
        Tunnel *t = req->handle->data;

        if (t->closing)
                return;
        if (status < 0) {
                tunnel_close(t);
                return;
        }
        maybe_finish(t);
}

/* The source of dir has ended and everything it sent is written: pass the end on. */
static void flow_shut(Tunnel *t, int dir)
{
        Flow *f = &t->flow[dir];

        if (f->shut || !f->eof || f->queued > 0)
                return;
        f->shut = true;
        if (uv_shutdown(&f->shutdown, dest_of(t, dir), on_shutdown) < 0)
                tunnel_close(t);
}

static void on_write(uv_write_t *req, int status)
{
        Chunk *c = container_of(req, Chunk, req);
        Tunnel *t = c->tunnel;
        Flow *f = &t->flow[c->dir];
        int dir = c->dir;

        f->queued -= c->len;
        free(c);
        if (t->closing)
                return;
        if (status < 0) {
                tunnel_close(t);
                return;
        }
        if (f->eof)
                flow_shut(t, dir);
        else if (!f->reading && f->queued <= TUNNEL_HIGH_WATER / 2)
                flow_start(t, dir);
}

static int flow_write(Tunnel *t, int dir, const char *data, size_t len)
{
        Flow *f = &t->flow[dir];
        Chunk *c = malloc(sizeof(Chunk) + len);
        uv_buf_t buf;
        int r;

        if (!c)
                return -ENOMEM;
        c->tunnel = t;
        c->dir = dir;
        c->len = len;
        memcpy(c->data, data, len);
        buf = uv_buf_init(c->data, (unsigned)len);
        r = uv_write(&c->req, dest_of(t, dir), &buf, 1, on_write);
        if (r < 0) {
                free(c);
                return r;
        }
        f->queued += len;
        return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        char *p = malloc(TUNNEL_READ_SIZE);

        *buf = uv_buf_init(p, p ? TUNNEL_READ_SIZE : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        Tunnel *t = s->data;
        int dir = s == (uv_stream_t *)&t->client ? TO_APP : TO_CLIENT;
        Flow *f = &t->flow[dir];
        int r;

        if (nread == 0) {
                free(buf->base);
                return;
        }
        if (nread == UV_EOF) {
                free(buf->base);
                uv_read_stop(s);
                f->reading = false;
                f->eof = true;
                flow_shut(t, dir);
                return;
        }
        if (nread < 0) {
                free(buf->base);
                tunnel_close(t);
                return;
        }
        r = flow_write(t, dir, buf->base, (size_t)nread);
        free(buf->base);
        if (r < 0) {
                tunnel_close(t);
                return;
        }
        /* Bounded: past the mark the source is not read until the destination has taken half. */
        if (f->queued > TUNNEL_HIGH_WATER) {
                uv_read_stop(s);
                f->reading = false;
        }
}

static void flow_start(Tunnel *t, int dir)
{
        Flow *f = &t->flow[dir];

        if (f->reading || f->eof || t->closing)
                return;
        if (uv_read_start(source_of(t, dir), on_alloc, on_read) < 0) {
                tunnel_close(t);
                return;
        }
        f->reading = true;
}

static int connect_to(Tunnel *t, bool v6);

static int tcp_open(Tunnel *t, int i)
{
        int r = uv_tcp_init(t->loop, &t->tcp[i]);

        if (r < 0)
                return r;
        t->tcp[i].data = t;
        t->tcp_open[i] = true;
        t->handles++;
        t->cur = i;
        return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
        Tunnel *t = req->data;

        if (t->aborted)
                return;
        if (status == UV_ECONNREFUSED && !t->tried_v6) {
                /* Servers bound to ::1 alone (some dev servers pick "localhost" that way). */
                t->first_error = status;
                t->tcp_open[0] = false;
                uv_close((uv_handle_t *)&t->tcp[0], on_handle_closed);
                if (tcp_open(t, 1) >= 0 && connect_to(t, true) >= 0)
                        return;
                status = UV_ECONNREFUSED;
        }
        if (status < 0) {
                t->connected(t, t->first_error ? t->first_error : status, t->userdata);
                tunnel_abort(t);
                return;
        }
        (void)uv_tcp_nodelay(&t->tcp[t->cur], 1);
        t->connected(t, 0, t->userdata);
}

static int connect_to(Tunnel *t, bool v6)
{
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(t->port)};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(t->port)};

        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a6.sin6_addr = in6addr_loopback;
        t->tried_v6 = v6;
        t->connect.data = t;
        return uv_tcp_connect(&t->connect, &t->tcp[t->cur],
                              v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4, on_connect);
}

int tunnel_connect(uv_loop_t *loop, uint16_t port, TunnelConnectedFn connected, void *userdata, Tunnel **ret)
{
        Tunnel *t;
        int r;

        assert(loop);
        assert(connected);
        assert(port > 0);
        t = calloc(1, sizeof(Tunnel));
        if (!t)
                return -ENOMEM;
        t->loop = loop;
        t->port = port;
        t->connected = connected;
        t->userdata = userdata;
        r = tcp_open(t, 0);
        if (r < 0) {
                free(t);
                return r;
        }
        r = connect_to(t, false);
        if (r < 0) {
                t->aborted = true;
                tunnel_close(t);
                return r;
        }
        *ret = t;
        return 0;
}

int tunnel_splice(Tunnel *t, int client_fd, const char *pending, size_t n_pending, TunnelClosedFn closed,
                  void *userdata)
{
        int r;

        assert(t);
        t->spliced = true;
        t->closed = closed;
        t->userdata = userdata;
        r = uv_pipe_init(t->loop, &t->client, false);
        if (r < 0) {
                safe_close(client_fd);
                tunnel_close(t);
                return r;
        }
        t->client.data = t;
        t->client_init = true;
        t->handles++;
        r = uv_pipe_open(&t->client, client_fd);
        if (r < 0) {
                safe_close(client_fd);
                tunnel_close(t);
                return r;
        }
        if (n_pending > 0) {
                r = flow_write(t, TO_APP, pending, n_pending);
                if (r < 0) {
                        tunnel_close(t);
                        return r;
                }
        }
        flow_start(t, TO_APP);
        flow_start(t, TO_CLIENT);
        return 0;
}
