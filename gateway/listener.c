/* SPDX-License-Identifier: MIT */
#include "listener.h"
#include "socket-util.h"

#include <assert.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "crypto-util.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

/* Connections accepted per wakeup, so one busy socket cannot starve the loop. */
#define ACCEPT_BATCH 64
/* Read room beyond the header limit: the start of a body may come along with the headers. */
#define READ_SLACK 4096u
/* Buckets of the table of client addresses with unauthenticated connections (a power of two). */
#define ADDR_BUCKETS 1024u

typedef struct ListenSocket {
        uv_poll_t poll;
        Listener *listener;
        int fd;
        bool tcp;
        bool poll_init;
        bool unix_path_owned; /* we created the socket file and remove it at the end */
        char *path;
        struct ListenSocket *next;
} ListenSocket;

typedef enum ConnState {
        CONN_HEADERS, /* reading the first request's headers here */
        CONN_HANDING_OVER,
        CONN_ADOPTED,
        CONN_CLOSING,
} ConnState;

/* One client address (an IPv6 one by its /64, which one machine usually holds whole) and how many of
 * the unauthenticated connections are from it. */
typedef struct AddrSlot {
        uint8_t key[17];
        uint64_t count;
        struct AddrSlot *next;
} AddrSlot;

/* A user with connections that showed a session, and how many. */
typedef struct UserSlot {
        struct UserSlot *next;
        uint64_t count;
        char name[];
} UserSlot;

struct Conn {
        Listener *listener;
        ConnState state;
        int fd;
        int lib_fd; /* the descriptor the library holds, once adopted */
        NetAddr peer;
        bool authenticated;
        bool counted;                      /* counts against the caps on unauthenticated connections */
        AddrSlot *slot;                    /* its address's entry while counted; NULL for exempt peers */
        Conn *adopted_prev, *adopted_next; /* adopted and counted, oldest first */
        uint64_t deadline_ms;
        Conn *prev, *next; /* the header-phase list, oldest first: deadlines are in the same order */
        uv_poll_t poll;
        char *buf;
        size_t len;
        const char *refusal;         /* what to answer before closing, NULL for nothing */
        UserSlot *user;              /* while it counts against the caps on sessions' connections */
        AddrSlot *auth_slot;         /* its address's entry there; NULL for exempt peers */
        Conn *auth_prev, *auth_next; /* counted so, oldest first */
};

struct Listener {
        uv_loop_t *loop;
        ListenerLimits limits;
        bool tls;
        Metrics *metrics;
        ListenerAdoptFn adopt;
        void *userdata;
        ListenSocket *sockets;
        Conn *pending_first, *pending_last;
        Conn *adopted_first, *adopted_last;
        ListenerExemptFn exempt;
        AddrSlot *slots[ADDR_BUCKETS];
        AddrSlot *auth_slots[ADDR_BUCKETS];
        UserSlot *users[ADDR_BUCKETS];
        Conn *auth_first, *auth_last;
        uint64_t n_auth;
        mode_t unix_mode;
        gid_t unix_group;
        uint8_t hash_key[16];
        uv_timer_t timer;
        bool timer_init;
        bool stopping;
};

static const char response_408[] = "HTTP/1.1 408 Request Timeout\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 16\r\n"
                                   "Connection: close\r\n\r\n"
                                   "Request Timeout\n";
static const char response_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 32\r\n"
                                   "Connection: close\r\n\r\n"
                                   "Request Header Fields Too Large\n";
static const char response_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 20\r\n"
                                   "Retry-After: 5\r\n"
                                   "Connection: close\r\n\r\n"
                                   "Service Unavailable\n";

int listener_new(uv_loop_t *loop, const ListenerLimits *limits, bool tls, Metrics *metrics,
                 ListenerAdoptFn adopt, void *userdata, Listener **ret)
{
        Listener *l = calloc(1, sizeof(Listener));

        if (!l)
                return -ENOMEM;
        l->loop = loop;
        l->limits = *limits;
        l->tls = tls;
        l->metrics = metrics;
        l->adopt = adopt;
        l->userdata = userdata;
        l->unix_mode = 0660;
        l->unix_group = (gid_t)-1;
        if (random_bytes(l->hash_key, sizeof(l->hash_key)) < 0) {
                free(l);
                return -EIO;
        }
        *ret = l;
        return 0;
}

void listener_set_exempt(Listener *l, ListenerExemptFn exempt)
{
        l->exempt = exempt;
}

void listener_set_limits(Listener *l, const ListenerLimits *limits)
{
        l->limits = *limits;
}

void listener_set_unix_access(Listener *l, mode_t mode, gid_t group)
{
        l->unix_mode = mode & 0777;
        l->unix_group = group;
}

/* ---- connections ---- */

static void pending_unlink(Listener *l, Conn *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else if (l->pending_first == c)
                l->pending_first = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else if (l->pending_last == c)
                l->pending_last = c->prev;
        c->prev = c->next = NULL;
}

/* ---- the caps on unauthenticated connections ---- */

static AddrSlot **slot_bucket(Listener *l, AddrSlot **table, const uint8_t key[17])
{
        /* Keyed with a secret, so that nobody can pick addresses that all land in one bucket. */
        return &table[siphash24(key, 17, l->hash_key) & (ADDR_BUCKETS - 1)];
}

static void addr_key(const NetAddr *a, uint8_t key[17])
{
        memset(key, 0, 17);
        key[0] = (uint8_t)a->family;
        memcpy(key + 1, a->bytes, a->family == AF_INET ? 4 : 8);
}

/* The address's slot, created if need be; NULL for a peer the per-address cap does not apply to. */
static AddrSlot *slot_of(Listener *l, AddrSlot **table, const NetAddr *peer, bool create)
{
        uint8_t key[17];
        AddrSlot **b, *s;

        /* A local peer is a reverse proxy, and so is a trusted one: all clients come from it. */
        if (peer->family == AF_UNIX || (l->exempt && l->exempt(peer, l->userdata)))
                return NULL;
        addr_key(peer, key);
        b = slot_bucket(l, table, key);
        for (s = *b; s; s = s->next)
                if (memcmp(s->key, key, sizeof(key)) == 0)
                        return s;
        if (!create)
                return NULL;
        s = calloc(1, sizeof(AddrSlot));
        if (!s)
                return NULL; /* uncounted, rather than refused for want of memory */
        memcpy(s->key, key, sizeof(key));
        s->next = *b;
        *b = s;
        return s;
}

static void slot_release(Listener *l, AddrSlot **table, AddrSlot *s)
{
        AddrSlot **p;

        if (!s || --s->count > 0)
                return;
        for (p = slot_bucket(l, table, s->key); *p != s; p = &(*p)->next)
                ;
        *p = s->next;
        free(s);
}

static void count(Conn *c)
{
        Listener *l = c->listener;

        c->counted = true;
        l->metrics->connections_unauthenticated++;
        c->slot = slot_of(l, l->slots, &c->peer, true);
        if (c->slot)
                c->slot->count++;
}

static void adopted_unlink(Listener *l, Conn *c)
{
        if (c->adopted_prev)
                c->adopted_prev->adopted_next = c->adopted_next;
        else if (l->adopted_first == c)
                l->adopted_first = c->adopted_next;
        if (c->adopted_next)
                c->adopted_next->adopted_prev = c->adopted_prev;
        else if (l->adopted_last == c)
                l->adopted_last = c->adopted_prev;
        c->adopted_prev = c->adopted_next = NULL;
}

/* It no longer counts against the caps: it has shown a session, gone, or been told to go. */
static void uncount(Conn *c)
{
        Listener *l = c->listener;

        if (!c->counted)
                return;
        c->counted = false;
        l->metrics->connections_unauthenticated--;
        slot_release(l, l->slots, c->slot);
        c->slot = NULL;
        adopted_unlink(l, c);
}

/* Handed over and still without a session: the oldest of these may be told to go. */
static void adopted_link(Conn *c)
{
        Listener *l = c->listener;

        if (!c->counted)
                return;
        c->adopted_prev = l->adopted_last;
        if (l->adopted_last)
                l->adopted_last->adopted_next = c;
        else
                l->adopted_first = c;
        l->adopted_last = c;
}

static void conn_finish_headers(Conn *c, ConnState next, const char *refusal);

/* Make room under a cap: the oldest unauthenticated connection (of slot's address, or of anyone for
 * NULL) goes. One still sending its headers goes first, with a 408; then one the library holds, which
 * has not shown a session since: under TLS every connection is of that kind from the start. A client that
 * sends its request at once always gets through; a crowd that holds connections open only pushes
 * itself out. Returns false if there was none. */
static bool evict_oldest(Listener *l, const AddrSlot *slot)
{
        for (Conn *c = l->pending_first; c; c = c->next)
                if (!slot || c->slot == slot) {
                        l->metrics->header_timeouts++;
                        uncount(c);
                        conn_finish_headers(c, CONN_CLOSING, response_408);
                        return true;
                }
        for (Conn *c = l->adopted_first; c; c = c->adopted_next)
                if (!slot || c->slot == slot) {
                        l->metrics->connections_evicted++;
                        uncount(c);
                        /* The library sees the connection end and closes it; it is freed then. */
                        (void)shutdown(c->lib_fd, SHUT_RDWR);
                        return true;
                }
        return false;
}

/* ---- the caps on connections with a session ---- */

static UserSlot **user_bucket(Listener *l, const char *name)
{
        return &l->users[siphash24(name, strlen(name), l->hash_key) & (ADDR_BUCKETS - 1)];
}

static UserSlot *user_slot_get(Listener *l, const char *name)
{
        UserSlot **b = user_bucket(l, name), *u;

        for (u = *b; u; u = u->next)
                if (streq(u->name, name))
                        return u;
        u = calloc(1, sizeof(UserSlot) + strlen(name) + 1);
        if (!u)
                return NULL;
        strcpy(u->name, name);
        u->next = *b;
        *b = u;
        return u;
}

static void user_slot_release(Listener *l, UserSlot *u)
{
        UserSlot **p;

        if (!u || --u->count > 0)
                return;
        for (p = user_bucket(l, u->name); *p != u; p = &(*p)->next)
                ;
        *p = u->next;
        free(u);
}

static void auth_uncount(Conn *c)
{
        Listener *l = c->listener;

        if (!c->user)
                return;
        if (c->auth_prev)
                c->auth_prev->auth_next = c->auth_next;
        else
                l->auth_first = c->auth_next;
        if (c->auth_next)
                c->auth_next->auth_prev = c->auth_prev;
        else
                l->auth_last = c->auth_prev;
        c->auth_prev = c->auth_next = NULL;
        user_slot_release(l, c->user);
        c->user = NULL;
        slot_release(l, l->auth_slots, c->auth_slot);
        c->auth_slot = NULL;
        l->n_auth--;
}

/* Close c to make room; the library sees the connection end and closes it, and it is freed then. */
static void auth_evict(Conn *c)
{
        c->listener->metrics->connections_evicted_authenticated++;
        auth_uncount(c);
        (void)shutdown(c->lib_fd, SHUT_RDWR);
}

/* The oldest counted connection other than except, of user u (NULL: anyone's) and address slot a (NULL:
 * any). */
static Conn *auth_oldest(Listener *l, const UserSlot *u, const AddrSlot *a, const Conn *except)
{
        for (Conn *c = l->auth_first; c; c = c->auth_next)
                if (c != except && (!u || c->user == u) && (!a || c->auth_slot == a))
                        return c;
        return NULL;
}

static void auth_enforce(Listener *l, Conn *newest)
{
        uint64_t max_total = l->limits.max_connections > l->limits.max_unauthenticated
                                 ? l->limits.max_connections - l->limits.max_unauthenticated
                                 : 1;
        Conn *victim;

        while (newest->user && newest->user->count > l->limits.max_per_user &&
               (victim = auth_oldest(l, newest->user, NULL, newest)))
                auth_evict(victim);
        while (newest->auth_slot && newest->auth_slot->count > l->limits.max_per_address &&
               (victim = auth_oldest(l, NULL, newest->auth_slot, newest)))
                auth_evict(victim);
        /* Over the share of all connections: the user holding the most gives up their oldest. */
        while (l->n_auth > max_total) {
                uint64_t most = 0;

                victim = NULL;
                for (Conn *c = l->auth_first; c; c = c->auth_next)
                        if (c != newest && c->user->count > most) {
                                most = c->user->count;
                                victim = c;
                        }
                if (!victim)
                        break;
                auth_evict(victim);
        }
}

static void conn_free(Conn *c)
{
        Metrics *m = c->listener->metrics;

        m->connections_open--;
        uncount(c);
        auth_uncount(c);
        free(c->buf);
        free(c);
}

static void on_conn_poll_closed(uv_handle_t *h)
{
        Conn *c = container_of((uv_poll_t *)h, Conn, poll);
        Listener *l = c->listener;
        int fd = TAKE_FD(c->fd);
        int r;

        if (c->state == CONN_HANDING_OVER && !l->stopping) {
                /* The poll handle is gone, so the library may watch the fd now. */
                c->state = CONN_ADOPTED;
                c->lib_fd = fd;
                adopted_link(c);
                r = l->adopt(c, fd, c->buf, c->len, l->userdata);
                free(c->buf);
                c->buf = NULL;
                c->len = 0;
                if (r < 0)
                        conn_free(c);
                return;
        }
        if (c->refusal) {
                /* Best effort: the socket is fresh, so a short answer fits its send buffer. */
                ssize_t n = send(fd, c->refusal, strlen(c->refusal), MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)n;
                /* Say nothing more, but let the answer go out before the connection ends. */
                (void)shutdown(fd, SHUT_WR);
        }
        safe_close(fd);
        conn_free(c);
}

/* Leave the header phase: hand over, or answer and close. */
static void conn_finish_headers(Conn *c, ConnState next, const char *refusal)
{
        Listener *l = c->listener;

        assert(c->state == CONN_HEADERS);
        pending_unlink(l, c);
        c->state = next;
        c->refusal = refusal;
        uv_close((uv_handle_t *)&c->poll, on_conn_poll_closed);
}

static bool headers_complete(const char *buf, size_t len)
{
        /* An empty line ends the headers: "\r\n\r\n", or "\n\n" from sloppy clients. */
        for (size_t i = 0; i < len; i++)
                if (buf[i] == '\n' && ((i + 1 < len && buf[i + 1] == '\n') ||
                                       (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')))
                        return true;
        return false;
}

static void on_conn_readable(uv_poll_t *h, int status, int events)
{
        Conn *c = container_of(h, Conn, poll);
        Listener *l = c->listener;
        size_t cap = l->limits.max_header_size + READ_SLACK;
        char *buf;
        ssize_t n;

        if (c->state != CONN_HEADERS)
                return;
        if (status < 0) {
                conn_finish_headers(c, CONN_CLOSING, NULL);
                return;
        }
        if (!c->buf) {
                c->buf = malloc(cap);
                if (!c->buf) {
                        conn_finish_headers(c, CONN_CLOSING, response_503);
                        return;
                }
        }
        buf = c->buf;
        n = recv(c->fd, buf + c->len, cap - c->len, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                conn_finish_headers(c, CONN_CLOSING, NULL);
                return;
        }
        if (n == 0) {
                conn_finish_headers(c, CONN_CLOSING, NULL);
                return;
        }
        size_t before = c->len;
        c->len += (size_t)n;

        /* Look only within the header limit: a terminator beyond it is too late. Restart the search a
         * little before the new bytes in case the terminator straddles two reads. */
        size_t from = before > 3 ? before - 3 : 0;
        size_t upto = MIN(c->len, l->limits.max_header_size);
        if (upto > from && headers_complete(buf + from, upto - from)) {
                conn_finish_headers(c, CONN_HANDING_OVER, NULL);
                return;
        }
        if (c->len >= l->limits.max_header_size) {
                l->metrics->oversized_headers++;
                log_debug("Request headers over %zu bytes, refusing.", l->limits.max_header_size);
                conn_finish_headers(c, CONN_CLOSING, response_431);
        }
}

static void on_timer(uv_timer_t *t);

static void timer_rearm(Listener *l)
{
        uint64_t now = uv_now(l->loop);

        if (!l->pending_first) {
                (void)uv_timer_stop(&l->timer);
                return;
        }
        (void)uv_timer_start(&l->timer, on_timer,
                             l->pending_first->deadline_ms > now ? l->pending_first->deadline_ms - now : 0,
                             0);
}

static void on_timer(uv_timer_t *t)
{
        Listener *l = t->data;
        uint64_t now = uv_now(l->loop);

        while (l->pending_first && l->pending_first->deadline_ms <= now) {
                l->metrics->header_timeouts++;
                conn_finish_headers(l->pending_first, CONN_CLOSING, response_408);
        }
        timer_rearm(l);
}

static void refuse_fd(Listener *l, int fd)
{
        if (!l->tls) {
                ssize_t n = send(fd, response_503, sizeof(response_503) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)n;
        }
        safe_close(fd);
        l->metrics->connections_refused++;
}

static void conn_accepted(Listener *l, int fd, const struct sockaddr *sa, socklen_t salen, bool tcp)
{
        Metrics *m = l->metrics;
        Conn *c;
        int r;

        NetAddr peer;
        AddrSlot *slot;

        m->connections_accepted++;
        /* Connections told to go still count as open until the library has closed them: the cap is on
         * those that stay, and at it the oldest without a session makes room (those with one never take
         * the share kept for the others). A hard ceiling holds while the evicted are closing. */
        if (m->connections_open >= l->limits.max_connections + l->limits.max_unauthenticated ||
            (m->connections_unauthenticated + l->n_auth >= l->limits.max_connections &&
             !evict_oldest(l, NULL))) {
                log_debug("Connection cap (%llu) reached, refusing a client.",
                          (unsigned long long)l->limits.max_connections);
                refuse_fd(l, fd);
                return;
        }
        if (netaddr_from_sockaddr(sa, salen, &peer) < 0)
                peer.family = AF_UNIX;
        /* One address gets a share of the unauthenticated slots, not all of them; at its share, its own
         * oldest connection makes room. */
        slot = slot_of(l, l->slots, &peer, false);
        if (slot && slot->count >= l->limits.max_unauthenticated_per_address && !evict_oldest(l, slot)) {
                refuse_fd(l, fd);
                return;
        }
        if (m->connections_unauthenticated >= l->limits.max_unauthenticated && !evict_oldest(l, NULL)) {
                refuse_fd(l, fd);
                return;
        }

        if (tcp) {
                /* Replies are written whole; never hold them back for the peer's delayed ACK. */
                int one = 1;
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }

        c = calloc(1, sizeof(Conn));
        if (!c) {
                refuse_fd(l, fd);
                return;
        }
        c->listener = l;
        c->fd = fd;
        c->lib_fd = -1;
        c->peer = peer;
        m->connections_open++;
        count(c);

        if (l->tls) {
                /* The handshake comes first; the library times it out. */
                c->state = CONN_ADOPTED;
                c->lib_fd = c->fd;
                adopted_link(c);
                r = l->adopt(c, TAKE_FD(c->fd), NULL, 0, l->userdata);
                if (r < 0)
                        conn_free(c);
                return;
        }

        r = uv_poll_init(l->loop, &c->poll, fd);
        if (r < 0) {
                safe_close(c->fd);
                conn_free(c);
                return;
        }
        r = uv_poll_start(&c->poll, UV_READABLE, on_conn_readable);
        c->state = CONN_HEADERS;
        c->deadline_ms = uv_now(l->loop) + l->limits.header_timeout_ms;
        c->prev = l->pending_last;
        if (l->pending_last)
                l->pending_last->next = c;
        else
                l->pending_first = c;
        l->pending_last = c;
        if (r < 0) {
                conn_finish_headers(c, CONN_CLOSING, NULL);
                return;
        }
        if (c == l->pending_first)
                timer_rearm(l);
}

static void on_listen_readable(uv_poll_t *h, int status, int events)
{
        ListenSocket *s = container_of(h, ListenSocket, poll);
        Listener *l = s->listener;

        if (status < 0) {
                log_warning("Listening socket error: %s, ignoring.", uv_strerror(status));
                return;
        }
        for (int i = 0; i < ACCEPT_BATCH && !l->stopping; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                int fd = accept4(s->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE)
                                log_warning_errno(errno, "Cannot accept connections: %m");
                        else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "accept() failed: %m, ignoring");
                        return;
                }
                conn_accepted(l, fd, (struct sockaddr *)&ss, len, s->tcp);
        }
}

const NetAddr *conn_peer(const Conn *c)
{
        return &c->peer;
}

bool conn_is_authenticated(const Conn *c)
{
        return c->authenticated;
}

void conn_set_authenticated(Conn *c, const char *user)
{
        Listener *l = c->listener;

        if (c->authenticated)
                return;
        c->authenticated = true;
        uncount(c);
        if (c->state != CONN_ADOPTED || c->lib_fd < 0)
                return;
        c->user = user_slot_get(l, user);
        if (!c->user)
                return; /* uncounted, rather than refused for want of memory */
        c->user->count++;
        c->auth_slot = slot_of(l, l->auth_slots, &c->peer, true);
        if (c->auth_slot)
                c->auth_slot->count++;
        c->auth_prev = l->auth_last;
        if (l->auth_last)
                l->auth_last->auth_next = c;
        else
                l->auth_first = c;
        l->auth_last = c;
        l->n_auth++;
        auth_enforce(l, c);
}

void conn_closed(Conn *c)
{
        assert(c->state == CONN_ADOPTED);
        conn_free(c);
}

/* ---- listening sockets ---- */

static int listen_socket_add(Listener *l, int fd, bool tcp, const char *owned_path)
{
        ListenSocket *s = calloc(1, sizeof(ListenSocket));

        if (!s)
                return -ENOMEM;
        if (owned_path) {
                s->path = strdup(owned_path);
                if (!s->path) {
                        free(s);
                        return -ENOMEM;
                }
                s->unix_path_owned = true;
        }
        s->listener = l;
        s->fd = fd;
        s->tcp = tcp;
        s->next = l->sockets;
        l->sockets = s;
        return 0;
}

static int parse_host_port(const char *spec, NetAddr *ret_addr, uint16_t *ret_port)
{
        const char *colon = strrchr(spec, ':');
        uint64_t port;
        int r;

        if (!colon)
                return -EINVAL;
        r = parse_uint(colon + 1, 0, 65535, &port);
        if (r < 0)
                return r;
        if ((size_t)(colon - spec) == 9 && strncmp(spec, "localhost", 9) == 0)
                r = netaddr_parse("127.0.0.1", 9, ret_addr);
        else
                r = netaddr_parse(spec, (size_t)(colon - spec), ret_addr);
        if (r < 0)
                return r;
        *ret_port = (uint16_t)port;
        return 0;
}

int listener_add_address(Listener *l, const char *spec)
{
        _cleanup_close_ int fd = -1;
        int r, one = 1;

        if (strncmp(spec, "unix:", 5) == 0) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                const char *path = spec + 5;
                mode_t old;

                if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
                        return -EINVAL;
                strcpy(sa.sun_path, path);
                r = unix_socket_remove_stale(path, SOCK_STREAM);
                if (r < 0)
                        return r;
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return negative_errno();
                /* Owner and group (a reverse proxy's) may connect, as listen_socket_mode says; nobody
                 * else. Nobody at all until the group and mode are set: connecting needs listen(). */
                old = umask(0177);
                r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
                umask(old);
                if (r < 0)
                        return negative_errno();
                if (l->unix_group != (gid_t)-1 && chown(path, (uid_t)-1, l->unix_group) < 0) {
                        r = negative_errno();
                        (void)unlink(path);
                        return r;
                }
                if (chmod(path, l->unix_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
                        r = negative_errno();
                        (void)unlink(path);
                        return r;
                }
                r = listen_socket_add(l, fd, false, path);
                if (r < 0)
                        return r;
                TAKE_FD(fd);
                return 0;
        }

        NetAddr addr;
        uint16_t port;
        struct sockaddr_storage ss = {};
        socklen_t len;

        r = parse_host_port(spec, &addr, &port);
        if (r < 0)
                return r;
        if (addr.family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
                sin->sin_family = AF_INET;
                sin->sin_port = htons(port);
                memcpy(&sin->sin_addr, addr.bytes, 4);
                len = sizeof(*sin);
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(port);
                memcpy(&sin6->sin6_addr, addr.bytes, 16);
                len = sizeof(*sin6);
        }
        fd = socket(addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (addr.family == AF_INET6)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) < 0)
                return negative_errno();
        if (listen(fd, SOMAXCONN) < 0)
                return negative_errno();
        r = listen_socket_add(l, fd, true, NULL);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

int listener_add_systemd_sockets(Listener *l)
{
        int n, r;

        n = sd_listen_fds(true);
        if (n <= 0)
                return n;
        for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                        log_error("Socket %d from systemd is not a listening stream socket.", fd);
                        return -ENOTSOCK;
                }
                /* Inherited without these; accept() and children must not see them otherwise. */
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                        return negative_errno();
                r = listen_socket_add(l, fd, sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0, NULL);
                if (r < 0)
                        return r;
        }
        return n;
}

int listener_start(Listener *l)
{
        int r;

        r = uv_timer_init(l->loop, &l->timer);
        if (r < 0)
                return r;
        l->timer.data = l;
        l->timer_init = true;
        for (ListenSocket *s = l->sockets; s; s = s->next) {
                r = uv_poll_init(l->loop, &s->poll, s->fd);
                if (r < 0)
                        return r;
                s->poll_init = true;
                s->poll.data = s;
                r = uv_poll_start(&s->poll, UV_READABLE, on_listen_readable);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void on_listen_socket_closed(uv_handle_t *h)
{
        ListenSocket *s = container_of((uv_poll_t *)h, ListenSocket, poll);

        safe_close(s->fd);
        free(s->path);
        free(s);
}

void listener_stop(Listener *l)
{
        if (l->stopping)
                return;
        l->stopping = true;
        while (l->pending_first)
                conn_finish_headers(l->pending_first, CONN_CLOSING, NULL);
        if (l->timer_init)
                uv_close((uv_handle_t *)&l->timer, NULL);
        for (ListenSocket *s = l->sockets, *next; s; s = next) {
                next = s->next;
                if (s->unix_path_owned)
                        (void)unlink(s->path);
                if (s->poll_init)
                        uv_close((uv_handle_t *)&s->poll, on_listen_socket_closed);
                else
                        on_listen_socket_closed((uv_handle_t *)&s->poll);
        }
        l->sockets = NULL;
}

Listener *listener_free(Listener *l)
{
        if (!l)
                return NULL;
        assert(!l->pending_first);
        for (size_t i = 0; i < ADDR_BUCKETS; i++) {
                for (AddrSlot *a = l->slots[i], *next; a; a = next) {
                        next = a->next;
                        free(a);
                }
                for (AddrSlot *a = l->auth_slots[i], *next; a; a = next) {
                        next = a->next;
                        free(a);
                }
                for (UserSlot *u = l->users[i], *next; u; u = next) {
                        next = u->next;
                        free(u);
                }
        }
        for (ListenSocket *s = l->sockets, *next; s; s = next) {
                next = s->next;
                safe_close(s->fd);
                free(s->path);
                free(s);
        }
        free(l);
        return NULL;
}

bool listener_first_tcp_address(const Listener *l, char *buf, size_t size)
{
        const ListenSocket *first = NULL;

        /* The list is newest first; the first configured address is the last TCP one in it. */
        for (const ListenSocket *s = l->sockets; s; s = s->next)
                if (s->tcp)
                        first = s;
        if (!first)
                return false;

        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char host[NETADDR_STRLEN];
        NetAddr a;
        int port;

        if (getsockname(first->fd, (struct sockaddr *)&ss, &len) < 0 ||
            netaddr_from_sockaddr((struct sockaddr *)&ss, len, &a) < 0)
                return false;
        port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                       : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        if (a.family == AF_INET6 || ss.ss_family == AF_INET6) {
                /* The unspecified address is no place to point a browser at. */
                static const uint8_t any[16] = {};
                if (a.family == AF_INET6 && memcmp(a.bytes, any, 16) == 0)
                        strcpy(host, "::1");
                else
                        netaddr_format(&a, host);
                (void)snprintf(buf, size, a.family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
        } else {
                netaddr_format(&a, host);
                if (streq(host, "0.0.0.0"))
                        strcpy(host, "127.0.0.1");
                (void)snprintf(buf, size, "%s:%d", host, port);
        }
        return true;
}
