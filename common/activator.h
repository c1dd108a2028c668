/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <uv.h>

/* Socket activation of one worker without systemd, exactly the way systemd does it for a socket unit
 * with Accept=no: the activator creates and listens on the worker's Unix socket; when a client connects
 * and no worker runs, it forks, hands the listening socket to the child as fd 3 (LISTEN_FDS=1,
 * LISTEN_PID=the child's pid) and execs the worker, which accepts the pending connection and any later
 * ones itself. While the worker runs the activator does not watch the socket; when the worker exits it is
 * reaped (its pid only) and the socket is watched again, so the next connection brings a worker back.
 *
 * A worker outlives the process that started it (a gateway restart must not cost anyone their
 * terminals): a new activator that finds a live worker on the socket path leaves it serving, watches its
 * pid, and takes the path over once it has exited. */

typedef struct Activator Activator;

typedef struct ActivatorParams {
        const char *socket_path;
        const char *worker_path;
        char *const *worker_argv; /* NULL-terminated, argv[0] included */
        /* Runs in the child between fork and exec (the privileged launcher drops privileges and applies
         * the sandbox here). Only async-signal-safe calls; return < 0 to abort the start. May be NULL. */
        int (*child_setup)(void *userdata);
        /* Runs here just before each fork, to prepare what the child needs (the launcher's spawner
         * makes the worker's cgroup); return < 0 to abort the start. May be NULL. */
        int (*before_start)(void *userdata);
        /* The worker (started here, or found running from an earlier run) has exited: clean up after
         * it (the spawner kills what is left in its cgroup). Called from the loop. May be NULL. */
        void (*after_exit)(void *userdata);
        /* A worker started or exited, or a worker from an earlier run was found: for status and
         * metrics. Called from the loop. May be NULL. */
        void (*on_change)(void *userdata);
        void *userdata;
        /* The file limit the worker gets, when this process raised its own; NULL: inherit. */
        const struct rlimit *worker_nofile;
        /* The worker's whole environment (LISTEN_* are added); NULL: this process's, minus what
         * systemd sets per service. */
        char *const *worker_envp;
        /* The worker runs as another user (the privileged launcher's case): the socket belongs to this
         * process's user and to socket_gid, with socket_mode, and a worker found serving it from an
         * earlier run must be running as worker_uid. Otherwise the socket is this user's alone (0600),
         * and so is the worker. */
        bool shared;
        uid_t worker_uid;
        gid_t socket_gid;
        mode_t socket_mode;
        /* The worker's standard input is /dev/null and its output and errors go into a pipe of its
         * own that this process relays into its log, each line tagged with this name (the user's).
         * May be NULL. */
        const char *output_tag;
} ActivatorParams;

/* Create path as a directory only this user can enter (0700), or check that an existing one is a real
 * directory owned by this user and closed to everyone else. -EPERM if it is not. */
int activator_prepare_directory(const char *path);
/* Create path (mode, owned by this user and gid), or give an existing directory of this user exactly that
 * mode and group. -EPERM if it belongs to someone else; mode must not let anyone but its owner write. */
int activator_prepare_shared_directory(const char *path, mode_t mode, gid_t gid);

int activator_new(uv_loop_t *loop, const ActivatorParams *params, Activator **ret);
/* Bind and listen on the socket path (or find a worker already serving it) and start watching. */
int activator_start(Activator *a);
/* Close every handle. A running worker keeps running and keeps serving the socket. */
void activator_stop(Activator *a);
/* After activator_stop(); if the loop has yet to finish closing the handles, the memory is released
 * once it has. */
Activator *activator_free(Activator *a);

/* A client found nobody listening: look again now rather than when the watched worker's exit is
 * noticed (the two race). */
void activator_recheck(Activator *a);

/* The worker keeps failing to start: clients are turned away until the back-off is over. */
bool activator_failing(const Activator *a);

const char *activator_socket_path(const Activator *a);
/* The worker serving the socket (started here or found running), 0 if none. */
pid_t activator_worker_pid(const Activator *a);
/* Workers started by this activator. */
unsigned long long activator_worker_starts(const Activator *a);
