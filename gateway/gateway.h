/* SPDX-License-Identifier: MIT */
#pragma once

/* The gateway process's state, shared by its modules the way systemd's Manager is: server.c owns the
 * lifecycle, http.c answers requests, bridge.c splices WebSockets to workers. Nothing outside gateway/
 * includes this. */

#include <libwebsockets.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <uv.h>

#include "accounts.h"
#include "admin.h"
#include "auth.h"
#include "config.h"
#include "launcher.h"
#include "listener.h"
#include "metrics.h"
#include "netaddr.h"
#include "pam-sessions.h"
#include "preview.h"
#include "sessions.h"
#include "static-files.h"
#include "throttle.h"
#include "tls.h"

typedef struct Bridge Bridge;
typedef struct BridgeUser BridgeUser;

/* Close code for a page over its user's page limit (an application code, RFC 6455 §7.4.2). */
#define BRIDGE_CLOSE_PAGE_LIMIT 4008
/* Close codes for a page whose user can have no workspace now, one per reason the launcher gives
 * (docs/protocol.md). 4010-4013 and 4017 last until an admin acts; 4014-4016 pass. */
#define BRIDGE_CLOSE_UNIT_MASKED     4010
#define BRIDGE_CLOSE_ACCOUNT_LOCKED  4011
#define BRIDGE_CLOSE_HOME_MISSING    4012
#define BRIDGE_CLOSE_START_FAILED    4013
#define BRIDGE_CLOSE_WORKSPACES_FULL 4014
#define BRIDGE_CLOSE_LAUNCHER_BUSY   4015
#define BRIDGE_CLOSE_START_TIMEOUT   4016
#define BRIDGE_CLOSE_ACCOUNT_REFUSED 4017

/* Size of the buffer every worker read lands in before it is split into messages. Reads are
 * synchronous within the loop, so one buffer serves every connection and idle ones hold none. It has
 * LWS_PRE bytes of room before it, so a message can be written to the page straight from it. */
#define GATEWAY_READ_BUFFER (64u * 1024u)

typedef struct Gateway {
        uv_loop_t *loop;
        GatewayConfig *config;
        int argc;
        char **argv; /* kept to reload the configuration with the same command line */

        struct lws_context *lws;
        struct lws_vhost *vhost;
        unsigned header_pool; /* the library's header tables: as many as max_connections at start */
        Listener *listener;
        Preview *preview; /* previews of users' web servers: NULL unless preview_listen is set */
        struct lws_vhost *preview_vhost; /* with TLS: the vhost preview connections are adopted into */
        Launcher *launcher;
        Auth *auth;
        SessionStore *sessions;
        AccountChecks *accounts;
        PamSessions *pam_sessions;
        Throttle *throttle;
        AdminServer *admin;
        WebRoot *web;
        NetPrefix *trusted_proxies;
        size_t n_trusted_proxies;
        char *metrics_token;
        Metrics metrics;

        Conn *adopting; /* the connection being handed to libwebsockets right now */
        struct lws *adopting_wsi;
        bool adopt_attached;

        Bridge *bridges;       /* every open WebSocket */
        Bridge *kicks;         /* WebSockets with data libwebsockets holds but will not serve by itself */
        Bridge *kicks_running; /* those being served right now */
        uv_idle_t kick_idle;
        unsigned n_bridges;
        BridgeUser *bridge_users; /* users with open pages */
        char *read_buffer;        /* LWS_PRE + GATEWAY_READ_BUFFER bytes */

        uv_signal_t sig_term, sig_int, sig_hup;
        uv_timer_t tick;           /* session expiry, status line, watchdog */
        uv_timer_t shutdown_timer; /* the grace period for closing WebSockets */
        uint64_t watchdog_usec;
        uint64_t last_watchdog_ms;
        uint64_t shutdown_started_ms;
        uint64_t sessions_saved_ms;
        bool sessions_save_failed; /* warned once; said again when it works */
        char status[128];

        bool tls;
        char *tls_cert, *tls_key; /* the files in use: the configured ones, or those cert = auto made */
        TlsFilesId tls_id;        /* as they were when read; a reload takes them again if they changed */
        unsigned n_vhosts;        /* one per certificate read; earlier ones serve their connections */
        bool stopping;
        bool lws_destroyed;
        char url[256];
        struct rlimit original_nofile;
} Gateway;

/* Wall-clock milliseconds for a loop timestamp (uv_now), for showing to people. */
uint64_t gateway_wall_ms(const Gateway *g, uint64_t loop_ms);

/* http.c: everything that is not the WebSocket once open. */
typedef struct HttpRequest HttpRequest;

/* Per-connection data libwebsockets keeps for us (protocols[0].per_session_data_size). */
typedef struct ConnData {
        HttpRequest *request;                        /* the HTTP transaction in progress */
        Bridge *bridge;                              /* once the connection is a WebSocket */
        char session_handle[SESSION_HANDLE_LEN + 1]; /* checked at the upgrade, used once established */
} ConnData;

int http_callback(Gateway *g, struct lws *wsi, enum lws_callback_reasons reason, ConnData *cd, void *in,
                  size_t len);
/* Checks for a WebSocket upgrade: session and Origin. Returns 0 to let it proceed, 1 after answering
 * with an error status. The connection data does not exist yet at that point. */
int http_confirm_upgrade(Gateway *g, struct lws *wsi);
/* Once it does (LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION): every check again, then note the session for
 * the WebSocket. */
int http_upgrade_session(Gateway *g, struct lws *wsi, ConnData *cd);
/* LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: 0 to accept the extension the client offered, 1 to decline it. */
int http_confirm_extension(Gateway *g, struct lws *wsi, const char *name);
void http_request_free(HttpRequest *r);

/* The connection a wsi belongs to (an HTTP/2 stream's is its parent's). */
Conn *gateway_conn_of(struct lws *wsi);

/* The library's per-thread read buffer while previews speak TLS: a raw connection reads into it, and one
 * whole TLS record (16 KiB of plaintext) must fit, so that no read leaves decrypted bytes inside OpenSSL.
 * libwebsockets 4.1 on libuv reads such bytes only from an idle callback that it stops after one round
 * even when some are left, and nothing wakes it again while the client waits for an answer: with the
 * default 4 KiB a 1 MiB request body stalled its last few KiB. */
#define PREVIEW_TLS_SERV_BUF (32u * 1024u)

/* preview-tls.c: TLS on the preview listener. The vhost's protocols; adopt an accepted socket (taken). */
extern const struct lws_protocols preview_tls_protocols[];
int preview_tls_adopt(Gateway *g, int fd);

/* bridge.c */
int bridge_new(Gateway *g, struct lws *wsi, Session *session, Bridge **ret);
/* Called by libwebsockets' callbacks; each returns -1 to close the WebSocket. */
int bridge_receive(Bridge *b, void *in, size_t len);
int bridge_writeable(Bridge *b);
/* The WebSocket is gone: let go of the worker connection. */
void bridge_ws_closed(Bridge *b);
/* The page sent its close frame. */
void bridge_peer_closed(Bridge *b);
/* The page answered a ping (or sent data). */
void bridge_heard(Bridge *b);
/* Once a second: ping pages that have been silent, hang up on those gone. */
void bridge_tick(Gateway *g, uint64_t now);
/* Users whose worker at least one open page is connected to: each is a running worker. */
unsigned bridge_count_connected_workers(const Gateway *g);
/* Close every WebSocket with 1001 (going away) once its queued messages are out. */
void bridge_shutdown_all(Gateway *g);
