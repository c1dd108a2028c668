/* SPDX-License-Identifier: MIT */
/* Everything the gateway answers over plain HTTP: the web app's files, login and logout, the session
 * API, /healthz and /metrics, and the checks made before a WebSocket upgrade. */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "crypto-util.h"
#include "gateway.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "users-file.h"
#include "utf8.h"

/* Bytes of a static file written per writeable callback. */
/* The largest HTTP/2 frame every peer accepts (RFC 9113 §4.2). */
#define H2_MAX_FRAME 16384
#define FILE_CHUNK   (32u * 1024u)
/* Longest Host, Origin or X-Forwarded-* value considered. */
#define SHORT_HEADER_MAX 512

#define COOKIE_NAME "helios_session"
/* Under TLS the cookie carries the __Host- prefix: browsers then insist on Secure, Path=/ and no
 * Domain, so no other host (a sibling subdomain) can plant or shadow it. */
#define COOKIE_NAME_SECURE "__Host-helios_session"

#define CSP                                                                                             \
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "               \
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " \
        "frame-ancestors 'none'"

typedef enum Route {
        ROUTE_STATIC,
        ROUTE_LOGIN,
        ROUTE_LOGOUT,
        ROUTE_SESSION,
        ROUTE_SESSIONS,
        ROUTE_REVOKE,
        ROUTE_PREVIEW,
        ROUTE_HEALTHZ,
        ROUTE_METRICS,
        ROUTE_WS,
        _ROUTE_MAX,
} Route;

/* Who is asking, as far as the gateway can tell. */
typedef struct RequestInfo {
        NetAddr peer;   /* the other end of the socket */
        NetAddr client; /* the browser's address: peer, or from X-Forwarded-For via a trusted proxy */
        bool https;     /* TLS here, or at a trusted proxy that says so */
        char host[SHORT_HEADER_MAX]; /* as the browser addressed us; "" if unusable */
} RequestInfo;

struct HttpRequest {
        Gateway *gateway;
        struct lws *wsi;
        Route route;
        bool head;
        RequestInfo info;
        Session *session; /* valid for the current callback only */

        AuthRequest *auth;
        char login_user[USER_NAME_MAX + 1];

        /* the response */
        bool responding, headers_sent;
        int status;
        const char *content_type;
        const char *cache_control;
        char *set_cookie;
        unsigned retry_after;
        const char *allow;
        bool upgrade_hint;
        Buf body;
        size_t body_sent;
        StaticFile file;
        bool file_open;
        uint64_t file_sent;
};

uint64_t gateway_wall_ms(const Gateway *g, uint64_t loop_ms)
{
        struct timespec ts;
        uint64_t now_wall, now_loop = uv_now(g->loop);

        clock_gettime(CLOCK_REALTIME, &ts);
        now_wall = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        return loop_ms > now_loop ? now_wall + (loop_ms - now_loop) : now_wall - (now_loop - loop_ms);
}

Conn *gateway_conn_of(struct lws *wsi)
{
        struct lws *net = lws_get_network_wsi(wsi);

        return lws_get_opaque_user_data(net ? net : wsi);
}

void http_request_free(HttpRequest *r)
{
        if (!r)
                return;
        auth_request_cancel(r->auth);
        buf_done(&r->body);
        free(r->set_cookie);
        if (r->file_open)
                safe_close(r->file.fd);
        free(r);
}

/* ---- request facts ---- */

/* A header's value into buf; false if absent or longer than size allows. */
static bool header_copy(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t size)
{
        int n = lws_hdr_total_length(wsi, t);

        if (n <= 0 || (size_t)n >= size)
                return false;
        return lws_hdr_copy(wsi, buf, (int)size, t) >= 0;
}

/* A header libwebsockets does not know by name ("x-forwarded-proto:"). */
static bool custom_header_copy(struct lws *wsi, const char *name, char *buf, size_t size)
{
        int n = lws_hdr_custom_length(wsi, name, (int)strlen(name));

        if (n <= 0 || (size_t)n >= size)
                return false;
        return lws_hdr_custom_copy(wsi, buf, (int)size, name, (int)strlen(name)) >= 0;
}

/* A Host value a browser could have sent: a name or address, maybe a port. Anything else (spaces,
 * slashes, '@') is not used to build an origin. */
static bool host_is_plausible(const char *h)
{
        if (!*h || strlen(h) > 255)
                return false;
        for (const char *p = h; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr(".-:[]_", *p)))
                        return false;
        return true;
}

static void request_info_init(Gateway *g, struct lws *wsi, RequestInfo *ri)
{
        Conn *conn = gateway_conn_of(wsi);
        char xff[1024], v[SHORT_HEADER_MAX];
        bool via_proxy;

        *ri = (RequestInfo){};
        if (conn)
                ri->peer = *conn_peer(conn);
        else
                ri->peer.family = AF_UNIX;
        via_proxy = netprefix_list_contains(g->trusted_proxies, g->n_trusted_proxies, &ri->peer);
        ri->client = netaddr_client_from_forwarded(
            &ri->peer, header_copy(wsi, WSI_TOKEN_X_FORWARDED_FOR, xff, sizeof(xff)) ? xff : NULL,
            g->trusted_proxies, g->n_trusted_proxies);

        ri->https = lws_is_ssl(wsi);
        if (via_proxy && custom_header_copy(wsi, "x-forwarded-proto:", v, sizeof(v)))
                ri->https = strcasecmp(v, "https") == 0;

        if ((via_proxy && custom_header_copy(wsi, "x-forwarded-host:", v, sizeof(v))) ||
            header_copy(wsi, WSI_TOKEN_HOST, v, sizeof(v)) ||
            header_copy(wsi, WSI_TOKEN_HTTP_COLON_AUTHORITY, v, sizeof(v))) {
                if (host_is_plausible(v))
                        strcpy(ri->host, v);
        }
}

/* The host name of a Host value ("name", "name:port", "[v6]:port"), without the port, into out; false if
 * it has none. */
static bool host_name_of(const char *host, char *out, size_t size)
{
        size_t n;

        if (host[0] == '[') {
                const char *close = strchr(host, ']');
                if (!close || (close[1] && close[1] != ':'))
                        return false;
                n = (size_t)(close - host) + 1;
        } else {
                n = strcspn(host, ":");
                if (host[n] && strchr(host + n + 1, ':'))
                        return false; /* an IPv6 address must be bracketed */
        }
        if (n == 0 || n >= size)
                return false;
        memcpy(out, host, n);
        out[n] = '\0';
        /* "name." is the same name */
        if (n > 1 && out[n - 1] == '.')
                out[n - 1] = '\0';
        return true;
}

/* An IP literal as it appears in a Host value (IPv6 bracketed). */
static bool host_is_address(const char *name, NetAddr *ret)
{
        size_t n = strlen(name);

        if (name[0] == '[')
                return n > 2 && name[n - 1] == ']' && netaddr_parse(name + 1, n - 2, ret) >= 0;
        return netaddr_parse(name, n, ret) >= 0 && ret->family == AF_INET;
}

/* The host name an origin ("scheme://host[:port]") names, as host_name_of() gives it. */
static bool origin_host_is(const char *origin, const char *name)
{
        const char *p = strstr(origin, "://");
        char h[SHORT_HEADER_MAX];

        return p && host_name_of(p + 3, h, sizeof(h)) && strcasecmp(h, name) == 0;
}

/* Does the request address this server by a name it answers to? The configured server_names and the
 * hosts of allowed_origins; the address the connection reached, as a literal (an address is no DNS name
 * a page elsewhere could make point here); and for a loopback or Unix-socket connection, localhost.
 * Anything else may be a DNS name rebound to this machine by a page on another site. */
static bool host_allowed(Gateway *g, struct lws *wsi, const RequestInfo *ri)
{
        struct lws *net = lws_get_network_wsi(wsi) ?: wsi;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char name[SHORT_HEADER_MAX];
        NetAddr local, addr;
        bool local_known;

        if (!ri->host[0] || !host_name_of(ri->host, name, sizeof(name)))
                return false;
        for (size_t i = 0; i < g->config->n_server_names; i++)
                if (strcasecmp(name, g->config->server_names[i]) == 0)
                        return true;
        for (size_t i = 0; i < g->config->n_allowed_origins; i++)
                if (origin_host_is(g->config->allowed_origins[i], name))
                        return true;

        local_known = getsockname(lws_get_socket_fd(net), (struct sockaddr *)&ss, &len) >= 0 &&
                      netaddr_from_sockaddr((struct sockaddr *)&ss, len, &local) >= 0;
        if (!local_known || ss.ss_family == AF_UNIX)
                return strcasecmp(name, "localhost") == 0;
        if (host_is_address(name, &addr))
                return netaddr_equal(&addr, &local);
        return netaddr_is_loopback(&local) && strcasecmp(name, "localhost") == 0;
}

/* Is this Origin the page's own (scheme and host as the browser addressed us) or a configured one? */
static bool origin_allowed(Gateway *g, const RequestInfo *ri, const char *origin)
{
        const char *scheme = ri->https ? "https://" : "http://";

        for (size_t i = 0; i < g->config->n_allowed_origins; i++)
                if (strcasecmp(origin, g->config->allowed_origins[i]) == 0)
                        return true;
        return ri->host[0] && strncasecmp(origin, scheme, strlen(scheme)) == 0 &&
               strcasecmp(origin + strlen(scheme), ri->host) == 0;
}

static const char *cookie_name(const RequestInfo *ri)
{
        return ri->https ? COOKIE_NAME_SECURE : COOKIE_NAME;
}

/* The session the request's cookie names, if it is live. Marks the connection authenticated. */
static Session *request_session(Gateway *g, struct lws *wsi, const RequestInfo *ri)
{
        const char *name = cookie_name(ri);
        size_t name_len = strlen(name);
        _cleanup_free_ char *cookies = NULL;
        const char *value = NULL;
        size_t value_len = 0;
        Session *s = NULL;
        int n;

        n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
        if (n <= 0)
                return NULL;
        cookies = malloc((size_t)n + 1);
        if (!cookies || lws_hdr_copy(wsi, cookies, n + 1, WSI_TOKEN_HTTP_COOKIE) < 0)
                return NULL;

        for (char *p = cookies; *p;) {
                char *end = strchr(p, ';');
                if (end)
                        *end = '\0';
                while (*p == ' ' || *p == '\t')
                        p++;
                if (strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
                        /* Two of them: one was planted by another origin of this host name (a previewed
                         * page on another port, whose scripts may add one for a narrower path, which
                         * browsers send first). Neither is believed. */
                        if (value)
                                return NULL;
                        value = p + name_len + 1;
                        value_len = strcspn(value, " \t");
                }
                if (!end)
                        break;
                p = end + 1;
        }
        if (value)
                s = session_find(g->sessions, value, value_len, uv_now(g->loop));
        if (s) {
                Conn *conn = gateway_conn_of(wsi);
                if (conn)
                        conn_set_authenticated(conn, session_user(s));
        }
        return s;
}

/* ---- responses ---- */

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
        return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                           (int)strlen(value), p, end);
}

static int add_security_headers(struct lws *wsi, bool https, unsigned char **p, unsigned char *end)
{
        if (add_header(wsi, "content-security-policy:", CSP, p, end) ||
            add_header(wsi, "x-content-type-options:", "nosniff", p, end) ||
            add_header(wsi, "referrer-policy:", "no-referrer", p, end) ||
            add_header(wsi, "x-frame-options:", "DENY", p, end) ||
            add_header(wsi, "cross-origin-opener-policy:", "same-origin", p, end) ||
            add_header(wsi, "cross-origin-resource-policy:", "same-origin", p, end))
                return -1;
        if (https && add_header(wsi, "strict-transport-security:", "max-age=31536000", p, end))
                return -1;
        return 0;
}

/* Answer at once, from inside a callback where writing is allowed (the upgrade check). */
static int write_simple(struct lws *wsi, bool https, unsigned status, const char *text)
{
        unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
        unsigned char body[LWS_PRE + 256];
        size_t n = strlen(text);

        assert(n < sizeof(body) - LWS_PRE);
        if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8", n, &p, end) ||
            add_header(wsi, "cache-control:", "no-store", &p, end) ||
            add_security_headers(wsi, https, &p, end) || lws_finalize_write_http_header(wsi, start, &p, end))
                return -1;
        memcpy(body + LWS_PRE, text, n);
        if (lws_write(wsi, body + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) != (int)n)
                return -1;
        return 0;
}

/* Refuse a WebSocket upgrade, with one more header if header is not NULL. At that point libwebsockets has
 * not read the HTTP version yet and would answer "HTTP/1.0", which WebSocket clients reject as a
 * malformed answer; over HTTP/1 the status line is written here. */
static int refuse_upgrade(struct lws *wsi, bool https, unsigned status, const char *reason, const char *text,
                          const char *header, const char *value)
{
        unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
        char num[24];
        size_t n = strlen(text);
        int k;

        if (lws_get_network_wsi(wsi) != wsi)
                return write_simple(wsi, https, status, text);
        k = snprintf((char *)p, (size_t)(end - p), "HTTP/1.1 %u %s\x0d\x0a", status, reason);
        if (k < 0 || k >= end - p)
                return -1;
        p += k;
        (void)snprintf(num, sizeof(num), "%zu", n);
        if (add_header(wsi, "content-type:", "text/plain; charset=utf-8", &p, end) ||
            add_header(wsi, "content-length:", num, &p, end) ||
            add_header(wsi, "connection:", "close", &p, end) ||
            add_header(wsi, "cache-control:", "no-store", &p, end) ||
            add_security_headers(wsi, https, &p, end))
                return -1;
        if (header && add_header(wsi, header, value, &p, end))
                return -1;
        if ((size_t)(end - p) < n + 2)
                return -1;
        memcpy(p, "\x0d\x0a", 2);
        memcpy(p + 2, text, n);
        p += 2 + n;
        return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) == (int)(p - start) ? 0 : -1;
}

static void respond(HttpRequest *r, int status, const char *content_type)
{
        r->responding = true;
        r->status = status;
        r->content_type = content_type;
        if (!r->cache_control)
                r->cache_control = "no-store";
        lws_callback_on_writable(r->wsi);
}

static void respond_text(HttpRequest *r, int status, const char *text)
{
        r->body.len = 0;
        if (buf_append_str(&r->body, text) < 0 || buf_append(&r->body, "\n", 1) < 0) {
                buf_done(&r->body);
                status = 500;
        }
        respond(r, status, "text/plain; charset=utf-8");
}

/* {"error":"..."} for the JSON API. */
static void respond_json_error(HttpRequest *r, int status, const char *message)
{
        r->body.len = 0;
        if (buf_printf(&r->body, "{\"error\":\"%s\"}\n", message) < 0) {
                buf_done(&r->body);
                status = 500;
        }
        respond(r, status, "application/json");
}

static void respond_json(HttpRequest *r, int status)
{
        if (buf_append(&r->body, "\n", 1) < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        respond(r, status, "application/json");
}

static char *cookie_header(const RequestInfo *ri, const char *value, uint64_t max_age_s)
{
        char *s;

        if (asprintf(&s, "%s=%s; Path=/; Max-Age=%" PRIu64 "; HttpOnly; SameSite=Strict%s", cookie_name(ri),
                     value, max_age_s, ri->https ? "; Secure" : "") < 0)
                return NULL;
        return s;
}

static int write_headers(HttpRequest *r, uint64_t content_length)
{
        struct lws *wsi = r->wsi;
        unsigned char buf[LWS_PRE + 4096], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
        char num[24];

        if (r->status == 304) {
                if (lws_add_http_header_status(wsi, 304, &p, end))
                        return -1;
        } else if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->content_type, content_length, &p,
                                               end))
                return -1;
        if (add_header(wsi, "cache-control:", r->cache_control, &p, end) ||
            add_security_headers(wsi, r->info.https, &p, end))
                return -1;
        if (r->set_cookie && add_header(wsi, "set-cookie:", r->set_cookie, &p, end))
                return -1;
        if (r->retry_after) {
                (void)snprintf(num, sizeof(num), "%u", r->retry_after);
                if (add_header(wsi, "retry-after:", num, &p, end))
                        return -1;
        }
        if (r->allow && add_header(wsi, "allow:", r->allow, &p, end))
                return -1;
        if (r->upgrade_hint && add_header(wsi, "upgrade:", "websocket", &p, end))
                return -1;
        if (r->file_open || (r->status == 304 && r->file.etag[0])) {
                if (add_header(wsi, "etag:", r->file.etag, &p, end))
                        return -1;
                if (r->file.vary && add_header(wsi, "vary:", "Accept-Encoding", &p, end))
                        return -1;
                if (r->file.gzip && r->status != 304 &&
                    add_header(wsi, "content-encoding:", "gzip", &p, end))
                        return -1;
        }
        return lws_finalize_write_http_header(wsi, start, &p, end);
}

/* The transaction is over: get ready for the next request on the connection, or close it. */
static int finish(HttpRequest *r, ConnData *cd)
{
        struct lws *wsi = r->wsi;

        cd->request = NULL;
        http_request_free(r);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int on_writeable(HttpRequest *r, ConnData *cd)
{
        struct lws *wsi = r->wsi;
        uint64_t total = r->file_open ? r->file.size : r->body.len;

        if (!r->responding)
                return 0;
        if (!r->headers_sent) {
                if (write_headers(r, total) < 0) {
                        log_debug("Failed to write response headers (status %d).", r->status);
                        return -1;
                }
                r->headers_sent = true;
                if (r->head || total == 0 || r->status == 304)
                        return finish(r, cd);
                lws_callback_on_writable(wsi);
                return 0;
        }

        size_t sent = r->file_open ? (size_t)r->file_sent : r->body_sent;
        size_t chunk = MIN((size_t)(total - sent), (size_t)FILE_CHUNK);
        lws_fileofs_t allowance = lws_get_peer_write_allowance(wsi);
        unsigned char buf[LWS_PRE + FILE_CHUNK];
        ssize_t n;

        /* HTTP/2 flow control: never more than the peer's window. */
        if (allowance >= 0 && (lws_fileofs_t)chunk > allowance)
                chunk = (size_t)allowance;
        /* libwebsockets 4.1 sends each write as one DATA frame, and a peer takes frames of at most
         * 16 KiB unless it raised SETTINGS_MAX_FRAME_SIZE: a bigger one ends the whole connection
         * (GOAWAY FRAME_SIZE_ERROR). A stream's wsi is not its network connection's. */
        if (lws_get_network_wsi(wsi) != wsi)
                chunk = MIN(chunk, (size_t)H2_MAX_FRAME);
        if (chunk == 0) {
                lws_callback_on_writable(wsi);
                return 0;
        }
        if (r->file_open) {
                n = pread(r->file.fd, buf + LWS_PRE, chunk, (off_t)r->file_sent);
                if (n <= 0)
                        return -1; /* the file shrank under us: the length is already promised */
                chunk = (size_t)n;
        } else
                memcpy(buf + LWS_PRE, r->body.data + r->body_sent, chunk);

        bool last = sent + chunk == total;
        if (lws_write(wsi, buf + LWS_PRE, chunk, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)chunk)
                return -1;
        if (r->file_open)
                r->file_sent += chunk;
        else
                r->body_sent += chunk;
        if (last)
                return finish(r, cd);
        lws_callback_on_writable(wsi);
        return 0;
}

/* ---- routes ---- */

static void serve_healthz(HttpRequest *r)
{
        respond_text(r, r->gateway->stopping ? 503 : 200, r->gateway->stopping ? "stopping" : "ok");
}

static bool bearer_token_ok(Gateway *g, struct lws *wsi)
{
        char v[SHORT_HEADER_MAX];

        if (!g->metrics_token || !header_copy(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, v, sizeof(v)) ||
            strncasecmp(v, "Bearer ", 7) != 0)
                return false;
        return secret_equal(v + 7, strlen(v + 7), g->metrics_token, strlen(g->metrics_token));
}

static void serve_metrics(HttpRequest *r)
{
        Gateway *g = r->gateway;
        LauncherStats st;
        AuthStats as;

        /* Every local process could reach a loopback listener, a student's sandbox included: the token is
         * asked of everyone, and without one configured nobody gets the figures. */
        if (!bearer_token_ok(g, r->wsi)) {
                respond_text(r, 403,
                             g->metrics_token ? "Forbidden" : "Forbidden: no metrics_token_file is set");
                return;
        }
        launcher_get_stats(g->launcher, &st);
        auth_get_stats(g->auth, &as);
        g->metrics.login_checks_refused_queue_full = as.refused_queue_full;
        g->metrics.login_checks_refused_per_address = as.refused_per_client;
        g->metrics.login_checks_refused_timeout = as.refused_timeout;
        g->metrics.login_checks_queued = as.queued_now;
        g->metrics.sessions = session_store_count(g->sessions);
        g->metrics.worker_starts = st.worker_starts;
        /* helios-launcher starts the workers of many users and does not say how many run: the gateway
         * counts those its pages are connected to. */
        g->metrics.workers_running =
            launcher_single_user(g->launcher) ? st.workers_running : bridge_count_connected_workers(g);
        r->body.len = 0;
        if (metrics_render(&g->metrics, &r->body) < 0) {
                respond_text(r, 500, "Out of memory");
                return;
        }
        respond(r, 200, METRICS_CONTENT_TYPE);
}

static bool etag_matches(struct lws *wsi, const char *etag)
{
        _cleanup_free_ char *v = NULL;
        int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH);

        if (n <= 0 || !(v = malloc((size_t)n + 1)) ||
            lws_hdr_copy(wsi, v, n + 1, WSI_TOKEN_HTTP_IF_NONE_MATCH) < 0)
                return false;
        for (char *tok = strtok(v, ","); tok; tok = strtok(NULL, ",")) {
                while (*tok == ' ' || *tok == '\t')
                        tok++;
                if (strncmp(tok, "W/", 2) == 0)
                        tok += 2;
                size_t len = strcspn(tok, " \t");
                if ((len == 1 && *tok == '*') || (len == strlen(etag) && strncmp(tok, etag, len) == 0))
                        return true;
        }
        return false;
}

static void serve_static(HttpRequest *r, const char *path)
{
        char ae[SHORT_HEADER_MAX];
        bool gzip = header_copy(r->wsi, WSI_TOKEN_HTTP_ACCEPT_ENCODING, ae, sizeof(ae)) &&
                    accept_encoding_has_gzip(ae);
        int k;

        k = web_root_lookup(r->gateway->web, path, gzip, &r->file);
        if (k == -EINVAL) {
                respond_text(r, 400, "Bad Request");
                return;
        }
        if (k < 0) {
                if (k != -ENOENT)
                        log_debug_errno(k, "Cannot serve %s: %m", path);
                respond_text(r, 404, "Not Found");
                return;
        }
        r->cache_control = r->file.cache_control;
        if (etag_matches(r->wsi, r->file.etag)) {
                /* Keep the tag and Vary for the answer, not the file. */
                safe_close(r->file.fd);
                respond(r, 304, NULL);
                return;
        }
        r->file_open = true;
        respond(r, 200, r->file.content_type);
}

/* ---- login and logout ---- */

/* Credentials travel in the Authorization header of POST /login, never in a body: a page on another
 * site can neither send that header without a CORS preflight (which gets no CORS answer here) nor read
 * the result, and no request the gateway serves has a body to buffer. */
#define AUTHORIZATION_MAX 2048

/* The client's address as throttling and the credential checks count it. An IPv6 client controls at
 * least a /64: the prefix counts, not the address. */
static void client_key(const HttpRequest *r, char buf[NETADDR_STRLEN])
{
        NetAddr client = r->info.client;

        if (client.family == AF_INET6)
                memset(client.bytes + 8, 0, 8);
        netaddr_format(&client, buf);
}

static void log_login(const HttpRequest *r, int level, const char *user, const char *message)
{
        char a[NETADDR_STRLEN], f_user[16 + USER_NAME_MAX], f_addr[32 + NETADDR_STRLEN];
        const char *fields[] = {f_user, f_addr, "HELIOS_EVENT=login", NULL};

        netaddr_format(&r->info.client, a);
        (void)snprintf(f_user, sizeof(f_user), "HELIOS_USER=%s", user);
        (void)snprintf(f_addr, sizeof(f_addr), "HELIOS_CLIENT_ADDRESS=%s", a);
        log_struct(level, fields, "%s for %s from %s.", message, user, a);
}

static void on_auth_done(int result, const char *user, void *userdata)
{
        HttpRequest *r = userdata;
        Gateway *g = r->gateway;
        char addr[NETADDR_STRLEN], addr_text[NETADDR_STRLEN], cookie[SESSION_COOKIE_LEN + 1];
        uint64_t now = uv_now(g->loop);
        Session *s;
        int k;

        r->auth = NULL;
        client_key(r, addr);
        /* -EPERM: the name is refused by policy (root, a system account, not a possible name): to the
         * client, the same as a wrong password, answered as late. */
        if (result == -EACCES || result == -EPERM || (result >= 0 && !user)) {
                throttle_login_failed(g->throttle, addr, r->login_user, now);
                g->metrics.logins_failed++;
                log_login(r, LOG_NOTICE, r->login_user, "Failed login");
                respond_json_error(r, 401, "wrong user name or password");
                return;
        }
        if (result == -ETIMEDOUT || result == -ECANCELED) {
                log_login(r, LOG_WARNING, r->login_user,
                          result == -ETIMEDOUT ? "Credential check refused (waited too long for its turn)"
                                               : "Credential check refused (shutting down)");
                r->retry_after = 5;
                respond_json_error(r, 503, "busy; try again");
                return;
        }
        if (result < 0) {
                log_error_errno(result, "Checking credentials failed: %m");
                if (result == -EAGAIN)
                        r->retry_after = 1; /* the launcher is busy */
                else if (result == -ECONNREFUSED)
                        r->retry_after = 5; /* helios-launcher is not running (restarting, say) */
                respond_json_error(r, 503, "credentials cannot be checked now");
                return;
        }

        netaddr_format(&r->info.client, addr_text);
        k = session_create(g->sessions, user, addr_text, now, &s, cookie);
        if (k < 0) {
                log_warning_errno(k, "Cannot open a session for %s: %m", user);
                r->retry_after = 60;
                respond_json_error(r, 503, "too many sessions");
                return;
        }
        throttle_login_succeeded(g->throttle, addr, user);
        /* PAM's account management has just said yes. A password from the users file is taken as good
         * for now, and the account asked about at once: a no ends the new session with the others. */
        account_checks_passed(g->accounts, user, now);
        if (auth_method(g->auth) != AUTH_METHOD_PAM)
                account_checks_start(g->accounts, user, now);
        g->metrics.logins_ok++;
        log_login(r, LOG_INFO, user, "Login");

        Conn *conn = gateway_conn_of(r->wsi);
        if (conn)
                conn_set_authenticated(conn, user);
        r->set_cookie = cookie_header(&r->info, cookie, g->config->session_lifetime_ms / 1000);
        explicit_bzero(cookie, sizeof(cookie));
        r->body.len = 0;
        if (!r->set_cookie || buf_append_str(&r->body, "{\"user\":\"") < 0 ||
            json_escape_append(&r->body, user, strlen(user)) < 0 || buf_append_str(&r->body, "\"}") < 0) {
                session_end(g->sessions, s, SESSION_END_REVOKED);
                respond_json_error(r, 500, "out of memory");
                return;
        }
        respond_json(r, 200);
}

/* "Basic base64(user:password)" or "Bearer token", split into user (NULL for Bearer) and secret, in
 * buf. */
static int parse_authorization(char *value, char *buf, size_t size, const char **ret_user,
                               const char **ret_secret)
{
        if (strncasecmp(value, "Bearer ", 7) == 0) {
                const char *t = value + 7;
                while (*t == ' ')
                        t++;
                if (strlen(t) >= size)
                        return -EINVAL;
                strcpy(buf, t);
                *ret_user = NULL;
                *ret_secret = buf;
                return 0;
        }
        if (strncasecmp(value, "Basic ", 6) == 0) {
                const char *b = value + 6;
                size_t n;
                char *colon;
                while (*b == ' ')
                        b++;
                if (base64_decode_into(b, strlen(b), BASE64_STANDARD, BASE64_PAD_OPTIONAL, (uint8_t *)buf,
                                       size - 1, &n) < 0 ||
                    memchr(buf, '\0', n))
                        return -EINVAL;
                buf[n] = '\0';
                colon = strchr(buf, ':');
                if (!colon)
                        return -EINVAL;
                *colon = '\0';
                *ret_user = buf;
                *ret_secret = colon + 1;
                return 0;
        }
        return -EINVAL;
}

static void serve_login(HttpRequest *r)
{
        Gateway *g = r->gateway;
        char value[AUTHORIZATION_MAX], creds[AUTHORIZATION_MAX], addr[NETADDR_STRLEN];
        const char *user = NULL, *secret = NULL;
        uint64_t now = uv_now(g->loop), wait;
        int k;

        /* A client address that keeps failing is turned away before anything else. */
        client_key(r, addr);
        wait = throttle_login_wait(g->throttle, addr, NULL, now);
        if (wait > 0)
                goto throttled;

        if (!header_copy(r->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, value, sizeof(value)) ||
            parse_authorization(value, creds, sizeof(creds), &user, &secret) < 0 || !*secret) {
                explicit_bzero(value, sizeof(value));
                explicit_bzero(creds, sizeof(creds));
                respond_json_error(r, 400,
                                   "credentials expected in an Authorization header (Basic or Bearer)");
                return;
        }
        explicit_bzero(value, sizeof(value));
        if (auth_method(g->auth) == AUTH_METHOD_TOKEN)
                /* One account; the token may come as Bearer or as a Basic password with any name. */
                user = launcher_single_user(g->launcher);
        /* A name that cannot be an account is refused by the check, as late as a wrong password; "-" (no
         * account's name) stands for it in the log and the throttle. */
        strcpy(r->login_user, user && user_name_is_valid(user) ? user : "-");

        wait = throttle_login_wait(g->throttle, addr, r->login_user, now);
        if (wait > 0) {
                explicit_bzero(creds, sizeof(creds));
                goto throttled;
        }

        k = auth_verify(g->auth, user, secret, addr, on_auth_done, r, &r->auth);
        explicit_bzero(creds, sizeof(creds));
        if (k == -EBUSY) {
                log_login(r, LOG_WARNING, r->login_user, "Credential check refused (the queue is full)");
                r->retry_after = 5;
                respond_json_error(r, 503, "busy; try again");
        } else if (k == -EUSERS) {
                log_login(r, LOG_WARNING, r->login_user,
                          "Credential check refused (too many in progress from the address)");
                r->retry_after = 2;
                respond_json_error(r, 429, "too many logins in progress; try again");
        } else if (k == -ECONNREFUSED) {
                /* helios-launcher is not running (restarting, say). */
                r->retry_after = 5;
                respond_json_error(r, 503, "credentials cannot be checked now");
        } else if (k < 0) {
                log_error_errno(k, "Cannot check credentials: %m");
                respond_json_error(r, 500, "cannot check credentials");
        }
        return;

throttled:
        g->metrics.logins_throttled++;
        r->retry_after = (unsigned)((wait + 999) / 1000);
        respond_json_error(r, 429, "too many failed logins; try again later");
}

static void serve_logout(HttpRequest *r)
{
        Gateway *g = r->gateway;

        if (r->session) {
                log_login(r, LOG_INFO, session_user(r->session), "Logout");
                session_end(g->sessions, r->session, SESSION_END_LOGOUT);
                r->session = NULL;
        }
        r->set_cookie = cookie_header(&r->info, "", 0);
        r->body.len = 0;
        if (!r->set_cookie || buf_append_str(&r->body, "{\"ok\":true}") < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        respond_json(r, 200);
}

/* ---- the session API ---- */

static int append_session_json(Buf *b, Gateway *g, const Session *s, bool current)
{
        const char *u = session_user(s);

        if (buf_append_str(b, "{\"id\":\"") < 0 || buf_append_str(b, session_handle(s)) < 0 ||
            buf_append_str(b, "\",\"user\":\"") < 0 || json_escape_append(b, u, strlen(u)) < 0)
                return -ENOMEM;
        return buf_printf(
            b, "\",\"created\":%" PRIu64 ",\"lastUsed\":%" PRIu64 ",\"expires\":%" PRIu64 ",\"current\":%s}",
            gateway_wall_ms(g, session_created_ms(s)), gateway_wall_ms(g, session_last_used_ms(s)),
            gateway_wall_ms(g, session_expires_ms(g->sessions, s)), current ? "true" : "false");
}

static void serve_session(HttpRequest *r)
{
        r->body.len = 0;
        if (append_session_json(&r->body, r->gateway, r->session, true) < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        respond_json(r, 200);
}

typedef struct ListContext {
        Buf *buf;
        Gateway *gateway;
        const Session *current;
        bool first;
        int error;
} ListContext;

static void list_one(const Session *s, void *userdata)
{
        ListContext *c = userdata;

        if (c->error < 0)
                return;
        if (!c->first && buf_append(c->buf, ",", 1) < 0) {
                c->error = -ENOMEM;
                return;
        }
        c->first = false;
        c->error = append_session_json(c->buf, c->gateway, s, s == c->current);
}

static void serve_sessions(HttpRequest *r)
{
        ListContext c = {&r->body, r->gateway, r->session, true, 0};

        r->body.len = 0;
        if (buf_append_str(&r->body, "{\"sessions\":[") < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        session_store_foreach_of_user(r->gateway->sessions, session_user(r->session), list_one, &c);
        if (c.error < 0 || buf_append_str(&r->body, "]}") < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        respond_json(r, 200);
}

static void serve_revoke(HttpRequest *r)
{
        Gateway *g = r->gateway;
        char arg[64];
        const char *id = lws_get_urlarg_by_name(r->wsi, "id=", arg, sizeof(arg));
        Session *s;

        s = id && strlen(id) == SESSION_HANDLE_LEN
                ? session_find_by_handle(g->sessions, session_user(r->session), id)
                : NULL;
        if (!s) {
                respond_json_error(r, 404, "no such session");
                return;
        }
        log_login(r, LOG_INFO, session_user(s), "Session revoked");
        if (s == r->session)
                r->session = NULL;
        session_end(g->sessions, s, SESSION_END_REVOKED);
        r->body.len = 0;
        if (buf_append_str(&r->body, "{\"ok\":true}") < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        respond_json(r, 200);
}

/* POST /api/preview?port=N -> {url, port}: a link that opens the preview of the user's port N, on the
 * preview origin, with a ticket good once for a minute. Only the page itself may ask: the Origin must be
 * present and the page's own, so no other origin (a previewed page included, which shares the IDE's
 * cookies when only the port differs) can have a ticket made, let alone read it. */
static void serve_preview(HttpRequest *r)
{
        Gateway *g = r->gateway;
        char arg[16], origin[SHORT_HEADER_MAX], ticket[PREVIEW_TICKET_LEN + 1], url[SHORT_HEADER_MAX + 128];
        const char *port_text = lws_get_urlarg_by_name(r->wsi, "port=", arg, sizeof(arg));
        uint64_t port;

        if (!g->preview) {
                respond_json_error(r, 404, "previews are not enabled (preview_listen)");
                return;
        }
        if (!header_copy(r->wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) ||
            !origin_allowed(g, &r->info, origin)) {
                respond_json_error(r, 403, "cross-origin request refused");
                return;
        }
        if (!port_text || parse_uint(port_text, 1, 65535, &port) < 0) {
                respond_json_error(r, 400, "port must be from 1 to 65535");
                return;
        }
        if (preview_ticket_new(g->preview, r->session, (uint16_t)port, ticket) < 0) {
                respond_json_error(r, 500, "out of memory");
                return;
        }
        if (g->config->preview_origin)
                (void)snprintf(url, sizeof(url), "%s", g->config->preview_origin);
        else {
                /* The page's own host name with the preview listener's port. */
                const char *h = r->info.host;
                size_t n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":");
                (void)snprintf(url, sizeof(url), "%s://%.*s:%u", r->info.https ? "https" : "http", (int)n, h,
                               preview_port(g->preview));
        }
        r->body.len = 0;
        if (buf_printf(&r->body, "{\"url\":\"%s" PREVIEW_LOGIN_PATH "?ticket=%s\",\"port\":%u}", url, ticket,
                       (unsigned)port) < 0) {
                explicit_bzero(ticket, sizeof(ticket));
                respond_json_error(r, 500, "out of memory");
                return;
        }
        explicit_bzero(ticket, sizeof(ticket));
        respond_json(r, 200);
}

/* ---- dispatch ---- */

/* The method as one of LWSHUMETH_*. For HTTP/2 libwebsockets reports only that there is a :path; the
 * method is then in :method. */
static int request_method(struct lws *wsi, char **ret_uri, int *ret_len)
{
        char m[16];
        int method = lws_http_get_uri_and_method(wsi, ret_uri, ret_len);

        if (method != LWSHUMETH_COLON_PATH)
                return method;
        if (!header_copy(wsi, WSI_TOKEN_HTTP_COLON_METHOD, m, sizeof(m)))
                return -1;
        if (streq(m, "GET"))
                return LWSHUMETH_GET;
        if (streq(m, "POST"))
                return LWSHUMETH_POST;
        if (streq(m, "HEAD"))
                return LWSHUMETH_HEAD;
        return LWSHUMETH_OPTIONS; /* anything else is refused the same way */
}

static Route route_of(const char *path)
{
        static const struct {
                const char *path;
                Route route;
        } table[] = {
            {"/login", ROUTE_LOGIN},
            {"/logout", ROUTE_LOGOUT},
            {"/api/session", ROUTE_SESSION},
            {"/api/sessions", ROUTE_SESSIONS},
            {"/api/sessions/revoke", ROUTE_REVOKE},
            {"/api/preview", ROUTE_PREVIEW},
            {"/healthz", ROUTE_HEALTHZ},
            {"/metrics", ROUTE_METRICS},
            {"/ws", ROUTE_WS},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(path, table[i].path))
                        return table[i].route;
        return ROUTE_STATIC;
}

static bool route_is_post(Route route)
{
        return route == ROUTE_LOGIN || route == ROUTE_LOGOUT || route == ROUTE_REVOKE ||
               route == ROUTE_PREVIEW;
}

/* A state-changing request from a browser carries an Origin; it must be ours. Requests without one come
 * from programs, which no cross-site page can drive. */
static bool post_origin_ok(Gateway *g, struct lws *wsi, const RequestInfo *ri)
{
        char origin[SHORT_HEADER_MAX];

        if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
                return true;
        return header_copy(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) && origin_allowed(g, ri, origin);
}

/* No request here has a body; POSTs carry what they need in headers and the query. libwebsockets 4.1
 * can answer a request with a body only from inside the callback that completes it (it spins if the
 * answer comes later), so a body is refused at once and the connection closed (an unread body would
 * read as the next request). An HTTP/1 POST must say Content-Length: 0: without it libwebsockets
 * expects a body of up to 100 MiB. */
static int refuse_body(struct lws *wsi, bool post)
{
        bool https = lws_is_ssl(wsi), h2 = lws_get_network_wsi(wsi) != wsi;
        char cl[32];

        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0 ||
            (header_copy(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof(cl)) &&
             strspn(cl, "0") != strlen(cl))) {
                (void)write_simple(wsi, https, 413, "Request bodies are not accepted\n");
                return -1;
        }
        if (post && !h2 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
                (void)write_simple(wsi, https, 411, "Content-Length: 0 required\n");
                return -1;
        }
        return 0;
}

static void request_start(HttpRequest *r, const char *path, int method)
{
        Gateway *g = r->gateway;
        bool post = method == LWSHUMETH_POST;

        r->route = route_of(path);
        r->head = method == LWSHUMETH_HEAD;
        if (!r->info.host[0]) {
                respond_text(r, 400, "Bad Request: a Host header is required");
                return;
        }
        if (!host_allowed(g, r->wsi, &r->info)) {
                respond_text(r, 421, "Misdirected Request: not a name this server answers to");
                return;
        }
        r->session = request_session(g, r->wsi, &r->info);

        if (route_is_post(r->route) != post || (!post && method != LWSHUMETH_GET && !r->head)) {
                r->allow = route_is_post(r->route) ? "POST" : "GET, HEAD";
                respond_text(r, 405, "Method Not Allowed");
                return;
        }
        if (post && !post_origin_ok(g, r->wsi, &r->info)) {
                respond_json_error(r, 403, "cross-origin request refused");
                return;
        }

        switch (r->route) {
        case ROUTE_HEALTHZ:
                serve_healthz(r);
                return;
        case ROUTE_METRICS:
                serve_metrics(r);
                return;
        case ROUTE_WS:
                /* Reached only without an upgrade; the upgrade is checked in http_confirm_upgrade(). */
                r->upgrade_hint = true;
                respond_text(r, 426, "Upgrade Required");
                return;
        case ROUTE_LOGIN:
                serve_login(r);
                return;
        case ROUTE_LOGOUT:
                serve_logout(r);
                return;
        case ROUTE_SESSION:
        case ROUTE_SESSIONS:
        case ROUTE_REVOKE:
        case ROUTE_PREVIEW:
                if (!r->session) {
                        /* The login page needs to know which form to show. */
                        r->body.len = 0;
                        if (buf_printf(&r->body, "{\"error\":\"not logged in\",\"login\":\"%s\"}",
                                       auth_method(g->auth) == AUTH_METHOD_TOKEN ? "token" : "password") <
                            0) {
                                respond_json_error(r, 500, "out of memory");
                                return;
                        }
                        respond_json(r, 401);
                        return;
                }
                if (r->route == ROUTE_SESSION)
                        serve_session(r);
                else if (r->route == ROUTE_SESSIONS)
                        serve_sessions(r);
                else if (r->route == ROUTE_PREVIEW)
                        serve_preview(r);
                else
                        serve_revoke(r);
                return;
        case ROUTE_STATIC:
                serve_static(r, path);
                return;
        default:
                respond_text(r, 500, "Internal Server Error");
        }
}

int http_callback(Gateway *g, struct lws *wsi, enum lws_callback_reasons reason, ConnData *cd, void *in,
                  size_t len)
{
        HttpRequest *r = cd ? cd->request : NULL;

        switch (reason) {
        case LWS_CALLBACK_HTTP: {
                char *uri;
                int uri_len, method;

                if (!cd)
                        return -1;
                http_request_free(cd->request);
                cd->request = NULL;
                g->metrics.http_requests++;
                method = request_method(wsi, &uri, &uri_len);
                if (refuse_body(wsi, method == LWSHUMETH_POST) < 0)
                        return -1;
                r = cd->request = calloc(1, sizeof(HttpRequest));
                if (!r)
                        return -1;
                r->gateway = g;
                r->wsi = wsi;
                request_info_init(g, wsi, &r->info);
                request_start(r, (const char *)in, method);
                return 0;
        }
        case LWS_CALLBACK_HTTP_BODY:
                /* A POST with Content-Length: 0 gets one empty piece; anything more is a body that got
                 * past refuse_body() (HTTP/2 without a length). */
                return len == 0 ? 0 : -1;
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
                /* Nothing to wait for: the answer goes out from the writeable callback. */
                return 0;
        case LWS_CALLBACK_HTTP_WRITEABLE:
                return r ? on_writeable(r, cd) : 0;
        case LWS_CALLBACK_CLOSED_HTTP:
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
                if (cd) {
                        http_request_free(cd->request);
                        cd->request = NULL;
                }
                return 0;
        default:
                return 0;
        }
}

/* ---- the WebSocket handshake (RFC 6455 §4.2.1, RFC 7692) ---- */

/* The one subprotocol a page may name. */
#define WS_SUBPROTOCOL "helios"
/* libwebsockets 4.1 reads at most this much of Sec-WebSocket-Protocol and of Sec-WebSocket-Extensions,
 * and ends the connection without an answer when either is longer. */
#define WS_PROTOCOL_HEADER_MAX  127
#define WS_EXTENSION_HEADER_MAX 254

/* Sec-WebSocket-Key: the base64 of 16 bytes, nothing else. */
static bool ws_key_ok(struct lws *wsi)
{
        char key[64];
        uint8_t raw[16];
        size_t n;

        if (!header_copy(wsi, WSI_TOKEN_KEY, key, sizeof(key)) || strlen(key) != 24)
                return false;
        return base64_decode_into(key, 24, BASE64_STANDARD, BASE64_PAD_REQUIRED, raw, sizeof(raw), &n) ==
                   0 &&
               n == 16;
}

/* Does a comma-separated list of tokens (Sec-WebSocket-Protocol) name ours? */
static bool list_has_token(const char *list, const char *token)
{
        size_t len = strlen(token);

        for (const char *p = list; *p;) {
                size_t k;

                p += strspn(p, " \t,");
                k = strcspn(p, " \t,");
                if (k == len && strncmp(p, token, len) == 0)
                        return true;
                p += k;
        }
        return false;
}

/* The subprotocols offered are fine if there are none or ours is among them. */
static bool ws_subprotocols_ok(struct lws *wsi)
{
        char v[WS_PROTOCOL_HEADER_MAX + 1];
        int n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);

        if (n <= 0)
                return true;
        return header_copy(wsi, WSI_TOKEN_PROTOCOL, v, sizeof(v)) && list_has_token(v, WS_SUBPROTOCOL);
}

/* A window-bits value of a permessage-deflate parameter: 8 to 15, as a token or a quoted string. */
static bool window_bits_ok(const char *v, size_t len)
{
        if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
                v++;
                len -= 2;
        }
        if (len == 1)
                return v[0] >= '8' && v[0] <= '9';
        return len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5';
}

/* One permessage-deflate offer's parameters (what follows its name, up to the next offer), checked as
 * RFC 7692 §7.1 says and against what libwebsockets 4.1 can honour: true to accept the offer. */
static bool deflate_params_acceptable(const char *p, size_t len)
{
        static const char *const names[] = {"server_no_context_takeover", "client_no_context_takeover",
                                            "server_max_window_bits", "client_max_window_bits"};
        bool seen[ELEMENTSOF(names)] = {};
        const char *end = p + len;

        while (p < end) {
                const char *param, *eq, *stop;
                size_t name_len, i;

                p += strspn(p, " \t");
                if (p >= end)
                        break;
                if (*p != ';')
                        return false;
                p++;
                p += strspn(p, " \t");
                param = p;
                stop = memchr(p, ';', (size_t)(end - p)) ?: end;
                while (stop > param && (stop[-1] == ' ' || stop[-1] == '\t'))
                        stop--;
                eq = memchr(param, '=', (size_t)(stop - param));
                name_len = (size_t)((eq ?: stop) - param);
                while (name_len > 0 && (param[name_len - 1] == ' ' || param[name_len - 1] == '\t'))
                        name_len--;
                for (i = 0; i < ELEMENTSOF(names); i++)
                        if (strlen(names[i]) == name_len && strncmp(param, names[i], name_len) == 0)
                                break;
                if (i == ELEMENTSOF(names) || seen[i])
                        return false; /* unknown or repeated */
                seen[i] = true;
                if (eq) {
                        const char *v = eq + 1;
                        v += strspn(v, " \t");
                        /* Only the window sizes take a value. */
                        if (i < 2 || !window_bits_ok(v, (size_t)(stop - v)))
                                return false;
                } else if (i == 2)
                        return false; /* server_max_window_bits needs its value */
                /* libwebsockets 4.1 answers only parameters without a value: it cannot confirm a
                 * server_max_window_bits, so such an offer is declined (RFC 7692 §7.1.2.1). */
                if (i == 2)
                        return false;
                p = stop;
                p += strspn(p, " \t");
                if (p < end && *p != ';')
                        return false;
        }
        return true;
}

int http_confirm_extension(Gateway *g, struct lws *wsi, const char *name)
{
        char v[WS_EXTENSION_HEADER_MAX + 1];
        const char *p;

        if (!name || !streq(name, "permessage-deflate") ||
            !header_copy(wsi, WSI_TOKEN_EXTENSIONS, v, sizeof(v)))
                return 1;
        /* libwebsockets applies the parameters of the first permessage-deflate offer it accepts; decide on
         * the first one, and give every later call the same answer. */
        for (p = v; *p;) {
                size_t k, name_len;

                p += strspn(p, " \t,");
                k = strcspn(p, ",");
                name_len = strcspn(p, " \t;,");
                if (name_len == strlen("permessage-deflate") &&
                    strncmp(p, "permessage-deflate", name_len) == 0)
                        return deflate_params_acceptable(p + name_len, k - name_len) ? 0 : 1;
                p += k;
        }
        return 1;
}

/* What every WebSocket upgrade must show, checked where its headers are visible. On refusal *ret_status
 * and friends say how to answer; the session is returned for the caller to note. */
typedef struct UpgradeRefusal {
        unsigned status;
        const char *reason, *text;
        const char *header, *value;
} UpgradeRefusal;

static Session *upgrade_check(Gateway *g, struct lws *wsi, const RequestInfo *ri, UpgradeRefusal *ret)
{
        char *uri, origin[SHORT_HEADER_MAX], version[8];
        int uri_len;
        Session *s;

        *ret = (UpgradeRefusal){};
        if (!ri->host[0]) {
                *ret = (UpgradeRefusal){400, "Bad Request", "A Host header is required\n"};
                return NULL;
        }
        if (!host_allowed(g, wsi, ri)) {
                *ret = (UpgradeRefusal){421, "Misdirected Request", "Not a name this server answers to\n"};
                return NULL;
        }
        if (request_method(wsi, &uri, &uri_len) != LWSHUMETH_GET || uri_len != 3 ||
            strncmp(uri, "/ws", 3) != 0) {
                *ret = (UpgradeRefusal){404, "Not Found", "Not Found\n"};
                return NULL;
        }
        if (!header_copy(wsi, WSI_TOKEN_VERSION, version, sizeof(version)) || !streq(version, "13")) {
                *ret = (UpgradeRefusal){426, "Upgrade Required", "Sec-WebSocket-Version 13 required\n",
                                        "sec-websocket-version:", "13"};
                return NULL;
        }
        if (!ws_key_ok(wsi)) {
                *ret = (UpgradeRefusal){400, "Bad Request", "Malformed Sec-WebSocket-Key\n"};
                return NULL;
        }
        s = request_session(g, wsi, ri);
        if (!s) {
                *ret = (UpgradeRefusal){401, "Unauthorized", "Not logged in\n"};
                return NULL;
        }
        /* The cookie would ride along on a request from any site; only our own pages may use it for a
         * WebSocket (browsers do not apply CORS to the upgrade). */
        if (!header_copy(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin)) || !origin_allowed(g, ri, origin)) {
                char a[NETADDR_STRLEN];
                netaddr_format(&ri->client, a);
                log_notice("Refused a WebSocket for %s from %s: Origin %s.", session_user(s), a,
                           lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 ? "not allowed" : "missing");
                *ret = (UpgradeRefusal){403, "Forbidden", "Origin not allowed\n"};
                return NULL;
        }
        /* libwebsockets 4.1 cannot leave out Sec-WebSocket-Protocol (RFC 6455 §4.2.2): it ends the
         * connection when none offered is known. A client that insists on a subprotocol would fail the
         * connection without it anyway; it is told why instead. */
        if (!ws_subprotocols_ok(wsi)) {
                *ret = (UpgradeRefusal){400, "Bad Request",
                                        "Only the subprotocol " WS_SUBPROTOCOL " is supported\n"};
                return NULL;
        }
        if (lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) > WS_EXTENSION_HEADER_MAX) {
                *ret = (UpgradeRefusal){400, "Bad Request", "Sec-WebSocket-Extensions too long\n"};
                return NULL;
        }
        /* A page connects only while the account may still log in (not locked or expired since). The
         * upgrade cannot wait for the launcher's answer: when it is not known lately, the page is asked
         * to come back in a second, by which time it is. */
        switch (account_checks_admit(g->accounts, session_user(s), uv_now(g->loop))) {
        case 0:
                break;
        case -EPERM:
                *ret = (UpgradeRefusal){403, "Forbidden", "Account disabled\n"};
                return NULL;
        default:
                *ret = (UpgradeRefusal){503, "Service Unavailable", "Checking the account; try again\n",
                                        "retry-after:", "1"};
                return NULL;
        }
        return s;
}

int http_confirm_upgrade(Gateway *g, struct lws *wsi)
{
        UpgradeRefusal no;
        RequestInfo ri;

        request_info_init(g, wsi, &ri);
        if (upgrade_check(g, wsi, &ri, &no))
                return 0;
        return refuse_upgrade(wsi, ri.https, no.status, no.reason, no.text, no.header, no.value) < 0 ? -1
                                                                                                     : 1;
}

int http_upgrade_session(Gateway *g, struct lws *wsi, ConnData *cd)
{
        UpgradeRefusal no;
        RequestInfo ri;
        Session *s;

        /* Every way to a WebSocket passes here, so every check is made here again: nothing depends on the
         * library having called http_confirm_upgrade() first. */
        request_info_init(g, wsi, &ri);
        s = upgrade_check(g, wsi, &ri, &no);
        if (!s)
                return -1;
        memcpy(cd->session_handle, session_handle(s), sizeof(cd->session_handle));
        return 0;
}
