/* SPDX-License-Identifier: MIT */
/* TLS on the preview listener, without TLS code of our own: libwebsockets adopts the accepted socket as
 * a raw connection of a TLS vhost (the IDE's certificate) and hands us its plaintext. That plaintext is
 * pumped through a socket pair whose other end preview.c serves exactly as it serves a plain-HTTP
 * connection, so requests are parsed and checked in one place only. Each direction holds at most
 * PUMP_HIGH_WATER bytes before its source is no longer read. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway.h"
#include "log.h"
#include "macro.h"

#define PUMP_HIGH_WATER (256u * 1024u)
#define PUMP_READ_SIZE  (16u * 1024u)
#define PUMP_PROTOCOL   "helios-preview-tls"

typedef struct PumpChunk {
        struct PumpChunk *next;
        size_t len;
        unsigned char data[]; /* LWS_PRE bytes of room, then len bytes */
} PumpChunk;

typedef struct Pump {
        struct lws *wsi; /* NULL once the library has closed it */
        uv_pipe_t pipe;  /* our end of the pair */
        bool pipe_closing;
        PumpChunk *first, *last; /* plaintext for the client */
        size_t to_client, to_pipe;
        bool pipe_reading, pipe_eof, rx_paused;
} Pump;

typedef struct PumpWrite {
        uv_write_t req;
        Pump *pump;
        size_t len;
        char data[];
} PumpWrite;

static void on_pipe_closed(uv_handle_t *h)
{
        Pump *p = container_of((uv_pipe_t *)h, Pump, pipe);

        while (p->first) {
                PumpChunk *c = p->first;
                p->first = c->next;
                free(c);
        }
        free(p);
}

/* Close both sides: the pipe now, the TLS connection from the library's loop. */
static void pump_close(Pump *p)
{
        if (p->wsi) {
                lws_set_opaque_user_data(p->wsi, NULL);
                lws_set_timeout(p->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
                p->wsi = NULL;
        }
        if (!p->pipe_closing) {
                p->pipe_closing = true;
                uv_close((uv_handle_t *)&p->pipe, on_pipe_closed);
        }
}

static void on_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        PumpChunk *c = malloc(sizeof(PumpChunk) + LWS_PRE + PUMP_READ_SIZE);

        *buf = c ? uv_buf_init((char *)c->data + LWS_PRE, PUMP_READ_SIZE) : uv_buf_init(NULL, 0);
}

static void pipe_read_start(Pump *p);

static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        Pump *p = container_of((uv_pipe_t *)s, Pump, pipe);
        PumpChunk *c =
            buf->base ? container_of((unsigned char *)buf->base - LWS_PRE, PumpChunk, data[0]) : NULL;

        if (nread <= 0) {
                free(c);
                if (nread == 0)
                        return;
                uv_read_stop(s);
                p->pipe_reading = false;
                if (nread != UV_EOF || !p->wsi) {
                        pump_close(p);
                        return;
                }
                /* All of the answer is here: close once it is out. */
                p->pipe_eof = true;
                lws_callback_on_writable(p->wsi);
                return;
        }
        c->len = (size_t)nread;
        c->next = NULL;
        if (p->last)
                p->last->next = c;
        else
                p->first = c;
        p->last = c;
        p->to_client += c->len;
        if (p->wsi)
                lws_callback_on_writable(p->wsi);
        if (p->to_client > PUMP_HIGH_WATER) {
                uv_read_stop(s);
                p->pipe_reading = false;
        }
}

static void pipe_read_start(Pump *p)
{
        if (p->pipe_reading || p->pipe_eof || p->pipe_closing)
                return;
        if (uv_read_start((uv_stream_t *)&p->pipe, on_pipe_alloc, on_pipe_read) < 0) {
                pump_close(p);
                return;
        }
        p->pipe_reading = true;
}

static void on_pipe_written(uv_write_t *req, int status)
{
        PumpWrite *w = container_of(req, PumpWrite, req);
        Pump *p = w->pump;

        p->to_pipe -= w->len;
        free(w);
        if (p->pipe_closing)
                return;
        if (status < 0) {
                pump_close(p);
                return;
        }
        if (p->rx_paused && p->wsi && p->to_pipe <= PUMP_HIGH_WATER / 2) {
                p->rx_paused = false;
                lws_rx_flow_control(p->wsi, 1);
                /* libwebsockets 4.1 on libuv applies the change, and reads what OpenSSL has decrypted
                 * already (no poll event will come for that), only in an idle callback that it starts
                 * after one of its own events: asking to write is one, and harmless. */
                lws_callback_on_writable(p->wsi);
        }
}

static int pump_receive(Pump *p, const void *in, size_t len)
{
        PumpWrite *w = malloc(sizeof(PumpWrite) + len);
        uv_buf_t buf;

        if (!w)
                return -1;
        w->pump = p;
        w->len = len;
        memcpy(w->data, in, len);
        buf = uv_buf_init(w->data, (unsigned)len);
        if (uv_write(&w->req, (uv_stream_t *)&p->pipe, &buf, 1, on_pipe_written) < 0) {
                free(w);
                return -1;
        }
        p->to_pipe += len;
        if (p->to_pipe > PUMP_HIGH_WATER && !p->rx_paused) {
                p->rx_paused = true;
                lws_rx_flow_control(p->wsi, 0);
        }
        return 0;
}

static int pump_writeable(Pump *p)
{
        PumpChunk *c = p->first;

        if (!c)
                return p->pipe_eof ? -1 : 0; /* the library writes what it holds before this is called */
        if (lws_write(p->wsi, c->data + LWS_PRE, c->len, LWS_WRITE_RAW) < (int)c->len)
                return -1;
        p->first = c->next;
        if (!p->first)
                p->last = NULL;
        p->to_client -= c->len;
        free(c);
        if (p->first || p->pipe_eof)
                lws_callback_on_writable(p->wsi);
        if (p->to_client <= PUMP_HIGH_WATER / 2)
                pipe_read_start(p);
        return 0;
}

static int pump_new(Gateway *g, struct lws *wsi)
{
        Pump *p;
        int sp[2], r;

        if (!g->preview || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
                return -1;
        p = calloc(1, sizeof(Pump));
        if (!p || uv_pipe_init(g->loop, &p->pipe, false) < 0) {
                free(p);
                safe_close(sp[0]);
                safe_close(sp[1]);
                return -1;
        }
        p->wsi = wsi;
        if (uv_pipe_open(&p->pipe, sp[0]) < 0) {
                safe_close(sp[0]);
                safe_close(sp[1]);
                p->wsi = NULL;
                pump_close(p);
                return -1;
        }
        r = preview_adopt(g->preview, sp[1]);
        if (r < 0) {
                p->wsi = NULL;
                pump_close(p);
                return -1;
        }
        lws_set_opaque_user_data(wsi, p);
        pipe_read_start(p);
        return 0;
}

static int preview_tls_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                                size_t len)
{
        struct lws_context *ctx = lws_get_context(wsi);
        Gateway *g = ctx ? lws_context_user(ctx) : NULL;
        Pump *p = lws_get_opaque_user_data(wsi);

        switch (reason) {
        case LWS_CALLBACK_RAW_ADOPT:
                return g ? pump_new(g, wsi) : -1;
        case LWS_CALLBACK_RAW_RX:
                return p ? pump_receive(p, in, len) : -1;
        case LWS_CALLBACK_RAW_WRITEABLE:
                return p ? pump_writeable(p) : -1;
        case LWS_CALLBACK_RAW_CLOSE:
                if (p) {
                        p->wsi = NULL;
                        lws_set_opaque_user_data(wsi, NULL);
                        pump_close(p);
                }
                return 0;
        default:
                return 0;
        }
}

const struct lws_protocols preview_tls_protocols[] = {
    {PUMP_PROTOCOL, preview_tls_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int preview_tls_adopt(Gateway *g, int fd)
{
        lws_sock_file_fd_type desc = {.sockfd = fd};

        assert(g->preview_vhost);
        /* On failure the library has closed fd. */
        return lws_adopt_descriptor_vhost(g->preview_vhost, LWS_ADOPT_SOCKET | LWS_ADOPT_ALLOW_SSL, desc,
                                          PUMP_PROTOCOL, NULL)
                   ? 0
                   : -EIO;
}
