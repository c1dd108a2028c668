/* SPDX-License-Identifier: MIT */
/* The gateway's life cycle: libwebsockets on this process's libuv loop, the listener feeding it, the
 * embedded launcher, signals, reloading, and the service manager's notifications. */
#include "server.h"

#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "gateway.h"
#include "log.h"
#include "macro.h"
#include "users-file.h"
#include "worker-settings.h"

/* WebSocket payload read per callback. Allocated per open WebSocket, so it is kept small: a large
 * message just arrives in more pieces. */
#define WS_RX_BUFFER (16u * 1024u)
/* Most libwebsockets sends per write; the rest of a larger write is copied and sent on the next turn.
 * As large as a read from the worker, so a piece of a message goes out in one system call. */
#define WS_TX_PACKET (GATEWAY_READ_BUFFER + 64u)
/* How long open WebSockets get to close cleanly at shutdown. */
#define SHUTDOWN_GRACE_MS 2000u
#define SHUTDOWN_POLL_MS  20u
/* Periodic work: session expiry, the status line, the watchdog. */
#define TICK_MS 1000u
/* Longest token or metrics token file read. */
#define SECRET_FILE_MAX 4096u

/* Logins are saved to the state directory when one begins or ends, and their last use at most this
 * often, so a restart loses at most this much of the idle clock. */
#define SESSIONS_FILE    "sessions"
#define SESSIONS_SAVE_MS (60u * 1000u)

static int lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

static const struct lws_protocols protocols[] = {
    /* WebSocket upgrades without a subprotocol land on the first protocol, and so does HTTP. */
    {"helios", lws_callback, sizeof(ConnData), WS_RX_BUFFER, 0, NULL, WS_TX_PACKET},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL},
};

/* The gateway pings silent pages itself (bridge_tick()): libwebsockets' own keepalive writes its ping
 * into the one slot that holds the pong it owes the page, so a page's ping meeting it went unanswered. */
static const lws_retry_bo_t ws_idle_policy = {
    .secs_since_valid_ping = UINT16_MAX,
    .secs_since_valid_hangup = UINT16_MAX,
};

/* ---- libwebsockets glue ---- */

static void on_lws_log(int level, const char *line)
{
        size_t n = strlen(line);

        /* Its errors are mostly about what clients sent, and some of its "errors" are notes made for every
         * connection (adopt_socket_readbuf): worth a look while debugging, never at the default level. What
         * an admin must know (a certificate that cannot be used) the gateway checks and says itself. */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
                n--;
        log_full_errno(LOG_DEBUG, 0, "libwebsockets: %.*s", (int)n, line);
}

static int adopt(Conn *conn, int fd, const char *buf, size_t len, void *userdata)
{
        Gateway *g = userdata;
        struct lws *wsi;
        bool served;

        if (g->stopping || !g->vhost) {
                safe_close(fd);
                return -ESHUTDOWN;
        }
        /* The bytes already read are served inside the adoption call, before it returns, and the
         * library sets the wsi's opaque pointer to NULL after creating it: lws_callback() attaches the
         * connection to the new wsi on its first callback instead (see adopt_fixup()). From then on the
         * wsi owns it and hands it back in LWS_CALLBACK_WSI_DESTROY, which may come after this returns,
         * even when it returns NULL. The connection is found through the network wsi whenever it or an
         * HTTP/2 stream on it is served. */
        g->adopting = conn;
        g->adopting_wsi = NULL;
        g->adopt_attached = false;
        wsi = lws_adopt_socket_vhost_readbuf(g->vhost, fd, buf, len);
        served = g->adopt_attached;
        g->adopting = NULL;
        g->adopting_wsi = NULL;
        if (!wsi)
                /* Closed during the call: attached means the wsi releases the connection. */
                return served ? 0 : -ENOMEM;
        if (!lws_get_opaque_user_data(wsi))
                lws_set_opaque_user_data(wsi, conn);
        return 0;
}

/* Every client behind a trusted proxy comes from its address: no per-address cap for it. */
static bool peer_is_proxy(const NetAddr *peer, void *userdata)
{
        Gateway *g = userdata;

        return netprefix_list_contains(g->trusted_proxies, g->n_trusted_proxies, peer);
}

/* During adopt(): give the new wsi its connection as soon as the library lets it keep it. */
static void adopt_fixup(Gateway *g, struct lws *wsi, enum lws_callback_reasons reason)
{
        if (reason == LWS_CALLBACK_WSI_CREATE) {
                if (!g->adopting_wsi)
                        g->adopting_wsi = wsi;
                return;
        }
        if (wsi == g->adopting_wsi && !lws_get_opaque_user_data(wsi)) {
                lws_set_opaque_user_data(wsi, g->adopting);
                g->adopt_attached = true;
        }
}

static int on_established(Gateway *g, struct lws *wsi, ConnData *cd)
{
        Session *s = session_find_by_handle(g->sessions, NULL, cd->session_handle);
        int r;

        if (!s || g->stopping) {
                lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"session ended",
                                 13);
                return -1;
        }
        /* libwebsockets 4.1 on a server without a listening port of its own swaps the two sides'
         * permessage-deflate settings: a client's server_no_context_takeover would reset its inflater
         * after each message (while the client keeps its context) instead of the deflater. The deflater
         * is reset after every message anyway (bridge_new()), which is what the client asked for; the
         * inflater keeps its context. */
        (void)lws_set_extension_option(wsi, "permessage-deflate", "server_no_context_takeover", "0");
        r = bridge_new(g, wsi, s, &cd->bridge);
        if (r < 0) {
                log_error_errno(r, "Cannot open a page's connection: %m");
                return -1;
        }
        return 0;
}

static int lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
        struct lws_context *ctx = lws_get_context(wsi);
        Gateway *g = ctx ? lws_context_user(ctx) : NULL;
        ConnData *cd = user;

        if (!g)
                return lws_callback_http_dummy(wsi, reason, user, in, len);
        if (g->adopting)
                adopt_fixup(g, wsi, reason);

        switch (reason) {
        case LWS_CALLBACK_WSI_DESTROY: {
                Conn *c = lws_get_opaque_user_data(wsi);
                if (c) {
                        lws_set_opaque_user_data(wsi, NULL);
                        conn_closed(c);
                }
                return 0;
        }
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
                if (!in || strcasecmp(in, "websocket") != 0)
                        return -1;
                return http_confirm_upgrade(g, wsi);
        }
        case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
                return http_confirm_extension(g, wsi, in);
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
                return cd ? http_upgrade_session(g, wsi, cd) : -1;
        case LWS_CALLBACK_ESTABLISHED:
                return cd ? on_established(g, wsi, cd) : -1;
        case LWS_CALLBACK_RECEIVE:
                return cd && cd->bridge ? bridge_receive(cd->bridge, in, len) : -1;
        case LWS_CALLBACK_RECEIVE_PONG:
                if (cd && cd->bridge)
                        bridge_heard(cd->bridge);
                return 0;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
                /* A close payload is empty or starts with a 2-byte code (RFC 6455 §5.5.1); the library
                 * checks the code and the reason's UTF-8, not a lone byte. */
                if (len == 1) {
                        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR,
                                         (unsigned char *)"bad close frame", 15);
                        return -1;
                }
                if (cd && cd->bridge)
                        bridge_peer_closed(cd->bridge);
                return 0;
        case LWS_CALLBACK_SERVER_WRITEABLE:
                return cd && cd->bridge ? bridge_writeable(cd->bridge) : 0;
        case LWS_CALLBACK_CLOSED:
                if (cd && cd->bridge) {
                        bridge_ws_closed(cd->bridge);
                        cd->bridge = NULL;
                }
                return 0;
        case LWS_CALLBACK_HTTP:
        case LWS_CALLBACK_HTTP_BODY:
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        case LWS_CALLBACK_HTTP_WRITEABLE:
        case LWS_CALLBACK_CLOSED_HTTP:
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
                return http_callback(g, wsi, reason, cd, in, len);
        default:
                return lws_callback_http_dummy(wsi, reason, user, in, len);
        }
}

/* The vhost new connections are adopted into. With TLS it holds the certificate: a reload that finds new
 * files makes a new one, and the earlier ones keep serving the connections they have until the context
 * ends (the library offers no way to swap a vhost's certificate from files, nor to adopt into it once
 * destroyed). */
/* What the context is made with; a vhost is made with the same, plus its own fields, as the library
 * reads some of them (TLS options, timeouts) again for each vhost. */
static void context_info(Gateway *g, void **foreign_loops, struct lws_context_creation_info *info)
{
        const GatewayConfig *c = g->config;

        *info = (struct lws_context_creation_info){};
        info->options =
            LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
        if (g->tls)
                info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info->foreign_loops = foreign_loops;
        info->user = g;
        info->server_string = "helios";
        /* The listener has checked the first request's headers against max_header_size already; this is
         * the library's own limit, for TLS and for later requests on a kept-alive connection. */
        info->max_http_header_data = (unsigned short)MIN(c->max_header_size + 1024, (uint64_t)UINT16_MAX);
        /* Every connection the listener lets in may hold one of the library's header tables: a TLS one from
         * its accept on, before it sends anything. With as many tables as connections none ever waits for
         * one, so idle connections take nothing from others; the listener's caps (the oldest of an address
         * over its share goes first) are what bounds them. A table is freed as soon as nobody holds it. */
        info->max_http_header_pool = (unsigned short)g->header_pool;
        /* A TLS handshake and a request's headers get the same time; so does a kept-alive connection
         * between requests while it holds a table. */
        info->timeout_secs = (unsigned)MAX(c->header_timeout_ms / 1000, (uint64_t)1);
        info->timeout_secs_ah_idle = info->timeout_secs;
        if (g->tls && c->preview_listen)
                info->pt_serv_buf_size = PREVIEW_TLS_SERV_BUF;
}

static int create_vhost(Gateway *g, bool preview, struct lws_vhost **ret)
{
        struct lws_context_creation_info info;
        void *foreign_loops[] = {g->loop};
        char name[32];
        struct lws_vhost *vh;

        context_info(g, foreign_loops, &info);
        (void)snprintf(name, sizeof(name), g->n_vhosts == 0 ? "helios" : "helios-%u", g->n_vhosts);
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
        info.vhost_name = name;
        info.protocols = protocols;
        info.extensions = extensions;
        info.retry_and_idle_policy = &ws_idle_policy;
        if (preview) {
                /* Raw connections: the library does TLS alone, preview.c the HTTP. */
                info.protocols = preview_tls_protocols;
                info.extensions = NULL;
                info.retry_and_idle_policy = NULL;
        }
        if (g->tls) {
                info.ssl_cert_filepath = g->tls_cert;
                info.ssl_private_key_filepath = g->tls_key;
                info.alpn = "http/1.1";
                /* Modern clients only: TLS 1.2 and up, forward-secret AEAD suites. */
                info.ssl_cipher_list = "ECDHE+AESGCM:ECDHE+CHACHA20";
                info.ssl_options_set = SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_RENEGOTIATION;
        }
        vh = lws_create_vhost(g->lws, &info);
        if (!vh)
                return g->tls ? -EINVAL : -ENOMEM;
        g->n_vhosts++;
        *ret = vh;
        return 0;
}

/* The certificate and key to use, checked: the configured files, or for cert = auto the self-signed
 * pair in the state directory, made on first start. */
static int tls_prepare(Gateway *g)
{
        const GatewayConfig *c = g->config;
        const char *reason = NULL;
        int r;

        if (streq(c->cert, "auto")) {
                _cleanup_free_ char *dir = NULL;
                char fp[TLS_FINGERPRINT_MAX];
                bool made;

                if (!c->state_dir)
                        return log_error_errno(-EINVAL, "cert = auto keeps its certificate in state_dir, "
                                                        "which is not set.");
                if (asprintf(&dir, "%s/tls", c->state_dir) < 0) {
                        dir = NULL;
                        return log_oom();
                }
                if (mkdir(c->state_dir, 0700) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "Cannot create the state directory %s: %m",
                                               c->state_dir);
                r = tls_self_signed(dir, &g->tls_cert, &g->tls_key, &made, fp);
                if (r < 0)
                        return log_error_errno(r, "Cannot make a self-signed certificate in %s: %m", dir);
                if (made)
                        log_notice(
                            "Made a self-signed TLS certificate %s (SHA-256 %s); browsers warn about it "
                            "until cert and key name a real one.",
                            g->tls_cert, fp);
                else
                        log_info("Using the self-signed TLS certificate %s (SHA-256 %s).", g->tls_cert, fp);
        } else {
                g->tls_cert = strdup(c->cert);
                g->tls_key = strdup(c->key);
                if (!g->tls_cert || !g->tls_key)
                        return log_oom();
        }
        r = tls_check_files(g->tls_cert, g->tls_key, &reason);
        if (r < 0)
                return log_error_errno(r, "Cannot use the TLS certificate and key (%s, %s): %s.",
                                       g->tls_cert, g->tls_key, reason);
        (void)tls_files_id(g->tls_cert, g->tls_key, &g->tls_id);
        return 0;
}

/* On reload: new certificate files (a renewal) serve every new connection from now on. */
static void tls_reload(Gateway *g)
{
        const char *reason = NULL;
        struct lws_vhost *vh, *preview_vh = NULL;
        TlsFilesId id;
        int r;

        if (!g->tls)
                return;
        r = tls_files_id(g->tls_cert, g->tls_key, &id);
        if (r >= 0 && tls_files_id_equal(&id, &g->tls_id))
                return;
        r = tls_check_files(g->tls_cert, g->tls_key, &reason);
        if (r < 0) {
                log_error_errno(
                    r, "Cannot use the TLS certificate and key (%s, %s): %s; keeping the current ones.",
                    g->tls_cert, g->tls_key, reason);
                return;
        }
        r = create_vhost(g, false, &vh);
        if (r >= 0 && g->preview_vhost)
                r = create_vhost(g, true, &preview_vh);
        if (r < 0) {
                log_error("The TLS library refused %s and %s; keeping the current certificate.", g->tls_cert,
                          g->tls_key);
                return;
        }
        g->vhost = vh;
        if (g->preview_vhost)
                g->preview_vhost = preview_vh;
        g->tls_id = id;
        log_info("TLS certificate %s loaded; new connections get it.", g->tls_cert);
}

static int lws_setup(Gateway *g)
{
        void *foreign_loops[] = {g->loop};
        struct lws_context_creation_info info = {};
        int r;

        /* Nothing about the outcome reaches the client; lws logs go to debug unless asked for. */
        lws_set_log_level(getenv("DBG_LWS")                  ? 0xfff
                          : log_get_max_level() >= LOG_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE
                                                             : 0,
                          on_lws_log);

        g->header_pool = (unsigned)MIN(g->config->max_connections, (uint64_t)UINT16_MAX);
        context_info(g, foreign_loops, &info);
        g->lws = lws_create_context(&info);
        if (!g->lws)
                return -ENOMEM;

        r = create_vhost(g, false, &g->vhost);
        if (r >= 0 && g->tls && g->config->preview_listen)
                r = create_vhost(g, true, &g->preview_vhost);
        return r;
}

/* ---- settings that need work ---- */

static int read_secret_file(const char *path, char **ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char buf[SECRET_FILE_MAX + 1];
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf));
        if (n < 0)
                return negative_errno();
        if ((size_t)n > SECRET_FILE_MAX)
                return -EFBIG;
        while (n > 0 && isspace((unsigned char)buf[n - 1]))
                n--;
        buf[n] = '\0';
        if (strlen(buf) < 16 || strpbrk(buf, " \t\r\n")) {
                explicit_bzero(buf, sizeof(buf));
                return -EINVAL;
        }
        *ret = strdup(buf);
        explicit_bzero(buf, sizeof(buf));
        return *ret ? 0 : -ENOMEM;
}

static int parse_trusted_proxies(const GatewayConfig *c, NetPrefix **ret, size_t *ret_n)
{
        NetPrefix *p = calloc(MAX(c->n_trusted_proxies, (size_t)1), sizeof(NetPrefix));

        if (!p)
                return log_oom();
        for (size_t i = 0; i < c->n_trusted_proxies; i++)
                if (netprefix_parse(c->trusted_proxies[i], &p[i]) < 0) {
                        free(p);
                        log_error("Invalid trusted proxy '%s': expected an address, ADDRESS/BITS or 'unix'.",
                                  c->trusted_proxies[i]);
                        return -EINVAL;
                }
        *ret = p;
        *ret_n = c->n_trusted_proxies;
        return 0;
}

static void limits_from_config(const GatewayConfig *c, ListenerLimits *l, SessionLimits *s,
                               ThrottlePolicy *t, AuthLimits *a)
{
        *l = (ListenerLimits){
            .max_connections = c->max_connections,
            .max_unauthenticated = c->max_unauthenticated,
            .max_unauthenticated_per_address = c->max_unauthenticated_per_address,
            .max_per_user = c->max_connections_per_user,
            .max_per_address = c->max_connections_per_address,
            .header_timeout_ms = c->header_timeout_ms,
            .max_header_size = c->max_header_size,
        };
        *s = (SessionLimits){
            .idle_ms = c->session_idle_ms,
            .lifetime_ms = c->session_lifetime_ms,
            .max_sessions = c->max_sessions,
            .max_per_user = c->max_sessions_per_user,
        };
        *t = (ThrottlePolicy){
            .pair_burst = (unsigned)c->login_burst,
            .address_burst = (unsigned)c->login_address_burst,
            .account_burst = (unsigned)c->login_account_burst,
            .max_delay_ms = c->login_max_delay_ms,
            .forget_ms = MAX(c->login_max_delay_ms * 4, (uint64_t)15 * 60 * 1000),
            .max_entries = 16384,
        };
        *a = (AuthLimits){
            .max_queued = c->login_queue,
            .queue_timeout_ms = c->login_queue_timeout_ms,
            .max_per_client = (unsigned)c->login_checks_per_address,
        };
}

/* Trusting a loopback address trusts every local process: on a machine with accounts of its own, any
 * user could claim any client address. */
static void warn_trusted_loopback(const NetPrefix *p, size_t n)
{
        static const NetAddr v4 = {.family = AF_INET, .bytes = {127, 0, 0, 1}};
        static const NetAddr v6 = {.family = AF_INET6, .bytes = {[15] = 1}};

        if (netprefix_list_contains(p, n, &v4) || netprefix_list_contains(p, n, &v6))
                log_warning(
                    "trusted_proxies includes a loopback address: every local user can then set "
                    "X-Forwarded-For and pass for any client. On a machine with local users, put the "
                    "proxy on a Unix socket (listen = unix:PATH, trusted_proxies = unix) instead.");
}

/* Everything a configuration decides that may change while running: read what it names, then switch over.
 * Start and reload both come here; on failure nothing has changed and c is still the caller's. */
static int gateway_apply_config(Gateway *g, GatewayConfig *c)
{
        NetPrefix *proxies = NULL;
        size_t n_proxies = 0;
        char *metrics_token = NULL;
        WebRoot *web = NULL;
        ListenerLimits ll;
        SessionLimits sl;
        ThrottlePolicy tp;
        AuthLimits al;
        int r;

        r = parse_trusted_proxies(c, &proxies, &n_proxies);
        if (r < 0)
                return r;
        if (c->metrics_token_file) {
                r = read_secret_file(c->metrics_token_file, &metrics_token);
                if (r < 0) {
                        log_error_errno(r,
                                        "Cannot read the metrics token from %s (at least 16 characters): %m",
                                        c->metrics_token_file);
                        goto fail;
                }
        }
        r = web_root_open(c->web_root, &web);
        if (r < 0) {
                log_error_errno(r, "Cannot open the web root %s: %m", c->web_root);
                goto fail;
        }
        if (auth_method(g->auth) == AUTH_METHOD_FILE) {
                r = auth_load_users(g->auth, c->users_file);
                if (r < 0) {
                        log_error_errno(r, "Cannot read the users file %s: %m", c->users_file);
                        goto fail;
                }
        }

        /* Everything read: switch over. */
        warn_trusted_loopback(proxies, n_proxies);
        free(g->trusted_proxies);
        g->trusted_proxies = proxies;
        g->n_trusted_proxies = n_proxies;
        if (g->metrics_token)
                explicit_bzero(g->metrics_token, strlen(g->metrics_token));
        free(g->metrics_token);
        g->metrics_token = metrics_token;
        web_root_free(g->web);
        g->web = web;
        limits_from_config(c, &ll, &sl, &tp, &al);
        if (g->listener) {
                if (ll.max_connections > g->header_pool) {
                        log_warning("max_connections above %u takes effect on restart.", g->header_pool);
                        ll.max_connections = g->header_pool;
                }
                listener_set_limits(g->listener, &ll);
        }
        session_store_set_limits(g->sessions, &sl);
        account_checks_set_interval(g->accounts, c->account_check_interval_ms);
        throttle_set_policy(g->throttle, &tp);
        auth_set_limits(g->auth, &al);
        if (c->log_level >= 0)
                log_set_max_level(c->log_level);
        if (g->config != c) {
                gateway_config_free(g->config);
                g->config = c;
        }
        return 0;
fail:
        free(proxies);
        if (metrics_token)
                explicit_bzero(metrics_token, strlen(metrics_token));
        free(metrics_token);
        web_root_free(web);
        return r;
}

/* ---- --check-config, and settings that are ignored ---- */

static void warn_ignored(const char *name, const char *why, void *userdata)
{
        log_warning("Setting '%s' is ignored: %s.", name, why);
}

static void print_ignored(const char *name, const char *why, void *userdata)
{
        const bool *by_hand = userdata;

        /* Checked by hand, the listening settings are reported as what the socket unit overrides. */
        printf("%s: %s: %s\n", *by_hand && strstr(why, "from systemd") ? "ignored under systemd" : "ignored",
               name, why);
}

static unsigned check_problem(const char *what, int r, const char *detail)
{
        errno = -r;
        if (detail)
                printf("error: %s: %s\n", what, detail);
        else
                printf("error: %s: %m\n", what);
        return 1;
}

int gateway_check_config(const GatewayConfig *c)
{
        unsigned problems = 0;
        bool by_hand;
        int r;

        printf("%s: the settings are valid.\n", c->config_path ?: "No configuration file read;");
        if (c->cert && !streq(c->cert, "auto")) {
                const char *reason = NULL;
                r = tls_check_files(c->cert, c->key, &reason);
                if (r < 0)
                        problems += check_problem("cert, key", r, reason);
        } else if (c->cert && !c->state_dir)
                problems += check_problem("cert = auto", -EINVAL, "needs state_dir (or $STATE_DIRECTORY)");
        if (c->auth == AUTH_METHOD_FILE) {
                UsersFile *u = NULL;
                r = users_file_load(c->users_file, &u);
                if (r < 0)
                        problems += check_problem(c->users_file, r, NULL);
                users_file_free(u);
        }
        if (c->auth == AUTH_METHOD_TOKEN && c->token_file) {
                _cleanup_free_ char *t = NULL;
                r = read_secret_file(c->token_file, &t);
                if (r < 0)
                        problems += check_problem(c->token_file, r,
                                                  "cannot be read, or holds less than 16 characters");
        }
        if (c->metrics_token_file) {
                _cleanup_free_ char *t = NULL;
                r = read_secret_file(c->metrics_token_file, &t);
                if (r < 0)
                        problems += check_problem(c->metrics_token_file, r,
                                                  "cannot be read, or holds less than 16 characters");
        } else
                printf("note: /metrics is refused to everyone without metrics_token_file.\n");
        {
                WebRoot *w = NULL;
                r = web_root_open(c->web_root, &w);
                if (r < 0)
                        problems += check_problem(c->web_root, r, NULL);
                web_root_free(w);
        }
        if (c->config_path) {
                /* The workers read the [worker] section themselves, each at its start: a mistake there
                 * would keep every workspace from starting. */
                WorkerSettings ws;
                r = worker_settings_load(c->config_path, NULL,
                                         !streq(c->config_path, GATEWAY_DEFAULT_CONFIG), &ws);
                if (r < 0)
                        problems += check_problem("[" WORKER_SETTINGS_SECTION "]", r, NULL);
        }
        if (c->listen_socket_group && !getgrnam(c->listen_socket_group))
                problems += check_problem("listen_socket_group", -ESRCH, "no such group");
        if (c->launcher && access(c->launcher, F_OK) < 0)
                printf("note: %s does not exist now (helios-launcher.socket makes it).\n", c->launcher);

        /* Run by hand, the sockets the units pass are not here: say what they would override. */
        by_hand = !getenv("LISTEN_FDS");
        (void)gateway_config_ignored(c, true, print_ignored, &by_hand);
        printf("note: under systemd, helios-gateway.socket decides the listening addresses (listen, "
               "listen_socket_mode and listen_socket_group are ignored), and helios-gateway.service's "
               "command line sets auth and launcher over this file's; check with the unit's arguments: "
               "helios-gateway --auth=pam --launcher=/run/helios/launcher.sock --check-config\n");
        if (problems > 0)
                printf("%u problem%s.\n", problems, problems == 1 ? "" : "s");
        return problems > 0 ? -EINVAL : 0;
}

/* ---- sessions across restarts ---- */

static void sessions_save(Gateway *g)
{
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        FILE *f;
        int r;

        if (!g->config->state_dir)
                return;
        g->sessions_saved_ms = uv_now(g->loop);
        if (asprintf(&path, "%s/" SESSIONS_FILE, g->config->state_dir) < 0 ||
            asprintf(&tmp, "%s/." SESSIONS_FILE ".tmp", g->config->state_dir) < 0) {
                path = tmp = NULL;
                (void)log_oom();
                return;
        }
        /* Written whole beside it and renamed over it: a crash leaves the old file or the new one. */
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                r = negative_errno();
        else {
                f = fdopen(fd, "w");
                if (!f)
                        r = negative_errno();
                else {
                        TAKE_FD(fd);
                        r = session_store_save(g->sessions, f, gateway_wall_ms(g, 0));
                        if (r >= 0 && fflush(f) != 0)
                                r = negative_errno();
                        if (r >= 0 && fsync(fileno(f)) < 0)
                                r = negative_errno();
                        if (fclose(f) != 0 && r >= 0)
                                r = negative_errno();
                }
        }
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlink(tmp);
                if (!g->sessions_save_failed)
                        log_warning_errno(r, "Cannot save the sessions to %s (a restart will end them): %m",
                                          path);
                g->sessions_save_failed = true;
        } else if (g->sessions_save_failed) {
                log_info("Sessions saved to %s again.", path);
                g->sessions_save_failed = false;
        }
}

static void on_sessions_changed(void *userdata)
{
        sessions_save(userdata);
}

static void on_session_ended(const Session *session, SessionEnd why, void *userdata)
{
        Gateway *g = userdata;

        pam_sessions_login_ended(g->pam_sessions, session, why);
}

static void sessions_load(Gateway *g)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        FILE *f;
        int r;

        if (!g->config->state_dir) {
                log_debug("No state directory: sessions end when the gateway does.");
                return;
        }
        if (mkdir(g->config->state_dir, 0700) < 0 && errno != EEXIST)
                log_warning_errno(errno, "Cannot create the state directory %s: %m", g->config->state_dir);
        if (asprintf(&path, "%s/" SESSIONS_FILE, g->config->state_dir) < 0) {
                path = NULL;
                (void)log_oom();
                return;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno != ENOENT)
                        log_warning_errno(errno, "Cannot read the saved sessions %s, ignoring: %m", path);
                return;
        }
        /* Anyone who could write it could log in as anyone: only our own private file is believed. */
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 0077) != 0) {
                log_warning("%s is not a private file of this account (0600), ignoring it.", path);
                return;
        }
        f = fdopen(fd, "r");
        if (!f) {
                (void)log_oom();
                return;
        }
        TAKE_FD(fd);
        r = session_store_load(g->sessions, f, gateway_wall_ms(g, 0), uv_now(g->loop));
        (void)fclose(f);
        if (r < 0)
                log_warning("%s is not a saved session list, ignoring it.", path);
        else
                log_info("Restored %d session%s from %s.", r, r == 1 ? "" : "s", path);
}

/* ---- the admin socket ---- */

/* The admin socket is a convenience for admins: without it the gateway serves all the same, so a
 * problem is a warning. */
static void admin_start(Gateway *g)
{
        const GatewayConfig *c = g->config;
        gid_t gid = (gid_t)-1;
        int r;

        if (c->admin_group) {
                struct group *gr = getgrnam(c->admin_group);
                if (!gr) {
                        log_warning("Unknown admin_group '%s'; no admin socket.", c->admin_group);
                        return;
                }
                gid = gr->gr_gid;
        }
        if (!c->launcher && mkdir(c->runtime_dir, 0700) < 0 && errno != EEXIST)
                log_debug_errno(errno, "Cannot create %s: %m", c->runtime_dir);
        r = admin_server_new(g, c->admin_socket, gid, &g->admin);
        if (r == -EPERM && c->admin_group)
                log_warning("Cannot give the admin socket %s to group %s (the gateway's account must be a "
                            "member of it); no admin socket.",
                            c->admin_socket, c->admin_group);
        else if (r < 0)
                log_warning("Cannot listen on the admin socket %s (%s); helios-gateway sessions and logout "
                            "will not reach this gateway.",
                            c->admin_socket, uv_strerror(r));
        else
                log_debug("Admin socket on %s.", c->admin_socket);
}

/* ---- status, watchdog, expiry ---- */

static void update_status(Gateway *g)
{
        char status[sizeof(g->status)], worker[64];

        launcher_describe(g->launcher, worker, sizeof(worker));
        (void)snprintf(status, sizeof(status), "%llu connection%s, %u page%s, %zu session%s, %s",
                       (unsigned long long)g->metrics.connections_open,
                       g->metrics.connections_open == 1 ? "" : "s", g->n_bridges,
                       g->n_bridges == 1 ? "" : "s", session_store_count(g->sessions),
                       session_store_count(g->sessions) == 1 ? "" : "s", worker);
        if (streq(status, g->status))
                return;
        memcpy(g->status, status, sizeof(status));
        (void)sd_notifyf(false, "STATUS=%s", status);
}

static void on_tick(uv_timer_t *t)
{
        Gateway *g = t->data;
        uint64_t now = uv_now(g->loop);

        session_store_expire(g->sessions, now);
        if (now - g->sessions_saved_ms >= SESSIONS_SAVE_MS &&
            (session_store_take_used(g->sessions) || g->n_bridges > 0))
                sessions_save(g);
        account_checks_tick(g->accounts, now);
        pam_sessions_tick(g->pam_sessions, now, g->config->login_session_grace_ms);
        preview_tick(g->preview, now);
        bridge_tick(g, now);
        update_status(g);
        if (g->watchdog_usec > 0 && (now - g->last_watchdog_ms) * 1000 >= g->watchdog_usec / 2) {
                (void)sd_notify(false, "WATCHDOG=1");
                g->last_watchdog_ms = now;
        }
}

/* ---- reload ---- */

static void gateway_reload(Gateway *g)
{
        GatewayConfig *c = NULL;
        int r;

        (void)sd_notify(false, "RELOADING=1");
        log_info("Reloading the configuration.");

        tls_reload(g);
        r = gateway_config_load(g->argc, g->argv, &c);
        if (r == 0) {
                (void)gateway_config_keep_fixed(c, g->config);
                r = gateway_apply_config(g, c);
        } else if (r > 0)
                r = -EINVAL;
        if (r < 0) {
                log_error("Reload failed; keeping the running configuration.");
                gateway_config_free(c);
        } else
                log_info("Configuration reloaded.");
        (void)sd_notify(false, "READY=1");
}

/* ---- signals and shutdown ---- */

static void on_signal(uv_signal_t *h, int signum)
{
        Gateway *g = h->data;

        if (signum == SIGHUP) {
                gateway_reload(g);
                return;
        }
        log_info("Received %s, shutting down.", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        gateway_stop(g);
}

static void close_handle(uv_handle_t *h)
{
        if (h->loop && !uv_is_closing(h))
                uv_close(h, NULL);
}

/* Every WebSocket has closed, or the grace period is over: let the rest go. */
static void shutdown_finish(Gateway *g)
{
        (void)uv_timer_stop(&g->shutdown_timer);
        close_handle((uv_handle_t *)&g->shutdown_timer);
        close_handle((uv_handle_t *)&g->tick);
        close_handle((uv_handle_t *)&g->kick_idle);
        close_handle((uv_handle_t *)&g->sig_term);
        close_handle((uv_handle_t *)&g->sig_int);
        close_handle((uv_handle_t *)&g->sig_hup);
        admin_server_free(g->admin);
        g->admin = NULL;
        auth_stop(g->auth);
        launcher_stop(g->launcher);
        if (g->lws) {
                /* With a foreign loop this starts closing libwebsockets' handles; gateway_finish() completes
                 * it once the loop has run them down. */
                lws_context_destroy(g->lws);
                g->lws_destroyed = true;
        }
}

static void on_shutdown_timer(uv_timer_t *t)
{
        Gateway *g = t->data;

        if (g->n_bridges == 0 || uv_now(g->loop) >= g->shutdown_started_ms + SHUTDOWN_GRACE_MS) {
                if (g->n_bridges > 0)
                        log_info("%u page%s did not close in time.", g->n_bridges,
                                 g->n_bridges == 1 ? "" : "s");
                shutdown_finish(g);
        }
}

void gateway_stop(Gateway *g)
{
        if (g->stopping)
                return;
        g->stopping = true;
        (void)sd_notify(false, "STOPPING=1");

        /* The last uses, for the next start; from here on sessions end only because the process does. */
        if (g->sessions) {
                session_store_on_change(g->sessions, NULL, NULL);
                sessions_save(g);
        }

        if (g->listener)
                listener_stop(g->listener);
        preview_stop(g->preview);
        bridge_shutdown_all(g);
        if (g->n_bridges == 0 || !uv_is_active((uv_handle_t *)&g->tick)) {
                shutdown_finish(g);
                return;
        }
        g->shutdown_started_ms = uv_now(g->loop);
        g->shutdown_timer.data = g;
        (void)uv_timer_start(&g->shutdown_timer, on_shutdown_timer, SHUTDOWN_POLL_MS, SHUTDOWN_POLL_MS);
}

void gateway_finish(Gateway *g)
{
        if (g->lws) {
                lws_context_destroy(g->lws);
                g->lws = NULL;
        }
}

/* ---- setup ---- */

int gateway_new(uv_loop_t *loop, GatewayConfig *config, int argc, char **argv, Gateway **ret)
{
        Gateway *g;

        g = calloc(1, sizeof(Gateway));
        if (!g) {
                gateway_config_free(config);
                return log_oom();
        }
        g->loop = loop;
        g->config = config;
        g->argc = argc;
        g->argv = argv;
        g->tls = config->cert;
        *ret = g;
        return 0;
}

static int raise_nofile(Gateway *g)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &g->original_nofile) < 0)
                return negative_errno();
        /* Every connection is a socket, every page two; the soft limit is often 1024. Workers get the
         * original back (launcher), as systemd's services would. */
        rl = g->original_nofile;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Cannot raise the file limit: %m");
        return 0;
}

int gateway_start(Gateway *g)
{
        GatewayConfig *c = g->config;
        ListenerLimits ll;
        SessionLimits sl;
        ThrottlePolicy tp;
        AuthLimits al;
        int r, n_systemd;
        uint64_t wd;

        if (c->log_level >= 0)
                log_set_max_level(c->log_level);
        (void)raise_nofile(g);
        limits_from_config(c, &ll, &sl, &tp, &al);

        /* The handles first, so that gateway_stop() can close them whatever fails below. */
        (void)uv_timer_init(g->loop, &g->tick);
        (void)uv_timer_init(g->loop, &g->shutdown_timer);
        (void)uv_idle_init(g->loop, &g->kick_idle);
        g->kick_idle.data = g;
        g->tick.data = g;
        (void)uv_signal_init(g->loop, &g->sig_term);
        (void)uv_signal_init(g->loop, &g->sig_int);
        (void)uv_signal_init(g->loop, &g->sig_hup);
        g->sig_term.data = g->sig_int.data = g->sig_hup.data = g;
        if (uv_signal_start(&g->sig_term, on_signal, SIGTERM) < 0 ||
            uv_signal_start(&g->sig_int, on_signal, SIGINT) < 0 ||
            uv_signal_start(&g->sig_hup, on_signal, SIGHUP) < 0)
                return log_error_errno(-EIO, "Failed to set up signal handling.");

        g->read_buffer = malloc(LWS_PRE + GATEWAY_READ_BUFFER);
        if (!g->read_buffer)
                return log_oom();
        r = session_store_new(&sl, &g->sessions);
        if (r >= 0)
                r = throttle_new(&tp, &g->throttle);
        if (r < 0)
                return log_oom();
        sessions_load(g);
        g->sessions_saved_ms = uv_now(g->loop);
        session_store_on_change(g->sessions, on_sessions_changed, g);

        if (c->launcher) {
                r = launcher_new_remote(g->loop, c->launcher, &g->launcher);
                if (r < 0)
                        return log_error_errno(r, "Cannot use %s as helios-launcher's socket: %m",
                                               c->launcher);
        } else {
                r = launcher_new_embedded(g->loop, c, &g->original_nofile, &g->launcher);
                if (r < 0)
                        return r;
        }
        r = account_checks_new(g->launcher, g->sessions, &g->accounts);
        if (r >= 0)
                r = pam_sessions_new(g->launcher, &g->pam_sessions);
        if (r < 0)
                return log_oom();
        session_store_on_end(g->sessions, on_session_ended, g);
        r = auth_new(g->loop, c->auth, g->launcher, &al, &g->auth);
        if (r == -EOPNOTSUPP)
                return log_error_errno(r,
                                       "auth = pam needs the privileged helios-launcher; this gateway runs "
                                       "embedded (use token or file).");
        if (r < 0)
                return log_oom();
        if (c->auth == AUTH_METHOD_TOKEN) {
                _cleanup_free_ char *token = NULL;
                if (c->token_file) {
                        r = read_secret_file(c->token_file, &token);
                        if (r < 0)
                                return log_error_errno(
                                    r, "Cannot read a token of at least 16 characters from %s: %m",
                                    c->token_file);
                }
                r = auth_set_token(g->auth, token);
                if (token)
                        explicit_bzero(token, strlen(token));
                if (r < 0)
                        return log_error_errno(r, "Cannot make a login token: %m");
        }
        /* What a reload may change, the way a reload changes it. */
        r = gateway_apply_config(g, c);
        if (r < 0)
                return r;

        if (g->tls) {
                r = tls_prepare(g);
                if (r < 0)
                        return r;
        }
        r = lws_setup(g);
        if (r < 0)
                return log_error_errno(r, "Failed to set up libwebsockets%s.",
                                       g->tls ? " (check the certificate and key)" : "");

        ll.max_connections = MIN(ll.max_connections, (uint64_t)g->header_pool);
        r = listener_new(g->loop, &ll, g->tls, &g->metrics, adopt, g, &g->listener);
        if (r < 0)
                return log_oom();
        listener_set_exempt(g->listener, peer_is_proxy);
        if (c->listen_socket_group) {
                struct group *gr = getgrnam(c->listen_socket_group);
                if (!gr)
                        return log_error_errno(-ESRCH, "Unknown listen_socket_group '%s'.",
                                               c->listen_socket_group);
                listener_set_unix_access(g->listener, (mode_t)c->listen_socket_mode, gr->gr_gid);
        } else
                listener_set_unix_access(g->listener, (mode_t)c->listen_socket_mode, (gid_t)-1);
        n_systemd = listener_add_systemd_sockets(g->listener);
        if (n_systemd < 0)
                return log_error_errno(n_systemd, "Cannot use the sockets passed by systemd: %m");
        (void)gateway_config_ignored(c, n_systemd > 0, warn_ignored, NULL);
        if (n_systemd == 0)
                for (size_t i = 0; i < c->n_listen; i++) {
                        r = listener_add_address(g->listener, c->listen[i]);
                        if (r < 0)
                                return log_error_errno(r, "Cannot listen on %s: %m", c->listen[i]);
                }
        r = listener_start(g->listener);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the listening sockets: %s", uv_strerror(r));

        if (c->preview_listen) {
                r = preview_new(g, &g->preview);
                if (r < 0)
                        return log_oom();
                r = preview_listen(g->preview, c->preview_listen);
                if (r < 0)
                        return log_error_errno(r, "Cannot listen for previews on %s: %s", c->preview_listen,
                                               r == -EINVAL ? "not HOST:PORT or [IPV6]:PORT" : strerror(-r));
                if (c->launcher && !c->preview_origin)
                        log_warning("Previews share the IDE's host name (preview_origin is not set): an app "
                                    "previewed there can add cookies the IDE receives. Give previews a host "
                                    "name of their own on a shared server.");
                log_info("Previews of users' web servers on port %u%s%s.", preview_port(g->preview),
                         c->preview_origin ? ", reached as " : "", c->preview_origin ?: "");
        }

        r = launcher_start(g->launcher);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the worker socket: %m");

        admin_start(g);

        if (sd_watchdog_enabled(false, &wd) > 0)
                g->watchdog_usec = wd;
        (void)uv_timer_start(&g->tick, on_tick, 0, g->watchdog_usec > 0 ? MIN(TICK_MS, wd / 4000) : TICK_MS);

        char addr[128];
        if (listener_first_tcp_address(g->listener, addr, sizeof(addr))) {
                (void)snprintf(g->url, sizeof(g->url), "%s://%s/", g->tls ? "https" : "http", addr);
                log_info("Serving %s on %s%s.", launcher_single_user(g->launcher) ?: "every user", g->url,
                         n_systemd > 0 ? " (sockets from systemd)" : "");
        } else
                log_info("Serving %s on %s.", launcher_single_user(g->launcher) ?: "every user",
                         n_systemd > 0 ? "sockets from systemd" : "a Unix socket");
        if (c->auth == AUTH_METHOD_TOKEN && g->url[0]) {
                /* The token goes to whoever started us, never into the log. The fragment is not sent in
                 * requests or Referer headers; the page reads it and logs in. */
                printf("Helios for %s: %s#token=%s\n", launcher_single_user(g->launcher), g->url,
                       auth_token(g->auth));
                fflush(stdout);
        } else if (g->url[0]) {
                printf("Helios: %s\n", g->url);
                fflush(stdout);
        }
        update_status(g);
        (void)sd_notify(false, "READY=1");
        return 0;
}

Gateway *gateway_free(Gateway *g)
{
        if (!g)
                return NULL;
        assert(!g->bridges);
        listener_free(g->listener);
        preview_free(g->preview);
        account_checks_free(g->accounts);
        if (g->sessions)
                session_store_on_end(g->sessions, NULL, NULL);
        pam_sessions_free(g->pam_sessions);
        launcher_free(g->launcher);
        auth_free(g->auth);
        session_store_free(g->sessions);
        throttle_free(g->throttle);
        web_root_free(g->web);
        free(g->trusted_proxies);
        if (g->metrics_token)
                explicit_bzero(g->metrics_token, strlen(g->metrics_token));
        free(g->metrics_token);
        free(g->read_buffer);
        free(g->tls_cert);
        free(g->tls_key);
        gateway_config_free(g->config);
        free(g);
        return NULL;
}
