/* SPDX-License-Identifier: MIT */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "json.h"
#include "jsonrpc.h"

/* The worker's in-process event bus. Topics are method names ("fs:read_file").
 *
 * Requests: exactly one service serves a topic. A request comes from a client connection or from
 * another service (bus_call); the server answers it exactly once with bus_call_reply() or
 * bus_call_error(), now or later. The answer goes back to whoever asked, always from the loop after
 * the call that asked has returned (never inside it), and whoever receives it owns it. A service
 * cannot tell, and need not care, whether the asker is a client or C code in the worker: the answer
 * has one shape for both.
 *
 * Events: any number of subscribers per topic, in-process; a published event may also be sent to
 * client connections as a JSON-RPC notification (the audience decides which).
 *
 * Clients: each client connection is registered with the bus and known by a ClientId, so services
 * never hold pointers into the connection layer. */

typedef struct Bus Bus;
typedef struct BusCall BusCall;
typedef uint64_t ClientId; /* 0: no client (the request came from inside the worker) */

/* params (NULL: none) belong to the call: they stay as they are until the call is answered (the bus
 * keeps them at least until the handler has returned and bus_call_reply() or bus_call_error() has
 * been called, however late), so a handler may keep pointers into them, even for work on another
 * thread, as long as it answers only once that work is done. Nothing may change or free them. */
typedef void (*BusMethodFn)(BusCall *call, const cJSON *params, void *userdata);
typedef void (*BusEventFn)(const char *topic, const cJSON *params, ClientId origin, void *userdata);
/* Completion of a bus_call(), called from the loop: at most one of result and error is non-NULL, and
 * the receiver owns it. Both NULL: the answer was lost to a lack of memory. */
typedef void (*BusReplyFn)(cJSON *result, cJSON *error, void *userdata);

typedef enum BusAudience {
        BUS_INTERNAL,      /* in-process subscribers only */
        BUS_ALL_CLIENTS,   /* ... and every client connection */
        BUS_OTHER_CLIENTS, /* ... and every client connection but the given one */
        BUS_ONE_CLIENT,    /* ... and only the given client connection */
        _BUS_AUDIENCE_MAX,
} BusAudience;

/* What the connection layer provides for each client. */
typedef struct BusClientOps {
        /* Queue one complete message (no LF; the connection frames it). */
        int (*send)(void *userdata, const char *msg, size_t len);
        /* True while the client's outbound queue is above its high-water mark. */
        bool (*congested)(void *userdata);
} BusClientOps;

/* Internal events the bus itself publishes (BUS_INTERNAL), params {"clientId": N}. */
#define BUS_EVENT_CLIENT_CONNECTED    "client:connected"
#define BUS_EVENT_CLIENT_DISCONNECTED "client:disconnected"
#define BUS_EVENT_CLIENT_DRAINED      "client:drained"

/* Bounds on the services client connections provide (bus:serve). */
#define BUS_MAX_FORWARDS           256u /* requests in flight at one serving connection */
#define BUS_MAX_TOPICS_PER_SERVICE 64u  /* topics one connection serves */
#define BUS_MAX_TOPIC_LEN          128u

/* The bus serves bus:serve itself: a client connection that asks serves topics from then on (see
 * docs/protocol.md); requests for them are forwarded to it under ids of the bus's own. */
int bus_new(uv_loop_t *loop, Bus **ret);
/* Only once the loop has run out of handles: answers not yet delivered keep a handle open. */
Bus *bus_free(Bus *b);

/* Serve a topic. -EEXIST if another service serves it already. */
int bus_serve(Bus *b, const char *topic, BusMethodFn fn, void *userdata);

/* A service's methods, served all with one userdata; the first failure is returned (what was served
 * before it stays served: the service's stop unserves it). */
typedef struct BusMethod {
        const char *topic;
        BusMethodFn fn;
} BusMethod;
int bus_serve_all(Bus *b, const BusMethod *methods, size_t n, void *userdata);
/* Serve a topic (a name, or a prefix ending in '*') by a connection started on demand: on a request
 * while no connection serves it, start(userdata, &id) starts the service and names the client
 * connection that speaks for it; the request and those after it go there. When that connection
 * closes, the topic stays taken and the next request starts it again. start returns -EAGAIN when
 * the service failed too often (the request fails with -32603 "service failing"), another -errno
 * when it cannot start at all. */
typedef int (*BusStartFn)(void *userdata, ClientId *ret);
int bus_serve_on_demand(Bus *b, const char *topic, BusStartFn start, void *userdata);
/* The connection serving the on-demand service of userdata may publish the notification topic although
 * it is outside its namespace: an event of the built-in service it replaces (file:changed_on_disk of
 * fs). */
int bus_grant_notification(Bus *b, const char *topic, void *userdata);
int bus_subscribe(Bus *b, const char *topic, BusEventFn fn, void *userdata);
void bus_unsubscribe(Bus *b, const char *topic, BusEventFn fn, void *userdata);
bool bus_has_server(Bus *b, const char *topic);
/* What serves the i-th topic (for bus:services); false past the last. */
typedef struct BusServerInfo {
        const char *topic;
        const char *owner; /* an in-process server's service name (bus_set_owner()) */
        void *userdata;    /* an in-process or on-demand server's */
        ClientId remote;   /* the connection that serves it; 0 for in-process or an on-demand one down */
        bool in_process;
        bool on_demand;
} BusServerInfo;
bool bus_server_info(Bus *b, size_t i, BusServerInfo *ret);
/* Name (a static string) the in-process service whose topics the next bus_serve() calls register. */
void bus_set_owner(Bus *b, const char *name);

/* Whether topic (a name with a ':', or a prefix of one ending in '*') is well-formed. */
bool bus_topic_valid(const char *topic);
/* Whether anything served (in process, by a connection or on demand) overlaps topic. */
bool bus_topic_taken(Bus *b, const char *topic);

/* Request from inside the worker; takes params (NULL: none), whatever the outcome: the call keeps
 * them, unchanged, until it is answered (the caller must not change them after this). reply runs
 * exactly once, from the loop, after this has returned. Returns -ENOENT if nobody serves the topic and
 * -ENOMEM without memory; reply is then not called. */
int bus_call(Bus *b, const char *topic, cJSON *params, BusReplyFn reply, void *userdata);

/* Request from a client connection; used by the RPC layer. Takes params (NULL: none; detached from
 * the parsed message, not copied), kept by the call until it is answered; method and id are only
 * read during the call. done is called exactly once, from the loop after this has returned, with the
 * response object to send (owned by done; NULL for a notification or without memory). Only when even
 * the call cannot be allocated is done(NULL) called at once. */
typedef void (*BusDoneFn)(cJSON *response, void *userdata);
void bus_dispatch(Bus *b, ClientId origin, const char *method, cJSON *params, const cJSON *id,
                  BusDoneFn done, void *userdata);

/* The client a call came from (0 if internal). */
ClientId bus_call_origin(const BusCall *call);
Bus *bus_call_bus(const BusCall *call);

/* Answer a call; takes ownership of result and data, and frees the call. */
void bus_call_reply(BusCall *call, cJSON *result);
void bus_call_error(BusCall *call, int code, const char *message, cJSON *data);
/* Answer with the application error for -errno r, data {"errno": "ENOENT", "path": path?}. */
void bus_call_error_errno(BusCall *call, int r, const char *path);
/* Answer -32002 "Outside the workspace", data {"errno": "EXDEV", "path": path}: path, or a symlink on its
 * way, leads out of the workspace roots. */
void bus_call_error_outside(BusCall *call, const char *path);
/* Answer -32603 "Out of memory" (logged); returns -ENOMEM, for `return bus_call_error_oom(call);`. */
int bus_call_error_oom(BusCall *call);
/* Answer -32602 "Invalid params: <reason>", data {"reason", "path"?}; returns -EINVAL. */
int bus_call_error_invalid(BusCall *call, const char *reason, const char *path);
/* Pass on, unchanged (code, message, data), the error another service answered a bus_call() with. */
void bus_call_error_forward(BusCall *call, const cJSON *error);
/* Parse params with json_dispatch(); on failure answer -32602 naming the problem, and return
 * -EINVAL (the call is then consumed). */
int bus_call_params(BusCall *call, const cJSON *params, const JsonField *fields, size_t n_fields);

/* Publish an event; takes ownership of params. client matters for BUS_OTHER_CLIENTS/BUS_ONE_CLIENT. */
void bus_publish(Bus *b, const char *topic, cJSON *params, BusAudience audience, ClientId client);

/* Send an already-serialized message (no LF) to one client: for hot paths such as terminal output.
 * -ENOENT if the client is gone. */
int bus_send_raw(Bus *b, ClientId client, const char *msg, size_t len);

/* The member of a forwarded request's params that names the client that asked (a string token;
 * absent when the request came from inside the worker). A service's notification that carries it
 * goes to that client alone. */
#define BUS_CLIENT_TOKEN "busClient"
/* The member (true) of a service's notification that publishes it as an in-process service's
 * BUS_INTERNAL event: to the bus's subscribers, not to the pages. */
#define BUS_INTERNAL_TOKEN "busInternal"

/* A client connection sent a notification. If the connection serves a topic in the notification's
 * namespace (the method up to its ':'), the notification is published on the bus as an in-process
 * service's would be: to every client but the service, or only to the one its BUS_CLIENT_TOKEN names, or
 * to none with BUS_INTERNAL_TOKEN, and to the subscribers; returns true. Otherwise returns false: it is an
 * ordinary notification to dispatch. */
bool bus_client_notification(Bus *b, ClientId from, const char *method, const cJSON *params);

/* A client connection sent a response (to a request the bus forwarded to it). */
void bus_client_response(Bus *b, ClientId from, const cJSON *id, const cJSON *result, const cJSON *error);

int bus_client_add(Bus *b, const BusClientOps *ops, void *userdata, ClientId *ret);
void bus_client_remove(Bus *b, ClientId id);
bool bus_client_exists(Bus *b, ClientId id);
bool bus_client_congested(Bus *b, ClientId id);
/* The connection layer reports that a congested client drained; the bus publishes client:drained. */
void bus_client_drained(Bus *b, ClientId id);
unsigned bus_n_clients(Bus *b);
