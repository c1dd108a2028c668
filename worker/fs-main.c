/* SPDX-License-Identifier: MIT */
/* helios-fs: the worker's file-system service (fs.c, the same code) in a process of its own, started by
 * the worker from an administrator's manifest that replaces the built-in one ("replaces": "fs",
 * docs/services.md). It speaks to the worker over its standard input and output.
 *
 * At start it learns the workspace from the worker: the roots and limits (worker:info), before which
 * requests wait, then the loaded project (workspace:state), after subscribing to project:loaded so that
 * no change of project is missed between the two. The workspace answers workspace:state once it has
 * restored its project, which takes requests to this service: those are served meanwhile, with
 * relative paths resolved against the first root as the worker's own fs service does before a project
 * is loaded. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "bus-remote.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "service.h"
#include "strv.h"

typedef struct App {
        uv_loop_t *loop;
        Bus *bus;
        WorkerConfig config; /* what fs.c reads of the worker's settings, from worker:info */
        void *fs;
        uv_signal_t sigterm, sigint;
        bool stopping;
        bool heard_project; /* project:loaded arrived since subscribing: newer than workspace:state */
        int error;
} App;

static void log_open_handle(uv_handle_t *h, void *arg)
{
        log_error("Handle of type %s still open at exit.", uv_handle_type_name(uv_handle_get_type(h)));
}

static void app_stop(App *a, int error)
{
        if (a->error == 0)
                a->error = error;
        if (a->stopping)
                return;
        a->stopping = true;
        if (a->fs)
                fs_service_type.stop(TAKE_PTR(a->fs));
        bus_remote_close(a->bus);
        uv_close((uv_handle_t *)&a->sigterm, NULL);
        uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
        log_debug("Received %s, stopping.", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        app_stop(h->data, 0);
}

static void on_bus_closed(void *userdata)
{
        /* The worker has gone (or closed this service's connection): nothing is left to serve. */
        log_debug("The worker closed the connection.");
        app_stop(userdata, 0);
}

static const char *error_message(const cJSON *error)
{
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");

        return cJSON_IsString(m) ? m->valuestring : "no answer";
}

static int strv_from_json(const cJSON *array, char ***ret, size_t *ret_n)
{
        const cJSON *i;

        if (!cJSON_IsArray(array))
                return -EBADMSG;
        cJSON_ArrayForEach(i, array)
        {
                if (!cJSON_IsString(i))
                        return -EBADMSG;
                if (strv_push(ret, ret_n, i->valuestring, strlen(i->valuestring)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The settings fs.c reads, from the worker's worker:info answer. */
static int config_from_info(WorkerConfig *c, const cJSON *info)
{
        const cJSON *limits = cJSON_GetObjectItemCaseSensitive(info, "limits");
        const cJSON *state_dir = cJSON_GetObjectItemCaseSensitive(info, "stateDir");
        const cJSON *home = cJSON_GetObjectItemCaseSensitive(info, "home");
        uint64_t max_message, max_watches;
        int r;

        if (!json_get_uint(cJSON_GetObjectItemCaseSensitive(limits, "maxMessageSize"), SIZE_MAX / 8,
                           &max_message) ||
            !json_get_uint(cJSON_GetObjectItemCaseSensitive(limits, "maxWatches"), UINT32_MAX,
                           &max_watches) ||
            !cJSON_IsString(state_dir) || !cJSON_IsString(home) || max_message < 1024 || max_watches < 1)
                return -EBADMSG;
        r = strv_from_json(cJSON_GetObjectItemCaseSensitive(info, "roots"), &c->roots, &c->n_roots);
        if (r >= 0)
                r = strv_from_json(cJSON_GetObjectItemCaseSensitive(info, "watchExclude"), &c->watch_exclude,
                                   &c->n_watch_exclude);
        if (r < 0)
                return r;
        if (c->n_roots == 0)
                return -EBADMSG;
        for (size_t i = 0; i < c->n_roots; i++)
                if (c->roots[i][0] != '/')
                        return -EBADMSG;
        c->state_dir = strdup(state_dir->valuestring);
        c->home = strdup(home->valuestring);
        if (!c->state_dir || !c->home)
                return -ENOMEM;
        c->max_message = (size_t)max_message;
        c->max_watches = (unsigned)max_watches;
        return 0;
}

static void on_state(cJSON *result, cJSON *error, void *userdata)
{
        _cleanup_json_ cJSON *res = result, *err = error;
        App *a = userdata;
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(res, "root");
        cJSON *ev;

        if (a->stopping)
                return;
        if (!res) {
                log_error("The worker did not say which project is loaded: %s", error_message(err));
                app_stop(a, -EBADMSG);
                return;
        }
        /* The project loaded before this service started, told as the workspace told it then. */
        if (cJSON_IsString(root) && !a->heard_project) {
                ev = cJSON_CreateObject();
                if (!ev || !cJSON_AddStringToObject(ev, "root", root->valuestring)) {
                        cJSON_Delete(ev);
                        app_stop(a, log_oom());
                        return;
                }
                bus_publish(a->bus, EVENT_PROJECT_LOADED, ev, BUS_INTERNAL, 0);
        }
}

static void on_project_loaded(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        App *a = userdata;

        a->heard_project = true;
}

static void on_info(cJSON *result, cJSON *error, void *userdata)
{
        _cleanup_json_ cJSON *res = result, *err = error;
        App *a = userdata;
        ServiceContext ctx = {a->loop, a->bus, &a->config};
        int r;

        if (a->stopping)
                return;
        if (!res) {
                log_error("The worker did not describe the workspace: %s", error_message(err));
                app_stop(a, -EBADMSG);
                return;
        }
        r = config_from_info(&a->config, res);
        if (r < 0) {
                log_error_errno(r, "The worker's worker:info answer is not usable: %m");
                app_stop(a, r);
                return;
        }
        bus_remote_set_max_message(a->bus, a->config.max_message);
        r = fs_service_type.start(&ctx, &a->fs);
        if (r < 0) {
                app_stop(a, r);
                return;
        }
        /* Subscribed before asking, so a project loaded in between is heard. */
        r = bus_subscribe(a->bus, EVENT_PROJECT_LOADED, on_project_loaded, a);
        if (r >= 0)
                r = bus_remote_announce(a->bus);
        if (r >= 0)
                r = bus_call(a->bus, "workspace:state", NULL, on_state, a);
        if (r >= 0) {
                log_debug("Serving the file system.");
                bus_remote_ready(a->bus);
        }
        if (r < 0)
                app_stop(a, log_error_errno(r, "Failed to join the bus: %m"));
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

static void config_done(WorkerConfig *c)
{
        strv_free_n(c->roots, c->n_roots);
        strv_free_n(c->watch_exclude, c->n_watch_exclude);
        free(c->state_dir);
        free(c->home);
}

static int run(int argc, char **argv)
{
        App a = {0};
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
        a.loop = &loop;
        (void)uv_signal_init(&loop, &a.sigterm);
        (void)uv_signal_init(&loop, &a.sigint);
        a.sigterm.data = a.sigint.data = &a;
        (void)uv_signal_start(&a.sigterm, on_signal, SIGTERM);
        (void)uv_signal_start(&a.sigint, on_signal, SIGINT);

        r = bus_remote_new(&loop, STDIN_FILENO, STDOUT_FILENO, DEFAULT_MAX_MESSAGE, on_bus_closed, &a,
                           &a.bus);
        if (r >= 0)
                r = bus_call(a.bus, "worker:info", NULL, on_info, &a);
        if (r < 0) {
                log_error_errno(r, "Failed to speak to the worker on standard input and output: %m");
                app_stop(&a, r);
        }
        (void)uv_run(&loop, UV_RUN_DEFAULT);

        if (uv_loop_close(&loop) == UV_EBUSY) {
                uv_walk(&loop, log_open_handle, NULL);
                a.error = a.error < 0 ? a.error : -EBUSY;
        }
        bus_free(a.bus);
        config_done(&a.config);
        return a.error;
}

int main(int argc, char **argv)
{
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
