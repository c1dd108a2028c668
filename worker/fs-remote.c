/* SPDX-License-Identifier: MIT */
/* The file-system service (fs.c) joined to the worker's bus from outside, over one connection
 * (bus-remote.c): what helios-fs runs.
 *
 * At start it learns the workspace from the worker: the roots and limits (worker:info), before which
 * requests wait, then the loaded project (workspace:state), after subscribing to project:loaded so that
 * no change of project is missed between the two. The workspace answers workspace:state once it has
 * restored its project, which takes requests to this service: those are served meanwhile, with
 * relative paths resolved against the first root as the worker's own fs service does before a project
 * is loaded. */
#include "fs-remote.h"

#include <stdlib.h>
#include <string.h>

#include "bus-remote.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "service.h"
#include "strv.h"

struct FsRemote {
        uv_loop_t *loop;
        Bus *bus;
        WorkerConfig config; /* what fs.c reads of the worker's settings, from worker:info */
        void *fs;
        FsRemoteStoppedFn stopped;
        void *userdata;
        bool stopping;
        bool heard_project; /* project:loaded arrived since subscribing: newer than workspace:state */
        int error;
};

static void fs_remote_stop_error(FsRemote *a, int error)
{
        if (a->error == 0)
                a->error = error;
        if (a->stopping)
                return;
        a->stopping = true;
        if (a->fs)
                fs_service_type.stop(TAKE_PTR(a->fs));
        bus_remote_close(a->bus);
        a->stopped(a->userdata);
}

void fs_remote_stop(FsRemote *a)
{
        fs_remote_stop_error(a, 0);
}

static void on_bus_closed(void *userdata)
{
        /* The worker has gone (or closed this service's connection): nothing is left to serve. */
        log_debug("The worker closed the connection.");
        fs_remote_stop(userdata);
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
        FsRemote *a = userdata;
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(res, "root");
        cJSON *ev;

        if (a->stopping)
                return;
        if (!res) {
                log_error("The worker did not say which project is loaded: %s", error_message(err));
                fs_remote_stop_error(a, -EBADMSG);
                return;
        }
        /* The project loaded before this service started, told as the workspace told it then. */
        if (cJSON_IsString(root) && !a->heard_project) {
                ev = cJSON_CreateObject();
                if (!ev || !cJSON_AddStringToObject(ev, "root", root->valuestring)) {
                        cJSON_Delete(ev);
                        fs_remote_stop_error(a, log_oom());
                        return;
                }
                bus_remote_deliver(a->bus, EVENT_PROJECT_LOADED, ev);
                cJSON_Delete(ev);
        }
}

static void on_project_loaded(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        FsRemote *a = userdata;

        a->heard_project = true;
}

static void on_info(cJSON *result, cJSON *error, void *userdata)
{
        _cleanup_json_ cJSON *res = result, *err = error;
        FsRemote *a = userdata;
        ServiceContext ctx = {a->loop, a->bus, &a->config};
        int r;

        if (a->stopping)
                return;
        if (!res) {
                log_error("The worker did not describe the workspace: %s", error_message(err));
                fs_remote_stop_error(a, -EBADMSG);
                return;
        }
        r = config_from_info(&a->config, res);
        if (r < 0) {
                log_error_errno(r, "The worker's worker:info answer is not usable: %m");
                fs_remote_stop_error(a, r);
                return;
        }
        bus_remote_set_max_message(a->bus, a->config.max_message);
        r = fs_service_type.start(&ctx, &a->fs);
        if (r < 0) {
                fs_remote_stop_error(a, r);
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
                fs_remote_stop_error(a, log_error_errno(r, "Failed to join the bus: %m"));
}

int fs_remote_new(uv_loop_t *loop, int in_fd, int out_fd, FsRemoteStoppedFn stopped, void *userdata,
                  FsRemote **ret)
{
        FsRemote *a = calloc(1, sizeof(FsRemote));
        int r;

        if (!a)
                return -ENOMEM;
        *a = (FsRemote){.loop = loop, .stopped = stopped, .userdata = userdata};
        *ret = a; /* stopped and freed by the caller on failure too */
        r = bus_remote_new(loop, in_fd, out_fd, DEFAULT_MAX_MESSAGE, on_bus_closed, a, &a->bus);
        if (r >= 0)
                r = bus_call(a->bus, "worker:info", NULL, on_info, a);
        if (r < 0)
                fs_remote_stop_error(a, r);
        return r;
}

int fs_remote_error(const FsRemote *a)
{
        return a ? a->error : 0;
}

FsRemote *fs_remote_free(FsRemote *a)
{
        if (!a)
                return NULL;
        bus_free(a->bus);
        strv_free_n(a->config.roots, a->config.n_roots);
        strv_free_n(a->config.watch_exclude, a->config.n_watch_exclude);
        free(a->config.state_dir);
        free(a->config.home);
        free(a);
        return NULL;
}
