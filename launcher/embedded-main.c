/* SPDX-License-Identifier: MIT */
/* helios-embedded: the spawner of embedded mode. helios-launcher starts it when there is no systemd to
 * start workers, and only then; it serves the launcher alone, over the socket it is handed as fd 3
 * (embedded-protocol.h). Everything that forks workers, enters the sandbox, scans /proc for workers of
 * an earlier run and reaps them lives here, not in the launcher. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

#include "embedded-protocol.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "policy.h"
#include "spawner.h"
#include "stop-signals.h"

static void help(void)
{
        printf("Usage: helios-embedded [OPTIONS]\n\n"
               "Starts sandboxed workers for helios-launcher in embedded mode; run by the launcher only.\n\n"
               "  -h --help              Show this help\n"
               "     --runtime-dir DIR   Worker sockets go to DIR/workers\n"
               "     --worker PATH       The helios-worker executable, an absolute path\n"
               "     --gateway-gid GID   The group that may open every worker socket\n"
               "     --max-users N       Users with a worker socket\n"
               "     --config-dir DIR    Where sandbox.conf and sandbox.d/ are\n"
               "     --log-level LEVEL   err, warning, notice, info or debug\n");
}

static int parse_argv(int argc, char **argv, SpawnerOptions *o)
{
        enum {
                ARG_RUNTIME_DIR = 0x100,
                ARG_WORKER,
                ARG_GATEWAY_GID,
                ARG_MAX_USERS,
                ARG_CONFIG_DIR,
                ARG_LOG_LEVEL
        };
        static const struct option options[] = {
            {"help", no_argument, NULL, 'h'},
            {"runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR},
            {"worker", required_argument, NULL, ARG_WORKER},
            {"gateway-gid", required_argument, NULL, ARG_GATEWAY_GID},
            {"max-users", required_argument, NULL, ARG_MAX_USERS},
            {"config-dir", required_argument, NULL, ARG_CONFIG_DIR},
            {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
            {},
        };
        uint64_t v;
        int c, idx = 0, r = 0;

        while ((c = getopt_long(argc, argv, "h", options, &idx)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_RUNTIME_DIR:
                        r = optarg[0] == '/' ? 0 : -EINVAL;
                        o->runtime_dir = optarg;
                        break;
                case ARG_WORKER:
                        r = optarg[0] == '/' ? 0 : -EINVAL;
                        o->worker = optarg;
                        break;
                case ARG_GATEWAY_GID:
                        r = parse_uint(optarg, 1, (gid_t)-2, &v);
                        o->gateway_gid = (gid_t)v;
                        break;
                case ARG_MAX_USERS:
                        r = parse_uint(optarg, 1, 100000, &v);
                        o->max_users = (unsigned)v;
                        break;
                case ARG_CONFIG_DIR:
                        r = optarg[0] == '/' ? 0 : -EINVAL;
                        o->config_dir = optarg;
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
        if (optind < argc || !o->runtime_dir || !o->worker || o->gateway_gid == 0) {
                log_error("--runtime-dir, --worker and --gateway-gid are needed, and nothing else.");
                return -EINVAL;
        }
        return 0;
}

typedef struct Context {
        StopSignals signals;
        Spawner *spawner;
} Context;

static void stop(void *userdata)
{
        Context *ctx = userdata;

        spawner_stop(ctx->spawner);
        stop_signals_close(&ctx->signals);
}

/* fd 3 must be the launcher's end of a SOCK_SEQPACKET pair, made by root. */
static int check_link(void)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (sd_is_socket_unix(EMBEDDED_LINK_FD, SOCK_SEQPACKET, 0, NULL, 0) <= 0)
                return -EBADF;
        if (getsockopt(EMBEDDED_LINK_FD, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (cred.uid != 0)
                return -EPERM;
        return 0;
}

static int run(int argc, char **argv)
{
        SpawnerOptions o = {.max_users = 1024, .config_dir = POLICY_CONFIG_DIR};
        Context ctx = {};
        uv_loop_t loop;
        int r;

        r = parse_argv(argc, argv, &o);
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (geteuid() != 0) {
                log_error("helios-embedded runs as root: it starts workers as their users.");
                return EXIT_FAILURE;
        }
        r = check_link();
        if (r < 0) {
                log_error_errno(r,
                                "helios-embedded is started by helios-launcher, with its link as fd 3: %m");
                return EXIT_FAILURE;
        }
        (void)signal(SIGPIPE, SIG_IGN);

        r = uv_loop_init(&loop);
        if (r < 0) {
                log_error("Cannot set up the event loop: %s", uv_strerror(r));
                return EXIT_FAILURE;
        }
        r = spawner_new(&loop, &o, EMBEDDED_LINK_FD, stop, &ctx, &ctx.spawner);
        if (r < 0)
                log_error_errno(r, "Cannot set up: %m");
        else {
                stop_signals_start(&ctx.signals, &loop, stop, &ctx);
                r = spawner_start(ctx.spawner);
                if (r < 0)
                        stop(&ctx);
                (void)uv_run(&loop, UV_RUN_DEFAULT);
        }
        spawner_free(ctx.spawner);
        if (uv_loop_close(&loop) < 0)
                log_error("Handles still open at exit.");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
        log_setup("helios-embedded");
        return run(argc, argv);
}
