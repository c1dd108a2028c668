/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* helios-embedded's state: the link to helios-launcher (embedded-protocol.h) and, per user, the worker
 * socket with its activator (common/activator.h) and the sandbox plan its workers start in. */

typedef struct SpawnerOptions {
        const char *runtime_dir; /* workers/USER.sock lives beneath */
        const char *worker;      /* the helios-worker executable */
        gid_t gateway_gid;       /* may open every worker socket */
        unsigned max_users;      /* users with a worker socket */
        const char *config_dir;  /* sandbox.conf and sandbox.d/ (policy/settings.c) */
} SpawnerOptions;

typedef struct Spawner Spawner;

/* link_fd: the launcher's socket, taken over. on_done runs once the launcher has gone. */
int spawner_new(uv_loop_t *loop, const SpawnerOptions *o, int link_fd, void (*on_done)(void *userdata),
                void *userdata, Spawner **ret);
int spawner_start(Spawner *s);
/* Stop serving; running workers keep running. The loop then runs until every handle is closed. */
void spawner_stop(Spawner *s);
Spawner *spawner_free(Spawner *s);
