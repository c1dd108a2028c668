/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utmpx.h>
#include <uv.h>

#include "log.h"
#include "macro.h"
#include "manager.h"
#include "pam-helper.h"
#include "parse-util.h"
#include "policy.h"
#include "stop-signals.h"
#include "worker-home.h"

static void help(void)
{
        printf(
            "Usage: helios-launcher [OPTIONS]\n\n"
            "The privileged part of Helios: checks passwords with PAM and makes sure each user's worker\n"
            "socket exists, for the gateway alone.\n\n"
            "  -h --help                 Show this help\n"
            "     --version              Show the version\n"
            "     --listen PATH          Listen here when systemd passes no socket\n"
            "     --gateway-user NAME    The gateway's account, the only client (default helios-gateway)\n"
            "     --pam-service NAME     PAM service (default helios)\n"
            "     --pam-timeout TIME     Longest PAM check (default 10s)\n"
            "     --max-pam-helpers N    PAM checks at once (default 16)\n"
            "     --mode MODE            systemd, embedded or auto (default auto)\n"
            "     --runtime-dir DIR      Worker sockets go to DIR/workers (default /run/helios)\n"
            "     --unit-dropin-dir DIR  Worker units' home drop-ins (default /run/systemd/system)\n"
            "     --worker PATH          The helios-worker executable, an absolute path (embedded mode)\n"
            "     --max-users N          Users with a worker socket (default 1024)\n"
            "     --config-dir DIR       Where sandbox.conf and sandbox.d/ are (default /etc/helios)\n"
            "     --start-timeout TIME   Longest unit start (default 30s)\n"
            "     --max-requests N       Requests in flight (default 256; 64 per connection)\n"
            "     --utmp FILE            Records of open sessions (default " _PATH_UTMPX ")\n"
            "     --wtmp FILE            History of sessions (default " _PATH_WTMPX ")\n"
            "     --log-level LEVEL      err, warning, notice, info or debug\n");
}

enum {
        ARG_VERSION = 0x100,
        ARG_LISTEN,
        ARG_GATEWAY_USER,
        ARG_PAM_SERVICE,
        ARG_PAM_TIMEOUT,
        ARG_MAX_PAM,
        ARG_MODE,
        ARG_RUNTIME_DIR,
        ARG_UNIT_DROPIN_DIR,
        ARG_WORKER,
        ARG_MAX_USERS,
        ARG_CONFIG_DIR,
        ARG_START_TIMEOUT,
        ARG_MAX_REQUESTS,
        ARG_LOG_LEVEL,
        ARG_UTMP,
        ARG_WTMP,
};

static int parse_argv(int argc, char **argv, LauncherOptions *o)
{
        static const struct option options[] = {
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, ARG_VERSION},
            {"listen", required_argument, NULL, ARG_LISTEN},
            {"gateway-user", required_argument, NULL, ARG_GATEWAY_USER},
            {"pam-service", required_argument, NULL, ARG_PAM_SERVICE},
            {"pam-timeout", required_argument, NULL, ARG_PAM_TIMEOUT},
            {"max-pam-helpers", required_argument, NULL, ARG_MAX_PAM},
            {"mode", required_argument, NULL, ARG_MODE},
            {"runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR},
            {"unit-dropin-dir", required_argument, NULL, ARG_UNIT_DROPIN_DIR},
            {"worker", required_argument, NULL, ARG_WORKER},
            {"max-users", required_argument, NULL, ARG_MAX_USERS},
            {"config-dir", required_argument, NULL, ARG_CONFIG_DIR},
            {"start-timeout", required_argument, NULL, ARG_START_TIMEOUT},
            {"max-requests", required_argument, NULL, ARG_MAX_REQUESTS},
            {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
            {"utmp", required_argument, NULL, ARG_UTMP},
            {"wtmp", required_argument, NULL, ARG_WTMP},
            {},
        };
        uint64_t v;
        int c, idx = 0, r = 0;

        while ((c = getopt_long(argc, argv, "h", options, &idx)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("helios-launcher %s\n", HELIOS_VERSION);
                        return 1;
                case ARG_LISTEN:
                        o->listen_path = optarg;
                        break;
                case ARG_GATEWAY_USER:
                        o->gateway_user = optarg;
                        break;
                case ARG_PAM_SERVICE:
                        /* A name beneath /etc/pam.d, not a path. */
                        if (!*optarg || strchr(optarg, '/') || optarg[0] == '.') {
                                log_error("Invalid --pam-service '%s'.", optarg);
                                return -EINVAL;
                        }
                        o->pam_service = optarg;
                        break;
                case ARG_PAM_TIMEOUT:
                        r = parse_duration_ms(optarg, 100, 600 * 1000, &o->pam_timeout_ms);
                        break;
                case ARG_START_TIMEOUT:
                        r = parse_duration_ms(optarg, 100, 600 * 1000, &o->start_timeout_ms);
                        break;
                case ARG_MAX_PAM:
                        r = parse_uint(optarg, 1, 1024, &v);
                        o->max_pam_helpers = (unsigned)v;
                        break;
                case ARG_MAX_USERS:
                        r = parse_uint(optarg, 1, 100000, &v);
                        o->max_users = (unsigned)v;
                        break;
                case ARG_CONFIG_DIR:
                        if (optarg[0] != '/')
                                r = -EINVAL;
                        o->config_dir = optarg;
                        break;
                case ARG_MAX_REQUESTS:
                        r = parse_uint(optarg, 1, 100000, &v);
                        o->max_requests = (unsigned)v;
                        break;
                case ARG_MODE:
                        if (streq(optarg, "auto"))
                                o->mode = LAUNCHER_MODE_AUTO;
                        else if (streq(optarg, "systemd"))
                                o->mode = LAUNCHER_MODE_SYSTEMD;
                        else if (streq(optarg, "embedded"))
                                o->mode = LAUNCHER_MODE_EMBEDDED;
                        else
                                r = -EINVAL;
                        break;
                case ARG_RUNTIME_DIR:
                        if (optarg[0] != '/')
                                r = -EINVAL;
                        o->runtime_dir = optarg;
                        break;
                case ARG_UNIT_DROPIN_DIR:
                        if (optarg[0] != '/')
                                r = -EINVAL;
                        o->unit_dropin_dir = optarg;
                        break;
                case ARG_WORKER:
                        /* Exec'd from the user's home, where a relative path means something else. */
                        if (optarg[0] != '/')
                                r = -EINVAL;
                        o->worker = optarg;
                        break;
                case ARG_UTMP:
                case ARG_WTMP:
                        if (optarg[0] != '/')
                                r = -EINVAL;
                        *(c == ARG_UTMP ? &o->utmp_path : &o->wtmp_path) = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r >= 0)
                                log_set_max_level(r);
                        break;
                default:
                        return -EINVAL;
                }
                if (r < 0) {
                        log_error("Invalid value '%s' for --%s.", optarg, options[idx].name);
                        return -EINVAL;
                }
                r = 0;
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. See --help.", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

typedef struct Context {
        StopSignals signals;
        Manager *manager;
} Context;

static void stop(void *userdata)
{
        Context *ctx = userdata;

        manager_stop(ctx->manager);
        stop_signals_close(&ctx->signals);
}

static int run(int argc, char **argv)
{
        LauncherOptions o = {
            .gateway_user = "helios-gateway",
            .pam_service = "helios",
            .pam_timeout_ms = 10 * 1000,
            .max_pam_helpers = 16,
            .mode = LAUNCHER_MODE_AUTO,
            .runtime_dir = "/run/helios",
            .unit_dropin_dir = WORKER_HOME_DROPIN_ROOT,
            .worker = HELIOS_WORKER_PATH,
            .max_users = 1024,
            .config_dir = POLICY_CONFIG_DIR,
            .start_timeout_ms = 30 * 1000,
            .max_requests_per_connection = 64,
            .max_requests = 256,
            .max_connections = 16,
            .utmp_path = _PATH_UTMPX,
            .wtmp_path = _PATH_WTMPX,
        };
        Context ctx = {};
        Manager *m = NULL;
        uv_loop_t loop;
        int r;

        r = parse_argv(argc, argv, &o);
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (o.max_requests_per_connection > o.max_requests)
                o.max_requests_per_connection = o.max_requests;
        if (geteuid() != 0) {
                log_error("helios-launcher runs as root: it starts workers as their users.");
                return EXIT_FAILURE;
        }
        /* Replies are sent with MSG_NOSIGNAL; this covers anything else writing to a closed pipe. */
        (void)signal(SIGPIPE, SIG_IGN);

        r = uv_loop_init(&loop);
        if (r < 0) {
                log_error("Cannot set up the event loop: %s", uv_strerror(r));
                return EXIT_FAILURE;
        }
        r = manager_new(&loop, &o, stop, &ctx, &m);
        if (r >= 0) {
                ctx.manager = m;
                stop_signals_start(&ctx.signals, &loop, stop, &ctx);
                r = manager_start(m);
                if (r < 0)
                        stop(&ctx);
                (void)uv_run(&loop, UV_RUN_DEFAULT);
                if (r >= 0 && manager_failed(m))
                        r = -EIO;
        }
        manager_free(m);
        if (uv_loop_close(&loop) < 0)
                log_error("Handles still open at exit.");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
        log_setup("helios-launcher");
        /* Hidden: the launcher re-executes itself for each PAM check (see pam-helper.h). */
        if (argc == 3 && streq(argv[1], "--pam-helper"))
                return pam_helper_main(argv[2]);
        return run(argc, argv);
}
