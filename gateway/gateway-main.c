/* SPDX-License-Identifier: MIT */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "passwd.h"
#include "server.h"

static void log_open_handle(uv_handle_t *h, void *arg)
{
        log_error("Handle of type %s still open at exit.", uv_handle_type_name(uv_handle_get_type(h)));
}

static int run(int argc, char **argv)
{
        GatewayConfig *config = NULL;
        Gateway *gateway = NULL;
        uv_loop_t loop;
        int r;

        log_setup("helios-gateway");
        if (argc >= 2 && streq(argv[1], "passwd"))
                return passwd_run(argc - 1, argv + 1);
        if (argc >= 2 && (streq(argv[1], "sessions") || streq(argv[1], "logout")))
                return admin_client_run(argc - 1, argv + 1);

        r = gateway_config_load(argc, argv, &config);
        if (r != 0)
                return r > 0 ? 0 : r;
        if (config->check_config) {
                /* Reading files only: root may check what the gateway's account will read. */
                r = gateway_check_config(config);
                gateway_config_free(config);
                return r;
        }

        /* The gateway faces the network and, embedded, serves its own account's files and shells to the
         * browser: as root that would be /root and root shells. */
        if (getuid() == 0 || geteuid() == 0) {
                gateway_config_free(config);
                log_error("helios-gateway does not run as root: run it as the user to serve, or as its own "
                          "account with helios-launcher for many users.");
                return -EPERM;
        }

        /* As in the worker: every large buffer (a piece of a big message, a page's queue) in its own
         * mapping that goes back to the kernel when freed, and the heap trimmed when its top is free;
         * glibc's default raises the threshold after the first such free and keeps the memory. */
        (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        (void)mallopt(M_TRIM_THRESHOLD, 256 * 1024);

        /* A client that goes away mid-write must be an error return, not a fatal signal. */
        (void)signal(SIGPIPE, SIG_IGN);

        r = uv_loop_init(&loop);
        if (r < 0) {
                gateway_config_free(config);
                return log_error_errno(r, "Failed to create the event loop: %s", uv_strerror(r));
        }
        r = gateway_new(&loop, config, argc, argv, &gateway);
        if (r >= 0) {
                r = gateway_start(gateway);
                if (r < 0)
                        gateway_stop(gateway);
                (void)uv_run(&loop, UV_RUN_DEFAULT);
                gateway_finish(gateway);
                /* libwebsockets' last handles close only now. */
                (void)uv_run(&loop, UV_RUN_DEFAULT);
        }
        if (uv_loop_close(&loop) == UV_EBUSY) {
                uv_walk(&loop, log_open_handle, NULL);
                r = r < 0 ? r : -EBUSY;
        }
        gateway_free(gateway);
        return r;
}

int main(int argc, char **argv)
{
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
