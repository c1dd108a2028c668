/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "metrics.h"
#include "netaddr.h"

/* The gateway's listening sockets and the connections they accept, up to the point where the HTTP
 * library takes a connection over.
 *
 * libwebsockets 4.1 can neither be handed a listening socket nor answer an oversized or slow request
 * with a status, so accepting is done here: TCP, Unix, or sockets passed by systemd alike. A plain-HTTP
 * connection first has its request headers read here, against a size limit (431) and a deadline (408);
 * they are then handed over together with the socket. TLS connections are handed over at once (their
 * bytes cannot be read before the handshake) and rely on the library's own limits.
 *
 * Connections are capped in all, and so are those that have not shown a valid session, in all and per
 * client address; at a cap the oldest such connection (of that address) makes room for a new one.
 * Connections that have shown a session are capped per user and per client address, and in all at
 * max_connections - max_unauthenticated, so that room is always left for logins and /healthz: over a
 * cap the oldest connection of whoever is over it (in all: of the user holding the most) is closed. */

typedef struct Listener Listener;
typedef struct Conn Conn;
typedef struct RxGuard RxGuard;

typedef struct ListenerLimits {
        uint64_t max_connections;
        uint64_t max_unauthenticated;
        uint64_t max_unauthenticated_per_address;
        uint64_t max_per_user;    /* connections with a session of one user */
        uint64_t max_per_address; /* connections with a session from one client address */
        uint64_t header_timeout_ms;
        size_t max_header_size;
} ListenerLimits;

/* Hand fd (and the first bytes already read from it) to the HTTP library. Returns 0, or -errno after
 * the fd has been closed. */
typedef int (*ListenerAdoptFn)(Conn *conn, int fd, const char *buf, size_t len, void *userdata);

/* Whether peer is exempt from the per-address cap (a trusted reverse proxy, through which every client
 * comes); Unix-socket peers always are. */
typedef bool (*ListenerExemptFn)(const NetAddr *peer, void *userdata);

int listener_new(uv_loop_t *loop, const ListenerLimits *limits, bool tls, Metrics *metrics,
                 ListenerAdoptFn adopt, void *userdata, Listener **ret);
/* Access to the unix:PATH sockets added after this: mode, and group ((gid_t)-1: this process's). */
void listener_set_unix_access(Listener *l, mode_t mode, gid_t group);
/* "HOST:PORT", "[V6]:PORT" or "unix:PATH"; port 0 picks a free one. */
int listener_add_address(Listener *l, const char *spec);
/* Adopt the listening sockets systemd passed (LISTEN_FDS). Returns how many. */
int listener_add_systemd_sockets(Listener *l);
int listener_start(Listener *l);
/* Stop listening and drop the connections not handed over yet. */
void listener_stop(Listener *l);
Listener *listener_free(Listener *l);
void listener_set_limits(Listener *l, const ListenerLimits *limits);
void listener_set_exempt(Listener *l, ListenerExemptFn exempt);

/* The first TCP address actually bound, as "HOST:PORT" (IPv6 in brackets), for the printed URL; false
 * if there is none. */
bool listener_first_tcp_address(const Listener *l, char *buf, size_t size);

/* A connection after the handover. */
const NetAddr *conn_peer(const Conn *c);
bool conn_is_authenticated(const Conn *c);
/* It has shown a valid session of user: it no longer counts against the caps on unauthenticated
 * connections, but against those of user and its address (the first user shown stays). */
void conn_set_authenticated(Conn *c, const char *user);
/* The HTTP library has closed it. */
void conn_closed(Conn *c);
