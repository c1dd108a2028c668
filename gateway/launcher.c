/* SPDX-License-Identifier: MIT */
#include "launcher.h"
#include "launcher-internal.h"

#include <assert.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "activator.h"
#include "log.h"
#include "macro.h"
#include "policy.h"
#include "users-file.h"

/* ---- embedded: this process's own user, the worker activated in-process ---- */

static int embedded_start(Launcher *l)
{
        return activator_start(l->activator);
}

static void embedded_stop(Launcher *l)
{
        activator_stop(l->activator);
}

static void embedded_free(Launcher *l)
{
        activator_free(l->activator);
        policy_user_sandbox_free(l->sandbox);
        free(l->socket_path);
}

static int embedded_authenticate(Launcher *l, const char *user, const char *password,
                                 LauncherAuthCallback cb, void *userdata, LauncherRequest **ret_request)
{
        /* Checking a password against the system's accounts needs the privileged launcher. */
        return -EOPNOTSUPP;
}

static int embedded_find_worker(Launcher *l, const char *user, LauncherWorkerCallback cb, void *userdata,
                                char **ret_path, LauncherRequest **ret_request)
{
        char *p;

        /* Every account the gateway lets in is this process's user here: there is one worker. */
        if (activator_failing(l->activator))
                return -EIO;
        p = strdup(l->socket_path);
        if (!p)
                return -ENOMEM;
        *ret_path = p;
        return 0;
}

static void embedded_worker_unreachable(Launcher *l, const char *user)
{
        activator_recheck(l->activator);
}

static void embedded_cancel(LauncherRequest *r)
{
        /* Nothing is ever pending here. */
        assert(!r);
}

static void embedded_get_stats(const Launcher *l, LauncherStats *ret)
{
        *ret = (LauncherStats){
            .worker_starts = activator_worker_starts(l->activator),
            .workers_running = activator_worker_pid(l->activator) > 0,
        };
}

static void embedded_describe(const Launcher *l, char *buf, size_t size)
{
        pid_t pid = activator_worker_pid(l->activator);

        if (pid > 0)
                (void)snprintf(buf, size, "worker pid %d", (int)pid);
        else
                (void)snprintf(buf, size, "no worker");
}

static const LauncherOps embedded_ops = {
    .start = embedded_start,
    .stop = embedded_stop,
    .free = embedded_free,
    .authenticate = embedded_authenticate,
    .find_worker = embedded_find_worker,
    .worker_unreachable = embedded_worker_unreachable,
    .cancel = embedded_cancel,
    .get_stats = embedded_get_stats,
    .describe = embedded_describe,
};

/* Between fork and exec: the policy's sandbox, as much of it as the user can give the worker. */
static int embedded_child_setup(void *userdata)
{
        Launcher *l = userdata;

        return policy_user_sandbox_enter(l->sandbox, NULL);
}

static void on_activator_change(void *userdata)
{
        /* Status lines are refreshed by the gateway's own timer; nothing to push from here. */
        (void)userdata;
}

int launcher_new_embedded(uv_loop_t *loop, const GatewayConfig *config, const struct rlimit *worker_nofile,
                          Launcher **ret)
{
        _cleanup_free_ char **argv = NULL;
        struct passwd *pw;
        Launcher *l;
        int r;

        l = calloc(1, sizeof(Launcher));
        if (!l)
                return -ENOMEM;
        l->ops = &embedded_ops;
        l->loop = loop;

        pw = getpwuid(getuid());
        if (!pw || !user_name_is_valid(pw->pw_name)) {
                log_error("Cannot use the name of uid %u as a Helios user name.", (unsigned)getuid());
                r = -EINVAL;
                goto fail;
        }
        l->single_user = strdup(pw->pw_name);
        if (!l->single_user || asprintf(&l->socket_path, "%s/worker.sock", config->runtime_dir) < 0) {
                l->socket_path = NULL;
                r = -ENOMEM;
                goto fail;
        }

        r = activator_prepare_directory(config->runtime_dir);
        if (r < 0) {
                log_error_errno(r, "Cannot use %s as the private runtime directory: %m",
                                config->runtime_dir);
                goto fail;
        }

        r = policy_user_sandbox_new(pw->pw_dir, &l->sandbox);
        if (r < 0) {
                log_error_errno(r, "Cannot prepare the worker's sandbox: %m");
                goto fail;
        }
        if (r == 0)
                log_warning(
                    "Cannot build the seccomp filter of the policy here (a system-call filter of this "
                    "process's own refuses it); the worker inherits that filter instead.");
        r = policy_user_sandbox_probe();
        if (r > 0)
                log_info("The worker runs with the seccomp filter, in user, mount and IPC namespaces of its "
                         "own.");
        else
                log_notice("No user namespace for the worker here (%s): it runs with the seccomp filter and "
                           "no_new_privs only.",
                           r == 0 ? "running as root" : strerror(-r));

        argv = calloc(config->n_worker_args + 2, sizeof(char *));
        if (!argv) {
                r = -ENOMEM;
                goto fail;
        }
        argv[0] = config->worker;
        for (size_t i = 0; i < config->n_worker_args; i++)
                argv[i + 1] = config->worker_args[i];

        ActivatorParams params = {
            .socket_path = l->socket_path,
            .worker_path = config->worker,
            .worker_argv = argv,
            .child_setup = embedded_child_setup,
            .on_change = on_activator_change,
            .userdata = l,
            .worker_nofile = worker_nofile,
        };
        r = activator_new(loop, &params, &l->activator);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the worker socket %s: %m", l->socket_path);
                goto fail;
        }
        *ret = l;
        return 0;
fail:
        policy_user_sandbox_free(l->sandbox);
        free(l->single_user);
        free(l->socket_path);
        free(l);
        return r;
}

/* ---- the interface ---- */

int launcher_start(Launcher *l)
{
        return l->ops->start(l);
}

void launcher_stop(Launcher *l)
{
        if (l)
                l->ops->stop(l);
}

Launcher *launcher_free(Launcher *l)
{
        if (!l)
                return NULL;
        l->ops->free(l);
        free(l->single_user);
        free(l);
        return NULL;
}

const char *launcher_single_user(const Launcher *l)
{
        return l->single_user;
}

bool launcher_can_authenticate(const Launcher *l)
{
        return l->remote != NULL;
}

int launcher_authenticate(Launcher *l, const char *user, const char *password, LauncherAuthCallback cb,
                          void *userdata, LauncherRequest **ret_request)
{
        return l->ops->authenticate(l, user, password, cb, userdata, ret_request);
}

int launcher_find_worker(Launcher *l, const char *user, LauncherWorkerCallback cb, void *userdata,
                         char **ret_path, LauncherRequest **ret_request)
{
        return l->ops->find_worker(l, user, cb, userdata, ret_path, ret_request);
}

int launcher_check_account(Launcher *l, const char *user, LauncherAuthCallback cb, void *userdata,
                           LauncherRequest **ret_request)
{
        if (!l->ops->check_account)
                return -EOPNOTSUPP;
        return l->ops->check_account(l, user, cb, userdata, ret_request);
}

int launcher_open_session(Launcher *l, const char *key, const char *user, const char *rhost,
                          LauncherAuthCallback cb, void *userdata, LauncherRequest **ret_request)
{
        if (!l->ops->open_session)
                return -EOPNOTSUPP;
        return l->ops->open_session(l, key, user, rhost, cb, userdata, ret_request);
}

void launcher_close_session(Launcher *l, const char *key)
{
        if (l->ops->close_session)
                l->ops->close_session(l, key);
}

void launcher_on_sessions_lost(Launcher *l, void (*fn)(void *userdata), void *userdata)
{
        l->sessions_lost = fn;
        l->sessions_lost_userdata = userdata;
}

void launcher_worker_unreachable(Launcher *l, const char *user)
{
        l->ops->worker_unreachable(l, user);
}

void launcher_request_cancel(LauncherRequest *r)
{
        if (r)
                r->launcher->ops->cancel(r);
}

void launcher_get_stats(const Launcher *l, LauncherStats *ret)
{
        l->ops->get_stats(l, ret);
}

void launcher_describe(const Launcher *l, char *buf, size_t size)
{
        l->ops->describe(l, buf, size);
}
