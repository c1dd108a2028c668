/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <uv.h>

/* The launcher's side of embedded mode: it runs helios-embedded (embedded-protocol.h), the process that
 * forks and sandboxes workers, and asks it for users' worker sockets. The launcher itself never forks a
 * worker. helios-embedded is started with the link; if it dies, requests in flight fail and the next
 * request starts a new one, which finds the workers still running. */

typedef struct EmbeddedLink EmbeddedLink;
typedef struct EmbeddedJob EmbeddedJob;

/* status is LAUNCHER_REPLY_OK with the socket path, or LAUNCHER_REPLY_ERROR with a LAUNCHER_ERROR_*. */
typedef void (*EmbeddedJobCallback)(const char *status, const char *arg, void *userdata);

typedef struct EmbeddedLinkParams {
        const char *path;  /* the helios-embedded executable */
        char *const *argv; /* its arguments, argv[0] included */
        char *const *envp; /* its environment, which workers inherit */
        /* helios-embedded reported users with a worker socket and workers running. */
        void (*on_status)(unsigned users, unsigned running, void *userdata);
        /* helios-embedded exited before it was ready: embedded mode cannot work as configured. */
        void (*on_failed)(void *userdata);
        void *userdata;
} EmbeddedLinkParams;

int embedded_link_new(uv_loop_t *loop, const EmbeddedLinkParams *p, EmbeddedLink **ret);
/* Start helios-embedded now (and again whenever a request finds none running). */
int embedded_link_start(EmbeddedLink *l);
/* End the link; helios-embedded stops (workers keep running). The loop runs until it has exited. */
void embedded_link_stop(EmbeddedLink *l);
/* After embedded_link_stop(); the memory goes once the loop is done with the handles. */
EmbeddedLink *embedded_link_free(EmbeddedLink *l);

/* Ask for user's worker socket (user has passed the account check). */
int embedded_link_worker(EmbeddedLink *l, const char *user, EmbeddedJobCallback cb, void *userdata,
                         EmbeddedJob **ret);
/* The callback will not be called. */
void embedded_job_cancel(EmbeddedJob *j);
