/* SPDX-License-Identifier: MIT */
#include "metrics.h"

#include <errno.h>
#include <stddef.h>

#include "macro.h"

typedef enum MetricKind {
        METRIC_COUNTER,
        METRIC_GAUGE,
} MetricKind;

typedef struct MetricDef {
        const char *name; /* family name; counters get _total on their samples */
        MetricKind kind;
        const char *help;
        const char *labels; /* for families with several samples: the label set of this sample */
        size_t offset;
} MetricDef;

#define M(name, kind, help, labels, field)                         \
        {                                                          \
                name, kind, help, labels, offsetof(Metrics, field) \
        }

static const MetricDef defs[] = {
    M("helios_gateway_connections", METRIC_COUNTER, "Network connections accepted.", NULL,
      connections_accepted),
    M("helios_gateway_connections_refused", METRIC_COUNTER, "Connections turned away by a connection cap.",
      NULL, connections_refused),
    M("helios_gateway_open_connections", METRIC_GAUGE, "Network connections open now.", NULL,
      connections_open),
    M("helios_gateway_unauthenticated_connections", METRIC_GAUGE,
      "Open connections that have not shown a valid session.", NULL, connections_unauthenticated),
    M("helios_gateway_header_timeouts", METRIC_COUNTER, "Clients too slow to send their request headers.",
      NULL, header_timeouts),
    M("helios_gateway_connections_evicted", METRIC_COUNTER,
      "Connections without a session closed to make room for new ones.", NULL, connections_evicted),
    M("helios_gateway_session_connections_evicted", METRIC_COUNTER,
      "Connections with a session closed for being over a per-user, per-address or total cap.", NULL,
      connections_evicted_authenticated),
    M("helios_gateway_oversized_headers", METRIC_COUNTER, "Requests refused for oversized headers.", NULL,
      oversized_headers),
    M("helios_gateway_http_requests", METRIC_COUNTER, "HTTP requests handled.", NULL, http_requests),
    M("helios_gateway_websockets", METRIC_COUNTER, "WebSocket connections opened.", NULL, websockets_opened),
    M("helios_gateway_open_websockets", METRIC_GAUGE, "WebSocket connections open now.", NULL,
      websockets_open),
    M("helios_gateway_logins", METRIC_COUNTER, "Login attempts by result.", "result=\"ok\"", logins_ok),
    M("helios_gateway_logins", METRIC_COUNTER, NULL, "result=\"failed\"", logins_failed),
    M("helios_gateway_logins", METRIC_COUNTER, NULL, "result=\"throttled\"", logins_throttled),
    M("helios_gateway_login_checks_refused", METRIC_COUNTER, "Credential checks not made, by reason.",
      "reason=\"queue_full\"", login_checks_refused_queue_full),
    M("helios_gateway_login_checks_refused", METRIC_COUNTER, NULL, "reason=\"per_address\"",
      login_checks_refused_per_address),
    M("helios_gateway_login_checks_refused", METRIC_COUNTER, NULL, "reason=\"timeout\"",
      login_checks_refused_timeout),
    M("helios_gateway_login_checks_queued", METRIC_GAUGE, "Credential checks waiting for their turn.", NULL,
      login_checks_queued),
    M("helios_gateway_sessions", METRIC_GAUGE, "Live login sessions.", NULL, sessions),
    M("helios_gateway_bytes", METRIC_COUNTER, "WebSocket payload bytes forwarded, by direction.",
      "direction=\"to_worker\"", bytes_to_worker),
    M("helios_gateway_bytes", METRIC_COUNTER, NULL, "direction=\"to_browser\"", bytes_to_browser),
    M("helios_gateway_messages", METRIC_COUNTER, "Messages forwarded, by direction.",
      "direction=\"to_worker\"", messages_to_worker),
    M("helios_gateway_messages", METRIC_COUNTER, NULL, "direction=\"to_browser\"", messages_to_browser),
    M("helios_gateway_workers_lost", METRIC_COUNTER, "Worker connections that ended under an open page.",
      NULL, workers_lost),
    M("helios_gateway_worker_starts", METRIC_COUNTER, "Workers started.", NULL, worker_starts),
    M("helios_gateway_workers_running", METRIC_GAUGE, "Workers running.", NULL, workers_running),
};

int metrics_render(const Metrics *m, Buf *out)
{
        for (size_t i = 0; i < ELEMENTSOF(defs); i++) {
                const MetricDef *d = &defs[i];
                uint64_t v = *(const uint64_t *)((const char *)m + d->offset);
                bool counter = d->kind == METRIC_COUNTER;

                if (d->help && (buf_printf(out, "# TYPE %s %s\n# HELP %s %s\n", d->name,
                                           counter ? "counter" : "gauge", d->name, d->help) < 0))
                        return -ENOMEM;
                if (buf_printf(out, "%s%s%s%s%s %llu\n", d->name, counter ? "_total" : "",
                               d->labels ? "{" : "", d->labels ? d->labels : "", d->labels ? "}" : "",
                               (unsigned long long)v) < 0)
                        return -ENOMEM;
        }
        return buf_append_str(out, "# EOF\n");
}
