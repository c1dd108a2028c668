/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* helios-launcher's state: the socket the gateway talks to, its connections and requests in flight,
 * the PAM checks, the PAM login sessions (each held by a helios-session), and the users' workers (units
 * under systemd; in embedded mode, requests to helios-embedded, which this process starts for that mode
 * alone). */

typedef enum LauncherMode {
        LAUNCHER_MODE_AUTO,
        LAUNCHER_MODE_SYSTEMD,
        LAUNCHER_MODE_EMBEDDED,
        _LAUNCHER_MODE_MAX,
        _LAUNCHER_MODE_INVALID = -1,
} LauncherMode;

typedef struct LauncherOptions {
        const char *listen_path;  /* NULL: the socket comes from systemd */
        const char *gateway_user; /* the only peer served; its group may reach the workers */
        const char *pam_service;
        uint64_t pam_timeout_ms;
        unsigned max_pam_helpers;
        LauncherMode mode;
        const char *runtime_dir;     /* workers/USER.sock lives beneath */
        const char *unit_dropin_dir; /* where the worker units' home drop-ins go (systemd mode) */
        const char *worker;          /* the helios-worker executable (embedded mode) */
        unsigned max_users;          /* users with a worker socket (embedded mode) */
        const char *config_dir;      /* sandbox.conf and sandbox.d/ (policy/settings.c) */
        uint64_t start_timeout_ms;
        unsigned max_requests_per_connection;
        unsigned max_requests;
        unsigned max_connections;
        bool outbound_network; /* POLICY_SETTING_OUTBOUND_NETWORK (embedded mode) */
        const char *utmp_path; /* login records of open sessions */
        const char *wtmp_path; /* the history of sessions, for last */
} LauncherOptions;

typedef struct Manager Manager;

/* on_fatal: the manager cannot go on (helios-embedded could not start) and has to be stopped. */
int manager_new(uv_loop_t *loop, const LauncherOptions *o, void (*on_fatal)(void *userdata), void *userdata,
                Manager **ret);
int manager_start(Manager *m);
/* Stop serving; workers keep running. The loop then runs until every handle is closed. */
void manager_stop(Manager *m);
/* Whether it stopped because it could not go on: the launcher then exits with a failure. */
bool manager_failed(const Manager *m);
Manager *manager_free(Manager *m);
