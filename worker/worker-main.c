/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "policy.h"
#include "server.h"
#include "socket-util.h"

static void log_open_handle(uv_handle_t *h, void *arg)
{
        log_error("Handle of type %s still open at exit.", uv_handle_type_name(uv_handle_get_type(h)));
}

static int take_credentials_fd(WorkerConfig *config)
{
        const char *e = getenv(POLICY_CREDENTIALS_FD_ENV);
        struct stat st;
        uint64_t v;
        int fd, r;

        if (!e)
                return 0;
        r = parse_uint(e, 3, INT32_MAX, &v);
        if (r < 0)
                return r;
        fd = (int)v;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        /* Not for the terminals. */
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return negative_errno();
        if (unsetenv(POLICY_CREDENTIALS_FD_ENV) < 0)
                return negative_errno();
        config->credentials_fd = fd;
        return 0;
}

/* The pid the machine knows this worker by (worker:info, the launcher's and systemd's logs), learnt from
 * the supervisor outside the workspace's PID namespace, where it is 2. */
static void learn_outer_pid(WorkerConfig *config)
{
        int r;

        if (config->credentials_fd < 0)
                return;
        r = peer_credentials_own_pid(config->credentials_fd, 5000, &config->outer_pid);
        if (r < 0)
                log_warning_errno(r,
                                  "Failed to learn this worker's pid outside its workspace, ignoring: %m");
}

static int run(int argc, char **argv)
{
        WorkerConfig *config = NULL;
        Server *server = NULL;
        uv_loop_t loop;
        int r;

        log_setup("helios-worker");
        r = worker_config_parse(argc, argv, &config);
        if (r != 0)
                return r > 0 ? 0 : r;

        /* In embedded mode the launcher made the namespaces, and left the socket that answers for peers'
         * credentials here. */
        r = take_credentials_fd(config);
        if (r < 0) {
                worker_config_free(config);
                return log_error_errno(r, "Invalid $%s: %m", POLICY_CREDENTIALS_FD_ENV);
        }

        /* Under systemd no directive gives the workspace a network of its own that still reaches out, or
         * processes of its own: the worker makes them itself, before the filter that refuses namespace
         * calls. This process stays outside as the workspace's supervisor; the worker goes on in the
         * new PID namespace. */
        if (config->namespaces) {
                r = policy_workspace_enter(config->outbound_network, &config->credentials_fd);
                if (r < 0) {
                        worker_config_free(config);
                        return log_error_errno(r, "Failed to enter the workspace's namespaces: %m");
                }
                /* The socket systemd passed is ours, by a new pid. */
                if (getenv("LISTEN_PID")) {
                        char pid[24];
                        (void)snprintf(pid, sizeof(pid), "%d", (int)getpid());
                        if (setenv("LISTEN_PID", pid, 1) < 0) {
                                worker_config_free(config);
                                return log_oom();
                        }
                }
        }

        learn_outer_pid(config);

        /* Under systemd the unit's directives carry most of the sandbox, but not the rules on system
         * call arguments (TIOCSTI, TIOCLINUX), so the worker loads the whole filter itself, before it
         * accepts a connection or starts a shell. A worker that cannot is not started at all. */
        if (config->seccomp) {
                r = policy_seccomp_apply();
                if (r < 0) {
                        worker_config_free(config);
                        return log_error_errno(r, "Failed to load the seccomp filter: %m");
                }
                log_debug("Loaded the seccomp filter of the sandbox policy.");
        }

        /* A fixed threshold keeps every large buffer (a big message, a file's content) in its own
         * mapping that goes back to the kernel when freed; glibc's default raises the threshold after
         * the first such free, after which a worker that once read a 10 MiB file would hold on to that
         * memory for the rest of its life. */
        (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        (void)mallopt(M_TRIM_THRESHOLD, 256 * 1024);

        /* A peer that goes away mid-write must be an error return, not a fatal signal. */
        (void)signal(SIGPIPE, SIG_IGN);
        /* The umask is inherited on purpose (from systemd's UMask= or the launcher): files the user
         * creates through Helios get the same modes as files made in their shell. Private state is
         * created with explicit modes instead. */

        r = uv_loop_init(&loop);
        if (r < 0) {
                worker_config_free(config);
                return log_error_errno(r, "Failed to create the event loop: %s", uv_strerror(r));
        }

        r = server_new(&loop, config, &server);
        if (r >= 0) {
                r = server_start(server);
                if (r < 0)
                        server_stop(server);
                (void)uv_run(&loop, UV_RUN_DEFAULT);
        }

        if (uv_loop_close(&loop) == UV_EBUSY) {
                uv_walk(&loop, log_open_handle, NULL);
                r = r < 0 ? r : -EBUSY;
        }
        server_free(server);
        worker_config_free(config);
        return r;
}

int main(int argc, char **argv)
{
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
