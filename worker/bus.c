/* SPDX-License-Identifier: MIT */
#include "bus.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct Server {
        char *topic;
        BusMethodFn fn;
        void *userdata;
} Server;

typedef struct Subscriber {
        char *topic;
        BusEventFn fn; /* NULL once unsubscribed; swept when no publish is running */
        void *userdata;
} Subscriber;

typedef struct Client {
        ClientId id; /* 0 once removed; swept when no publish is running */
        const BusClientOps *ops;
        void *userdata;
} Client;

struct Bus {
        Server *servers;
        size_t n_servers;
        Subscriber *subs;
        size_t n_subs;
        Client *clients;
        size_t n_clients;
        ClientId next_client_id;
        unsigned publishing; /* nesting depth of bus_publish(): arrays may not shrink meanwhile */
};

struct BusCall {
        Bus *bus;
        ClientId origin;
        cJSON *id; /* the request's id (a copy); NULL for notifications and internal calls */
        bool notification;
        BusDoneFn done;   /* client requests */
        BusReplyFn reply; /* internal requests */
        void *userdata;
};

int bus_new(Bus **ret)
{
        Bus *b = calloc(1, sizeof(Bus));

        if (!b)
                return -ENOMEM;
        b->next_client_id = 1;
        *ret = b;
        return 0;
}

Bus *bus_free(Bus *b)
{
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_servers; i++)
                free(b->servers[i].topic);
        for (size_t i = 0; i < b->n_subs; i++)
                free(b->subs[i].topic);
        free(b->servers);
        free(b->subs);
        free(b->clients);
        free(b);
        return NULL;
}

static Server *find_server(Bus *b, const char *topic)
{
        for (size_t i = 0; i < b->n_servers; i++)
                if (streq(b->servers[i].topic, topic))
                        return &b->servers[i];
        return NULL;
}

bool bus_has_server(Bus *b, const char *topic)
{
        return find_server(b, topic) != NULL;
}

int bus_serve(Bus *b, const char *topic, BusMethodFn fn, void *userdata)
{
        Server *s;
        char *t;

        assert(b && topic && fn);
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
        b->servers[b->n_servers++] = (Server){t, fn, userdata};
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
        b->subs[b->n_subs++] = (Subscriber){t, fn, userdata};
        return 0;
}

static void sweep(Bus *b)
{
        size_t j = 0;

        if (b->publishing > 0)
                return;
        for (size_t i = 0; i < b->n_subs; i++) {
                if (b->subs[i].fn)
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
        free(c);
}

ClientId bus_call_origin(const BusCall *call)
{
        return call->origin;
}

bool bus_call_is_remote(const BusCall *call)
{
        return !call->reply;
}

Bus *bus_call_bus(const BusCall *call)
{
        return call->bus;
}

int bus_call(Bus *b, const char *topic, const cJSON *params, BusReplyFn reply, void *userdata)
{
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
        s->fn(c, params, s->userdata);
        return 0;
}

void bus_dispatch(Bus *b, ClientId origin, const char *method, const cJSON *params, const cJSON *id,
                  BusDoneFn done, void *userdata)
{
        Server *s = find_server(b, method);
        BusCall *c = call_new(b, origin);

        if (!c) {
                /* Without memory there is no answer to build either; the caller sees NULL. */
                done(NULL, userdata);
                return;
        }
        c->done = done;
        c->userdata = userdata;
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
        s->fn(c, params, s->userdata);
}

void bus_call_reply(BusCall *call, cJSON *result)
{
        assert(call);
        if (call->reply) {
                if (!result)
                        result = cJSON_CreateNull();
                if (result)
                        call->reply(result, NULL, call->userdata);
                else {
                        cJSON err = {.type = cJSON_NULL};
                        call->reply(NULL, &err, call->userdata);
                }
                cJSON_Delete(result);
        } else if (call->notification) {
                cJSON_Delete(result);
                call->done(NULL, call->userdata);
        } else
                call->done(jsonrpc_result_new(call->id, result), call->userdata);
        call_free(call);
}

void bus_call_error(BusCall *call, int code, const char *message, cJSON *data)
{
        assert(call);
        if (call->reply) {
                _cleanup_json_ cJSON *resp = jsonrpc_error_new(NULL, code, message, data);
                cJSON *err = cJSON_GetObjectItemCaseSensitive(resp, "error");
                cJSON fallback = {.type = cJSON_NULL};

                call->reply(NULL, err ? err : &fallback, call->userdata);
        } else if (call->notification) {
                cJSON_Delete(data);
                call->done(NULL, call->userdata);
        } else
                call->done(jsonrpc_error_new(call->id, code, message, data), call->userdata);
        call_free(call);
}

void bus_call_error_errno(BusCall *call, int r, const char *path)
{
        cJSON *data = cJSON_CreateObject();
        const char *name = errno_name(r);
        char msg[256];
        RpcError code = rpc_error_from_errno(r);

        if (data) {
                if (name)
                        (void)cJSON_AddStringToObject(data, "errno", name);
                if (path)
                        (void)cJSON_AddStringToObject(data, "path", path);
        }
        /* The message names the cause in words: strerror's, which users recognise from the shell. */
        (void)snprintf(msg, sizeof(msg), "%s", strerror(abs(r)));
        bus_call_error(call, code, msg, data);
}

int bus_call_error_oom(BusCall *call)
{
        log_oom();
        bus_call_error(call, RPC_INTERNAL_ERROR, "Out of memory", NULL);
        return -ENOMEM;
}

int bus_call_error_invalid(BusCall *call, const char *reason, const char *path)
{
        cJSON *data = cJSON_CreateObject();
        char msg[256];

        assert(reason);
        if (data && (!cJSON_AddStringToObject(data, "reason", reason) ||
                     (path && !cJSON_AddStringToObject(data, "path", path)))) {
                cJSON_Delete(data);
                data = NULL;
        }
        (void)snprintf(msg, sizeof(msg), "Invalid params: %s", reason);
        bus_call_error(call, RPC_INVALID_PARAMS, msg, data);
        return -EINVAL;
}

void bus_call_error_forward(BusCall *call, const cJSON *error)
{
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(error, "data");
        cJSON *copy = NULL;

        if (!cJSON_IsNumber(code) || !(code->valuedouble >= INT_MIN && code->valuedouble <= INT_MAX) ||
            code->valuedouble != (double)(int)code->valuedouble) {
                bus_call_error(call, RPC_INTERNAL_ERROR, "Malformed error from a service", NULL);
                return;
        }
        if (data) {
                copy = cJSON_Duplicate(data, true);
                if (!copy) {
                        (void)bus_call_error_oom(call);
                        return;
                }
        }
        bus_call_error(call, (int)code->valuedouble, cJSON_IsString(message) ? message->valuestring : NULL,
                       copy);
}

int bus_call_params(BusCall *call, const cJSON *params, const JsonField *fields, size_t n_fields)
{
        const char *reason = NULL;
        cJSON empty = {.type = cJSON_Object};
        int r;

        /* Absent params mean an empty object: every method takes named params. */
        r = json_dispatch(params ? params : &empty, fields, n_fields, &reason);
        if (r < 0)
                (void)bus_call_error_invalid(call, reason, NULL);
        return r;
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

        if (audience != BUS_INTERNAL) {
                cJSON *n = jsonrpc_notification_new(topic, params);

                params = NULL; /* now owned by n */
                text = n ? json_print(n, &len) : NULL;
                cJSON_Delete(n);
                if (!text)
                        log_oom();
                for (size_t i = 0; text && i < b->n_clients; i++) {
                        Client *c = &b->clients[i];
                        if (c->id == 0)
                                continue;
                        if (audience == BUS_OTHER_CLIENTS && c->id == client)
                                continue;
                        if (audience == BUS_ONE_CLIENT && c->id != client)
                                continue;
                        (void)c->ops->send(c->userdata, text, len);
                }
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
        return c->ops->send(c->userdata, msg, len);
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

void bus_client_remove(Bus *b, ClientId id)
{
        Client *c = find_client(b, id);

        if (!c)
                return;
        c->id = 0;
        sweep(b);
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
