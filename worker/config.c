/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "policy.h"
#include "strv.h"
#include "worker-settings.h"

WorkerConfig *worker_config_free(WorkerConfig *c)
{
        if (!c)
                return NULL;
        free(c->listen_path);
        strv_free_n(c->roots, c->n_roots);
        strv_free_n(c->watch_exclude, c->n_watch_exclude);
        free(c->state_dir);
        free(c->home);
        for (size_t i = 0; i < ELEMENTSOF(c->services_dirs); i++)
                free(c->services_dirs[i]);
        free(c->allowed_uids);
        free(c->allowed_gids);
        safe_close(c->credentials_fd);
        free(c);
        return NULL;
}

/* Make an absolute, canonical directory path: roots are compared by prefix, so they must be real. */
static int canonical_dir(const char *p, char **ret)
{
        char *r = realpath(p, NULL);

        if (!r)
                return negative_errno();
        *ret = r;
        return 0;
}

static void help(void)
{
        printf("Usage: helios-worker [OPTIONS]\n\n"
               "The per-user Helios worker: JSON-RPC 2.0 over newline-delimited JSON on a Unix socket.\n"
               "Without --listen it expects its socket from systemd (LISTEN_FDS, fd 3).\n\n"
               "  -h --help                  Show this help\n"
               "     --version               Show the version\n"
               "  -l --listen PATH           Listen on this Unix socket path (mode 0600)\n"
               "  -r --root DIR              Workspace root (repeatable; default: $HOME)\n"
               "     --state-dir DIR         State directory (default: $XDG_STATE_HOME/helios)\n"
               "     --max-message-size N    Largest JSON-RPC message in bytes (default 16M)\n"
               "     --idle-timeout TIME     Exit after TIME idle (seconds, or 90s, 10min, 2h), 0 = never\n"
               "                             (default 10min)\n"
               "     --terminal-idle-timeout TIME  End a terminal without input, output or an\n"
               "                             attached client for TIME, 0 = never (default 0)\n"
               "     --max-connections N     Concurrent client connections (default 64)\n"
               "     --max-terminals N       Live terminals (default 32)\n"
               "     --archive-idle-timeout TIME\n"
               "                             Drop a folder's zip download not read for TIME\n"
               "                             (default 1min)\n"
               "     --scrollback N          Terminal scrollback bytes (default 1M)\n"
               "     --watch-exclude NAME    Directory name not watched (repeatable;\n"
               "                             default: .git node_modules; 'none' clears)\n"
               "     --max-watches N         inotify watches (default 32768)\n"
               "     --high-water N          Queued output bytes per connection before\n"
               "                             its terminals pause (default 1M)\n"
               "     --allow-uid UID         Also serve peers with this uid (repeatable)\n"
               "     --allow-group GROUP     Also serve peers of this group, a name or a gid\n"
               "                             (repeatable; the gateway's, under systemd)\n"
               "     --seccomp               Load the sandbox policy's seccomp filter before serving\n"
               "                             (the systemd unit passes it; in embedded mode the\n"
               "                             launcher has loaded it already)\n"
               "     --namespaces            Enter a workspace of its own first: user, network and\n"
               "                             PID namespaces (the systemd unit passes it; in\n"
               "                             embedded mode the launcher has made them already)\n"
               "     --outbound-network BOOL With --namespaces, reach the network through pasta\n"
               "                             (default yes)\n"
               "     --system-services DIR   Service manifests shipped with Helios\n"
               "                             (default " HELIOS_SYSTEM_SERVICES_DIR ")\n"
               "     --admin-services DIR    The administrator's service manifests\n"
               "                             (default /etc/helios/services)\n"
               "     --user-services DIR     The user's service manifests\n"
               "                             (default $XDG_CONFIG_HOME/helios/services)\n"
               "     --config FILE           The [worker] section of this file, and worker.d/USER.conf\n"
               "                             beside it (default " HELIOS_CONF_PATH "); options win\n"
               "     --log-level LEVEL       err, warning, notice, info, debug\n\n"
               "[worker] settings:");
        for (size_t i = 0; i < _WORKER_SETTING_MAX; i++)
                printf(" %s", worker_settings[i].key);
        printf("\n");
}

enum {
        ARG_VERSION = 0x100,
        ARG_STATE_DIR,
        ARG_MAX_MESSAGE,
        ARG_IDLE_TIMEOUT,
        ARG_MAX_CONNECTIONS,
        ARG_MAX_TERMINALS,
        ARG_ARCHIVE_IDLE,
        ARG_SCROLLBACK,
        ARG_WATCH_EXCLUDE,
        ARG_MAX_WATCHES,
        ARG_HIGH_WATER,
        ARG_ALLOW_UID,
        ARG_ALLOW_GROUP,
        ARG_LOG_LEVEL,
        ARG_SECCOMP,
        ARG_NAMESPACES,
        ARG_OUTBOUND_NETWORK,
        ARG_SYSTEM_SERVICES,
        ARG_ADMIN_SERVICES,
        ARG_USER_SERVICES,
        ARG_TERMINAL_IDLE_TIMEOUT,
        ARG_CONFIG,
};

/* The admin's settings (worker-settings.h) for what the command line left alone. */
static int apply_settings_file(WorkerConfig *c, const char *path, bool own_ok,
                               const bool given[_WORKER_SETTING_MAX])
{
        struct passwd *pw = getpwuid(getuid());
        WorkerSettings s;
        int r;

        r = worker_settings_load(path, pw ? pw->pw_name : NULL, own_ok, &s);
        if (r < 0)
                return log_error_errno(r, "Cannot read the worker settings of %s: %m", path);
        for (size_t i = 0; i < _WORKER_SETTING_MAX; i++) {
                if (!s.set[i] || given[i])
                        continue;
                switch ((WorkerSettingId)i) {
                case WORKER_SETTING_IDLE_TIMEOUT:
                        c->idle_timeout_ms = s.v[i];
                        break;
                case WORKER_SETTING_TERMINAL_IDLE_TIMEOUT:
                        c->terminal_idle_timeout_ms = s.v[i];
                        break;
                case WORKER_SETTING_MAX_TERMINALS:
                        c->max_terminals = (unsigned)s.v[i];
                        break;
                case WORKER_SETTING_MAX_CONNECTIONS:
                        c->max_connections = (unsigned)s.v[i];
                        break;
                case WORKER_SETTING_SCROLLBACK:
                        c->scrollback = (size_t)s.v[i];
                        break;
                case WORKER_SETTING_MAX_WATCHES:
                        c->max_watches = (unsigned)s.v[i];
                        break;
                case WORKER_SETTING_HIGH_WATER:
                        c->high_water = (size_t)s.v[i];
                        break;
                default:
                        break;
                }
        }
        return 0;
}

int worker_config_parse(int argc, char **argv, WorkerConfig **ret)
{
        static const struct option options[] = {
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, ARG_VERSION},
            {"listen", required_argument, NULL, 'l'},
            {"root", required_argument, NULL, 'r'},
            {"state-dir", required_argument, NULL, ARG_STATE_DIR},
            {"max-message-size", required_argument, NULL, ARG_MAX_MESSAGE},
            {"idle-timeout", required_argument, NULL, ARG_IDLE_TIMEOUT},
            {"max-connections", required_argument, NULL, ARG_MAX_CONNECTIONS},
            {"max-terminals", required_argument, NULL, ARG_MAX_TERMINALS},
            {"archive-idle-timeout", required_argument, NULL, ARG_ARCHIVE_IDLE},
            {"scrollback", required_argument, NULL, ARG_SCROLLBACK},
            {"watch-exclude", required_argument, NULL, ARG_WATCH_EXCLUDE},
            {"max-watches", required_argument, NULL, ARG_MAX_WATCHES},
            {"high-water", required_argument, NULL, ARG_HIGH_WATER},
            {"allow-uid", required_argument, NULL, ARG_ALLOW_UID},
            {"allow-group", required_argument, NULL, ARG_ALLOW_GROUP},
            {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
            {"seccomp", no_argument, NULL, ARG_SECCOMP},
            {"namespaces", no_argument, NULL, ARG_NAMESPACES},
            {POLICY_OUTBOUND_NETWORK_OPTION, required_argument, NULL, ARG_OUTBOUND_NETWORK},
            {"system-services", required_argument, NULL, ARG_SYSTEM_SERVICES},
            {"admin-services", required_argument, NULL, ARG_ADMIN_SERVICES},
            {"user-services", required_argument, NULL, ARG_USER_SERVICES},
            {"terminal-idle-timeout", required_argument, NULL, ARG_TERMINAL_IDLE_TIMEOUT},
            {"config", required_argument, NULL, ARG_CONFIG},
            {},
        };
        WorkerConfig *c = calloc(1, sizeof(WorkerConfig));
        bool excludes_set = false, given[_WORKER_SETTING_MAX] = {};
        const char *config_path = HELIOS_CONF_PATH;
        bool config_given = false;
        uint64_t v;
        int opt, r;

        if (!c)
                return log_oom();
        *c = (WorkerConfig){
            .max_message = DEFAULT_MAX_MESSAGE,
            .idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS,
            .max_connections = DEFAULT_MAX_CONNECTIONS,
            .max_terminals = DEFAULT_MAX_TERMINALS,
            .archive_idle_ms = DEFAULT_ARCHIVE_IDLE_MS,
            .scrollback = DEFAULT_SCROLLBACK,
            .max_watches = DEFAULT_MAX_WATCHES,
            .high_water = DEFAULT_HIGH_WATER,
            .outbound_network = POLICY_OUTBOUND_NETWORK_DEFAULT,
            .credentials_fd = -1,
        };

#define NUM_ARG(parse, field, min, max, what)                                            \
        do {                                                                             \
                r = parse(optarg, (min), (max), &v);                                     \
                if (r < 0) {                                                             \
                        log_error("Invalid %s '%s': expected %llu..%llu.", what, optarg, \
                                  (unsigned long long)(min), (unsigned long long)(max)); \
                        goto fail;                                                       \
                }                                                                        \
                c->field = (typeof(c->field))v;                                          \
        } while (0)

        optind = 0;
        while ((opt = getopt_long(argc, argv, "hl:r:", options, NULL)) >= 0) {
                switch (opt) {
                case 'h':
                        help();
                        worker_config_free(c);
                        return 1;
                case ARG_VERSION:
                        printf("helios-worker %s\n", HELIOS_VERSION);
                        worker_config_free(c);
                        return 1;
                case 'l':
                        free(c->listen_path);
                        c->listen_path = strdup(optarg);
                        if (!c->listen_path)
                                goto oom;
                        break;
                case 'r': {
                        _cleanup_free_ char *p = NULL;
                        r = canonical_dir(optarg, &p);
                        if (r < 0) {
                                log_error_errno(r, "Invalid workspace root '%s': %m", optarg);
                                goto fail;
                        }
                        if (strv_push(&c->roots, &c->n_roots, p, strlen(p)) < 0)
                                goto oom;
                        break;
                }
                case ARG_SYSTEM_SERVICES:
                case ARG_ADMIN_SERVICES:
                case ARG_USER_SERVICES: {
                        size_t i = (size_t)(opt - ARG_SYSTEM_SERVICES);
                        free(c->services_dirs[i]);
                        c->services_dirs[i] = strdup(optarg);
                        if (!c->services_dirs[i])
                                goto oom;
                        break;
                }
                case ARG_STATE_DIR:
                        free(c->state_dir);
                        c->state_dir = strdup(optarg);
                        if (!c->state_dir)
                                goto oom;
                        break;
                case ARG_MAX_MESSAGE:
                        NUM_ARG(parse_size, max_message, 4096, 1024ULL * 1024 * 1024, "message size");
                        break;
                case ARG_IDLE_TIMEOUT:
                        NUM_ARG(parse_duration_ms, idle_timeout_ms, 0, 365ULL * 24 * 3600 * 1000,
                                "idle timeout");
                        given[WORKER_SETTING_IDLE_TIMEOUT] = true;
                        break;
                case ARG_TERMINAL_IDLE_TIMEOUT:
                        NUM_ARG(parse_duration_ms, terminal_idle_timeout_ms, 0, 365ULL * 24 * 3600 * 1000,
                                "terminal idle timeout");
                        given[WORKER_SETTING_TERMINAL_IDLE_TIMEOUT] = true;
                        break;
                case ARG_CONFIG:
                        config_path = optarg;
                        config_given = true;
                        break;
                case ARG_MAX_CONNECTIONS:
                        NUM_ARG(parse_uint, max_connections, 1, 65536, "connection limit");
                        given[WORKER_SETTING_MAX_CONNECTIONS] = true;
                        break;
                case ARG_ARCHIVE_IDLE:
                        NUM_ARG(parse_duration_ms, archive_idle_ms, 1000, 24ULL * 3600 * 1000,
                                "archive idle timeout");
                        break;
                case ARG_MAX_TERMINALS:
                        NUM_ARG(parse_uint, max_terminals, 0, 4096, "terminal limit");
                        given[WORKER_SETTING_MAX_TERMINALS] = true;
                        break;
                case ARG_SCROLLBACK:
                        NUM_ARG(parse_size, scrollback, 4096, 256ULL * 1024 * 1024, "scrollback size");
                        given[WORKER_SETTING_SCROLLBACK] = true;
                        break;
                case ARG_WATCH_EXCLUDE:
                        if (!excludes_set) {
                                excludes_set = true;
                                strv_free_n(c->watch_exclude, c->n_watch_exclude);
                                c->watch_exclude = NULL;
                                c->n_watch_exclude = 0;
                        }
                        if (streq(optarg, "none"))
                                break;
                        if (strchr(optarg, '/') || streq(optarg, ".") || streq(optarg, "..") || !*optarg) {
                                log_error("Invalid --watch-exclude '%s': expected a directory name.",
                                          optarg);
                                r = -EINVAL;
                                goto fail;
                        }
                        if (strv_push(&c->watch_exclude, &c->n_watch_exclude, optarg, strlen(optarg)) < 0)
                                goto oom;
                        break;
                case ARG_MAX_WATCHES:
                        NUM_ARG(parse_uint, max_watches, 1, 1u << 24, "watch limit");
                        given[WORKER_SETTING_MAX_WATCHES] = true;
                        break;
                case ARG_HIGH_WATER:
                        NUM_ARG(parse_size, high_water, 4096, 1024ULL * 1024 * 1024, "high-water mark");
                        given[WORKER_SETTING_HIGH_WATER] = true;
                        break;
                case ARG_ALLOW_UID: {
                        uid_t *u;
                        r = parse_uint(optarg, 0, UINT32_MAX - 1, &v);
                        if (r < 0) {
                                log_error("Invalid --allow-uid '%s': expected a numeric uid.", optarg);
                                r = -EINVAL;
                                goto fail;
                        }
                        u = realloc(c->allowed_uids, (c->n_allowed_uids + 1) * sizeof(uid_t));
                        if (!u)
                                goto oom;
                        u[c->n_allowed_uids++] = (uid_t)v;
                        c->allowed_uids = u;
                        break;
                }
                case ARG_ALLOW_GROUP: {
                        struct group *g = getgrnam(optarg);
                        gid_t *gids;

                        if (g)
                                v = g->gr_gid;
                        else if (parse_uint(optarg, 0, UINT32_MAX - 1, &v) < 0) {
                                log_error("Invalid --allow-group '%s': no such group.", optarg);
                                r = -EINVAL;
                                goto fail;
                        }
                        gids = realloc(c->allowed_gids, (c->n_allowed_gids + 1) * sizeof(gid_t));
                        if (!gids)
                                goto oom;
                        gids[c->n_allowed_gids++] = (gid_t)v;
                        c->allowed_gids = gids;
                        break;
                }
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r < 0) {
                                log_error("Invalid log level '%s'.", optarg);
                                goto fail;
                        }
                        log_set_max_level(r);
                        break;
                case ARG_SECCOMP:
                        c->seccomp = true;
                        break;
                case ARG_NAMESPACES:
                        c->namespaces = true;
                        break;
                case ARG_OUTBOUND_NETWORK:
                        r = parse_bool(optarg, &c->outbound_network);
                        if (r < 0) {
                                log_error("Invalid --%s '%s'.", POLICY_OUTBOUND_NETWORK_OPTION, optarg);
                                goto fail;
                        }
                        break;
                default:
                        r = -EINVAL;
                        goto fail;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. See --help.", argv[optind]);
                r = -EINVAL;
                goto fail;
        }

        r = apply_settings_file(c, config_path, config_given, given);
        if (r < 0)
                goto fail;

        if (!excludes_set &&
            (strv_push(&c->watch_exclude, &c->n_watch_exclude, ".git", strlen(".git")) < 0 ||
             strv_push(&c->watch_exclude, &c->n_watch_exclude, "node_modules", strlen("node_modules")) < 0))
                goto oom;

        /* The home directory: $HOME if set (tests and `systemd-run` set it), else the passwd entry. */
        const char *home = getenv("HOME");
        if (!home || home[0] != '/') {
                struct passwd *pw = getpwuid(getuid());
                home = pw ? pw->pw_dir : NULL;
        }
        if (!home) {
                log_error("Cannot determine the home directory of uid %u.", (unsigned)getuid());
                r = -ENOENT;
                goto fail;
        }
        c->home = strdup(home);
        if (!c->home)
                goto oom;

        if (c->n_roots == 0) {
                _cleanup_free_ char *p = NULL;
                r = canonical_dir(c->home, &p);
                if (r < 0) {
                        log_error_errno(r, "Home directory '%s' is not usable as a workspace root: %m",
                                        home);
                        goto fail;
                }
                if (strv_push(&c->roots, &c->n_roots, p, strlen(p)) < 0)
                        goto oom;
        }

        if (!c->state_dir) {
                const char *xdg = getenv("XDG_STATE_HOME");
                if (xdg && xdg[0] == '/')
                        r = asprintf(&c->state_dir, "%s/helios", xdg);
                else
                        r = asprintf(&c->state_dir, "%s/.local/state/helios", c->home);
                if (r < 0) {
                        c->state_dir = NULL;
                        goto oom;
                }
        }

        if (!c->services_dirs[0] && !(c->services_dirs[0] = strdup(HELIOS_SYSTEM_SERVICES_DIR)))
                goto oom;
        if (!c->services_dirs[1] && !(c->services_dirs[1] = strdup("/etc/helios/services")))
                goto oom;
        if (!c->services_dirs[2]) {
                const char *xdg = getenv("XDG_CONFIG_HOME");
                if (xdg && xdg[0] == '/')
                        r = asprintf(&c->services_dirs[2], "%s/helios/services", xdg);
                else
                        r = asprintf(&c->services_dirs[2], "%s/.config/helios/services", c->home);
                if (r < 0) {
                        c->services_dirs[2] = NULL;
                        goto oom;
                }
        }

        *ret = c;
        return 0;

oom:
        r = log_oom();
fail:
        worker_config_free(c);
        return r;
#undef NUM_ARG
}
