/* SPDX-License-Identifier: MIT */
#include "server.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "bus.h"
#include "events.h"
#include "line-reader.h"
#include "log.h"
#include "manifest.h"
#include "rpc.h"
#include "service.h"
#include "socket-util.h"
#include "tunnel.h"

/* How much is read from a client at a time. */
#define READ_CHUNK (64u * 1024u)
/* Tunnels to the workspace's ports (preview:connect) open at once, connecting ones included. */
#define MAX_TUNNELS 64u
/* Messages from this size on are parsed on libuv's pool: ~0.1 ms of the loop's time and more. */
#define ASYNC_PARSE_MIN (64u * 1024u)

static const ServiceType *const service_types[] = {
    &fs_service_type,     &workspace_service_type, &terminal_service_type, &settings_service_type,
    &upload_service_type, &preview_service_type,   &archive_service_type,
};

typedef struct Conn Conn;

/* A spliced tunnel, kept so that a shutdown can close it. */
typedef struct TunnelSlot {
        Server *server;
        Splice *splice;
        struct TunnelSlot *prev, *next;
} TunnelSlot;

struct Server {
        uv_loop_t *loop;
        const WorkerConfig *config;
        Bus *bus;
        void *services[ELEMENTSOF(service_types)];

        uv_pipe_t listener;
        bool has_listener;
        bool accept_mode; /* systemd passed one connected socket (Accept=yes) instead of a listener */

        Manifests *manifests;

        Conn *conns;
        unsigned n_conns;
        unsigned n_service_conns; /* of n_conns, those of services started from manifests */
        TunnelSlot *tunnels;      /* spliced tunnels */
        unsigned n_tunnels;       /* spliced and connecting ones */

        uv_timer_t idle_timer;
        uv_signal_t sig_term, sig_int;

        unsigned live_terminals;
        unsigned open_files;
        char status[160];
        bool stopping;
};

/* A message waiting for one before it that is printed off the loop: a connection's output goes out in
 * the order it was made. */
typedef struct OutMsg {
        struct OutMsg *next;
        char *data; /* NULL: nothing to send (the print failed) */
        size_t len;
        bool ready;
} OutMsg;

struct Conn {
        uv_pipe_t pipe; /* first: the close callback gets the pipe and frees the Conn */
        Server *server;
        ClientId id;
        RpcSession *rpc;
        LineReader reader;
        size_t queued; /* bytes handed to uv_write() and not yet written */
        size_t held;   /* bytes of ready messages in out waiting for one before them */
        OutMsg *out, *out_tail;
        bool congested; /* queued + held went above the high-water mark and has not drained yet */
        bool reading;
        bool eof; /* the client closed its side: flush what is queued, then close */
        bool closing;
        bool service;     /* a service started from a manifest: not a client that keeps the worker up */
        bool started;     /* it has sent a message: preview:connect is no longer its first */
        Tunnel *tunnel;   /* preview:connect: connecting, then answered and waiting to be spliced */
        bool switching;   /* the answer is queued: splice once it is written */
        cJSON *tunnel_id; /* the request's id, as its own text */
        Conn *prev, *next;
};

typedef struct WriteReq {
        uv_write_t req;
        size_t len;
        char *owned; /* the message's own buffer, taken rather than copied; else the bytes are in data */
        char data[];
} WriteReq;

static void server_update_status(Server *s);
static void server_check_idle(Server *s);
static void conn_close(Conn *c);
static void conn_process(Conn *c);
static void conn_switch(Conn *c);
static bool conn_maybe_tunnel(Conn *c, char *line, size_t len);

/* A connection whose client does not read at all is cut off here, whatever is queued for it. */
static size_t conn_hard_limit(const Server *s)
{
        return MAX((size_t)64 * 1024 * 1024, 2 * s->config->max_message + s->config->high_water);
}

static void on_conn_closed(uv_handle_t *h)
{
        Conn *c = container_of((uv_pipe_t *)h, Conn, pipe);
        Server *s = c->server;

        line_reader_done(&c->reader);
        while (c->out) {
                OutMsg *m = c->out;
                c->out = m->next;
                free(m->data);
                free(m);
        }
        free(c);
        server_check_idle(s);
}

static void conn_close(Conn *c)
{
        Server *s = c->server;

        if (c->closing)
                return;
        c->closing = true;

        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        s->n_service_conns -= c->service;

        c->rpc = rpc_session_free(c->rpc);
        if (c->id != 0)
                bus_client_remove(s->bus, c->id);
        if (c->tunnel) {
                tunnel_abort(TAKE_PTR(c->tunnel));
                s->n_tunnels--;
        }
        cJSON_Delete(TAKE_PTR(c->tunnel_id));
        uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
        log_debug("Client %llu disconnected.", (unsigned long long)c->id);
        server_update_status(s);
}

static void on_write(uv_write_t *req, int status)
{
        WriteReq *w = container_of(req, WriteReq, req);
        Conn *c = req->handle->data;

        c->queued -= w->len;
        free(w->owned);
        free(w);
        if (c->closing)
                return;
        if (status < 0) {
                log_debug("Write to client %llu failed: %s", (unsigned long long)c->id, uv_strerror(status));
                conn_close(c);
                return;
        }
        if (c->switching && c->queued == 0) {
                conn_switch(c);
                return;
        }
        if (c->eof && c->queued == 0) {
                conn_close(c);
                return;
        }
        /* Hysteresis: resume only well below the mark, so a steady stream does not flap. */
        if (c->congested && c->queued + c->held <= c->server->config->high_water / 2) {
                c->congested = false;
                bus_client_drained(c->server->bus, c->id);
                conn_process(c);
        }
}

/* Write one message and its LF; owned, if not NULL, is the malloc()ed buffer that holds msg, which is
 * taken instead of copied. */
static int conn_write(Conn *c, const char *msg, size_t len, char *owned)
{
        _cleanup_free_ char *own = owned;
        const Server *s = c->server;
        size_t total = len + 1, written = 0;
        uv_buf_t bufs[2];
        unsigned n_bufs = 0;
        WriteReq *w;
        int r;

        if (c->closing || c->eof || c->switching)
                return -EPIPE;

        if (c->queued == 0) {
                bufs[0] = uv_buf_init((char *)msg, (unsigned)len);
                bufs[1] = uv_buf_init((char *)"\n", 1);
                r = uv_try_write((uv_stream_t *)&c->pipe, bufs, 2);
                if (r >= 0 && (size_t)r == total)
                        return 0;
                if (r < 0 && r != UV_EAGAIN) {
                        conn_close(c);
                        return r;
                }
                written = r > 0 ? (size_t)r : 0;
        }

        if (c->queued + c->held + (total - written) > conn_hard_limit(s)) {
                log_warning("Client %llu is not reading its messages (%zu bytes queued), disconnecting it.",
                            (unsigned long long)c->id, c->queued + c->held);
                conn_close(c);
                return -ENOBUFS;
        }

        /* What the socket did not take now: a big message's own buffer rather than a copy of it. */
        w = malloc(sizeof(WriteReq) + (own ? 0 : total - written));
        if (!w) {
                conn_close(c);
                return log_oom();
        }
        w->len = total - written;
        w->owned = TAKE_PTR(own);
        if (w->owned) {
                if (written < len)
                        bufs[n_bufs++] = uv_buf_init((char *)msg + written, (unsigned)(len - written));
                bufs[n_bufs++] = uv_buf_init((char *)"\n", 1);
        } else {
                if (written < len) {
                        memcpy(w->data, msg + written, len - written);
                        w->data[len - written] = '\n';
                } else
                        w->data[0] = '\n';
                bufs[n_bufs++] = uv_buf_init(w->data, (unsigned)w->len);
        }

        r = uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs, n_bufs, on_write);
        if (r < 0) {
                free(w->owned);
                free(w);
                conn_close(c);
                return r;
        }
        c->queued += w->len;
        if (!c->congested && c->queued + c->held > s->config->high_water)
                c->congested = true;
        return 0;
}

static OutMsg *conn_out_append(Conn *c)
{
        OutMsg *m = calloc(1, sizeof(OutMsg));

        if (!m)
                return NULL;
        if (c->out_tail)
                c->out_tail->next = m;
        else
                c->out = m;
        c->out_tail = m;
        return m;
}

/* Write the messages at the head of out that are ready, up to the first that is not. */
static void conn_out_flush(Conn *c)
{
        while (c->out && c->out->ready && !c->closing) {
                OutMsg *m = c->out;

                c->out = m->next;
                if (!c->out)
                        c->out_tail = NULL;
                if (m->data) {
                        char *data = TAKE_PTR(m->data);
                        c->held -= m->len + 1;
                        (void)conn_write(c, data, m->len, data);
                }
                free(m);
        }
}

static int conn_send(void *userdata, const char *msg, size_t len)
{
        Conn *c = userdata;
        OutMsg *m;

        if (!c->out)
                return conn_write(c, msg, len, NULL);
        if (c->closing || c->eof)
                return -EPIPE;
        /* Behind a message still being printed: it waits, counted as queued. */
        if (c->queued + c->held + len + 1 > conn_hard_limit(c->server)) {
                log_warning("Client %llu is not reading its messages (%zu bytes queued), disconnecting it.",
                            (unsigned long long)c->id, c->queued + c->held);
                conn_close(c);
                return -ENOBUFS;
        }
        m = conn_out_append(c);
        if (m)
                m->data = malloc(len);
        if (!m || !m->data) {
                conn_close(c);
                return log_oom();
        }
        memcpy(m->data, msg, len);
        m->len = len;
        m->ready = true;
        c->held += len + 1;
        if (!c->congested && c->queued + c->held > c->server->config->high_water)
                c->congested = true;
        return 0;
}

static void *conn_reserve(void *userdata)
{
        Conn *c = userdata;

        return c->closing || c->eof ? NULL : conn_out_append(c);
}

static void conn_fill(void *userdata, void *slot, char *msg, size_t len)
{
        Conn *c = userdata;
        OutMsg *m = slot;

        m->data = msg;
        m->len = len;
        m->ready = true;
        if (msg)
                c->held += len + 1;
        conn_out_flush(c);
}

static const RpcLaterOps conn_later_ops = {
    .reserve = conn_reserve,
    .fill = conn_fill,
};

static bool conn_congested(void *userdata)
{
        const Conn *c = userdata;

        return c->congested;
}

static const BusClientOps conn_ops = {
    .send = conn_send,
    .congested = conn_congested,
};

static int rpc_send(void *userdata, const char *msg, size_t len)
{
        return conn_send(userdata, msg, len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        Conn *c = container_of((uv_pipe_t *)h, Conn, pipe);
        char *base;
        size_t len;

        if (line_reader_space(&c->reader, READ_CHUNK, &base, &len) < 0) {
                *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to on_read */
                return;
        }
        *buf = uv_buf_init(base, (unsigned)MIN(len, (size_t)UINT32_MAX));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
        Conn *c = container_of((uv_pipe_t *)stream, Conn, pipe);

        if (nread == UV_EOF) {
                /* The client will send nothing more but may still read: answer what it sent, then
                 * close once the answers are out. */
                uv_read_stop(stream);
                c->reading = false;
                c->eof = true;
                if (c->queued == 0)
                        conn_close(c);
                return;
        }
        if (nread < 0) {
                if (nread != UV_ECONNRESET)
                        log_debug("Read from client %llu failed: %s", (unsigned long long)c->id,
                                  uv_strerror((int)nread));
                conn_close(c);
                return;
        }
        line_reader_commit(&c->reader, (size_t)nread);
        conn_process(c);
}

/* Handle buffered lines until none are left or the client stops reading its answers. Reading from a
 * client pauses while it is congested: one that sends requests but never reads the answers cannot make
 * the worker queue unbounded output. */
static void conn_resume(void *userdata)
{
        conn_process(userdata);
}

/* A big message is read off the loop, in the buffer it arrived in: the loop goes on serving other
 * connections and terminals meanwhile, and this connection's later messages wait for it. */
static void conn_handle_big(Conn *c, char *line, size_t len)
{
        char *buf;

        if (line_reader_detach(&c->reader, &buf) < 0) {
                rpc_session_handle(c->rpc, line, len);
                return;
        }
        if (rpc_session_handle_async(c->rpc, c->server->loop, buf, line, len, conn_resume, c) < 0) {
                rpc_session_handle(c->rpc, line, len);
                free(buf);
        }
}

static void conn_process(Conn *c)
{
        bool hold;

        while (!c->closing && !c->congested && c->rpc && !c->tunnel && !c->switching &&
               !rpc_session_parsing(c->rpc)) {
                char *line;
                size_t len;
                LineReaderEvent ev = line_reader_next(&c->reader, &line, &len);

                if (ev == LINE_READER_NONE)
                        break;
                if (ev == LINE_READER_OVERSIZE)
                        rpc_session_handle_oversize(c->rpc);
                else if (!c->started && len < ASYNC_PARSE_MIN && conn_maybe_tunnel(c, line, len))
                        continue;
                else if (len >= ASYNC_PARSE_MIN)
                        conn_handle_big(c, line, len);
                else
                        rpc_session_handle(c->rpc, line, len);
                c->started = true;
        }
        if (c->closing || c->eof)
                return;
        if (!c->rpc || c->tunnel || c->switching) {
                /* What follows the request belongs to the tunnel: it stays in the reader until then. */
                if (c->reading)
                        uv_read_stop((uv_stream_t *)&c->pipe);
                c->reading = false;
                return;
        }
        /* While a message is being read off the loop nothing more is read from the connection either:
         * it holds at most that message and one read. */
        hold = c->congested || rpc_session_parsing(c->rpc);
        if (hold && c->reading) {
                uv_read_stop((uv_stream_t *)&c->pipe);
                c->reading = false;
        } else if (!hold && !c->reading) {
                if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0) {
                        conn_close(c);
                        return;
                }
                c->reading = true;
        }
}

/* ---- preview:connect: the connection becomes a tunnel to a port of the workspace ---- */

static void tunnel_slot_closed(void *userdata)
{
        TunnelSlot *slot = userdata;
        Server *s = slot->server;

        if (slot->prev)
                slot->prev->next = slot->next;
        else
                s->tunnels = slot->next;
        if (slot->next)
                slot->next->prev = slot->prev;
        free(slot);
        s->n_tunnels--;
        server_update_status(s);
        server_check_idle(s);
}

static void conn_send_json(Conn *c, cJSON *msg)
{
        _cleanup_json_ cJSON *m = msg;
        _cleanup_free_ char *text = NULL;
        size_t len;

        if (!m || !(text = json_print(m, &len))) {
                log_oom();
                conn_close(c);
                return;
        }
        (void)conn_send(c, text, len);
}

/* Answer the request with an error and end the connection once it is out. */
static void conn_tunnel_refuse(Conn *c, int code, const char *message, cJSON *data)
{
        conn_send_json(c, jsonrpc_error_new(c->tunnel_id, code, message, data));
        if (c->closing)
                return;
        c->eof = true;
        if (c->queued == 0)
                conn_close(c);
}

/* Splice: the answer is out. The tunnel takes a duplicate of the socket and the bytes already read
 * after the request; the connection itself is closed as a client. */
static void conn_switch(Conn *c)
{
        Server *s = c->server;
        TunnelSlot *slot;
        uv_os_fd_t fd;
        int dup_fd, r;

        assert(c->switching && c->tunnel && c->queued == 0);
        slot = calloc(1, sizeof(TunnelSlot));
        if (!slot || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
            (dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
                free(slot);
                conn_close(c);
                return;
        }
        slot->server = s;
        slot->next = s->tunnels;
        if (s->tunnels)
                s->tunnels->prev = slot;
        s->tunnels = slot;
        /* The tunnel now counts through its slot, which tunnel_slot_closed() lets go of. */
        r = tunnel_splice(TAKE_PTR(c->tunnel), dup_fd, c->reader.buf + c->reader.pos,
                          line_reader_pending(&c->reader), tunnel_slot_closed, slot, &slot->splice);
        if (r < 0)
                log_debug("Splicing a tunnel failed: %s", strerror(-r));
        conn_close(c);
}

static void on_tunnel_connected(Tunnel *t, int r, void *userdata)
{
        Conn *c = userdata;
        Server *s = c->server;
        cJSON *data;

        assert(c->tunnel == t);
        if (r < 0) {
                c->tunnel = NULL;
                s->n_tunnels--;
                data = cJSON_CreateObject();
                if (data && !cJSON_AddStringToObject(data, "errno", errno_name(-r)))
                        data = (cJSON_Delete(data), NULL);
                conn_tunnel_refuse(c, RPC_NOT_FOUND, "Nothing accepts connections on that port", data);
                return;
        }
        c->switching = false;
        conn_send_json(c, jsonrpc_result_new(c->tunnel_id, cJSON_CreateObject()));
        if (c->closing)
                return;
        c->switching = true;
        if (c->queued == 0)
                conn_switch(c);
}

/* The first message of a connection: if it is a preview:connect request, handle it here and return
 * true. Anything else (a malformed one included) goes the usual way. */
static bool conn_maybe_tunnel(Conn *c, char *line, size_t len)
{
        Server *s = c->server;
        _cleanup_json_ cJSON *msg = NULL;
        JsonRpcRequest req;
        const char *reason;
        const cJSON *port;
        uint64_t p = 0;
        int r;

        if (!memmem(line, len, "\"preview:connect\"", strlen("\"preview:connect\"")))
                return false;
        msg = json_parse(line, len);
        if (!msg || jsonrpc_keep_id_text(msg, line, len) < 0 ||
            jsonrpc_parse_request(msg, &req, &reason) < 0 || !req.id ||
            !streq(req.method, "preview:connect"))
                return false;

        /* From here on the connection is no client of the bus: nothing else may reach it before the
         * answer, and after it only the tunnel's bytes. */
        c->started = true;
        c->rpc = rpc_session_free(c->rpc);
        bus_client_remove(s->bus, c->id);
        c->id = 0;
        c->tunnel_id = cJSON_Duplicate(req.id, true);
        if (!c->tunnel_id) {
                conn_close(c);
                return true;
        }
        port = cJSON_IsObject(req.params) ? cJSON_GetObjectItemCaseSensitive(req.params, "port") : NULL;
        if (!port || !json_get_uint(port, 65535, &p) || p == 0) {
                conn_tunnel_refuse(c, RPC_INVALID_PARAMS,
                                   "Invalid params: port must be an integer from 1 to 65535", NULL);
                return true;
        }
        if (s->n_tunnels >= MAX_TUNNELS) {
                conn_tunnel_refuse(c, RPC_SERVER_ERROR, "Too many preview connections", NULL);
                return true;
        }
        r = tunnel_connect(s->loop, (uint16_t)p, on_tunnel_connected, c, &c->tunnel);
        if (r < 0) {
                conn_tunnel_refuse(c, RPC_INTERNAL_ERROR, "Cannot connect", NULL);
                return true;
        }
        s->n_tunnels++;
        return true;
}

static bool peer_allowed(const Server *s, int fd)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (s->config->credentials_fd >= 0) {
                /* In the workspace's user namespace every peer but the user reads as the overflow uid:
                 * the supervisor outside says who it is. */
                PeerCredentials c;
                int r = peer_credentials_ask(s->config->credentials_fd, fd, 5000, &c);
                if (r < 0) {
                        log_warning_errno(r, "Failed to learn the peer's credentials, refusing client: %m");
                        return false;
                }
                cred = (struct ucred){.pid = (pid_t)c.pid, .uid = c.uid, .gid = c.gid};
        } else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_warning_errno(errno, "Failed to read peer credentials, refusing client: %m");
                return false;
        }
        if (cred.uid == getuid() || cred.uid == 0)
                return true;
        for (size_t i = 0; i < s->config->n_allowed_uids; i++)
                if (cred.uid == s->config->allowed_uids[i])
                        return true;
        /* SO_PEERCRED carries the peer's effective gid when it connected: its primary group. */
        for (size_t i = 0; i < s->config->n_allowed_gids; i++)
                if (cred.gid == s->config->allowed_gids[i])
                        return true;
        log_notice("Refusing client with uid %u (pid %d): not this worker's user.", (unsigned)cred.uid,
                   (int)cred.pid);
        return false;
}

/* Adopt a connected pipe (already initialised in c->pipe). */
static int conn_start(Server *s, Conn *c)
{
        int r;

        c->server = s;
        c->pipe.data = c;
        line_reader_init(&c->reader, s->config->max_message);

        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;

        r = bus_client_add(s->bus, &conn_ops, c, &c->id);
        if (r >= 0)
                r = rpc_session_new(s->bus, c->id, s->config->max_message, rpc_send, c, &c->rpc);
        if (r >= 0)
                rpc_session_print_later(c->rpc, s->loop, &conn_later_ops);
        if (r < 0) {
                conn_close(c);
                return r;
        }
        log_debug("Client %llu connected.", (unsigned long long)c->id);
        uv_timer_stop(&s->idle_timer);
        server_update_status(s);
        conn_process(c);
        return 0;
}

static void on_rejected_closed(uv_handle_t *h)
{
        free(h);
}

/* The worker's end of a socket pair whose other end is a service started from its manifest. */
static int adopt_service(void *userdata, int fd, ClientId *ret)
{
        Server *s = userdata;
        Conn *c = calloc(1, sizeof(Conn));
        int r;

        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        r = uv_pipe_init(s->loop, &c->pipe, false);
        if (r < 0) {
                safe_close(fd);
                free(c);
                return r;
        }
        r = uv_pipe_open(&c->pipe, fd);
        if (r < 0) {
                safe_close(fd);
                uv_close((uv_handle_t *)&c->pipe, on_rejected_closed);
                return r;
        }
        c->service = true;
        s->n_service_conns++;
        r = conn_start(s, c);
        if (r < 0)
                return r;
        *ret = c->id;
        return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
        Server *s = listener->data;
        Conn *c;
        uv_os_fd_t fd;
        int r;

        if (status < 0) {
                log_warning("Accepting a connection failed: %s, ignoring.", uv_strerror(status));
                return;
        }
        c = calloc(1, sizeof(Conn));
        if (!c) {
                log_oom();
                return;
        }
        r = uv_pipe_init(s->loop, &c->pipe, false);
        if (r < 0) {
                free(c);
                return;
        }
        r = uv_accept(listener, (uv_stream_t *)&c->pipe);
        if (r < 0 || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 || !peer_allowed(s, fd) ||
            s->n_conns >= s->config->max_connections || s->stopping) {
                if (r >= 0 && s->n_conns >= s->config->max_connections)
                        log_warning("Connection limit (%u) reached, refusing a client.",
                                    s->config->max_connections);
                uv_close((uv_handle_t *)&c->pipe, on_rejected_closed);
                return;
        }
        (void)conn_start(s, c);
}

static void server_update_status(Server *s)
{
        char status[sizeof(s->status)];

        (void)snprintf(status, sizeof(status), "%u connection%s, %u terminal%s, %u open file%s", s->n_conns,
                       s->n_conns == 1 ? "" : "s", s->live_terminals, s->live_terminals == 1 ? "" : "s",
                       s->open_files, s->open_files == 1 ? "" : "s");
        if (streq(status, s->status))
                return;
        memcpy(s->status, status, sizeof(status));
        (void)sd_notifyf(false, "STATUS=%s", status);
}

static void on_idle_timeout(uv_timer_t *t)
{
        Server *s = t->data;

        log_info("No connections and no terminals for %llu s, exiting.",
                 (unsigned long long)(s->config->idle_timeout_ms / 1000));
        server_stop(s);
}

static void server_check_idle(Server *s)
{
        if (s->stopping)
                return;
        if (s->accept_mode && s->n_conns == 0) {
                /* With Accept=yes this process served exactly one connection and nobody can reach it
                 * again: stay only for nothing. */
                server_stop(s);
                return;
        }
        if (s->n_conns > s->n_service_conns || s->n_tunnels > 0 || s->live_terminals > 0 ||
            s->config->idle_timeout_ms == 0) {
                uv_timer_stop(&s->idle_timer);
                return;
        }
        if (!uv_is_active((uv_handle_t *)&s->idle_timer))
                (void)uv_timer_start(&s->idle_timer, on_idle_timeout, s->config->idle_timeout_ms, 0);
}

static void on_terminals_changed(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Server *s = userdata;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, "terminals"), *t;
        unsigned n = 0;

        cJSON_ArrayForEach(t, list) if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "alive"))) n++;
        s->live_terminals = n;
        server_update_status(s);
        server_check_idle(s);
}

static void on_state_updated(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Server *s = userdata;

        s->open_files = (unsigned)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(params, "openFiles"));
        server_update_status(s);
}

/* worker:info — who this worker is and the limits a client must respect. */
static void on_worker_info(BusCall *call, const cJSON *params, void *userdata)
{
        Server *s = userdata;
        const WorkerConfig *cfg = s->config;
        cJSON *r = cJSON_CreateObject(), *limits, *roots, *exclude;

        if (!r || !cJSON_AddStringToObject(r, "name", "helios-worker") ||
            !cJSON_AddStringToObject(r, "version", HELIOS_VERSION) ||
            !cJSON_AddNumberToObject(r, "pid", s->config->outer_pid > 0 ? s->config->outer_pid : getpid()) ||
            !cJSON_AddNumberToObject(r, "uid", getuid()) || !cJSON_AddStringToObject(r, "home", cfg->home) ||
            !cJSON_AddStringToObject(r, "stateDir", cfg->state_dir) ||
            !(roots = cJSON_AddArrayToObject(r, "roots")) ||
            !(exclude = cJSON_AddArrayToObject(r, "watchExclude")) ||
            !(limits = cJSON_AddObjectToObject(r, "limits")))
                goto oom;
        for (size_t i = 0; i < cfg->n_roots; i++) {
                cJSON *str = cJSON_CreateString(cfg->roots[i]);
                if (!str || !cJSON_AddItemToArray(roots, str)) {
                        cJSON_Delete(str);
                        goto oom;
                }
        }
        for (size_t i = 0; i < cfg->n_watch_exclude; i++) {
                cJSON *str = cJSON_CreateString(cfg->watch_exclude[i]);
                if (!str || !cJSON_AddItemToArray(exclude, str)) {
                        cJSON_Delete(str);
                        goto oom;
                }
        }
        if (!cJSON_AddNumberToObject(limits, "maxMessageSize", (double)cfg->max_message) ||
            !cJSON_AddNumberToObject(limits, "maxConnections", cfg->max_connections) ||
            !cJSON_AddNumberToObject(limits, "maxTerminals", cfg->max_terminals) ||
            !cJSON_AddNumberToObject(limits, "scrollback", (double)cfg->scrollback) ||
            !cJSON_AddNumberToObject(limits, "maxWatches", cfg->max_watches))
                goto oom;
        bus_call_reply(call, r);
        return;
oom:
        cJSON_Delete(r);
        bus_call_error(call, RPC_INTERNAL_ERROR, "Out of memory", NULL);
}

/* Add the topic to the entry of list for this service, made {name, topics, inProcess, clientId?}. */
static int add_topic(cJSON *list, const char *name, ClientId remote, const char *topic)
{
        cJSON *o, *topics;

        cJSON_ArrayForEach(o, list)
        {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "clientId");
                if (streq(n->valuestring, name) && (!remote || (id && (ClientId)id->valuedouble == remote)))
                        break;
        }
        if (!o) {
                o = cJSON_CreateObject();
                if (!o || !cJSON_AddItemToArray(list, o) || !cJSON_AddStringToObject(o, "name", name) ||
                    !cJSON_AddArrayToObject(o, "topics") ||
                    !cJSON_AddBoolToObject(o, "inProcess", !remote) ||
                    !cJSON_AddStringToObject(o, "state", "running") ||
                    (remote && !cJSON_AddNumberToObject(o, "clientId", (double)remote)))
                        return -ENOMEM;
        }
        topics = cJSON_GetObjectItemCaseSensitive(o, "topics");
        return cJSON_AddItemToArray(topics, cJSON_CreateString(topic)) ? 0 : -ENOMEM;
}

/* bus:services {} -> {services:[{name, topics, inProcess, pid?, clientId?, state}]} */
static void on_bus_services(BusCall *call, const cJSON *params, void *userdata)
{
        Server *s = userdata;
        _cleanup_json_ cJSON *r = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(r, "services");
        BusServerInfo info;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        if (!list)
                return (void)bus_call_error_oom(call);
        for (size_t i = 0; bus_server_info(s->bus, i, &info); i++) {
                const char *name = info.owner;
                if (info.on_demand)
                        continue;
                if (!info.in_process) {
                        /* A connection's own topics, unless it is a manifest's service (listed below). */
                        bool manifest = false;
                        BusServerInfo other;
                        for (size_t j = 0; bus_server_info(s->bus, j, &other); j++)
                                manifest = manifest || (other.on_demand && other.remote == info.remote);
                        if (manifest)
                                continue;
                        name = "connection";
                }
                if (add_topic(list, name, info.in_process ? 0 : info.remote, info.topic) < 0)
                        return (void)bus_call_error_oom(call);
        }
        if (manifests_describe(s->manifests, list) < 0)
                return (void)bus_call_error_oom(call);
        bus_call_reply(call, TAKE_PTR(r));
}

static void on_signal(uv_signal_t *h, int signum)
{
        Server *s = h->data;

        log_info("Received %s, shutting down.", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        server_stop(s);
}

int server_new(uv_loop_t *loop, const WorkerConfig *config, Server **ret)
{
        Server *s = calloc(1, sizeof(Server));
        int r;

        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->config = config;
        r = bus_new(loop, &s->bus);
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int server_listen(Server *s)
{
        const char *path = s->config->listen_path;
        int n, r;

        if (!path) {
                n = sd_listen_fds(true);
                if (n < 0)
                        return log_error_errno(n, "Failed to read LISTEN_FDS: %m");
                if (n != 1) {
                        log_error(
                            "Expected exactly one socket from systemd (got %d); use --listen PATH to run "
                            "without socket activation.",
                            n);
                        return -EINVAL;
                }
                int fd = SD_LISTEN_FDS_START;
                /* systemd hands the fd over without close-on-exec; terminals must not inherit it. */
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                        return log_error_errno(errno, "Failed to set FD_CLOEXEC on fd 3: %m");
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0) {
                        r = uv_pipe_init(s->loop, &s->listener, false);
                        if (r >= 0)
                                r = uv_pipe_open(&s->listener, fd);
                        if (r < 0)
                                return log_error_errno(r, "Failed to adopt the listening socket: %s",
                                                       uv_strerror(r));
                        s->has_listener = true;
                } else if (sd_is_socket_unix(fd, SOCK_STREAM, 0, NULL, 0) > 0) {
                        Conn *c = calloc(1, sizeof(Conn));
                        if (!c)
                                return log_oom();
                        r = uv_pipe_init(s->loop, &c->pipe, false);
                        if (r >= 0)
                                r = uv_pipe_open(&c->pipe, fd);
                        if (r < 0) {
                                free(c);
                                return log_error_errno(r, "Failed to adopt the connection: %s",
                                                       uv_strerror(r));
                        }
                        s->accept_mode = true;
                        if (!peer_allowed(s, fd)) {
                                uv_close((uv_handle_t *)&c->pipe, on_rejected_closed);
                                return -EPERM;
                        }
                        return conn_start(s, c);
                } else {
                        log_error("fd 3 is not a Unix stream socket.");
                        return -ENOTSOCK;
                }
        } else {
                r = unix_socket_remove_stale(path, SOCK_STREAM);
                if (r < 0)
                        return log_error_errno(r, "Cannot listen on %s: %m", path);
                r = uv_pipe_init(s->loop, &s->listener, false);
                if (r < 0)
                        return r;
                s->has_listener = true;
                /* Only this user may connect: create the socket 0600 from the start, no chmod race. */
                mode_t old = umask(0077);
                r = uv_pipe_bind(&s->listener, path);
                umask(old);
                if (r < 0)
                        return log_error_errno(r, "Failed to bind %s: %s", path, uv_strerror(r));
        }

        s->listener.data = s;
        r = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
        if (r < 0)
                return log_error_errno(r, "Failed to listen: %s", uv_strerror(r));
        return 0;
}

int server_start(Server *s)
{
        ServiceContext ctx = {s->loop, s->bus, s->config};
        int r;

        (void)uv_timer_init(s->loop, &s->idle_timer);
        s->idle_timer.data = s;
        (void)uv_signal_init(s->loop, &s->sig_term);
        (void)uv_signal_init(s->loop, &s->sig_int);
        s->sig_term.data = s->sig_int.data = s;
        r = uv_signal_start(&s->sig_term, on_signal, SIGTERM);
        if (r >= 0)
                r = uv_signal_start(&s->sig_int, on_signal, SIGINT);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %s", uv_strerror(r));

        if (bus_serve(s->bus, "worker:info", on_worker_info, s) < 0 ||
            bus_serve(s->bus, "bus:services", on_bus_services, s) < 0 ||
            bus_subscribe(s->bus, EVENT_TERMINALS_CHANGED, on_terminals_changed, s) < 0 ||
            bus_subscribe(s->bus, EVENT_STATE_UPDATED, on_state_updated, s) < 0)
                return log_oom();

        r = manifests_load(s->loop, s->bus, s->config, adopt_service, s, &s->manifests);
        if (r < 0)
                return log_error_errno(r, "Failed to read the service manifests: %m");
        for (size_t i = 0; i < ELEMENTSOF(service_types); i++) {
                if (manifests_replace(s->manifests, service_types[i]->name)) {
                        log_info("The built-in %s service is replaced by a service manifest.",
                                 service_types[i]->name);
                        manifests_grant_events(s->manifests, service_types[i]->name,
                                               service_types[i]->events);
                        continue;
                }
                bus_set_owner(s->bus, service_types[i]->name);
                r = service_types[i]->start(&ctx, &s->services[i]);
                bus_set_owner(s->bus, "worker");
                if (r < 0)
                        return log_error_errno(r, "Failed to start the %s service: %m",
                                               service_types[i]->name);
        }

        manifests_register(s->manifests);

        r = server_listen(s);
        if (r < 0)
                return r;

        server_update_status(s);
        server_check_idle(s);
        (void)sd_notify(false, "READY=1");
        log_info("Ready: %s, workspace %s%s.",
                 s->config->listen_path ? s->config->listen_path : "socket from systemd",
                 s->config->roots[0], s->config->n_roots > 1 ? " (and more)" : "");
        return 0;
}

void server_stop(Server *s)
{
        if (s->stopping)
                return;
        s->stopping = true;
        (void)sd_notify(false, "STOPPING=1");

        if (s->has_listener)
                uv_close((uv_handle_t *)&s->listener, NULL);
        manifests_stop(s->manifests);
        while (s->conns)
                conn_close(s->conns);
        /* Each slot goes in its close callback. */
        for (TunnelSlot *slot = s->tunnels; slot; slot = slot->next)
                splice_close(slot->splice);
        for (size_t i = ELEMENTSOF(service_types); i-- > 0;)
                if (s->services[i] && service_types[i]->stop) {
                        service_types[i]->stop(s->services[i]);
                        s->services[i] = NULL;
                }
        uv_close((uv_handle_t *)&s->idle_timer, NULL);
        uv_close((uv_handle_t *)&s->sig_term, NULL);
        uv_close((uv_handle_t *)&s->sig_int, NULL);
}

Server *server_free(Server *s)
{
        if (!s)
                return NULL;
        assert(!s->conns);
        manifests_free(s->manifests);
        bus_free(s->bus);
        free(s);
        return NULL;
}
