/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "buf.h"

/* The gateway's counters, rendered as OpenMetrics text for /metrics. Plain fields: every module
 * updates its own, the loop is single-threaded. */
typedef struct Metrics {
        uint64_t connections_accepted;
        uint64_t connections_refused; /* over a connection cap */
        uint64_t connections_open;
        uint64_t connections_unauthenticated;
        uint64_t header_timeouts;
        uint64_t connections_evicted; /* unauthenticated, after the handover, to make room */
        uint64_t
            connections_evicted_authenticated; /* with a session, over a per-user, address or total cap */
        uint64_t oversized_headers;
        uint64_t http_requests;
        uint64_t websockets_opened;
        uint64_t websockets_open;
        uint64_t logins_ok;
        uint64_t logins_failed;
        uint64_t logins_throttled;
        uint64_t login_checks_refused_queue_full;  /* set when rendering */
        uint64_t login_checks_refused_per_address; /* set when rendering */
        uint64_t login_checks_refused_timeout;     /* set when rendering */
        uint64_t login_checks_queued;              /* gauge, set when rendering */
        uint64_t sessions;                         /* gauge, set when rendering */
        uint64_t bytes_to_worker;
        uint64_t bytes_to_browser;
        uint64_t messages_to_worker;
        uint64_t messages_to_browser;
        uint64_t workers_lost;
        uint64_t worker_starts;   /* set when rendering */
        uint64_t workers_running; /* set when rendering */
} Metrics;

#define METRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

int metrics_render(const Metrics *m, Buf *out);
