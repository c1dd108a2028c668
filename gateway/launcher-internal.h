/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the two implementations of launcher.h: the embedded one (launcher.c) and the client of
 * helios-launcher (launcher-client.c). Nothing else includes this. */

#include "launcher.h"

typedef struct RemoteLauncher RemoteLauncher;

typedef struct LauncherOps {
        int (*start)(Launcher *l);
        void (*stop)(Launcher *l);
        void (*free)(Launcher *l);
        int (*authenticate)(Launcher *l, const char *user, const char *password, LauncherAuthCallback cb,
                            void *userdata, LauncherRequest **ret_request);
        int (*find_worker)(Launcher *l, const char *user, LauncherWorkerCallback cb, void *userdata,
                           char **ret_path, LauncherRequest **ret_request);
        /* NULL: accounts are not checked (the embedded launcher's one user runs the gateway). */
        int (*check_account)(Launcher *l, const char *user, LauncherAuthCallback cb, void *userdata,
                             LauncherRequest **ret_request);
        /* NULL: no PAM login sessions (the embedded launcher). */
        int (*open_session)(Launcher *l, const char *key, const char *user, const char *rhost,
                            LauncherAuthCallback cb, void *userdata, LauncherRequest **ret_request);
        void (*close_session)(Launcher *l, const char *key);
        void (*worker_unreachable)(Launcher *l, const char *user);
        void (*cancel)(LauncherRequest *r);
        void (*get_stats)(const Launcher *l, LauncherStats *ret);
        void (*describe)(const Launcher *l, char *buf, size_t size);
} LauncherOps;

/* Every pending request starts with this. */
struct LauncherRequest {
        Launcher *launcher;
};

struct Launcher {
        const LauncherOps *ops;
        uv_loop_t *loop;
        char *single_user; /* embedded only */
        void (*sessions_lost)(void *userdata);
        void *sessions_lost_userdata;

        /* embedded */
        struct Activator *activator;
        char *socket_path;
        struct PolicyUserSandbox *sandbox;

        /* helios-launcher */
        RemoteLauncher *remote;
};
