/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

#include "bus.h"
#include "config.h"

/* What every service gets: the loop, the bus and the settings. Services reach each other only
 * through the bus. */
typedef struct ServiceContext {
        uv_loop_t *loop;
        Bus *bus;
        const WorkerConfig *config;
} ServiceContext;

typedef struct ServiceType {
        const char *name;
        /* The notifications outside its own namespace that it publishes to clients (NULL-terminated, or
         * NULL): what a service replacing it from a manifest may publish in its stead. */
        const char *const *events;
        /* Register topics and start. */
        int (*start)(const ServiceContext *ctx, void **ret);
        /* Begin shutdown: stop children, close handles. Memory goes once the handles have closed, so
         * the loop must run on until it has no handles left. NULL is a no-op. */
        void (*stop)(void *service);
} ServiceType;

extern const ServiceType fs_service_type;
extern const ServiceType workspace_service_type;
extern const ServiceType terminal_service_type;
extern const ServiceType settings_service_type;
extern const ServiceType upload_service_type;
extern const ServiceType preview_service_type;
extern const ServiceType archive_service_type;
