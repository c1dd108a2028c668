/* SPDX-License-Identifier: MIT */
/* The checks on what libwebsockets reads from clients; see rx-guard.h for why they sit in recv() and
 * SSL_read(). */

/* recv() is defined below; a fortified build would have made it an inline wrapper in the header. */
#undef _FORTIFY_SOURCE

#include "rx-guard.h"

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"

/* The longest WebSocket frame header a client sends: 2 bytes, 8 of length, 4 of mask. */
#define WS_HEADER_MAX 14
/* Reads at least this large are checked in the caller's buffer. libwebsockets reads whole buffers of
 * kilobytes, but under TLS it asks for just what SSL_pending() reports, which can be a few bytes. */
#define READ_MIN (2 * WS_HEADER_MAX)
/* A zero-length pong from a client: a frame the library takes without effect. */
#define PONG_LEN 6
/* What is read and dropped after an oversized request, so the 431 is not lost to a reset. */
#define DRAIN_MAX (64u * 1024u)

typedef enum GuardMode {
        GUARD_HTTP,
        GUARD_WEBSOCKET,
        GUARD_CLOSED, /* refused: every read says the connection ended */
        GUARD_OFF,    /* HTTP/2: the library's own business */
} GuardMode;

struct RxGuard {
        int fd;
        bool tls;
        bool alpn_checked;
        GuardMode mode;
        size_t max_header_size;
        uint64_t *oversized_counter;

        /* HTTP/1: where the current request's headers are. */
        size_t pending; /* bytes of the request being received */
        unsigned eol;   /* 1: at the start of a line, 2: after a CR there */
        uint64_t requests_seen, requests_answered;
        bool busy;

        /* WebSocket */
        bool deflate;
        bool in_message; /* a fragmented data message is open */
        bool failed;
        uint64_t payload_left;
        unsigned char held[WS_HEADER_MAX];
        size_t n_held;
        /* Checked bytes a small read had no room for, served before anything else (and counted by
         * SSL_pending(), so that the library comes back for them). */
        unsigned char ready[WS_HEADER_MAX + PONG_LEN];
        size_t n_ready;
        RxGuardFailFn fail;
        void *userdata;
};

/* recv() and SSL_read() are called with a descriptor or an SSL object and nothing else, so the guards
 * are found by descriptor in a table of the process's own: the one piece of global state here. The
 * loop is single-threaded; so is this table. */
static RxGuard **guards;
static size_t n_guards;

static RxGuard *guard_of(int fd)
{
        return fd >= 0 && (size_t)fd < n_guards ? guards[fd] : NULL;
}

int rx_guard_new(int fd, bool tls, size_t max_header_size, RxGuard **ret)
{
        RxGuard *g;

        if (fd >= 0 && (size_t)fd >= n_guards) {
                size_t n = MAX((size_t)fd + 1, n_guards * 2);
                RxGuard **t = realloc(guards, n * sizeof(RxGuard *));
                if (!t)
                        return -ENOMEM;
                memset(t + n_guards, 0, (n - n_guards) * sizeof(RxGuard *));
                guards = t;
                n_guards = n;
        }
        g = calloc(1, sizeof(RxGuard));
        if (!g)
                return -ENOMEM;
        g->fd = fd;
        g->tls = tls;
        g->mode = GUARD_HTTP;
        g->max_header_size = max_header_size;
        if (fd >= 0)
                guards[fd] = g;
        *ret = g;
        return 0;
}

RxGuard *rx_guard_free(RxGuard *g)
{
        if (!g)
                return NULL;
        if (guard_of(g->fd) == g)
                guards[g->fd] = NULL;
        free(g);
        return NULL;
}

void rx_guard_set_oversized_counter(RxGuard *g, uint64_t *counter)
{
        g->oversized_counter = counter;
}

/* ---- HTTP/1 ---- */

/* Follow the request headers through len more bytes; false once they pass the limit. */
static bool http_scan(RxGuard *g, const char *buf, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                char c = buf[i];

                /* An empty line ends the headers: "\r\n\r\n", or "\n\n" from sloppy clients, the same as
                 * the listener takes for the first request. */
                if (c == '\n' && g->eol != 0) {
                        g->requests_seen++;
                        g->pending = 0;
                        g->eol = 0;
                        continue;
                }
                g->eol = c == '\n' ? 1 : c == '\r' && g->eol == 1 ? 2 : 0;
                if (++g->pending > g->max_header_size)
                        return false;
        }
        return true;
}

void rx_guard_http_feed(RxGuard *g, const char *buf, size_t len)
{
        (void)http_scan(g, buf, len);
}

void rx_guard_http_request(RxGuard *g)
{
        g->requests_answered++;
        g->busy = true;
}

void rx_guard_http_done(RxGuard *g)
{
        g->busy = false;
}

static const char response_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 32\r\n"
                                   "Connection: close\r\n\r\n"
                                   "Request Header Fields Too Large\n";

/* A later request's headers are over the limit. */
static void http_refuse(RxGuard *g)
{
        char sink[4096];
        size_t drained = 0;
        ssize_t n;

        g->mode = GUARD_CLOSED;
        if (g->oversized_counter)
                (*g->oversized_counter)++;
        if (g->tls)
                return; /* nothing can be written past the TLS layer from here */
        if (!g->busy) {
                /* The previous response is out, so the answer stands alone; a fresh short answer fits the
                 * send buffer. */
                n = send(g->fd, response_431, sizeof(response_431) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)n;
        }
        (void)shutdown(g->fd, SHUT_WR);
        /* Unread input would turn the close into a reset that can destroy the answer in flight. */
        while (drained < DRAIN_MAX &&
               (n = recvfrom(g->fd, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL)) > 0)
                drained += (size_t)n;
}

/* ---- WebSocket ---- */

int rx_guard_websocket(RxGuard *g, bool deflate, RxGuardFailFn fail, void *userdata)
{
        bool early = g->pending > 0 || g->requests_seen > g->requests_answered;

        if (g->mode != GUARD_HTTP)
                return g->mode == GUARD_OFF ? 0 : -EPROTO;
        g->mode = GUARD_WEBSOCKET;
        g->deflate = deflate;
        g->fail = fail;
        g->userdata = userdata;
        if (early) {
                /* Those bytes have been parsed as frames already, unchecked: fail the connection. */
                g->failed = true;
                return -EPROTO;
        }
        return 0;
}

void rx_guard_websocket_detach(RxGuard *g)
{
        g->fail = NULL;
        g->userdata = NULL;
}

typedef enum HeaderCheck {
        HEADER_OK,
        HEADER_INCOMPLETE,
        HEADER_BAD,
} HeaderCheck;

/* Check the frame header at h (avail bytes there). On HEADER_OK, *ret_len is the header's length and the
 * frame is accounted for; on HEADER_BAD, *ret_why says what is wrong. */
static HeaderCheck ws_header(RxGuard *g, const unsigned char *h, size_t avail, size_t *ret_len,
                             const char **ret_why)
{
        unsigned fin = h[0] & 0x80, rsv = h[0] & 0x70, opcode = h[0] & 0x0f, len7;
        bool control = opcode & 0x8;
        size_t ext, need;
        uint64_t length = 0;

        if ((opcode >= 0x3 && opcode <= 0x7) || opcode >= 0xb) {
                *ret_why = "reserved opcode";
                return HEADER_BAD;
        }
        if (control && !fin) {
                *ret_why = "fragmented control frame";
                return HEADER_BAD;
        }
        /* Only permessage-deflate is ever negotiated; it uses RSV1 on a message's first frame. */
        if ((rsv & 0x30) || (rsv && (!g->deflate || control || opcode == 0x0))) {
                *ret_why = "reserved bits set";
                return HEADER_BAD;
        }
        if (opcode == 0x0 && !g->in_message) {
                *ret_why = "continuation without a message";
                return HEADER_BAD;
        }
        if (!control && opcode != 0x0 && g->in_message) {
                *ret_why = "message inside a fragmented message";
                return HEADER_BAD;
        }
        if (avail < 2)
                return HEADER_INCOMPLETE;
        /* Masking keeps a page from steering what intermediaries see on the wire; a client that does not
         * mask is not a browser, and RFC 6455 §5.1 says to fail it. */
        if (!(h[1] & 0x80)) {
                *ret_why = "unmasked frame";
                return HEADER_BAD;
        }
        len7 = h[1] & 0x7f;
        if (control && len7 > 125) {
                *ret_why = "control frame too long";
                return HEADER_BAD;
        }
        ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        need = 2 + ext + 4;
        if (avail < need)
                return HEADER_INCOMPLETE;
        if (ext == 0)
                length = len7;
        for (size_t i = 0; i < ext; i++)
                length = length << 8 | h[2 + i];
        if (ext == 8 && (h[2] & 0x80)) {
                *ret_why = "frame length out of range";
                return HEADER_BAD;
        }

        if (!control)
                g->in_message = !fin;
        g->payload_left = length;
        *ret_len = need;
        return HEADER_OK;
}

static void ws_fail(RxGuard *g, const char *why)
{
        g->failed = true;
        if (g->fail)
                g->fail(g->userdata, 1002, why);
}

/* buf holds total bytes: what was held back, then what was just read. Returns how many of them may go to
 * the library, keeping back an incomplete header at the end and stopping before a bad frame. */
static size_t ws_scan(RxGuard *g, const unsigned char *buf, size_t total)
{
        size_t p = 0;

        while (p < total) {
                const char *why = NULL;
                size_t len = 0;

                if (g->payload_left > 0) {
                        size_t k = (size_t)MIN(g->payload_left, (uint64_t)(total - p));
                        p += k;
                        g->payload_left -= k;
                        continue;
                }
                switch (ws_header(g, buf + p, total - p, &len, &why)) {
                case HEADER_OK:
                        p += len;
                        break;
                case HEADER_INCOMPLETE:
                        g->n_held = total - p;
                        memcpy(g->held, buf + p, g->n_held);
                        return p;
                case HEADER_BAD:
                        ws_fail(g, why);
                        return p;
                }
        }
        return p;
}

static const unsigned char pong[PONG_LEN] = {0x8a, 0x80, 0, 0, 0, 0};

size_t rx_guard_ws_filter(RxGuard *g, char *buf, size_t len, size_t cap, bool *ret_failed)
{
        size_t held = g->n_held, n;

        assert(g->mode == GUARD_WEBSOCKET && len + held <= cap);
        if (g->failed) {
                *ret_failed = true;
                return 0;
        }
        memmove(buf + held, buf, len);
        memcpy(buf, g->held, held);
        g->n_held = 0;
        n = ws_scan(g, (unsigned char *)buf, held + len);
        *ret_failed = g->failed;
        return n;
}

/* ---- the reads ---- */

typedef int (*SslReadFn)(SSL *ssl, void *buf, int num);

static SslReadFn real_ssl_read(void)
{
        static SslReadFn fn;

        if (!fn) {
                /* The library's own, next after this program in the lookup order. */
                void *p = dlsym(RTLD_NEXT, "SSL_read");
                memcpy(&fn, &p, sizeof(fn));
        }
        return fn;
}

/* One read of the connection itself: -1 with errno, 0 at the end, or the count. */
static ssize_t raw_read(RxGuard *g, SSL *ssl, void *buf, size_t len, int flags)
{
        if (ssl) {
                SslReadFn fn = real_ssl_read();
                return fn ? fn(ssl, buf, (int)MIN(len, (size_t)INT32_MAX)) : -1;
        }
        return recvfrom(g->fd, buf, len, flags, NULL, NULL);
}

static ssize_t serve_ready(RxGuard *g, unsigned char *buf, size_t len)
{
        size_t k = MIN(len, g->n_ready);

        memcpy(buf, g->ready, k);
        memmove(g->ready, g->ready + k, g->n_ready - k);
        g->n_ready -= k;
        return (ssize_t)k;
}

/* Nothing to deliver from a read that did read something. A TLS read cannot just say "nothing":
 * SSL_get_error() would take that for the connection failing. It delivers an empty pong instead, which
 * the library takes without effect (it is always between two frames then). */
static ssize_t nothing_yet(RxGuard *g, unsigned char *buf, size_t len)
{
        if (!g->tls) {
                errno = EAGAIN;
                return -1;
        }
        memcpy(g->ready + g->n_ready, pong, PONG_LEN);
        g->n_ready += PONG_LEN;
        return serve_ready(g, buf, len);
}

/* A read too small to hold what is held back and what comes: checked in a buffer of our own, and what
 * does not fit waits in ready. */
static ssize_t small_read(RxGuard *g, SSL *ssl, unsigned char *buf, size_t len, int flags)
{
        unsigned char tmp[WS_HEADER_MAX + READ_MIN];
        size_t held = g->n_held, d;
        ssize_t n;

        assert(len < READ_MIN && g->n_ready == 0);
        memcpy(tmp, g->held, held);
        n = raw_read(g, ssl, tmp + held, len, flags);
        if (n <= 0)
                return n;
        g->n_held = 0;
        d = ws_scan(g, tmp, held + (size_t)n);
        if (d == 0)
                return nothing_yet(g, buf, len);
        /* At most what was held is left over. */
        memcpy(buf, tmp, MIN(d, len));
        if (d > len) {
                memcpy(g->ready, tmp + len, d - len);
                g->n_ready = d - len;
        }
        return (ssize_t)MIN(d, len);
}

static ssize_t guarded_read(RxGuard *g, SSL *ssl, void *buf, size_t len, int flags)
{
        unsigned char *b = buf;
        size_t held;
        ssize_t n;

        if (g->mode == GUARD_CLOSED)
                return 0;
        if (g->mode == GUARD_HTTP) {
                n = raw_read(g, ssl, buf, len, flags);
                if (n > 0 && !http_scan(g, buf, (size_t)n)) {
                        http_refuse(g);
                        return 0;
                }
                return n;
        }

        if (g->n_ready > 0)
                return serve_ready(g, b, len);
        if (g->failed) {
                /* Nothing more goes to the library; the connection is being closed. */
                n = raw_read(g, ssl, buf, len, flags);
                return n <= 0 ? n : nothing_yet(g, b, len);
        }
        if (len < READ_MIN)
                return small_read(g, ssl, b, len, flags);
        held = g->n_held;
        memcpy(b, g->held, held);
        n = raw_read(g, ssl, b + held, len - held, flags);
        if (n <= 0)
                return n; /* what is held stays held */
        g->n_held = 0;
        n = (ssize_t)ws_scan(g, b, held + (size_t)n);
        return n > 0 ? n : nothing_yet(g, b, len);
}

static bool guarding(RxGuard *g, size_t len, int flags)
{
        return g && g->mode != GUARD_OFF && !(flags & MSG_PEEK) && len > 0;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
        RxGuard *g = guard_of(fd);

        /* Under TLS this is OpenSSL reading records: those are checked once decrypted, in SSL_read(). */
        if (!guarding(g, len, flags) || g->tls)
                return recvfrom(fd, buf, len, flags, NULL, NULL);
        return guarded_read(g, NULL, buf, len, flags);
}

typedef int (*SslPendingFn)(const SSL *ssl);

int SSL_pending(const SSL *ssl)
{
        static SslPendingFn fn;
        RxGuard *g;
        int n;

        if (!fn) {
                void *p = dlsym(RTLD_NEXT, "SSL_pending");
                memcpy(&fn, &p, sizeof(fn));
                if (!fn)
                        return 0;
        }
        n = fn(ssl);
        g = n_guards > 0 ? guard_of(SSL_get_fd(ssl)) : NULL;
        if (g && g->tls && g->mode == GUARD_WEBSOCKET)
                n += (int)g->n_ready;
        return n;
}

int SSL_read(SSL *ssl, void *buf, int num)
{
        RxGuard *g = n_guards > 0 ? guard_of(SSL_get_fd(ssl)) : NULL;
        SslReadFn fn;

        if (g && g->tls && !g->alpn_checked) {
                const unsigned char *proto = NULL;
                unsigned proto_len = 0;

                /* The handshake is over by the first read of application data. */
                g->alpn_checked = true;
                SSL_get0_alpn_selected(ssl, &proto, &proto_len);
                if (proto_len == 2 && memcmp(proto, "h2", 2) == 0)
                        g->mode = GUARD_OFF;
        }
        if (num < 0 || !guarding(g, (size_t)num, 0) || !g->tls) {
                fn = real_ssl_read();
                return fn ? fn(ssl, buf, num) : -1;
        }
        return (int)guarded_read(g, ssl, buf, (size_t)num, 0);
}
