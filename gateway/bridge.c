/* SPDX-License-Identifier: MIT */
/* One page's WebSocket spliced to one connection to its user's worker: a text message becomes one
 * NDJSON line (any LF in it turned into a space, which is all a raw LF can be in valid JSON), and every
 * line from the worker becomes one text message. Nothing is parsed on the way.
 *
 * Each direction has a bounded queue. When the queue towards the worker passes the high-water mark the
 * WebSocket stops being read (lws_rx_flow_control); when the queue towards the browser does, the
 * worker stops being read (uv_read_stop). Either resumes below half the mark. So a page that sends
 * without reading, or a worker that floods a page that does not read, is held back rather than
 * buffered without end. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "gateway.h"
#include "log.h"
#include "macro.h"
#include "utf8.h"

#define WORKER_LOST_NOTIFICATION "{\"jsonrpc\":\"2.0\",\"method\":\"gateway:worker_lost\",\"params\":{}}"

/* A page silent for this many ping intervals is gone (its network went away without a FIN). */
#define PING_HANGUP_NUM 5u
#define PING_HANGUP_DEN 2u

/* A piece of a message from the worker on its way to the page: a whole message, or one fragment of a
 * message longer than what one read brought. Messages are forwarded as they arrive, never held whole. */
typedef struct OutChunk {
        struct OutChunk *next;
        size_t len;
        bool first;  /* begins a message: a text frame rather than a continuation */
        bool last;   /* ends it (FIN) */
        char data[]; /* LWS_PRE bytes of room, then len bytes */
} OutChunk;

/* What one user's pages hold together, and how many there are. */
struct BridgeUser {
        BridgeUser *next;
        unsigned pages;
        size_t queued; /* bytes on their way to this user's pages */
        bool stalled;  /* a page of the user stopped reading its worker connection */
        char name[];
};

typedef struct WorkerWrite {
        uv_write_t req;
        Bridge *bridge;
        struct WorkerWrite *next; /* while waiting for the connection */
        size_t len;
        char data[];
} WorkerWrite;

typedef enum PipeState {
        PIPE_LOCATING, /* asking the launcher where the worker is */
        PIPE_CONNECTING,
        PIPE_OPEN,
        PIPE_CLOSING,  /* uv_close() called */
        PIPE_RETRYING, /* closing to connect once more */
        PIPE_CLOSED,
} PipeState;

struct Bridge {
        Gateway *gateway;
        struct lws *wsi; /* NULL once the WebSocket is gone */
        Bridge *prev, *next;
        Bridge *kick_next; /* in Gateway.kicks while kick_pending */
        bool kick_pending;
        Session *session; /* NULL once the session has ended */
        SessionLink link;
        BridgeUser *owner; /* NULL for a page refused over the user's page limit */
        char user[SESSION_USER_MAX + 1];
        size_t max_message, high_water;

        /* towards the worker */
        uv_pipe_t pipe;
        uv_connect_t connect_req;
        PipeState pipe_state;
        LauncherRequest *locate;
        char *socket_path;
        bool retried;
        bool worker_spoke; /* a byte came from the worker on this connection */
        bool asked_why;    /* the launcher was asked again after the worker ended it unanswered */
        WorkerWrite *waiting_first, *waiting_last; /* written before the connection was up */
        size_t to_worker_queued;
        size_t rx_message_len; /* bytes of the browser's current message so far */
        Utf8Stream rx_utf8;
        bool rx_paused;
        bool peer_closed; /* the page sent its close frame: nothing after it goes on */

        /* towards the browser */
        bool deflate;          /* permessage-deflate negotiated */
        bool pam_counted;      /* counted as a page of its login's PAM session */
        bool writable_pending; /* lws_callback_on_writable() called, callback not yet here */
        bool reading;
        bool tx_in_message;    /* a fragment of a message went out (or is queued) without its end */
        size_t tx_message_len; /* bytes of the worker's current message so far */
        OutChunk *out_first, *out_last;
        /* Written, but libwebsockets may still be reading it: permessage-deflate compresses a piece as
         * large as its output buffer per writeable callback, from the caller's buffer, after lws_write()
         * has returned. Freed at the next writeable callback, which comes only once that is done. */
        OutChunk *in_flight;
        size_t to_browser_queued; /* bytes in out_* and in_flight */
        int close_code;           /* close once the queue is out; 0: none pending */
        const char *close_reason;
        bool close_ready; /* the queue is out and the close reason set: close from the idle handle */
        bool
            close_started; /* libwebsockets is closing: its close frame goes before any writeable callback */

        /* keepalive */
        uint64_t last_heard_ms; /* last data or pong from the page */
        bool ping_due;
        bool ping_sent;
};

static void worker_lost(Bridge *b, const char *why);
static void ask_why(Bridge *b);
static void bridge_maybe_free(Bridge *b);
static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_worker_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- the browser side ---- */

static void user_unqueue(Bridge *b, size_t n);

/* Drop what waits for the page. Not what libwebsockets may still be reading (in_flight). */
static void out_free_all(Bridge *b)
{
        size_t n = 0;

        for (OutChunk *c = b->out_first, *next; c; c = next) {
                next = c->next;
                n += c->len;
                free(c);
        }
        b->out_first = b->out_last = NULL;
        b->to_browser_queued -= n;
        user_unqueue(b, n);
}

static void in_flight_free(Bridge *b)
{
        if (!b->in_flight)
                return;
        b->to_browser_queued -= b->in_flight->len;
        user_unqueue(b, b->in_flight->len);
        free(b->in_flight);
        b->in_flight = NULL;
}

static void want_writable(Bridge *b)
{
        b->writable_pending = true;
        lws_callback_on_writable(b->wsi);
}

static void request_close(Bridge *b, int code, const char *reason)
{
        if (!b->wsi || b->close_code)
                return;
        b->close_code = code;
        b->close_reason = reason;
        /* Nothing more is read from a page being closed. */
        if (!b->rx_paused) {
                b->rx_paused = true;
                lws_rx_flow_control(b->wsi, 0);
        }
        want_writable(b);
}

static OutChunk *chunk_new(const char *p, size_t len, bool first, bool last)
{
        OutChunk *c = malloc(sizeof(OutChunk) + LWS_PRE + len);

        if (!c)
                return NULL;
        *c = (OutChunk){.len = len, .first = first, .last = last};
        memcpy(c->data + LWS_PRE, p, len);
        return c;
}

static void chunk_account(Bridge *b, OutChunk *c)
{
        b->to_browser_queued += c->len;
        if (b->owner)
                b->owner->queued += c->len;
}

static void chunk_free(Bridge *b, OutChunk *c)
{
        b->to_browser_queued -= c->len;
        user_unqueue(b, c->len);
        free(c);
}

static void enqueue_chunk(Bridge *b, OutChunk *c)
{
        if (b->out_last)
                b->out_last->next = c;
        else
                b->out_first = c;
        b->out_last = c;
        chunk_account(b, c);
}

static int enqueue_copy(Bridge *b, const char *p, size_t len, bool first, bool last)
{
        OutChunk *c = chunk_new(p, len, first, last);

        if (!c)
                return -ENOMEM;
        enqueue_chunk(b, c);
        return 0;
}

/* Write one piece of a message; p has LWS_PRE bytes of room before it for the frame header. Returns
 * whether libwebsockets may still read p after this returns (only with permessage-deflate: it then
 * compresses the rest of it from later writeable callbacks), or -1 if the connection broke. */
static int write_piece(Bridge *b, char *p, size_t len, bool first, bool last)
{
        Gateway *g = b->gateway;

        g->metrics.bytes_to_browser += len;
        if (last)
                g->metrics.messages_to_browser++;
        if (lws_write(b->wsi, (unsigned char *)p, len,
                      (enum lws_write_protocol)lws_write_ws_flags(LWS_WRITE_TEXT, first, last)) < 0)
                return -1;
        /* The extension's "draining" state shows as a choked pipe (as does a full socket, which does not
         * matter: the buffer is then kept one callback longer). */
        return b->deflate && lws_send_pipe_choked(b->wsi) ? 1 : 0;
}

static void try_resume_worker(Bridge *b);

static void pipe_close(Bridge *b, PipeState next);
static void free_waiting(Bridge *b);

/* libwebsockets 4.1 on a foreign libuv loop inflates a compressed message one buffer at a time and
 * delivers the next piece only when the socket sees another event; the same goes for data it holds
 * after reading was paused. A WebSocket with such data pending is serviced again from an idle handle
 * ("kicked"), as if its socket were readable. */
static void kick(Bridge *b);

static void on_kick_idle(uv_idle_t *h)
{
        Gateway *g = h->data;
        Bridge *b;

        /* The ones kicked so far are served now, those kicked meanwhile on the next turn of the loop.
         * A WebSocket closed meanwhile takes itself off either list (kick_cancel()). */
        g->kicks_running = g->kicks;
        g->kicks = NULL;
        while ((b = g->kicks_running)) {
                g->kicks_running = b->kick_next;
                b->kick_next = NULL;
                b->kick_pending = false;
                if (b->wsi && b->close_started) {
                        /* The close frame went out in the last turn of the loop (if the socket took it):
                         * the writeable callback asked for now hangs up (bridge_writeable()). */
                        lws_callback_on_writable(b->wsi);
                        continue;
                }
                if (b->wsi && b->close_ready) {
                        /* libwebsockets sends the close frame set by lws_close_reason() at the next POLLOUT,
                         * with reading still paused: the rest of a compressed message is not inflated. It
                         * may tell the bridge (LWS_CALLBACK_CLOSED), which may free b. */
                        b->close_started = true;
                        kick(b); /* once more on the next turn, unless the WebSocket is gone by then */
                        lws_set_timeout(b->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
                        continue;
                }
                if (!b->wsi || b->rx_paused)
                        continue;
                /* May close the WebSocket and free b; b is not touched after this. */
                struct lws_pollfd pfd = {
                    .fd = lws_get_socket_fd(b->wsi), .events = LWS_POLLIN, .revents = LWS_POLLIN};
                if (pfd.fd >= 0)
                        (void)lws_service_fd(g->lws, &pfd);
        }
        if (!g->kicks)
                (void)uv_idle_stop(h);
}

static void kick(Bridge *b)
{
        Gateway *g = b->gateway;

        if (b->kick_pending || !b->wsi)
                return;
        b->kick_pending = true;
        b->kick_next = g->kicks;
        g->kicks = b;
        if (!uv_is_active((uv_handle_t *)&g->kick_idle))
                (void)uv_idle_start(&g->kick_idle, on_kick_idle);
}

static void kick_cancel(Bridge *b)
{
        Gateway *g = b->gateway;

        if (!b->kick_pending)
                return;
        for (Bridge **list = &g->kicks; list; list = list == &g->kicks ? &g->kicks_running : NULL)
                for (Bridge **p = list; *p; p = &(*p)->kick_next)
                        if (*p == b) {
                                *p = b->kick_next;
                                goto done;
                        }
done:
        b->kick_next = NULL;
        b->kick_pending = false;
}

static void rx_resume(Bridge *b)
{
        b->rx_paused = false;
        lws_rx_flow_control(b->wsi, 1);
        kick(b);
}

int bridge_writeable(Bridge *b)
{
        struct lws *wsi = b->wsi;
        OutChunk *c;

        b->writable_pending = false;
        /* Whatever libwebsockets was still compressing is out by now: this callback waits for that. */
        in_flight_free(b);
        if (b->close_started)
                /* libwebsockets writes its close frame before it calls back, and leaves POLLOUT on after
                 * it: hang up now rather than wait for the page's answer, which would not be read. */
                return -1;
        if (b->close_ready)
                return 0; /* the close is on its way (on_kick_idle()) */
        if (b->ping_due && !b->close_code) {
                /* The gateway's own keepalive, from a buffer of its own: libwebsockets answers the page's
                 * pings from a single slot that its own keepalive would overwrite. */
                unsigned char ping[LWS_PRE + 4] = {[LWS_PRE] = 'p', 'i', 'n', 'g'};
                b->ping_due = false;
                b->ping_sent = true;
                /* With a payload: libwebsockets reports an empty pong to no one. */
                if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
                        return -1;
                want_writable(b);
                return 0;
        }
        c = b->out_first;
        if (!c && b->close_code) {
                /* The queue is out: the close frame goes next. Not by returning -1 here: a libwebsockets
                 * 4.1 built with _DEBUG on libuv closes a connection a second time at once whenever a
                 * callback made by lws_service_fd() returns -1 ("uv repeat test"), and that second close
                 * drops it before the close frame it prepared is sent. A close started from the idle
                 * handle takes the library's ordinary path: the frame goes out at the next POLLOUT. */
                lws_close_reason(wsi, (enum lws_close_status)b->close_code, (unsigned char *)b->close_reason,
                                 MIN(strlen(b->close_reason), (size_t)123));
                b->close_ready = true;
                kick(b);
                return 0;
        }
        if (c) {
                int r;
                b->out_first = c->next;
                if (!b->out_first)
                        b->out_last = NULL;
                /* One piece per callback: libwebsockets keeps what the socket does not take at once and
                 * calls back only when that has gone. */
                r = write_piece(b, c->data + LWS_PRE, c->len, c->first, c->last);
                if (r > 0)
                        b->in_flight = c;
                else
                        chunk_free(b, c);
                if (r < 0)
                        return -1;
        }

        try_resume_worker(b);
        if (b->out_first || b->in_flight || b->close_code)
                want_writable(b);
        return 0;
}

/* Whether a piece of a message can go to the page right now, past the queue: nothing is queued or being
 * sent, and no close is pending. This saves a round of the loop (and the epoll changes for POLLOUT) on
 * every answer. */
static bool can_write_now(Bridge *b)
{
        return b->wsi && !b->close_code && !b->out_first && !b->in_flight && !b->ping_due &&
               !lws_partial_buffered(b->wsi);
}

/* Send a piece straight from the worker's read buffer (p has LWS_PRE bytes of room before it). Without
 * compression libwebsockets sends it or copies what the socket does not take; with compression it may
 * go on reading it later, so it gets a copy of its own, kept until it is done. */
static int write_now(Bridge *b, char *p, size_t len, bool first, bool last)
{
        OutChunk *c = NULL;
        int r;

        if (b->deflate) {
                c = chunk_new(p, len, first, last);
                if (!c)
                        return -ENOMEM;
                chunk_account(b, c);
                p = c->data + LWS_PRE;
        }
        r = write_piece(b, p, len, first, last);
        if (r > 0) {
                b->in_flight = c;
                want_writable(b);
        } else if (c)
                chunk_free(b, c);
        if (r < 0)
                /* The connection is broken; outside a callback it is closed this way. */
                lws_set_timeout(b->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return 0;
}

/* ---- the worker side ---- */

static void on_worker_write(uv_write_t *req, int status)
{
        WorkerWrite *w = container_of(req, WorkerWrite, req);
        Bridge *b = w->bridge;

        b->to_worker_queued -= w->len;
        free(w);
        if (status < 0) {
                /* The read side notices the end of the worker and says so; closing cancels writes too. */
                if (status != UV_ECANCELED)
                        log_debug("Write to the worker failed: %s", uv_strerror(status));
                return;
        }
        if (b->rx_paused && b->wsi && !b->close_code && b->to_worker_queued <= b->high_water / 2)
                rx_resume(b);
}

static int submit_write(Bridge *b, WorkerWrite *w)
{
        uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);

        return uv_write(&w->req, (uv_stream_t *)&b->pipe, &buf, 1, on_worker_write);
}

/* Send len bytes (and an LF to end the line) to the worker, queueing what the socket does not take. */
static int worker_send(Bridge *b, const char *data, size_t len, bool lf)
{
        size_t total = len + lf, written = 0;
        WorkerWrite *w;
        int r;

        if (total == 0)
                return 0;
        if (b->pipe_state == PIPE_OPEN && b->to_worker_queued == 0) {
                uv_buf_t bufs[2] = {uv_buf_init((char *)data, (unsigned)len), uv_buf_init((char *)"\n", 1)};
                r = uv_try_write((uv_stream_t *)&b->pipe, len > 0 ? bufs : bufs + 1, (len > 0) + lf);
                if (r >= 0 && (size_t)r == total)
                        return 0;
                if (r < 0 && r != UV_EAGAIN) {
                        worker_lost(b, uv_strerror(r));
                        return r;
                }
                written = r > 0 ? (size_t)r : 0;
        }

        w = malloc(sizeof(WorkerWrite) + (total - written));
        if (!w)
                return -ENOMEM;
        *w = (WorkerWrite){.bridge = b, .len = total - written};
        if (written < len) {
                memcpy(w->data, data + written, len - written);
                if (lf)
                        w->data[len - written] = '\n';
        } else
                w->data[0] = '\n';

        if (b->pipe_state == PIPE_OPEN) {
                r = submit_write(b, w);
                if (r < 0) {
                        free(w);
                        worker_lost(b, uv_strerror(r));
                        return r;
                }
        } else {
                if (b->waiting_last)
                        b->waiting_last->next = w;
                else
                        b->waiting_first = w;
                b->waiting_last = w;
        }
        b->to_worker_queued += w->len;
        if (!b->rx_paused && b->to_worker_queued > b->high_water) {
                b->rx_paused = true;
                lws_rx_flow_control(b->wsi, 0);
        }
        return 0;
}

static void free_waiting(Bridge *b)
{
        for (WorkerWrite *w = b->waiting_first, *next; w; w = next) {
                next = w->next;
                b->to_worker_queued -= w->len;
                free(w);
        }
        b->waiting_first = b->waiting_last = NULL;
}

static void worker_too_large(Bridge *b)
{
        log_warning("Worker sent %s a message over %zu bytes; closing the page's connection.", b->user,
                    b->max_message);
        pipe_close(b, PIPE_CLOSING);
        free_waiting(b);
        request_close(b, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "worker message too large");
}

static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        Bridge *b = container_of((uv_pipe_t *)h, Bridge, pipe);

        *buf = uv_buf_init(b->gateway->read_buffer + LWS_PRE, GATEWAY_READ_BUFFER);
}

/* Pass on one piece of the worker's current message (last: the line ended). */
static int forward_piece(Bridge *b, char *p, size_t n, bool last)
{
        bool first = !b->tx_in_message;

        if (n == 0 && first)
                return 0; /* an empty line is no message */
        if (n > b->max_message - b->tx_message_len)
                return -EMSGSIZE;
        b->tx_message_len = last ? 0 : b->tx_message_len + n;
        b->tx_in_message = !last;
        if (can_write_now(b))
                return write_now(b, p, n, first, last);
        return enqueue_copy(b, p, n, first, last);
}

static void user_stall(Bridge *b);

/* Whether the user's pages together hold more than mark. A page that holds nothing itself may still read
 * (one read's worth at a time), so pages of the user that stopped reading never starve one that reads:
 * the user's total stays under the mark plus one read per page. */
static bool user_over(Bridge *b, size_t mark)
{
        return b->owner && b->owner->queued > mark && b->to_browser_queued > 0;
}

static void on_worker_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        Bridge *b = container_of((uv_pipe_t *)s, Bridge, pipe);
        char *p = buf->base, *end = buf->base + (nread > 0 ? nread : 0), *lf;
        int r = 0;

        if (nread < 0) {
                if (!b->worker_spoke && !b->asked_why && b->wsi && !b->close_code) {
                        ask_why(b);
                        return;
                }
                worker_lost(b, nread == UV_EOF ? NULL : uv_strerror((int)nread));
                return;
        }
        b->worker_spoke = true;
        /* The bytes before p are of lines already dealt with, or the buffer's headroom: room for a
         * frame header in front of each piece. */
        while (r >= 0 && p < end && b->wsi && !b->close_code) {
                lf = memchr(p, '\n', (size_t)(end - p));
                r = forward_piece(b, p, (size_t)((lf ?: end) - p), lf != NULL);
                p = lf ? lf + 1 : end;
        }
        if (r == -EMSGSIZE) {
                worker_too_large(b);
                return;
        }
        if (r < 0) {
                out_free_all(b);
                request_close(b, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
                return;
        }
        if (b->out_first && b->wsi && !b->writable_pending)
                want_writable(b);
        if (b->to_browser_queued > b->high_water || user_over(b, b->gateway->config->user_high_water)) {
                uv_read_stop(s);
                b->reading = false;
                user_stall(b);
        }
}

static void on_pipe_closed(uv_handle_t *h);

static void pipe_close(Bridge *b, PipeState next)
{
        if (b->pipe_state == PIPE_CLOSING || b->pipe_state == PIPE_RETRYING || b->pipe_state == PIPE_CLOSED)
                return;
        if (b->locate) {
                launcher_request_cancel(b->locate);
                b->locate = NULL;
        }
        b->pipe_state = next;
        b->reading = false;
        uv_close((uv_handle_t *)&b->pipe, on_pipe_closed);
}

/* The worker connection ended under an open page (the worker exited or was killed, or it could not be
 * reached): tell the page, then close it with 1011. The next page to connect brings a worker back. */
static void worker_lost(Bridge *b, const char *why)
{
        Gateway *g = b->gateway;
        bool was_open = b->pipe_state == PIPE_OPEN;

        pipe_close(b, PIPE_CLOSING);
        free_waiting(b);
        if (!b->wsi || b->close_code)
                return;
        g->metrics.workers_lost++;
        if (was_open)
                log_info("Lost the worker connection of %s%s%s.", b->user, why ? ": " : "", why ? why : "");
        /* Not inside a message the worker left unfinished: the close code says it then. */
        if (!b->tx_in_message &&
            enqueue_copy(b, WORKER_LOST_NOTIFICATION, strlen(WORKER_LOST_NOTIFICATION), true, true) < 0)
                out_free_all(b);
        request_close(b, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "worker lost");
}

static void connect_to(Bridge *b);

/* Why the user can have no workspace, as the page is told (docs/protocol.md); false for an error that
 * says nothing about the workspace (the launcher restarting, say): the worker is then lost as any. */
static bool workspace_refusal(int r, int *ret_code, const char **ret_reason)
{
        static const struct {
                int error, code;
                const char *reason;
        } table[] = {
            {-ERFKILL, BRIDGE_CLOSE_UNIT_MASKED, "workspace disabled"},
            {-EKEYEXPIRED, BRIDGE_CLOSE_ACCOUNT_LOCKED, "account locked or expired"},
            {-ENOENT, BRIDGE_CLOSE_HOME_MISSING, "home directory missing"},
            {-EIO, BRIDGE_CLOSE_START_FAILED, "workspace failed to start"},
            {-EUSERS, BRIDGE_CLOSE_WORKSPACES_FULL, "too many workspaces"},
            {-EAGAIN, BRIDGE_CLOSE_LAUNCHER_BUSY, "server busy"},
            {-ETIMEDOUT, BRIDGE_CLOSE_START_TIMEOUT, "workspace start timed out"},
            {-EPERM, BRIDGE_CLOSE_ACCOUNT_REFUSED, "account refused"},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].error == r) {
                        *ret_code = table[i].code;
                        *ret_reason = table[i].reason;
                        return true;
                }
        return false;
}

/* The launcher says the user can have no workspace: the page is closed with the reason, and one line
 * says it here. Anything else is a lost worker. */
static void no_workspace(Bridge *b, int r)
{
        const char *reason;
        int code;

        if (!workspace_refusal(r, &code, &reason)) {
                log_warning_errno(r, "No worker for %s: %m", b->user);
                worker_lost(b, NULL);
                return;
        }
        log_notice("No workspace for %s: %s (close %d).", b->user, reason, code);
        pipe_close(b, PIPE_CLOSING);
        free_waiting(b);
        request_close(b, code, reason);
}

static void on_asked_why(int r, const char *socket_path, void *userdata)
{
        Bridge *b = userdata;

        b->locate = NULL;
        if (r < 0)
                no_workspace(b, r);
        else {
                log_info("Lost the worker connection of %s before the worker said anything.", b->user);
                worker_lost(b, NULL);
        }
}

/* The worker ended the connection before it said anything: the worker may have failed to start (in
 * embedded mode its socket is turned away once starts keep failing). The launcher knows; asked once per
 * connection. */
static void ask_why(Bridge *b)
{
        char *path = NULL;
        int r;

        b->asked_why = true;
        pipe_close(b, PIPE_CLOSING);
        free_waiting(b);
        r = launcher_find_worker(b->gateway->launcher, b->user, on_asked_why, b, &path, &b->locate);
        if (r != 1)
                /* Answered at once (the gateway's own launcher in embedded mode). */
                on_asked_why(r, path, b);
        free(path);
}

static void on_pipe_closed(uv_handle_t *h)
{
        Bridge *b = container_of((uv_pipe_t *)h, Bridge, pipe);

        if (b->pipe_state == PIPE_RETRYING && b->wsi && !b->close_code) {
                if (uv_pipe_init(b->gateway->loop, &b->pipe, false) == 0) {
                        connect_to(b);
                        return;
                }
        }
        b->pipe_state = PIPE_CLOSED;
        bridge_maybe_free(b);
}

static void on_connect(uv_connect_t *req, int status)
{
        Bridge *b = container_of(req, Bridge, connect_req);
        int r;

        if (b->pipe_state != PIPE_CONNECTING)
                return; /* closed meanwhile */
        if (status < 0) {
                if ((status == UV_ECONNREFUSED || status == UV_ENOENT) && !b->retried) {
                        /* The worker the launcher knew of may have just gone; it can find out and put a
                         * listener back. One more try, on a fresh handle. */
                        b->retried = true;
                        launcher_worker_unreachable(b->gateway->launcher, b->user);
                        pipe_close(b, PIPE_RETRYING);
                        return;
                }
                log_warning("Cannot connect to the worker of %s at %s: %s", b->user, b->socket_path,
                            uv_strerror(status));
                worker_lost(b, uv_strerror(status));
                return;
        }

        b->pipe_state = PIPE_OPEN;
        for (WorkerWrite *w = b->waiting_first, *next; w; w = next) {
                next = w->next;
                b->waiting_first = next;
                r = submit_write(b, w);
                if (r < 0) {
                        b->to_worker_queued -= w->len;
                        free(w);
                        worker_lost(b, uv_strerror(r));
                        return;
                }
        }
        b->waiting_last = NULL;
        r = uv_read_start((uv_stream_t *)&b->pipe, on_worker_alloc, on_worker_read);
        if (r < 0) {
                worker_lost(b, uv_strerror(r));
                return;
        }
        b->reading = true;
        if (b->rx_paused && b->wsi && !b->close_code && b->to_worker_queued <= b->high_water / 2)
                rx_resume(b);
}

static void connect_to(Bridge *b)
{
        b->pipe.data = b;
        b->pipe_state = PIPE_CONNECTING;
        uv_pipe_connect(&b->connect_req, &b->pipe, b->socket_path, on_connect);
}

static void on_located(int r, const char *socket_path, void *userdata)
{
        Bridge *b = userdata;

        b->locate = NULL;
        if (r >= 0) {
                free(b->socket_path);
                b->socket_path = strdup(socket_path);
                if (!b->socket_path)
                        r = -ENOMEM;
        }
        if (r < 0) {
                no_workspace(b, r);
                return;
        }
        connect_to(b);
}

/* ---- each user's share ---- */

static BridgeUser *user_ref(Gateway *g, const char *name)
{
        BridgeUser *u;

        for (u = g->bridge_users; u; u = u->next)
                if (streq(u->name, name))
                        return u;
        u = calloc(1, sizeof(BridgeUser) + strlen(name) + 1);
        if (!u)
                return NULL;
        strcpy(u->name, name);
        u->next = g->bridge_users;
        g->bridge_users = u;
        return u;
}

static void user_unref(Gateway *g, BridgeUser *u)
{
        if (u->pages > 0 || u->queued > 0)
                return;
        for (BridgeUser **p = &g->bridge_users; *p; p = &(*p)->next)
                if (*p == u) {
                        *p = u->next;
                        free(u);
                        return;
                }
}

/* Read the worker again once the page's queue, and the user's, are down to half their marks. */
static void try_resume_worker(Bridge *b)
{
        const GatewayConfig *c = b->gateway->config;

        if (b->reading || b->pipe_state != PIPE_OPEN || b->close_code || !b->wsi ||
            b->to_browser_queued > b->high_water / 2 || user_over(b, c->user_high_water / 2))
                return;
        if (uv_read_start((uv_stream_t *)&b->pipe, on_worker_alloc, on_worker_read) == 0)
                b->reading = true;
}

static void user_stall(Bridge *b)
{
        if (b->owner)
                b->owner->stalled = true;
}

static void user_unqueue(Bridge *b, size_t n)
{
        Gateway *g = b->gateway;
        BridgeUser *u = b->owner;

        if (!u || n == 0)
                return;
        assert(u->queued >= n);
        u->queued -= n;
        if (!u->stalled || u->queued > g->config->user_high_water / 2)
                return;
        /* The user's pages together are below the mark again: every page of theirs that stopped reading
         * its worker may go on, if its own queue allows. */
        u->stalled = false;
        for (Bridge *o = g->bridges; o; o = o->next)
                if (o->owner == u && o != b)
                        try_resume_worker(o);
}

/* ---- the session ---- */

static void on_session_ended(SessionLink *link, SessionEnd why)
{
        Bridge *b = container_of(link, Bridge, link);

        b->session = NULL;
        /* Nothing more goes to a page whose session is over, queued or not. */
        out_free_all(b);
        pipe_close(b, PIPE_CLOSING);
        free_waiting(b);
        /* A locked account is said as when the workspace is asked for (4011); every other end sends
         * the page to its login. */
        if (why == SESSION_END_ACCOUNT_LOCKED)
                request_close(b, BRIDGE_CLOSE_ACCOUNT_LOCKED, session_end_to_string(why));
        else
                request_close(b, LWS_CLOSE_STATUS_POLICY_VIOLATION, session_end_to_string(why));
}

/* ---- life cycle ---- */

int bridge_new(Gateway *g, struct lws *wsi, Session *session, Bridge **ret)
{
        BridgeUser *owner;
        Bridge *b;
        char *path = NULL;
        int r;

        owner = user_ref(g, session_user(session));
        if (!owner)
                return -ENOMEM;
        b = calloc(1, sizeof(Bridge));
        if (!b) {
                user_unref(g, owner);
                return -ENOMEM;
        }
        r = uv_pipe_init(g->loop, &b->pipe, false);
        if (r < 0) {
                user_unref(g, owner);
                free(b);
                return r;
        }
        b->gateway = g;
        b->wsi = wsi;
        b->session = session;
        b->link.ended = on_session_ended;
        session_link(session, &b->link);
        strcpy(b->user, session_user(session));
        b->max_message = g->config->max_message;
        b->high_water = g->config->high_water;
        b->pipe.data = b;
        b->pipe_state = PIPE_LOCATING;
        b->last_heard_ms = uv_now(g->loop);
        b->owner = owner;

        b->next = g->bridges;
        if (g->bridges)
                g->bridges->prev = b;
        g->bridges = b;
        g->n_bridges++;
        g->metrics.websockets_opened++;
        g->metrics.websockets_open++;
        *ret = b;

        /* Compression tuned for many mostly idle connections: inflate and deflate a large message in
         * pieces as large as a WebSocket read; send with a small window and memory level, and drop the
         * sending side's state after each message (a server may always do that; the peer's inflater
         * copes), so an idle connection keeps no compressor. (libwebsockets 4.1 reads the sending window
         * of an adopted connection from the client_* settings.) Absent when the page did not negotiate
         * compression. */
        bool deflate = lws_set_extension_option(wsi, "permessage-deflate", "rx_buf_size", "14") == 0;
        b->deflate = deflate;
        (void)lws_set_extension_option(wsi, "permessage-deflate", "tx_buf_size", "14");
        (void)lws_set_extension_option(wsi, "permessage-deflate", "mem_level", "4");
        (void)lws_set_extension_option(wsi, "permessage-deflate", "client_max_window_bits", "11");
        (void)lws_set_extension_option(wsi, "permessage-deflate", "client_no_context_takeover", "1");

        /* Until the worker is connected, hold the page back. */
        b->rx_paused = true;
        lws_rx_flow_control(wsi, 0);

        if (b->owner->pages >= g->config->max_pages_per_user) {
                /* Refused before it reaches the worker, whose own connection limit would look like a lost
                 * worker to the page. */
                log_info("%s has %u pages open; refusing another.", b->user, b->owner->pages);
                b->owner = NULL;
                pipe_close(b, PIPE_CLOSING);
                request_close(b, BRIDGE_CLOSE_PAGE_LIMIT, "too many pages open");
                return 0;
        }
        b->owner->pages++;
        pam_sessions_page_opened(g->pam_sessions, session, uv_now(g->loop));
        b->pam_counted = true;

        r = launcher_find_worker(g->launcher, b->user, on_located, b, &path, &b->locate);
        if (r == 0) {
                b->socket_path = path;
                connect_to(b);
        } else if (r < 0)
                no_workspace(b, r);
        return 0;
}

/* Close the page for what it sent (reading paused, the close frame sent from bridge_writeable()), and let
 * go of the worker connection (and of any part of the message already passed on). Not by returning -1
 * from this callback: libwebsockets 4.1 would leave reading on and go on inflating the rest of a
 * compressed message, spinning, until its close timeout (5 s of CPU for a 40 KB message that inflates
 * past the limit). */
static void refuse(Bridge *b, int code, const char *reason)
{
        request_close(b, code, reason);
        pipe_close(b, PIPE_CLOSING);
        free_waiting(b);
}

int bridge_receive(Bridge *b, void *in, size_t len)
{
        struct lws *wsi = b->wsi;
        Gateway *g = b->gateway;
        size_t remaining = lws_remaining_packet_payload(wsi);
        bool final;
        int r;

        b->last_heard_ms = uv_now(g->loop);
        if (b->close_code || b->peer_closed)
                return 0; /* closing: the rest is dropped */
        if (lws_frame_is_binary(wsi)) {
                refuse(b, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text frames only");
                return 0;
        }
        if (lws_is_first_fragment(wsi)) {
                b->rx_message_len = 0;
                b->rx_utf8 = (Utf8Stream){};
        }
        /* Refuse as soon as the frame header says the message will not fit, before any of it goes on. */
        if (b->rx_message_len + len + remaining > b->max_message) {
                refuse(b, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
                return 0;
        }
        b->rx_message_len += len;
        final = lws_is_final_fragment(wsi);
        /* Checked here rather than by libwebsockets, whose own check closes without a close frame. */
        if (!utf8_stream_feed(&b->rx_utf8, in, len, final)) {
                refuse(b, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8");
                return 0;
        }
        if (b->session)
                session_touch(b->session, uv_now(g->loop));

        if (len > 0) /* an empty frame may come with no buffer at all */
                for (char *p = in, *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
                        *p = ' ';
        g->metrics.bytes_to_worker += len;
        if (final)
                g->metrics.messages_to_worker++;
        if (b->pipe_state >= PIPE_CLOSING)
                return 0; /* the worker is gone; the page is being told */
        r = worker_send(b, in, len, final);
        if (r == -ENOMEM) {
                refuse(b, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
                return 0;
        }
        /* The frame is all read but the message goes on: more of it may be waiting, inflated or not,
         * with no socket event to bring it. */
        if (!final && remaining == 0 && !b->rx_paused)
                kick(b);
        return 0;
}

void bridge_shutdown_all(Gateway *g)
{
        for (Bridge *b = g->bridges; b; b = b->next)
                request_close(b, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
}

static void bridge_maybe_free(Bridge *b)
{
        if (b->wsi || b->pipe_state != PIPE_CLOSED)
                return;
        free_waiting(b);
        free(b->socket_path);
        free(b);
}

void bridge_ws_closed(Bridge *b)
{
        Gateway *g = b->gateway;

        if (b->session) {
                session_unlink(b->session, &b->link);
                if (b->pam_counted)
                        pam_sessions_page_closed(g->pam_sessions, b->session, uv_now(g->loop));
        }
        b->session = NULL;
        if (b->prev)
                b->prev->next = b->next;
        else
                g->bridges = b->next;
        if (b->next)
                b->next->prev = b->prev;
        g->n_bridges--;
        g->metrics.websockets_open--;
        kick_cancel(b);
        b->wsi = NULL;
        /* libwebsockets is done with the WebSocket, and with what it was still compressing. */
        out_free_all(b);
        in_flight_free(b);
        if (b->owner) {
                b->owner->pages--;
                user_unref(g, b->owner);
                b->owner = NULL;
        }
        /* Only this page's connection to the worker ends; the worker and its terminals go on. A
         * question to the launcher still out (ask_why()) is dropped: the pipe may be closed already. */
        if (b->locate) {
                launcher_request_cancel(b->locate);
                b->locate = NULL;
        }
        pipe_close(b, PIPE_CLOSING);
        bridge_maybe_free(b);
}

void bridge_peer_closed(Bridge *b)
{
        /* libwebsockets answers the close frame; whatever the page sent after it is not passed on. */
        b->peer_closed = true;
}

void bridge_heard(Bridge *b)
{
        b->last_heard_ms = uv_now(b->gateway->loop);
        b->ping_sent = false;
}

void bridge_tick(Gateway *g, uint64_t now)
{
        uint64_t interval = g->config->ping_interval_ms;

        for (Bridge *b = g->bridges, *next; b; b = next) {
                next = b->next; /* b may leave the list */
                if (!b->wsi || b->close_code)
                        continue;
                if (b->rx_paused)
                        /* Not reading the page (it is held back, or its worker not there yet): its pongs
                         * could not be heard. */
                        b->last_heard_ms = now;
                if (now - b->last_heard_ms >= interval * PING_HANGUP_NUM / PING_HANGUP_DEN) {
                        log_info("A page of %s stopped answering pings; closing it.", b->user);
                        /* At once: a later kill would wait for the library's next event on this loop. */
                        lws_set_timeout(b->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
                } else if (now - b->last_heard_ms >= interval && !b->ping_sent && !b->ping_due) {
                        b->ping_due = true;
                        want_writable(b);
                }
        }
}

unsigned bridge_count_connected_workers(const Gateway *g)
{
        unsigned n = 0;

        for (const BridgeUser *u = g->bridge_users; u; u = u->next)
                for (const Bridge *b = g->bridges; b; b = b->next)
                        if (b->owner == u && b->pipe_state == PIPE_OPEN) {
                                n++;
                                break;
                        }
        return n;
}
