/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum AuthMethod {
        AUTH_METHOD_TOKEN, /* one user, a random token printed at start */
        AUTH_METHOD_FILE,  /* a users file of crypt(3) hashes */
        AUTH_METHOD_PAM,   /* through the privileged launcher */
        _AUTH_METHOD_MAX,
        _AUTH_METHOD_INVALID = -1,
} AuthMethod;

const char *auth_method_to_string(AuthMethod m);

#define GATEWAY_SETTINGS_MAX 64

/* The gateway's settings: built-in defaults, then the configuration file, then the command line.
 * Read-only once made; a reload builds a new one. */
typedef struct GatewayConfig {
        char *config_path; /* the file that was read, NULL if none */

        char **listen; /* "HOST:PORT", "[V6ADDR]:PORT", or "unix:PATH"; ignored with LISTEN_FDS */
        size_t n_listen;
        uint64_t listen_socket_mode; /* of unix:PATH sockets */
        char *listen_socket_group;   /* of unix:PATH sockets; NULL: this process's */
        char *web_root;
        char *cert, *key; /* TLS when both are set, or cert is "auto" (self-signed, in state_dir) */

        AuthMethod auth;
        char *users_file;
        char *token_file;         /* the token is read from here instead of being made up */
        char *metrics_token_file; /* bearer token for /metrics; without it /metrics is refused */
        char **trusted_proxies;   /* addresses or CIDR prefixes whose X-Forwarded-* are believed */
        size_t n_trusted_proxies;
        char **allowed_origins; /* origins besides the page's own that may open /ws */
        size_t n_allowed_origins;
        char **server_names; /* host names requests may address, besides those implied */
        size_t n_server_names;

        char *launcher;     /* helios-launcher's socket: many users, PAM; NULL: embedded, one user */
        char *runtime_dir;  /* private directory holding the worker socket (embedded mode) */
        char *state_dir;    /* where sessions are kept across restarts; NULL: they are not */
        char *admin_socket; /* the admin socket (sessions, logout) */
        char *admin_group;  /* may use it besides root and this account; NULL: none */
        char *worker;       /* the helios-worker executable */
        char **worker_args;
        size_t n_worker_args;

        char *preview_listen; /* "HOST:PORT" of the preview listener; NULL: no previews */
        char *preview_origin; /* the preview listener's origin as browsers reach it; NULL: derived */
        uint64_t preview_ticket_lifetime_ms;
        uint64_t preview_max_connections;
        uint64_t preview_connections_per_user;

        uint64_t max_message;        /* bytes per WebSocket message, each way */
        uint64_t high_water;         /* bytes queued towards one side before the other stops being read */
        uint64_t user_high_water;    /* the same, over all of one user's pages */
        uint64_t max_pages_per_user; /* open WebSockets of one user */
        uint64_t ping_interval_ms;   /* a page silent this long is pinged */
        uint64_t max_connections;
        uint64_t max_unauthenticated;
        uint64_t max_unauthenticated_per_address;
        uint64_t max_connections_per_user;    /* connections with a session, per user */
        uint64_t max_connections_per_address; /* connections with a session, per client address */
        uint64_t header_timeout_ms;
        uint64_t max_header_size;
        uint64_t session_idle_ms;
        uint64_t session_lifetime_ms;
        uint64_t max_sessions;
        uint64_t max_sessions_per_user;
        uint64_t account_check_interval_ms; /* re-check of the accounts of users with open pages */
        uint64_t login_session_grace_ms;    /* a login's PAM session outlives its last page this long */
        uint64_t login_burst;               /* failed logins of one (address, account) before throttling */
        uint64_t login_address_burst;       /* ... of one address */
        uint64_t login_account_burst;       /* ... of one account, for addresses that have failed */
        uint64_t login_max_delay_ms;        /* longest wait imposed after failures */
        uint64_t login_queue;               /* credential checks waiting for their turn */
        uint64_t login_queue_timeout_ms;
        uint64_t login_checks_per_address; /* in progress or waiting */
        int log_level;                     /* -1: unchanged */

        bool check_config; /* --check-config: validate, report, exit */
        /* Where each setting (by its place in the table) was given; both: the command line won. */
        bool in_file[GATEWAY_SETTINGS_MAX], on_command_line[GATEWAY_SETTINGS_MAX];
        unsigned file_line[GATEWAY_SETTINGS_MAX];
} GatewayConfig;

#define GATEWAY_DEFAULT_CONFIG     "/etc/helios/helios.conf"
#define GATEWAY_DEFAULT_USERS_FILE "/etc/helios/users"

/* Parse argv (and the configuration file it names, or the default one if it exists) into a new config.
 * Returns 0 on success, 1 if --help or --version was handled (exit 0), or -errno after logging the
 * problem. */
int gateway_config_load(int argc, char **argv, GatewayConfig **ret);
GatewayConfig *gateway_config_free(GatewayConfig *c);

/* A reloaded config c keeps the running config's value of every setting that takes effect only at
 * start (swapping them, so each is still freed with its config), with a warning naming each one that
 * changed. Returns how many did. */
unsigned gateway_config_keep_fixed(GatewayConfig *c, GatewayConfig *running);

/* Calls fn for every setting that was given but has no effect: its value from the file replaced by the
 * command line's (e.g. the unit's ExecStart=), or the setting ignored in this mode (listen under socket
 * activation, the embedded worker's settings with a launcher, a login method's file under another).
 * Returns how many. */
typedef void (*IgnoredSettingFn)(const char *name, const char *why, void *userdata);
unsigned gateway_config_ignored(const GatewayConfig *c, bool socket_activated, IgnoredSettingFn fn,
                                void *userdata);
