/* SPDX-License-Identifier: MIT */
#include "config.h"
#include "strv.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf-file.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "worker-settings.h"

static const char *const auth_method_table[_AUTH_METHOD_MAX] = {
    [AUTH_METHOD_TOKEN] = "token",
    [AUTH_METHOD_FILE] = "file",
    [AUTH_METHOD_PAM] = "pam",
};

const char *auth_method_to_string(AuthMethod m)
{
        return m >= 0 && m < _AUTH_METHOD_MAX ? auth_method_table[m] : NULL;
}

static AuthMethod auth_method_from_string(const char *s)
{
        for (int i = 0; i < _AUTH_METHOD_MAX; i++)
                if (streq(s, auth_method_table[i]))
                        return (AuthMethod)i;
        return _AUTH_METHOD_INVALID;
}

typedef enum SettingType {
        SETTING_STRING,   /* char * */
        SETTING_LIST,     /* char ** + size_t count; repeatable; a file value holds space-separated items */
        SETTING_SIZE,     /* uint64_t, bytes with K/M/G suffixes */
        SETTING_UINT,     /* uint64_t */
        SETTING_DURATION, /* uint64_t, milliseconds; text in s, ms, min, h, d */
        SETTING_AUTH,     /* AuthMethod */
        SETTING_LOG_LEVEL,
        SETTING_MODE, /* uint64_t, octal */
        _SETTING_TYPE_MAX,
} SettingType;

typedef struct Setting {
        const char *name; /* file key; the long option is the same with '-' for '_' */
        SettingType type;
        size_t offset;
        size_t count_offset; /* lists only */
        uint64_t min, max;
        const char *arg, *help;
        bool restart; /* bound at start: a reload keeps the running value and says so */
} Setting;

#define SETTING(name, type, field, min, max, arg, help, restart)                            \
        {                                                                                   \
                name, type, offsetof(GatewayConfig, field), 0, min, max, arg, help, restart \
        }
#define LIST(name, field, arg, help, restart)                                                              \
        {                                                                                                  \
                name, SETTING_LIST, offsetof(GatewayConfig, field), offsetof(GatewayConfig, n_##field), 0, \
                    0, arg, help, restart                                                                  \
        }
/* S and L take effect on reload; FIXED and FIXED_LIST only at the next start. */
#define S(name, type, field, min, max, arg, help)     SETTING(name, type, field, min, max, arg, help, false)
#define FIXED(name, type, field, min, max, arg, help) SETTING(name, type, field, min, max, arg, help, true)
#define L(name, field, arg, help)                     LIST(name, field, arg, help, false)
#define FIXED_LIST(name, field, arg, help)            LIST(name, field, arg, help, true)

#define MiB    (1024ULL * 1024)
#define DAY_MS (24ULL * 3600 * 1000)

static const Setting settings[] = {
    FIXED_LIST("listen", listen, "ADDR", "HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:8080)"),
    FIXED("listen_socket_mode", SETTING_MODE, listen_socket_mode, 0, 0777, "MODE",
          "Access mode of a unix:PATH listening socket (default 0660)"),
    FIXED("listen_socket_group", SETTING_STRING, listen_socket_group, 0, 0, "GROUP",
          "Group of a unix:PATH listening socket (a reverse proxy's)"),
    S("web_root", SETTING_STRING, web_root, 0, 0, "DIR", "The web app to serve"),
    FIXED("cert", SETTING_STRING, cert, 0, 0, "FILE",
          "TLS certificate chain (PEM) with --key; 'auto': a self-signed one in state_dir"),
    FIXED("key", SETTING_STRING, key, 0, 0, "FILE", "TLS private key (PEM)"),
    FIXED("auth", SETTING_AUTH, auth, 0, 0, "METHOD", "token, file or pam (default token)"),
    S("users_file", SETTING_STRING, users_file, 0, 0, "FILE", "Users and crypt(3) hashes for auth=file"),
    FIXED("token_file", SETTING_STRING, token_file, 0, 0, "FILE", "Read the login token from FILE"),
    S("metrics_token_file", SETTING_STRING, metrics_token_file, 0, 0, "FILE",
      "Bearer token every /metrics request must show"),
    L("trusted_proxies", trusted_proxies, "ADDR",
      "'unix', or a proxy address or CIDR, whose X-Forwarded-* is used"),
    L("allowed_origins", allowed_origins, "ORIGIN", "Another origin allowed to open /ws"),
    L("server_names", server_names, "HOST", "A host name requests may address (Host header)"),
    FIXED("launcher", SETTING_STRING, launcher, 0, 0, "PATH",
          "helios-launcher's socket: serve every user, not only this one"),
    FIXED("runtime_dir", SETTING_STRING, runtime_dir, 0, 0, "DIR",
          "Private directory for the worker socket"),
    FIXED("state_dir", SETTING_STRING, state_dir, 0, 0, "DIR",
          "Keep logins here across restarts (default $STATE_DIRECTORY)"),
    FIXED("admin_socket", SETTING_STRING, admin_socket, 0, 0, "PATH",
          "Admin socket for `helios-gateway sessions|logout` (default $RUNTIME_DIRECTORY/admin.sock)"),
    FIXED("admin_group", SETTING_STRING, admin_group, 0, 0, "GROUP",
          "Group that may use the admin socket besides root (default none)"),
    FIXED("worker", SETTING_STRING, worker, 0, 0, "FILE", "The helios-worker executable"),
    FIXED_LIST("worker_args", worker_args, "ARG", "Extra argument for the worker"),
    FIXED("preview_listen", SETTING_STRING, preview_listen, 0, 0, "ADDR",
          "HOST:PORT of the listener for previews of users' web servers (default none: off)"),
    S("preview_origin", SETTING_STRING, preview_origin, 0, 0, "ORIGIN",
      "Origin browsers reach preview_listen at (default: the page's host, preview_listen's port)"),
    S("preview_ticket_lifetime", SETTING_DURATION, preview_ticket_lifetime_ms, 1000, 3600 * 1000, "TIME",
      "How long a link to a preview opens it (once) (default 60s)"),
    S("preview_max_connections", SETTING_UINT, preview_max_connections, 1, 1000000, "N",
      "Open preview connections in all (default 512)"),
    S("preview_connections_per_user", SETTING_UINT, preview_connections_per_user, 1, 1000000, "N",
      "Open preview connections of one user (default 64)"),
    S("max_message_size", SETTING_SIZE, max_message, 4096, 1024 * MiB, "BYTES",
      "Largest WebSocket message (default 16M)"),
    S("queue_high_water", SETTING_SIZE, high_water, 4096, 1024 * MiB, "BYTES",
      "Bytes queued to one side before the other is paused (default 1M)"),
    S("user_queue_high_water", SETTING_SIZE, user_high_water, 4096, 64 * 1024 * MiB, "BYTES",
      "Bytes queued to all of one user's pages before their worker is paused (default 4M)"),
    S("max_pages_per_user", SETTING_UINT, max_pages_per_user, 1, 65536, "N",
      "Open pages (WebSockets) per user; more are closed with 4008 (default 48)"),
    S("ping_interval", SETTING_DURATION, ping_interval_ms, 100, DAY_MS, "TIME",
      "Ping a page silent this long; one silent 2.5 times as long is gone (default 30s)"),
    S("max_connections", SETTING_UINT, max_connections, 1, 1000000, "N",
      "Open network connections (default 1024)"),
    S("max_unauthenticated", SETTING_UINT, max_unauthenticated, 1, 1000000, "N",
      "Connections without a session, also kept free for them (default 256)"),
    S("max_unauthenticated_per_address", SETTING_UINT, max_unauthenticated_per_address, 1, 1000000, "N",
      "Connections without a session from one client address (default 64)"),
    S("max_connections_per_user", SETTING_UINT, max_connections_per_user, 1, 1000000, "N",
      "Connections with a session of one user; the oldest goes first (default 128)"),
    S("max_connections_per_address", SETTING_UINT, max_connections_per_address, 1, 1000000, "N",
      "Connections with a session from one client address (default 512)"),
    S("header_timeout", SETTING_DURATION, header_timeout_ms, 100, 3600 * 1000, "TIME",
      "Time to send a request's headers (default 10s)"),
    FIXED("max_header_size", SETTING_SIZE, max_header_size, 1024, 60 * 1024, "BYTES",
          "Largest request header block (default 8K)"),
    S("session_idle_timeout", SETTING_DURATION, session_idle_ms, 1000, 365 * DAY_MS, "TIME",
      "A session unused this long ends (default 12h)"),
    S("session_lifetime", SETTING_DURATION, session_lifetime_ms, 1000, 365 * DAY_MS, "TIME",
      "A session ends this long after login (default 7d)"),
    S("max_sessions", SETTING_UINT, max_sessions, 1, 1000000, "N", "Sessions in all (default 1024)"),
    S("max_sessions_per_user", SETTING_UINT, max_sessions_per_user, 1, 100000, "N",
      "Sessions per user; the oldest ends first (default 32)"),
    S("login_session_grace", SETTING_DURATION, login_session_grace_ms, 0, 3600 * 1000, "TIME",
      "A login's PAM session outlives its last page this long (default 10s)"),
    S("account_check_interval", SETTING_DURATION, account_check_interval_ms, 1000, DAY_MS, "TIME",
      "How often the launcher re-checks the account of a user with open pages (default 5min)"),
    S("login_burst", SETTING_UINT, login_burst, 1, 1000, "N",
      "Failed logins of one address as one account before delays (default 5)"),
    S("login_address_burst", SETTING_UINT, login_address_burst, 1, 100000, "N",
      "Failed logins of one address, any account, before delays (default 30)"),
    S("login_account_burst", SETTING_UINT, login_account_burst, 1, 100000, "N",
      "Failed logins as one account before addresses that failed wait (default 10)"),
    S("login_max_delay", SETTING_DURATION, login_max_delay_ms, 1000, DAY_MS, "TIME",
      "Longest delay imposed after failed logins (default 60s)"),
    S("login_queue", SETTING_UINT, login_queue, 1, 100000, "N",
      "Credential checks waiting for their turn (default 256)"),
    S("login_queue_timeout", SETTING_DURATION, login_queue_timeout_ms, 100, 3600 * 1000, "TIME",
      "Longest wait of a credential check for its turn (default 15s)"),
    S("login_checks_per_address", SETTING_UINT, login_checks_per_address, 1, 100000, "N",
      "Credential checks of one client address in progress or waiting (default 32)"),
    S("log_level", SETTING_LOG_LEVEL, log_level, 0, 0, "LEVEL", "err, warning, notice, info or debug"),
};

GatewayConfig *gateway_config_free(GatewayConfig *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
                void *field = (char *)c + settings[i].offset;
                if (settings[i].type == SETTING_STRING)
                        free(*(char **)field);
                else if (settings[i].type == SETTING_LIST)
                        strv_free_n(*(char ***)field, *(size_t *)((char *)c + settings[i].count_offset));
        }
        free(c->config_path);
        free(c);
        return NULL;
}

/* Apply one value. from_file: list values are split on whitespace and add to the list; on the command
 * line each occurrence is one item. */
static int setting_apply(GatewayConfig *c, const Setting *s, const char *value, bool from_file,
                         const char *where)
{
        void *field = (char *)c + s->offset;
        uint64_t v;
        int r;

        switch (s->type) {
        case SETTING_STRING: {
                char *d = strdup(value);
                if (!d)
                        return log_oom();
                free(*(char **)field);
                *(char **)field = d;
                return 0;
        }
        case SETTING_LIST: {
                size_t *count = (size_t *)((char *)c + s->count_offset);
                if (!from_file)
                        return strv_push((char ***)field, count, value, strlen(value)) < 0 ? log_oom() : 0;
                for (const char *p = value; *p;) {
                        size_t n;
                        p += strspn(p, " \t");
                        n = strcspn(p, " \t");
                        if (n > 0 && strv_push((char ***)field, count, p, n) < 0)
                                return log_oom();
                        p += n;
                }
                return 0;
        }
        case SETTING_SIZE:
        case SETTING_UINT:
        case SETTING_DURATION:
                if (s->type == SETTING_SIZE)
                        r = parse_size(value, s->min, s->max, &v);
                else if (s->type == SETTING_UINT)
                        r = parse_uint(value, s->min, s->max, &v);
                else
                        r = parse_duration_ms(value, s->min, s->max, &v);
                if (r < 0) {
                        log_error("%s: invalid %s '%s'%s", where, s->name, value,
                                  r == -ERANGE ? ": out of range." : ".");
                        return -EINVAL;
                }
                *(uint64_t *)field = v;
                return 0;
        case SETTING_AUTH: {
                AuthMethod m = auth_method_from_string(value);
                if (m < 0) {
                        log_error("%s: invalid auth '%s': expected token, file or pam.", where, value);
                        return -EINVAL;
                }
                *(AuthMethod *)field = m;
                return 0;
        }
        case SETTING_MODE: {
                char *end;
                unsigned long m;
                errno = 0;
                m = strtoul(value, &end, 8);
                if (errno != 0 || end == value || *end || value[0] == '-' || m > s->max) {
                        log_error("%s: invalid %s '%s': expected an octal mode such as 0660.", where,
                                  s->name, value);
                        return -EINVAL;
                }
                *(uint64_t *)field = m;
                return 0;
        }
        case SETTING_LOG_LEVEL:
                r = log_level_from_string(value);
                if (r < 0) {
                        log_error("%s: invalid log level '%s'.", where, value);
                        return -EINVAL;
                }
                *(int *)field = r;
                return 0;
        default:
                return -EINVAL;
        }
}

static int on_file_setting(const char *path, unsigned line, const char *key, const char *value,
                           void *userdata)
{
        GatewayConfig *c = userdata;
        char where[256];

        (void)snprintf(where, sizeof(where), "%s:%u", path, line);
        for (size_t i = 0; i < ELEMENTSOF(settings); i++)
                if (streq(key, settings[i].name)) {
                        c->in_file[i] = true;
                        c->file_line[i] = line;
                        return setting_apply(c, &settings[i], value, true, where);
                }
        log_error("%s: unknown setting '%s'.", where, key);
        return -EINVAL;
}

static void help(void)
{
        printf(
            "Usage: helios-gateway [OPTIONS]\n"
            "       helios-gateway passwd [--users-file FILE] [--delete] USER\n\n"
            "The network-facing part of Helios: serves the web app, logs users in and connects each page's\n"
            "WebSocket to the user's worker. With --launcher it serves every user through the privileged\n"
            "helios-launcher; without, it runs embedded: one user, whose worker starts on demand.\n\n"
            "  -h --help                        Show this help\n"
            "     --version                     Show the version\n"
            "  -c --config FILE                 Read settings from FILE (default %s)\n"
            "     --check-config                Check the settings and files, say which are ignored, and "
            "exit\n",
            GATEWAY_DEFAULT_CONFIG);
        for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
                char opt[64];
                (void)snprintf(opt, sizeof(opt), "%s %s", settings[i].name, settings[i].arg);
                for (char *p = opt; *p && *p != ' '; p++)
                        if (*p == '_')
                                *p = '-';
                printf("     --%-27s %s\n", opt, settings[i].help);
        }
        printf(
            "\nEvery option is also a setting in the configuration file: `name = value`, with '_' for '-'.\n"
            "List settings (listen, trusted_proxies, allowed_origins, server_names, worker_args) take "
            "several values\nseparated by spaces in the file, or repeat on the command line. The command "
            "line wins.\n");
}

enum {
        ARG_VERSION = 0x100,
        ARG_CHECK_CONFIG,
        ARG_SETTING_BASE = 0x200,
};

static int build_options(struct option *opts, char names[][32])
{
        size_t k = 0;

        opts[k++] = (struct option){"help", no_argument, NULL, 'h'};
        opts[k++] = (struct option){"version", no_argument, NULL, ARG_VERSION};
        opts[k++] = (struct option){"config", required_argument, NULL, 'c'};
        opts[k++] = (struct option){"check-config", no_argument, NULL, ARG_CHECK_CONFIG};
        for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
                (void)snprintf(names[i], 32, "%s", settings[i].name);
                for (char *p = names[i]; *p; p++)
                        if (*p == '_')
                                *p = '-';
                opts[k++] = (struct option){names[i], required_argument, NULL, ARG_SETTING_BASE + (int)i};
        }
        opts[k] = (struct option){};
        return 0;
}

static void set_defaults(GatewayConfig *c)
{
        *c = (GatewayConfig){
            .auth = AUTH_METHOD_TOKEN,
            .max_message = 16 * MiB,
            .high_water = 1 * MiB,
            .user_high_water = 4 * MiB,
            .max_pages_per_user = 48,
            .preview_ticket_lifetime_ms = 60 * 1000,
            .preview_max_connections = 512,
            .preview_connections_per_user = 64,
            .ping_interval_ms = 30 * 1000,
            .max_connections = 1024,
            .max_unauthenticated = 256,
            .max_unauthenticated_per_address = 64,
            .header_timeout_ms = 10 * 1000,
            .max_header_size = 8 * 1024,
            .session_idle_ms = 12 * 3600 * 1000ULL,
            .session_lifetime_ms = 7 * DAY_MS,
            .max_sessions = 1024,
            .max_sessions_per_user = 32,
            .max_connections_per_user = 128,
            .max_connections_per_address = 512,
            .account_check_interval_ms = 5 * 60 * 1000,
            .login_session_grace_ms = 10 * 1000,
            .login_burst = 5,
            .login_address_burst = 30,
            .login_account_burst = 10,
            .login_max_delay_ms = 60 * 1000,
            .login_queue = 256,
            .login_queue_timeout_ms = 15 * 1000,
            .login_checks_per_address = 32,
            .listen_socket_mode = 0660,
            .log_level = -1,
        };
}

static int set_default_string(char **field, const char *value)
{
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

/* Defaults that depend on the environment, and checks that span settings. */
static int finalize(GatewayConfig *c)
{
        int r;

        if (c->n_listen == 0 && strv_push(&c->listen, &c->n_listen, "127.0.0.1:8080", 14) < 0)
                return log_oom();
        if (set_default_string(&c->web_root, HELIOS_WEB_ROOT) < 0 ||
            set_default_string(&c->worker, HELIOS_WORKER_PATH) < 0)
                return log_oom();
        if (c->auth == AUTH_METHOD_FILE &&
            set_default_string(&c->users_file, GATEWAY_DEFAULT_USERS_FILE) < 0)
                return log_oom();
        if (!c->runtime_dir) {
                const char *xdg = getenv("XDG_RUNTIME_DIR");
                if (xdg && xdg[0] == '/')
                        r = asprintf(&c->runtime_dir, "%s/helios", xdg);
                else
                        r = asprintf(&c->runtime_dir, "/tmp/helios-%u", (unsigned)getuid());
                if (r < 0) {
                        c->runtime_dir = NULL;
                        return log_oom();
                }
        }
        if (!c->admin_socket) {
                const char *rd = getenv("RUNTIME_DIRECTORY");
                if (rd && rd[0] == '/')
                        r = asprintf(&c->admin_socket, "%.*s/admin.sock", (int)strcspn(rd, ":"), rd);
                else
                        r = asprintf(&c->admin_socket, "%s/admin.sock", c->runtime_dir);
                if (r < 0) {
                        c->admin_socket = NULL;
                        return log_oom();
                }
        }
        if (!c->state_dir) {
                /* systemd's StateDirectory=; several are separated by ':', the first is ours. */
                const char *sd = getenv("STATE_DIRECTORY");
                if (sd && sd[0] == '/') {
                        c->state_dir = strndup(sd, strcspn(sd, ":"));
                        if (!c->state_dir)
                                return log_oom();
                }
        } else if (c->state_dir[0] != '/') {
                log_error("state_dir must be an absolute path.");
                return -EINVAL;
        }
        if (c->cert && streq(c->cert, "auto")) {
                if (c->key) {
                        log_error("cert = auto makes its own key: remove the key setting.");
                        return -EINVAL;
                }
        } else if (!!c->cert != !!c->key) {
                log_error("TLS needs both cert and key (or cert = auto).");
                return -EINVAL;
        }
        if (c->high_water > c->max_message) {
                /* The mark is what pauses the other side; above one message it would never be reached by
                 * a single oversized burst before the size check refuses it. */
                log_error("queue_high_water (%llu) must not exceed max_message_size (%llu).",
                          (unsigned long long)c->high_water, (unsigned long long)c->max_message);
                return -EINVAL;
        }
        if (c->launcher && c->launcher[0] != '/') {
                log_error("launcher must be an absolute path to helios-launcher's socket.");
                return -EINVAL;
        }
        if (c->launcher && c->auth == AUTH_METHOD_TOKEN) {
                /* A token logs in the one account running the gateway; with a launcher there are many. */
                log_error("auth = token serves one user; with a launcher use auth = pam or file.");
                return -EINVAL;
        }
        if (c->max_unauthenticated > c->max_connections)
                c->max_unauthenticated = c->max_connections;
        if (c->max_unauthenticated_per_address > c->max_unauthenticated)
                c->max_unauthenticated_per_address = c->max_unauthenticated;
        return 0;
}

int gateway_config_load(int argc, char **argv, GatewayConfig **ret)
{
        struct option opts[ELEMENTSOF(settings) + 5];
        char names[ELEMENTSOF(settings)][32];
        const char *config_path = NULL;
        bool explicit_config = false, check_config = false;
        GatewayConfig *c;
        bool list_seen[ELEMENTSOF(settings)] = {};
        int opt, r;

        build_options(opts, names);

        /* First pass: only --help, --version and --config, so the file can be read before the command
         * line is applied over it. Every option is checked here already. */
        optind = 0;
        opterr = 1;
        while ((opt = getopt_long(argc, argv, "hc:", opts, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("helios-gateway %s\n", HELIOS_VERSION);
                        return 1;
                case 'c':
                        config_path = optarg;
                        explicit_config = true;
                        break;
                case ARG_CHECK_CONFIG:
                        check_config = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        break;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. See --help.", argv[optind]);
                return -EINVAL;
        }

        c = calloc(1, sizeof(GatewayConfig));
        if (!c)
                return log_oom();
        set_defaults(c);
        c->check_config = check_config;

        if (!config_path)
                config_path = GATEWAY_DEFAULT_CONFIG;
        r = conf_file_parse_section(config_path, NULL, HELIOS_CONF_SECTIONS, on_file_setting, c);
        if (r == -ENOENT && !explicit_config)
                r = 0;
        else if (r < 0) {
                if (r != -EINVAL)
                        log_error_errno(r, "Failed to read %s: %m", config_path);
                goto fail;
        } else {
                c->config_path = strdup(config_path);
                if (!c->config_path)
                        goto oom;
        }

        optind = 0;
        while ((opt = getopt_long(argc, argv, "hc:", opts, NULL)) >= 0) {
                if (opt < ARG_SETTING_BASE)
                        continue;
                size_t i = (size_t)(opt - ARG_SETTING_BASE);
                const Setting *s = &settings[i];
                char where[48];

                if (s->type == SETTING_LIST && !list_seen[i]) {
                        /* The command line replaces a list from the file rather than adding to it. */
                        size_t *count = (size_t *)((char *)c + s->count_offset);
                        char ***field = (char ***)((char *)c + s->offset);
                        strv_free_n(*field, *count);
                        *field = NULL;
                        *count = 0;
                        list_seen[i] = true;
                }
                (void)snprintf(where, sizeof(where), "--%s", names[i]);
                c->on_command_line[i] = true;
                r = setting_apply(c, s, optarg, false, where);
                if (r < 0)
                        goto fail;
        }

        r = finalize(c);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
oom:
        r = log_oom();
fail:
        gateway_config_free(c);
        return r;
}

static bool strv_equal(char **a, size_t na, char **b, size_t nb)
{
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

static bool setting_equal(const Setting *s, const GatewayConfig *a, const GatewayConfig *b)
{
        const void *fa = (const char *)a + s->offset, *fb = (const char *)b + s->offset;

        switch (s->type) {
        case SETTING_STRING:
                return streq_ptr(*(char *const *)fa, *(char *const *)fb);
        case SETTING_LIST:
                return strv_equal(*(char **const *)fa, *(const size_t *)((const char *)a + s->count_offset),
                                  *(char **const *)fb, *(const size_t *)((const char *)b + s->count_offset));
        case SETTING_AUTH:
                return *(const AuthMethod *)fa == *(const AuthMethod *)fb;
        case SETTING_LOG_LEVEL:
                return *(const int *)fa == *(const int *)fb;
        default:
                return *(const uint64_t *)fa == *(const uint64_t *)fb;
        }
}

static void swap_bytes(void *a, void *b, size_t n)
{
        uint8_t t[sizeof(uint64_t)];

        assert(n <= sizeof(t));
        memcpy(t, a, n);
        memcpy(a, b, n);
        memcpy(b, t, n);
}

static void setting_swap(const Setting *s, GatewayConfig *a, GatewayConfig *b)
{
        void *fa = (char *)a + s->offset, *fb = (char *)b + s->offset;

        switch (s->type) {
        case SETTING_STRING:
                swap_bytes(fa, fb, sizeof(char *));
                break;
        case SETTING_LIST:
                swap_bytes(fa, fb, sizeof(char **));
                swap_bytes((char *)a + s->count_offset, (char *)b + s->count_offset, sizeof(size_t));
                break;
        case SETTING_AUTH:
                swap_bytes(fa, fb, sizeof(AuthMethod));
                break;
        case SETTING_LOG_LEVEL:
                swap_bytes(fa, fb, sizeof(int));
                break;
        default:
                swap_bytes(fa, fb, sizeof(uint64_t));
        }
}

unsigned gateway_config_keep_fixed(GatewayConfig *c, GatewayConfig *running)
{
        unsigned n = 0;

        for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
                const Setting *s = &settings[i];

                if (!s->restart || setting_equal(s, c, running))
                        continue;
                log_warning("Setting '%s' changed; it takes effect only on restart, ignoring it until then.",
                            s->name);
                setting_swap(s, c, running);
                n++;
        }
        return n;
}

static size_t setting_index(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(settings); i++)
                if (streq(settings[i].name, name))
                        return i;
        assert(false);
        return 0;
}

static bool given(const GatewayConfig *c, const char *name)
{
        size_t i = setting_index(name);

        return c->in_file[i] || c->on_command_line[i];
}

unsigned gateway_config_ignored(const GatewayConfig *c, bool socket_activated, IgnoredSettingFn fn,
                                void *userdata)
{
        static const char *const listening[] = {"listen", "listen_socket_mode", "listen_socket_group"};
        static const char *const embedded[] = {"runtime_dir", "worker", "worker_args"};
        unsigned n = 0;

        assert(ELEMENTSOF(settings) <= GATEWAY_SETTINGS_MAX);
        for (size_t i = 0; i < ELEMENTSOF(settings); i++)
                if (c->in_file[i] && c->on_command_line[i]) {
                        char why[256];
                        (void)snprintf(why, sizeof(why), "%s:%u is replaced by the command line's --%s",
                                       c->config_path ?: "the configuration file", c->file_line[i],
                                       settings[i].name);
                        for (char *p = strstr(why, "--"); p && *p; p++)
                                if (*p == '_')
                                        *p = '-';
                        fn(settings[i].name, why, userdata);
                        n++;
                }
        for (size_t i = 0; socket_activated && i < ELEMENTSOF(listening); i++)
                if (given(c, listening[i])) {
                        fn(listening[i],
                           "the listening sockets come from systemd (helios-gateway.socket: ListenStream=, "
                           "SocketMode=, SocketGroup=)",
                           userdata);
                        n++;
                }
        for (size_t i = 0; c->launcher && i < ELEMENTSOF(embedded); i++)
                if (given(c, embedded[i])) {
                        fn(embedded[i], "with a launcher, helios-launcher starts the workers", userdata);
                        n++;
                }
        if (c->auth != AUTH_METHOD_FILE && given(c, "users_file")) {
                fn("users_file", "it is read only with auth = file", userdata);
                n++;
        }
        if (c->auth != AUTH_METHOD_TOKEN && given(c, "token_file")) {
                fn("token_file", "it is read only with auth = token", userdata);
                n++;
        }
        return n;
}
