/* SPDX-License-Identifier: MIT */
/* helios-fs: the worker's file-system service (fs.c, the same code) in a process of its own, started by
 * the worker from an administrator's manifest that replaces the built-in one ("replaces": "fs",
 * docs/services.md). It speaks to the worker over its standard input and output (fs-remote.c). */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "fs-remote.h"
#include "log.h"
#include "macro.h"

typedef struct Main {
        FsRemote *fs;
        uv_signal_t sigterm, sigint;
} Main;

static void log_open_handle(uv_handle_t *h, void *arg)
{
        log_error("Handle of type %s still open at exit.", uv_handle_type_name(uv_handle_get_type(h)));
}

static void on_signal(uv_signal_t *h, int signum)
{
        Main *m = h->data;

        log_debug("Received %s, stopping.", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        fs_remote_stop(m->fs);
}

static void on_stopped(void *userdata)
{
        Main *m = userdata;

        uv_close((uv_handle_t *)&m->sigterm, NULL);
        uv_close((uv_handle_t *)&m->sigint, NULL);
}

static void help(void)
{
        printf("%s [OPTIONS]\n\n"
               "The Helios file-system service in a process of its own. Started by helios-worker from a\n"
               "service manifest that replaces the built-in fs service; speaks JSON-RPC on its standard\n"
               "input and output.\n\n"
               "  -h --help      Show this help\n"
               "     --version  Show the version\n",
               program_invocation_short_name);
}

static int parse_argv(int argc, char **argv)
{
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, ARG_VERSION},
            {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("helios-fs %s\n", HELIOS_VERSION);
                        return 1;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "%s takes no arguments.\n", program_invocation_short_name);
                return -EINVAL;
        }
        return 0;
}

static int run(int argc, char **argv)
{
        Main m = {0};
        uv_loop_t loop;
        int r;

        log_setup("helios-fs");
        r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? 0 : r;

        /* As in the worker: large buffers (a file's content) go back to the kernel when freed. */
        (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        (void)mallopt(M_TRIM_THRESHOLD, 256 * 1024);
        (void)signal(SIGPIPE, SIG_IGN);

        r = uv_loop_init(&loop);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %s", uv_strerror(r));
        (void)uv_signal_init(&loop, &m.sigterm);
        (void)uv_signal_init(&loop, &m.sigint);
        m.sigterm.data = m.sigint.data = &m;
        (void)uv_signal_start(&m.sigterm, on_signal, SIGTERM);
        (void)uv_signal_start(&m.sigint, on_signal, SIGINT);

        r = fs_remote_new(&loop, STDIN_FILENO, STDOUT_FILENO, on_stopped, &m, &m.fs);
        if (r < 0)
                log_error_errno(r, "Failed to speak to the worker on standard input and output: %m");
        if (!m.fs)
                on_stopped(&m); /* not even made: nothing else closes the signal handles */
        (void)uv_run(&loop, UV_RUN_DEFAULT);

        if (m.fs)
                r = fs_remote_error(m.fs);
        if (uv_loop_close(&loop) == UV_EBUSY) {
                uv_walk(&loop, log_open_handle, NULL);
                r = r < 0 ? r : -EBUSY;
        }
        fs_remote_free(m.fs);
        return r;
}

int main(int argc, char **argv)
{
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
