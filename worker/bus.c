/* SPDX-License-Identifier: MIT */
#include "bus.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Answers are never delivered inside the call that asked: they queue on the bus and an idle handle,
 * open only while the queue is not empty, delivers them on the loop's next turn. */
typedef enum IdleState {
        IDLE_NONE,
        IDLE_ACTIVE,
        IDLE_CLOSING,
} IdleState;

typedef struct Server {
        char *topic;    /* a method name, or a prefix ending in '*' (remote servers only) */
        BusMethodFn fn; /* in-process; NULL for a client connection that serves the topic */
        void *userdata;
        ClientId remote;   /* the serving connection, when fn is NULL; 0 while an on-demand one is down */
        BusStartFn start;  /* on demand: starts the service and names its connection */
        const char *owner; /* in-process: the service's name (static), for bus:services */
} Server;

/* A request forwarded to a serving connection, under an id of the bus's own. */
typedef struct Forward {
        uint64_t id;
        ClientId service;
        BusCall *call;
        struct Forward *next;
} Forward;

typedef struct Subscriber {
        char *topic;
        BusEventFn fn; /* NULL once unsubscribed; swept when no publish is running */
        void *userdata;
        ClientId remote; /* a client connection (bus:subscribe) instead of fn; 0 once gone */
} Subscriber;

/* A notification outside its namespace that the connection of an on-demand service may publish: an
 * event of the built-in service it replaces (bus_grant_notification()). */
typedef struct Grant {
        char *topic;
        void *userdata; /* the on-demand service's, as given to bus_serve_on_demand() */
} Grant;

typedef struct Client {
        ClientId id; /* 0 once removed; swept when no publish is running */
        const BusClientOps *ops;
        void *userdata;
        unsigned n_ready; /* answers to it (and messages behind them) waiting in the bus's queue */
} Client;

struct Bus {
        Server *servers;
        size_t n_servers;
        Subscriber *subs;
        size_t n_subs;
        Grant *grants;
        size_t n_grants;
        Client *clients;
        size_t n_clients;
        ClientId next_client_id;
        unsigned publishing; /* nesting depth of bus_publish(): arrays may not shrink meanwhile */
        uv_loop_t *loop;
        uv_idle_t idle;
        IdleState idle_state;
        BusCall *ready, *ready_tail; /* answered calls whose answers wait for delivery */
        Forward *forwards;           /* requests at serving connections, not answered yet */
        uint64_t next_forward_id;
        const char *owner; /* the name bus_serve() gives the servers it registers */
};

struct BusCall {
        Bus *bus;
        ClientId origin;
        cJSON *id;     /* the request's id (a copy); NULL for notifications and internal calls */
        cJSON *params; /* the request's until delivered (bus.h), or sent to a serving connection */
        bool notification;
        BusDoneFn done;   /* client requests */
        BusReplyFn reply; /* internal requests */
        void *userdata;
        /* The answer, owned until it is delivered: result or error for internal requests, the
         * response (NULL for notifications) for client requests. */
        cJSON *result, *error, *response;
        /* Not a call: a message to the client origin, queued behind answers to it (client_send()). */
        char *raw;
        size_t raw_len;
        BusCall *next; /* in the bus's queue of answers to deliver */
};

static Client *find_client(Bus *b, ClientId id);
static int client_send(Bus *b, Client *c, const char *msg, size_t len);
static void on_bus_serve(BusCall *call, const cJSON *params, void *userdata);
static void on_bus_subscribe(BusCall *call, const cJSON *params, void *userdata);

int bus_new(uv_loop_t *loop, Bus **ret)
{
        Bus *b = calloc(1, sizeof(Bus));

        assert(loop);
        if (!b)
                return -ENOMEM;
        b->loop = loop;
        b->next_client_id = 1;
        b->owner = "bus";
        if (bus_serve(b, "bus:serve", on_bus_serve, b) < 0 ||
            bus_serve(b, "bus:subscribe", on_bus_subscribe, b) < 0) {
                bus_free(b);
                return -ENOMEM;
        }
        b->owner = "worker"; /* until the worker names its services */
        *ret = b;
        return 0;
}

Bus *bus_free(Bus *b)
{
        if (!b)
                return NULL;
        /* The loop ran until no handle was left, so every answer has been delivered. */
        assert(b->idle_state == IDLE_NONE && !b->ready);
        for (size_t i = 0; i < b->n_servers; i++)
                free(b->servers[i].topic);
        for (size_t i = 0; i < b->n_subs; i++)
                free(b->subs[i].topic);
        for (size_t i = 0; i < b->n_grants; i++)
                free(b->grants[i].topic);
        free(b->grants);
        free(b->servers);
        free(b->subs);
        free(b->clients);
        free(b);
        return NULL;
}

static bool topic_matches(const char *pattern, const char *topic)
{
        size_t n = strlen(pattern);

        if (n > 0 && pattern[n - 1] == '*')
                return strncmp(pattern, topic, n - 1) == 0;
        return streq(pattern, topic);
}

static Server *find_server(Bus *b, const char *topic)
{
        for (size_t i = 0; i < b->n_servers; i++)
                if (topic_matches(b->servers[i].topic, topic))
                        return &b->servers[i];
        return NULL;
}

bool bus_has_server(Bus *b, const char *topic)
{
        return find_server(b, topic) != NULL;
}

/* Registers topic, either served now (fn) or started when first asked for (start). */
static int add_server(Bus *b, const char *topic, Server server)
{
        Server *s;
        char *t;

        if (find_server(b, topic))
                return -EEXIST;
        t = strdup(topic);
        s = realloc(b->servers, (b->n_servers + 1) * sizeof(Server));
        if (!t || !s) {
                free(t);
                if (s)
                        b->servers = s;
                return -ENOMEM;
        }
        b->servers = s;
        server.topic = t;
        b->servers[b->n_servers++] = server;
        return 0;
}

int bus_serve(Bus *b, const char *topic, BusMethodFn fn, void *userdata)
{
        assert(b && topic && fn);
        return add_server(b, topic, (Server){NULL, fn, userdata, 0, NULL, b->owner});
}

int bus_serve_on_demand(Bus *b, const char *topic, BusStartFn start, void *userdata)
{
        assert(b && topic && start);
        return add_server(b, topic, (Server){NULL, NULL, userdata, 0, start, NULL});
}

int bus_grant_notification(Bus *b, const char *topic, void *userdata)
{
        Grant *g;
        char *t;

        assert(b && topic && userdata);
        t = strdup(topic);
        g = realloc(b->grants, (b->n_grants + 1) * sizeof(Grant));
        if (!t || !g) {
                free(t);
                if (g)
                        b->grants = g;
                return -ENOMEM;
        }
        b->grants = g;
        b->grants[b->n_grants++] = (Grant){t, userdata};
        return 0;
}

int bus_subscribe(Bus *b, const char *topic, BusEventFn fn, void *userdata)
{
        Subscriber *s;
        char *t;

        assert(b && topic && fn);
        t = strdup(topic);
        s = realloc(b->subs, (b->n_subs + 1) * sizeof(Subscriber));
        if (!t || !s) {
                free(t);
                if (s)
                        b->subs = s;
                return -ENOMEM;
        }
        b->subs = s;
        b->subs[b->n_subs++] = (Subscriber){t, fn, userdata, 0};
        return 0;
}

static void sweep(Bus *b)
{
        size_t j = 0;

        if (b->publishing > 0)
                return;
        for (size_t i = 0; i < b->n_subs; i++) {
                if (b->subs[i].fn || b->subs[i].remote)
                        b->subs[j++] = b->subs[i];
                else
                        free(b->subs[i].topic);
        }
        b->n_subs = j;
        j = 0;
        for (size_t i = 0; i < b->n_clients; i++)
                if (b->clients[i].id != 0)
                        b->clients[j++] = b->clients[i];
        b->n_clients = j;
}

void bus_unsubscribe(Bus *b, const char *topic, BusEventFn fn, void *userdata)
{
        for (size_t i = 0; i < b->n_subs; i++) {
                Subscriber *s = &b->subs[i];
                if (s->fn == fn && s->userdata == userdata && streq(s->topic, topic))
                        s->fn = NULL;
        }
        sweep(b);
}

static BusCall *call_new(Bus *b, ClientId origin)
{
        BusCall *c = calloc(1, sizeof(BusCall));

        if (c) {
                c->bus = b;
                c->origin = origin;
        }
        return c;
}

static void call_free(BusCall *c)
{
        cJSON_Delete(c->id);
        cJSON_Delete(c->params);
        cJSON_Delete(c->result);
        cJSON_Delete(c->error);
        cJSON_Delete(c->response);
        free(c->raw);
        free(c);
}

static void schedule_delivery(Bus *b);
static void on_idle_closed(uv_handle_t *h);

/* Whether c waits in the queue for a client, holding back what the bus sends that client after it. */
static bool call_holds_client(const BusCall *c)
{
        return c->origin != 0 && (c->done || c->raw);
}

static void deliver(BusCall *c)
{
        Client *client = call_holds_client(c) ? find_client(c->bus, c->origin) : NULL;

        if (client)
                client->n_ready--;
        if (c->raw) {
                if (client)
                        (void)client->ops->send(client->userdata, c->raw, c->raw_len);
        } else if (c->reply)
                c->reply(TAKE_PTR(c->result), TAKE_PTR(c->error), c->userdata);
        else
                c->done(TAKE_PTR(c->response), c->userdata);
        call_free(c);
}

static void on_idle(uv_idle_t *h)
{
        Bus *b = h->data;
        BusCall *c = TAKE_PTR(b->ready);

        /* Only what was queued before this turn: answers that these deliveries cause wait for the next
         * one, so that a chain of calls cannot hold the loop. */
        b->ready_tail = NULL;
        while (c) {
                BusCall *next = c->next;
                deliver(c);
                c = next;
        }
        if (!b->ready) {
                uv_close((uv_handle_t *)&b->idle, on_idle_closed);
                b->idle_state = IDLE_CLOSING;
        }
}

static void on_idle_closed(uv_handle_t *h)
{
        Bus *b = h->data;

        b->idle_state = IDLE_NONE;
        if (b->ready)
                schedule_delivery(b);
}

static void schedule_delivery(Bus *b)
{
        if (b->idle_state != IDLE_NONE)
                return; /* delivered by the running handle, or once the closing one has closed */
        (void)uv_idle_init(b->loop, &b->idle);
        b->idle.data = b;
        (void)uv_idle_start(&b->idle, on_idle);
        b->idle_state = IDLE_ACTIVE;
}

/* Queue an answered call for delivery on the loop's next turn. */
static void call_answered(BusCall *c)
{
        Bus *b = c->bus;
        Client *client = call_holds_client(c) ? find_client(b, c->origin) : NULL;

        if (client)
                client->n_ready++;
        c->next = NULL;
        if (b->ready_tail)
                b->ready_tail->next = c;
        else
                b->ready = c;
        b->ready_tail = c;
        schedule_delivery(b);
}

/* Everything the bus sends a client reaches it in the order it was made: while an answer to it waits
 * for the loop's next turn, what comes after (a terminal's output after its attach, say) waits behind it,
 * copied. That wait is one turn of the loop, so the copies are bounded by what one turn produces. */
static int client_send(Bus *b, Client *c, const char *msg, size_t len)
{
        BusCall *q;

        if (c->n_ready == 0)
                return c->ops->send(c->userdata, msg, len);
        q = call_new(b, c->id);
        if (q)
                q->raw = malloc(MAX(len, (size_t)1));
        if (!q || !q->raw) {
                free(q);
                return log_oom();
        }
        memcpy(q->raw, msg, len);
        q->raw_len = len;
        call_answered(q);
        return 0;
}

ClientId bus_call_origin(const BusCall *call)
{
        return call->origin;
}

Bus *bus_call_bus(const BusCall *call)
{
        return call->bus;
}

/* -32603 {reason: "service gone"}: the connection serving the call closed. */
static void call_error_gone(BusCall *c)
{
        cJSON *data = cJSON_CreateObject();

        if (data && !cJSON_AddStringToObject(data, "reason", "service gone"))
                data = (cJSON_Delete(data), NULL);
        bus_call_error(c, RPC_INTERNAL_ERROR, "Service gone", data);
}

/* The request's params, copied, with the asking client's token in BUS_CLIENT_TOKEN when a client
 * asked (whatever the client put there itself is replaced: the token cannot be forged). */
static int add_params(cJSON *req, const cJSON *params, ClientId origin)
{
        char token[32];
        cJSON *p;

        if (params && !cJSON_IsObject(params))
                return cJSON_AddItemToObject(req, "params", cJSON_Duplicate(params, true)) ? 0 : -ENOMEM;
        if (!params && origin == 0)
                return 0;
        p = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
        if (!p || !cJSON_AddItemToObject(req, "params", p)) {
                cJSON_Delete(p);
                return -ENOMEM;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(p, BUS_CLIENT_TOKEN);
        if (origin == 0)
                return 0;
        (void)snprintf(token, sizeof(token), "%" PRIu64, origin);
        return cJSON_AddStringToObject(p, BUS_CLIENT_TOKEN, token) ? 0 : -ENOMEM;
}

/* Send the request (or notification) to the connection that serves its topic, under a new id. */
static void forward(Bus *b, ClientId service, const char *topic, BusCall *c, const cJSON *params)
{
        _cleanup_json_ cJSON *req = cJSON_CreateObject();
        _cleanup_free_ char *text = NULL;
        Client *cl = find_client(b, service);
        Forward *f = NULL;
        unsigned n = 0;
        size_t len;

        for (Forward *i = b->forwards; i; i = i->next)
                n += i->service == service;
        if (!cl) {
                call_error_gone(c);
                return;
        }
        if (!c->notification && n >= BUS_MAX_FORWARDS) {
                bus_call_error(c, RPC_SERVER_ERROR, "Too many requests in flight at the service", NULL);
                return;
        }
        if (!c->notification && !(f = calloc(1, sizeof(Forward)))) {
                (void)bus_call_error_oom(c);
                return;
        }
        if (f)
                f->id = ++b->next_forward_id;
        if (!req || !cJSON_AddStringToObject(req, "jsonrpc", "2.0") ||
            (f && !cJSON_AddNumberToObject(req, "id", (double)f->id)) ||
            !cJSON_AddStringToObject(req, "method", topic) || add_params(req, params, c->origin) < 0 ||
            !(text = json_print(req, &len))) {
                free(f);
                (void)bus_call_error_oom(c);
                return;
        }
        if (cl->ops->send(cl->userdata, text, len) < 0) {
                free(f);
                call_error_gone(c);
                return;
        }
        if (!f) {
                bus_call_reply(c, NULL); /* a notification: nothing comes back */
                return;
        }
        f->service = service;
        f->call = c;
        f->next = b->forwards;
        b->forwards = f;
}

/* Serve c, which owns its params by now. */
static void server_call(Bus *b, Server *s, const char *topic, BusCall *c)
{
        const cJSON *params = c->params;

        if (s->fn) {
                s->fn(c, params, s->userdata);
                return;
        }
        if (s->start && s->remote == 0) {
                ClientId id = 0;
                BusStartFn start = s->start;
                void *userdata = s->userdata;
                int r = start(userdata, &id);

                if (r < 0) {
                        cJSON *data = cJSON_CreateObject();
                        const char *reason = r == -EAGAIN ? "service failing" : "service cannot start";
                        if (data && !cJSON_AddStringToObject(data, "reason", reason))
                                data = (cJSON_Delete(data), NULL);
                        bus_call_error(c, RPC_INTERNAL_ERROR,
                                       r == -EAGAIN ? "Service failing: restarted too often, try again later"
                                                    : "Service cannot start",
                                       data);
                        return;
                }
                /* Every topic of the same service is now served by its connection. */
                for (size_t i = 0; i < b->n_servers; i++)
                        if (b->servers[i].start == start && b->servers[i].userdata == userdata)
                                b->servers[i].remote = id;
                forward(b, id, topic, c, params);
        } else
                forward(b, s->remote, topic, c, params);
        /* The serving connection has its own copy: what waits for its answer holds no params, so
         * the requests in flight there cost only their text in the connection's queue. (Only the
         * loop frees an answered call, so c is still there.) */
        cJSON_Delete(TAKE_PTR(c->params));
}

int bus_call(Bus *b, const char *topic, cJSON *params, BusReplyFn reply, void *userdata)
{
        _cleanup_json_ cJSON *p = params;
        Server *s = find_server(b, topic);
        BusCall *c;

        assert(reply);
        if (!s)
                return -ENOENT;
        c = call_new(b, 0);
        if (!c)
                return -ENOMEM;
        c->reply = reply;
        c->userdata = userdata;
        c->params = TAKE_PTR(p);
        server_call(b, s, topic, c);
        return 0;
}

void bus_dispatch(Bus *b, ClientId origin, const char *method, cJSON *params, const cJSON *id,
                  BusDoneFn done, void *userdata)
{
        Server *s = find_server(b, method);
        BusCall *c = call_new(b, origin);

        if (!c) {
                /* Without memory there is no answer to build either; the caller sees NULL. */
                cJSON_Delete(params);
                done(NULL, userdata);
                return;
        }
        c->done = done;
        c->userdata = userdata;
        c->params = params;
        c->notification = !id;
        if (id) {
                c->id = cJSON_Duplicate(id, true);
                if (!c->id) {
                        bus_call_error(c, RPC_INTERNAL_ERROR, "Out of memory", NULL);
                        return;
                }
        }
        if (!s) {
                bus_call_error(c, RPC_METHOD_NOT_FOUND, NULL, NULL);
                return;
        }
        server_call(b, s, method, c);
}

/* The error object of an internal call's answer, or NULL without memory. */
static cJSON *error_new(int code, const char *message, cJSON *data)
{
        _cleanup_json_ cJSON *resp = jsonrpc_error_new(NULL, code, message, data);

        return resp ? cJSON_DetachItemFromObjectCaseSensitive(resp, "error") : NULL;
}

void bus_call_reply(BusCall *call, cJSON *result)
{
        assert(call);
        if (call->reply) {
                call->result = result ? result : cJSON_CreateNull();
                if (!call->result)
                        call->error = error_new(RPC_INTERNAL_ERROR, "Out of memory", NULL);
        } else if (call->notification)
                cJSON_Delete(result);
        else
                call->response = jsonrpc_result_new(call->id, result);
        call_answered(call);
}

void bus_call_error(BusCall *call, int code, const char *message, cJSON *data)
{
        assert(call);
        if (call->reply)
                call->error = error_new(code, message, data);
        else if (call->notification)
                cJSON_Delete(data);
        else
                call->response = jsonrpc_error_new(call->id, code, message, data);
        call_answered(call);
}

static bool in_audience(ClientId id, BusAudience audience, ClientId client)
{
        switch (audience) {
        case BUS_ALL_CLIENTS:
                return true;
        case BUS_OTHER_CLIENTS:
                return id != client;
        case BUS_ONE_CLIENT:
                return id == client;
        default:
                return false;
        }
}

void bus_publish(Bus *b, const char *topic, cJSON *params, BusAudience audience, ClientId client)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;

        assert(b && topic && audience < _BUS_AUDIENCE_MAX);

        b->publishing++;
        /* Subscribers may subscribe (append) while we iterate, so re-read n_subs each time. */
        for (size_t i = 0; i < b->n_subs; i++) {
                Subscriber *s = &b->subs[i];
                if (s->fn && streq(s->topic, topic))
                        s->fn(topic, params, client, s->userdata);
        }

        bool wanted = audience != BUS_INTERNAL;
        for (size_t i = 0; !wanted && i < b->n_subs; i++)
                wanted = b->subs[i].remote && topic_matches(b->subs[i].topic, topic);
        if (wanted) {
                cJSON *n = jsonrpc_notification_new(topic, params);

                params = NULL; /* now owned by n */
                text = n ? json_print(n, &len) : NULL;
                cJSON_Delete(n);
                if (!text)
                        log_oom();
        }
        for (size_t i = 0; text && audience != BUS_INTERNAL && i < b->n_clients; i++) {
                Client *c = &b->clients[i];
                if (c->id == 0 || !in_audience(c->id, audience, client))
                        continue;
                (void)client_send(b, c, text, len);
        }
        /* Connections that subscribed, and did not get it as part of the audience. */
        for (size_t i = 0; text && i < b->n_subs; i++) {
                Subscriber *s = &b->subs[i];
                Client *c;
                if (!s->remote || !topic_matches(s->topic, topic) ||
                    in_audience(s->remote, audience, client) || !(c = find_client(b, s->remote)))
                        continue;
                (void)client_send(b, c, text, len);
        }
        cJSON_Delete(params);
        b->publishing--;
        sweep(b);
}

static Client *find_client(Bus *b, ClientId id)
{
        if (id == 0)
                return NULL;
        for (size_t i = 0; i < b->n_clients; i++)
                if (b->clients[i].id == id)
                        return &b->clients[i];
        return NULL;
}

int bus_send_raw(Bus *b, ClientId client, const char *msg, size_t len)
{
        Client *c = find_client(b, client);

        if (!c)
                return -ENOENT;
        return client_send(b, c, msg, len);
}

static void publish_client_event(Bus *b, const char *topic, ClientId id)
{
        cJSON *p = cJSON_CreateObject();

        if (!p || !cJSON_AddNumberToObject(p, "clientId", (double)id)) {
                cJSON_Delete(p);
                log_oom();
                return;
        }
        bus_publish(b, topic, p, BUS_INTERNAL, id);
}

int bus_client_add(Bus *b, const BusClientOps *ops, void *userdata, ClientId *ret)
{
        Client *c = realloc(b->clients, (b->n_clients + 1) * sizeof(Client));

        assert(ops && ops->send && ops->congested);
        if (!c)
                return -ENOMEM;
        b->clients = c;
        b->clients[b->n_clients++] = (Client){b->next_client_id++, ops, userdata};
        *ret = b->clients[b->n_clients - 1].id;
        publish_client_event(b, BUS_EVENT_CLIENT_CONNECTED, *ret);
        return 0;
}

/* A serving connection closed: what it was asked fails, and its topics are free again. */
static void service_gone(Bus *b, ClientId id)
{
        size_t j = 0;

        for (Forward **f = &b->forwards; *f;) {
                Forward *x = *f;
                if (x->service != id) {
                        f = &x->next;
                        continue;
                }
                *f = x->next;
                call_error_gone(x->call);
                free(x);
        }
        for (size_t i = 0; i < b->n_subs; i++)
                if (b->subs[i].remote == id)
                        b->subs[i].remote = 0;
        sweep(b);
        for (size_t i = 0; i < b->n_servers; i++) {
                if (b->servers[i].start && b->servers[i].remote == id)
                        b->servers[i].remote = 0; /* started again on the next request */
                if (!b->servers[i].fn && !b->servers[i].start && b->servers[i].remote == id)
                        free(b->servers[i].topic);
                else
                        b->servers[j++] = b->servers[i];
        }
        b->n_servers = j;
}

void bus_client_response(Bus *b, ClientId from, const cJSON *id, const cJSON *result, const cJSON *error)
{
        uint64_t n;
        cJSON *copy;

        /* Ids are the bus's own numbers; a client's id may come back as its own text. */
        if (cJSON_IsRaw(id))
                n = strtoull(id->valuestring, NULL, 10);
        else if (cJSON_IsNumber(id) && id->valuedouble >= 1)
                n = (uint64_t)id->valuedouble;
        else
                return;
        for (Forward **f = &b->forwards; *f; f = &(*f)->next) {
                Forward *x = *f;
                if (x->id != n || x->service != from)
                        continue;
                *f = x->next;
                if (error)
                        bus_call_error_forward(x->call, error);
                else if (!(copy = cJSON_Duplicate(result, true)))
                        (void)bus_call_error_oom(x->call);
                else
                        bus_call_reply(x->call, copy);
                free(x);
                return;
        }
        log_debug("Dropping a response to no request of ours from client %" PRIu64 ".", from);
}

/* Whether method is in the namespace ("search:" of "search:*" or "search:text") of a topic the
 * connection serves. */
static bool serves_namespace(Bus *b, ClientId id, const char *method)
{
        const char *colon = strchr(method, ':');

        if (!colon)
                return false;
        for (size_t i = 0; i < b->n_servers; i++) {
                const Server *s = &b->servers[i];
                if (!s->fn && s->remote == id &&
                    strncmp(s->topic, method, (size_t)(colon - method) + 1) == 0)
                        return true;
        }
        return false;
}

/* Whether the connection runs an on-demand service granted method (bus_grant_notification()). */
static bool granted(Bus *b, ClientId id, const char *method)
{
        for (size_t g = 0; g < b->n_grants; g++) {
                if (!streq(b->grants[g].topic, method))
                        continue;
                for (size_t i = 0; i < b->n_servers; i++)
                        if (b->servers[i].start && b->servers[i].userdata == b->grants[g].userdata &&
                            b->servers[i].remote == id)
                                return true;
        }
        return false;
}

bool bus_client_notification(Bus *b, ClientId from, const char *method, const cJSON *params)
{
        _cleanup_json_ cJSON *p = NULL;
        const cJSON *token;
        ClientId to = 0;

        if (!serves_namespace(b, from, method) && !granted(b, from, method))
                return false;
        if (params && !cJSON_IsObject(params)) {
                log_debug("Dropping %s from client %" PRIu64 ": params not an object.", method, from);
                return true;
        }
        p = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
        if (!p) {
                log_oom();
                return true;
        }
        token = cJSON_GetObjectItemCaseSensitive(p, BUS_CLIENT_TOKEN);
        if (token) {
                char *end;
                unsigned long long n = 0;

                if (cJSON_IsString(token) && token->valuestring[0] >= '1' && token->valuestring[0] <= '9') {
                        errno = 0;
                        n = strtoull(token->valuestring, &end, 10);
                        if (errno != 0 || *end)
                                n = 0;
                }
                /* Addressed to a client that is gone (or to none at all): nobody gets it. */
                if (n == 0 || !find_client(b, (ClientId)n) || (ClientId)n == from)
                        return true;
                to = (ClientId)n;
                cJSON_DeleteItemFromObjectCaseSensitive(p, BUS_CLIENT_TOKEN);
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, BUS_INTERNAL_TOKEN))) {
                cJSON_DeleteItemFromObjectCaseSensitive(p, BUS_INTERNAL_TOKEN);
                bus_publish(b, method, TAKE_PTR(p), BUS_INTERNAL, from);
                return true;
        }
        /* Every client but the service itself, as an in-process service's own events do not come back. */
        bus_publish(b, method, TAKE_PTR(p), to ? BUS_ONE_CLIENT : BUS_OTHER_CLIENTS, to ? to : from);
        return true;
}

/* Whether the topics a and b (names, or prefixes ending in '*') can name the same method. */
static bool topics_overlap(const char *a, const char *b)
{
        size_t na = strlen(a), nb = strlen(b);
        bool pa = na > 0 && a[na - 1] == '*', pb = nb > 0 && b[nb - 1] == '*';

        if (pa)
                na--;
        if (pb)
                nb--;
        if (pa && pb)
                return strncmp(a, b, MIN(na, nb)) == 0;
        if (pa)
                return nb >= na && strncmp(a, b, na) == 0;
        if (pb)
                return na >= nb && strncmp(a, b, nb) == 0;
        return streq(a, b);
}

static bool topic_valid(const char *t)
{
        size_t n = strlen(t);
        const char *star = strchr(t, '*');

        if (n == 0 || n > BUS_MAX_TOPIC_LEN || !strchr(t, ':'))
                return false;
        for (const char *p = t; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\' || (unsigned char)*p >= 0x7f)
                        return false;
        return !star || star == t + n - 1;
}

void bus_set_owner(Bus *b, const char *name)
{
        b->owner = name;
}

bool bus_server_info(Bus *b, size_t i, BusServerInfo *ret)
{
        const Server *s;

        if (i >= b->n_servers)
                return false;
        s = &b->servers[i];
        *ret = (BusServerInfo){s->topic, s->owner, s->userdata, s->remote, s->fn != NULL, s->start != NULL};
        return true;
}

bool bus_topic_valid(const char *topic)
{
        return topic_valid(topic);
}

bool bus_topic_taken(Bus *b, const char *topic)
{
        for (size_t i = 0; i < b->n_servers; i++)
                if (topics_overlap(b->servers[i].topic, topic))
                        return true;
        return false;
}

/* bus:serve {topics}: the asking connection serves those topics from now on. */
static void on_bus_serve(BusCall *call, const cJSON *params, void *userdata)
{
        Bus *b = userdata;
        ClientId origin = bus_call_origin(call);
        const cJSON *topics = NULL, *t;
        const JsonField fields[] = {{"topics", JSON_FIELD_ANY, true, &topics}};
        size_t mine = 0, n;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (origin == 0) {
                bus_call_error(call, RPC_INVALID_REQUEST, "Only a connection can serve topics", NULL);
                return;
        }
        if (!cJSON_IsArray(topics) || (n = (size_t)cJSON_GetArraySize(topics)) == 0) {
                (void)bus_call_error_invalid(call, "'topics' must be a non-empty array of strings", NULL);
                return;
        }
        for (size_t i = 0; i < b->n_servers; i++)
                mine += !b->servers[i].fn && !b->servers[i].start && b->servers[i].remote == origin;
        if (mine + n > BUS_MAX_TOPICS_PER_SERVICE) {
                (void)bus_call_error_invalid(call, "too many topics for one connection", NULL);
                return;
        }
        /* All or nothing: every topic is checked before any is taken. */
        cJSON_ArrayForEach(t, topics)
        {
                if (!cJSON_IsString(t) || !topic_valid(t->valuestring)) {
                        (void)bus_call_error_invalid(
                            call, "a topic is a method name with a ':', or a prefix of one ending in '*'",
                            NULL);
                        return;
                }
                for (size_t i = 0; i < b->n_servers; i++) {
                        Server *s = &b->servers[i];
                        if (!topics_overlap(s->topic, t->valuestring) || (!s->fn && s->remote == origin))
                                continue;
                        cJSON *data = cJSON_CreateObject();
                        if (data && !cJSON_AddStringToObject(data, "topic", t->valuestring))
                                data = (cJSON_Delete(data), NULL);
                        if (s->fn)
                                bus_call_error(call, RPC_PERMISSION_DENIED, "A built-in topic, not granted",
                                               data);
                        else
                                bus_call_error(call, RPC_ALREADY_EXISTS, "The topic is served already",
                                               data);
                        return;
                }
        }
        cJSON_ArrayForEach(t, topics)
        {
                Server *s;
                char *copy;
                bool have = false;

                for (size_t i = 0; i < b->n_servers; i++)
                        have = have || (!b->servers[i].fn && b->servers[i].remote == origin &&
                                        streq(b->servers[i].topic, t->valuestring));
                if (have)
                        continue;
                copy = strdup(t->valuestring);
                s = copy ? realloc(b->servers, (b->n_servers + 1) * sizeof(Server)) : NULL;
                if (!s) {
                        free(copy);
                        (void)bus_call_error_oom(call);
                        return;
                }
                b->servers = s;
                b->servers[b->n_servers++] = (Server){copy, NULL, NULL, origin, NULL, NULL};
        }
        bus_call_reply(call, cJSON_CreateObject());
}

/* bus:subscribe {topics}: the asking connection gets the notifications on those topics. */
static void on_bus_subscribe(BusCall *call, const cJSON *params, void *userdata)
{
        Bus *b = userdata;
        ClientId origin = bus_call_origin(call);
        const cJSON *topics = NULL, *t;
        const JsonField fields[] = {{"topics", JSON_FIELD_ANY, true, &topics}};
        size_t mine = 0;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (origin == 0) {
                bus_call_error(call, RPC_INVALID_REQUEST, "Only a connection can subscribe", NULL);
                return;
        }
        if (!cJSON_IsArray(topics) || cJSON_GetArraySize(topics) == 0) {
                (void)bus_call_error_invalid(call, "'topics' must be a non-empty array of strings", NULL);
                return;
        }
        for (size_t i = 0; i < b->n_subs; i++)
                mine += b->subs[i].remote == origin;
        if (mine + (size_t)cJSON_GetArraySize(topics) > BUS_MAX_TOPICS_PER_SERVICE) {
                (void)bus_call_error_invalid(call, "too many topics for one connection", NULL);
                return;
        }
        cJSON_ArrayForEach(t, topics) if (!cJSON_IsString(t) || !topic_valid(t->valuestring))
        {
                (void)bus_call_error_invalid(
                    call, "a topic is a method name with a ':', or a prefix of one ending in '*'", NULL);
                return;
        }
        cJSON_ArrayForEach(t, topics)
        {
                Subscriber *s;
                char *copy;
                bool have = false;

                for (size_t i = 0; i < b->n_subs; i++)
                        have =
                            have || (b->subs[i].remote == origin && streq(b->subs[i].topic, t->valuestring));
                if (have)
                        continue;
                copy = strdup(t->valuestring);
                s = copy ? realloc(b->subs, (b->n_subs + 1) * sizeof(Subscriber)) : NULL;
                if (!s) {
                        free(copy);
                        (void)bus_call_error_oom(call);
                        return;
                }
                b->subs = s;
                b->subs[b->n_subs++] = (Subscriber){copy, NULL, NULL, origin};
        }
        bus_call_reply(call, cJSON_CreateObject());
}

void bus_client_remove(Bus *b, ClientId id)
{
        Client *c = find_client(b, id);

        if (!c)
                return;
        c->id = 0;
        sweep(b);
        service_gone(b, id);
        publish_client_event(b, BUS_EVENT_CLIENT_DISCONNECTED, id);
}

bool bus_client_exists(Bus *b, ClientId id)
{
        return find_client(b, id) != NULL;
}

bool bus_client_congested(Bus *b, ClientId id)
{
        Client *c = find_client(b, id);

        return c && c->ops->congested(c->userdata);
}

void bus_client_drained(Bus *b, ClientId id)
{
        publish_client_event(b, BUS_EVENT_CLIENT_DRAINED, id);
}

unsigned bus_n_clients(Bus *b)
{
        unsigned n = 0;

        for (size_t i = 0; i < b->n_clients; i++)
                n += b->clients[i].id != 0;
        return n;
}
