/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <uv.h>

/* Starting units of the system's service manager over D-Bus (sd-bus), from a libuv loop: the bus
 * connection is watched with uv_poll and its timeouts with a uv_timer, since the launcher's loop is
 * libuv's, not sd-event's. A start is done when the manager reports the job removed with result
 * "done"; a job that ends otherwise, or takes longer than the timeout, fails. */

typedef struct UnitStarter UnitStarter;
typedef struct UnitJob UnitJob;

/* r: 0 the unit started; -ETIMEDOUT; -EIO the job failed (logged); other -errno. */
typedef void (*UnitJobCallback)(int r, void *userdata);

int unit_starter_new(uv_loop_t *loop, uint64_t timeout_ms, UnitStarter **ret);
/* Fail every pending job (callbacks are not called) and close the handles. */
void unit_starter_stop(UnitStarter *u);
/* After unit_starter_stop() and once the loop has run the close callbacks. */
UnitStarter *unit_starter_free(UnitStarter *u);

/* A property of a unit set at runtime (SetUnitProperties), all of D-Bus type "t" (MemoryMax, TasksMax,
 * CPUWeight, ...). */
typedef struct UnitProperty {
        const char *name;
        uint64_t value;
} UnitProperty;
#define UNIT_PROPERTIES_MAX 8

/* Set n properties (at most UNIT_PROPERTIES_MAX) of props_unit for this boot, then start unit. Either
 * failing fails the job. */
int unit_starter_start(UnitStarter *u, const char *unit, const char *props_unit, const UnitProperty *props,
                       size_t n, UnitJobCallback cb, void *userdata, UnitJob **ret);
/* Whether the service of unit (a socket) keeps failing to start: the socket failed with Result
 * service-start-limit-hit (systemd stopped starting its service) or trigger-limit-hit less than
 * hold_usec ago. Asked before the socket is started, which clears its Result, as a reset-failed does.
 * cb gets 1 if so (logged, with the Result and since when), 0 if not or when that could not be told
 * (logged), -ETIMEDOUT past the starter's timeout. */
int unit_starter_check_failing(UnitStarter *u, const char *unit, uint64_t hold_usec, UnitJobCallback cb,
                               void *userdata, UnitJob **ret);
/* The callback will not be called; the job itself runs on in the service manager. */
void unit_job_cancel(UnitJob *j);
