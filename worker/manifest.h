/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "bus.h"
#include "config.h"

/* Services started on demand from manifests (docs/services.md): NAME.json in the system, admin and
 * user directories, {"exec": [...], "topics": [...], "replaces"?: "fs"}. Each runs as a child of the
 * worker (inside its sandbox, as the user), its stdin and stdout one end of a socket pair that the
 * worker adopts as a client connection serving the manifest's topics. */
typedef struct Manifests Manifests;

/* Make a client connection of fd (the worker's end of a service's socket pair; taken whatever the
 * outcome) and return its id. */
typedef int (*ManifestAdoptFn)(void *userdata, int fd, ClientId *ret);

#define MANIFEST_MAX_SERVICES   32u
#define MANIFEST_MAX_SIZE       (64u * 1024u)
#define MANIFEST_MAX_ARGS       64u
#define MANIFEST_MAX_STARTS     5u /* per service in one minute; then its requests fail */
#define MANIFEST_MAX_BACKOFF_MS 3200u

/* Read the manifests (bad ones are logged and skipped). */
int manifests_load(uv_loop_t *loop, Bus *bus, const WorkerConfig *config, ManifestAdoptFn adopt,
                   void *userdata, Manifests **ret);
/* Whether an admin manifest replaces the built-in service of that name. */
bool manifests_replace(const Manifests *m, const char *builtin);
/* The notifications of the built-in service (outside its namespace) that the manifest replacing it may
 * publish in its stead; events (static) must outlive m. */
void manifests_grant_events(Manifests *m, const char *builtin, const char *const *events);
/* Claim the manifests' topics on the bus, once the built-in services serve theirs: a manifest that
 * claims a topic taken already is skipped (logged). */
void manifests_register(Manifests *m);
/* Append {name, topics, inProcess: false, pid?, state, replaces?} for each service started from a manifest
 * to the array list; state is "stopped" (not running: started on the next request), "starting" (waiting out
 * its backoff), "running", "failing" (started too often: requests fail for now) or "refused" (its topics
 * were taken). */
int manifests_describe(const Manifests *m, cJSON *list);
/* Kill the running services and close every handle; free once the loop has no handles left. */
void manifests_stop(Manifests *m);
Manifests *manifests_free(Manifests *m);
