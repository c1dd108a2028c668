/* SPDX-License-Identifier: MIT */
/* The bus as a service in a process of its own sees it: bus.h's calls over one connection to the
 * worker. The service code is the one the worker runs in process; only its side of the bus differs.
 *
 * Every answer is a message on the connection, so it can never arrive inside the call that asked.
 * Everything is bounded: a message is read up to the worker's own limit (and a little more for the
 * busClient token the worker adds), at most BUS_MAX_FORWARDS requests are handled at once (the
 * worker sends no more), and reading stops while more than a few messages' worth of answers wait to
 * be written. */
#include "bus-remote.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonrpc.h"
#include "line-reader.h"
#include "log.h"
#include "rpc.h"

/* Room beyond the worker's message limit for what it adds to a forwarded request (busClient). */
#define FORWARD_OVERHEAD 4096u
/* Bytes of answers waiting to be written at which reading stops, in messages of the maximum size. */
#define WRITE_HIGH_WATER_MESSAGES 4u
#define READ_CHUNK                (64u * 1024u)

typedef struct Server {
        char *topic;
        BusMethodFn fn;
        void *userdata;
} Server;

typedef struct Subscriber {
        char *topic;
        BusEventFn fn;
        void *userdata;
} Subscriber;

/* A bus_call() of this side waiting for the worker's response. */
typedef struct Pending {
        uint64_t id;
        BusReplyFn reply;
        void *userdata;
        struct Pending *next;
} Pending;

/* A request that arrived before bus_remote_ready(). */
typedef struct Held {
        cJSON *msg;
        struct Held *next;
} Held;

typedef struct Write {
        uv_write_t req;
        Bus *bus;
        char *text;
        size_t len;
} Write;

struct Bus {
        uv_loop_t *loop;
        uv_pipe_t in, out;
        bool same_fd; /* in and out are one socket: one handle does both */
        bool reading, closed;
        unsigned open_handles;
        LineReader reader;
        size_t max_message;
        BusRemoteClosedFn closed_cb;
        void *userdata;
        Server *servers;
        size_t n_servers;
        Subscriber *subs;
        size_t n_subs;
        Pending *pending;
        uint64_t next_id;
        Held *held, *held_tail;
        unsigned n_held;
        bool ready;
        unsigned n_calls; /* requests handed to a server and not answered yet */
        size_t queued;    /* bytes handed to uv_write() and not written yet */
};

struct BusCall {
        Bus *bus;
        cJSON *id; /* the worker's id, its text kept */
        ClientId origin;
};

static void bus_remote_fail(Bus *b);

static uv_stream_t *out_stream(Bus *b)
{
        return (uv_stream_t *)(b->same_fd ? &b->in : &b->out);
}

static size_t high_water(const Bus *b)
{
        return WRITE_HIGH_WATER_MESSAGES * b->max_message;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void process_lines(Bus *b);

static void reading_update(Bus *b)
{
        bool want = !b->closed && b->queued <= high_water(b);

        if (want == b->reading)
                return;
        if (want)
                want = uv_read_start((uv_stream_t *)&b->in, on_alloc, on_read) >= 0;
        else
                (void)uv_read_stop((uv_stream_t *)&b->in);
        b->reading = want;
}

static void on_written(uv_write_t *req, int status)
{
        Write *w = container_of(req, Write, req);
        Bus *b = w->bus;

        b->queued -= w->len + 1;
        free(w->text);
        free(w);
        if (status < 0 && status != UV_ECANCELED && !b->closed) {
                log_debug("Writing to the worker failed: %s", uv_strerror(status));
                bus_remote_fail(b);
                return;
        }
        if (!b->reading) {
                reading_update(b);
                /* Lines read before reading stopped come first. */
                process_lines(b);
        }
}

/* Send msg (taken) as one line. */
static int send_message(Bus *b, cJSON *msg)
{
        _cleanup_json_ cJSON *m = msg;
        uv_buf_t bufs[2];
        Write *w;
        int r;

        if (!m)
                return log_oom();
        if (b->closed)
                return -EPIPE;
        w = calloc(1, sizeof(Write));
        if (!w)
                return log_oom();
        w->bus = b;
        w->text = json_print(m, &w->len);
        if (!w->text) {
                free(w);
                return log_oom();
        }
        bufs[0] = uv_buf_init(w->text, (unsigned)w->len);
        bufs[1] = uv_buf_init((char *)"\n", 1);
        r = uv_write(&w->req, out_stream(b), bufs, 2, on_written);
        if (r < 0) {
                free(w->text);
                free(w);
                bus_remote_fail(b);
                return r;
        }
        b->queued += w->len + 1;
        reading_update(b);
        return 0;
}

/* --- Requests the worker forwards ------------------------------------------------------------- */

static void answer_error(Bus *b, const cJSON *id, int code, const char *message)
{
        (void)send_message(b, jsonrpc_error_new(id, code, message, NULL));
}

static void call_free(BusCall *c)
{
        c->bus->n_calls--;
        cJSON_Delete(c->id);
        free(c);
}

ClientId bus_call_origin(const BusCall *call)
{
        return call->origin;
}

Bus *bus_call_bus(const BusCall *call)
{
        return call->bus;
}

void bus_call_reply(BusCall *call, cJSON *result)
{
        assert(call);
        if (call->bus->closed)
                cJSON_Delete(result);
        else
                (void)send_message(call->bus, jsonrpc_result_new(call->id, result));
        call_free(call);
}

void bus_call_error(BusCall *call, int code, const char *message, cJSON *data)
{
        assert(call);
        if (call->bus->closed)
                cJSON_Delete(data);
        else
                (void)send_message(call->bus, jsonrpc_error_new(call->id, code, message, data));
        call_free(call);
}

static Server *find_server(Bus *b, const char *topic)
{
        for (size_t i = 0; i < b->n_servers; i++)
                if (streq(b->servers[i].topic, topic))
                        return &b->servers[i];
        return NULL;
}

/* The client the worker says asked (its busClient token), 0 if none. */
static ClientId origin_of(const cJSON *params)
{
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, BUS_CLIENT_TOKEN);
        char *end;
        unsigned long long n;

        if (!cJSON_IsString(t))
                return 0;
        errno = 0;
        n = strtoull(t->valuestring, &end, 10);
        return errno == 0 && !*end ? (ClientId)n : 0;
}

static void handle_request(Bus *b, const char *method, const cJSON *params, const cJSON *id)
{
        Server *s = find_server(b, method);
        BusCall *c;

        if (!s) {
                answer_error(b, id, RPC_METHOD_NOT_FOUND, NULL);
                return;
        }
        if (b->n_calls >= BUS_MAX_FORWARDS) {
                answer_error(b, id, RPC_SERVER_ERROR, "Too many requests in flight at the service");
                return;
        }
        c = calloc(1, sizeof(BusCall));
        if (!c || !(c->id = cJSON_Duplicate(id, true))) {
                free(c);
                log_oom();
                answer_error(b, id, RPC_INTERNAL_ERROR, "Out of memory");
                return;
        }
        c->bus = b;
        c->origin = origin_of(params);
        b->n_calls++;
        s->fn(c, params, s->userdata);
}

static void handle_response(Bus *b, const cJSON *msg)
{
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
        cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
        cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
        uint64_t n = 0;

        if (cJSON_IsRaw(id))
                n = strtoull(id->valuestring, NULL, 10);
        else if (cJSON_IsNumber(id) && id->valuedouble >= 1)
                n = (uint64_t)id->valuedouble;
        for (Pending **p = &b->pending; *p; p = &(*p)->next) {
                Pending *x = *p;
                if (x->id != n)
                        continue;
                *p = x->next;
                if (error)
                        x->reply(NULL, cJSON_Duplicate(error, true), x->userdata);
                else
                        x->reply(result ? cJSON_Duplicate(result, true) : cJSON_CreateNull(), NULL,
                                 x->userdata);
                free(x);
                return;
        }
        log_debug("Dropping a response to no request of ours.");
}

static void deliver_event(Bus *b, const char *topic, const cJSON *params, ClientId origin)
{
        /* Subscribers may unsubscribe meanwhile (the array only shrinks in bus_unsubscribe(), which a
         * service calls when it stops, never from inside an event). */
        for (size_t i = 0; i < b->n_subs; i++)
                if (streq(b->subs[i].topic, topic))
                        b->subs[i].fn(topic, params, origin, b->subs[i].userdata);
}

/* One message from the worker; takes msg. */
static void handle_message(Bus *b, cJSON *msg)
{
        _cleanup_json_ cJSON *m = msg;
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(m, "params");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");

        if (!cJSON_IsObject(m)) {
                log_debug("Dropping a message from the worker that is not an object.");
                return;
        }
        if (!method) {
                handle_response(b, m);
                return;
        }
        if (!cJSON_IsString(method)) {
                if (id)
                        answer_error(b, id, RPC_INVALID_REQUEST, NULL);
                return;
        }
        if (!id) {
                deliver_event(b, method->valuestring, params, 0);
                return;
        }
        if (!b->ready) {
                Held *h;

                if (b->n_held >= BUS_MAX_FORWARDS || !(h = calloc(1, sizeof(Held)))) {
                        answer_error(b, id, RPC_SERVER_ERROR, "Too many requests in flight at the service");
                        return;
                }
                h->msg = TAKE_PTR(m);
                if (b->held_tail)
                        b->held_tail->next = h;
                else
                        b->held = h;
                b->held_tail = h;
                b->n_held++;
                return;
        }
        handle_request(b, method->valuestring, params, id);
}

static void handle_line(Bus *b, const char *line, size_t len)
{
        JsonScanResult scan = json_prescan(line, len, RPC_MAX_DEPTH, RPC_MAX_VALUES);
        cJSON *msg;

        if (scan != JSON_SCAN_OK) {
                log_warning("Dropping a message from the worker: %s.", json_scan_result_to_string(scan));
                return;
        }
        msg = json_parse(line, len);
        if (!msg) {
                log_warning("Dropping a message from the worker: not JSON.");
                return;
        }
        /* Ids go back byte for byte. */
        if (jsonrpc_keep_id_text(msg, line, len) < 0) {
                cJSON_Delete(msg);
                log_oom();
                return;
        }
        handle_message(b, msg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        Bus *b = h->data;
        char *p;
        size_t n;

        if (line_reader_space(&b->reader, READ_CHUNK, &p, &n) < 0) {
                *buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS: the read callback ends the connection */
                return;
        }
        *buf = uv_buf_init(p, (unsigned)MIN(n, (size_t)UINT32_MAX));
}

/* Handle the complete lines held, while the connection is open and the way out has room. */
static void process_lines(Bus *b)
{
        while (!b->closed && b->reading) {
                char *line;
                size_t len;
                LineReaderEvent ev = line_reader_next(&b->reader, &line, &len);

                if (ev == LINE_READER_NONE)
                        break;
                if (ev == LINE_READER_OVERSIZE)
                        log_warning("Dropping a message from the worker over %zu bytes.",
                                    b->reader.max_line);
                else
                        handle_line(b, line, len);
        }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        Bus *b = s->data;

        if (n < 0) {
                if (n != UV_EOF)
                        log_warning("Reading from the worker failed: %s", uv_strerror((int)n));
                bus_remote_fail(b);
                return;
        }
        line_reader_commit(&b->reader, (size_t)n);
        process_lines(b);
}

/* --- The rest of bus.h ------------------------------------------------------------------------- */

int bus_serve(Bus *b, const char *topic, BusMethodFn fn, void *userdata)
{
        Server *s;
        char *t;

        assert(b && topic && fn);
        if (find_server(b, topic))
                return -EEXIST;
        t = strdup(topic);
        s = t ? realloc(b->servers, (b->n_servers + 1) * sizeof(Server)) : NULL;
        if (!s) {
                free(t);
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
        s = t ? realloc(b->subs, (b->n_subs + 1) * sizeof(Subscriber)) : NULL;
        if (!s) {
                free(t);
                return -ENOMEM;
        }
        b->subs = s;
        b->subs[b->n_subs++] = (Subscriber){t, fn, userdata};
        return 0;
}

void bus_unsubscribe(Bus *b, const char *topic, BusEventFn fn, void *userdata)
{
        size_t j = 0;

        for (size_t i = 0; i < b->n_subs; i++) {
                Subscriber *s = &b->subs[i];
                if (s->fn == fn && s->userdata == userdata && streq(s->topic, topic))
                        free(s->topic);
                else
                        b->subs[j++] = *s;
        }
        b->n_subs = j;
}

void bus_publish(Bus *b, const char *topic, cJSON *params, BusAudience audience, ClientId client)
{
        _cleanup_json_ cJSON *p = params;
        char token[32];

        assert(b && topic && audience < _BUS_AUDIENCE_MAX);
        deliver_event(b, topic, p, client);
        if (b->closed)
                return;
        /* The worker publishes it to every client but this one; a token names the one client, another
         * keeps an internal event from the pages (the worker's services hear it). */
        if (audience == BUS_ONE_CLIENT || audience == BUS_INTERNAL) {
                (void)snprintf(token, sizeof(token), "%" PRIu64, client);
                if (!p)
                        p = cJSON_CreateObject();
                if (!p || (audience == BUS_ONE_CLIENT ? !cJSON_AddStringToObject(p, BUS_CLIENT_TOKEN, token)
                                                      : !cJSON_AddTrueToObject(p, BUS_INTERNAL_TOKEN))) {
                        log_oom();
                        return;
                }
        }
        (void)send_message(b, jsonrpc_notification_new(topic, TAKE_PTR(p)));
}

int bus_call(Bus *b, const char *topic, cJSON *params, BusReplyFn reply, void *userdata)
{
        _cleanup_json_ cJSON *p = params;
        cJSON *req;
        Pending *x;
        int r;

        assert(b && topic && reply);
        if (b->closed)
                return -EPIPE;
        x = calloc(1, sizeof(Pending));
        req = cJSON_CreateObject();
        if (!x || !req || !cJSON_AddStringToObject(req, "jsonrpc", "2.0") ||
            !cJSON_AddNumberToObject(req, "id", (double)(b->next_id + 1)) ||
            !cJSON_AddStringToObject(req, "method", topic) ||
            !cJSON_AddItemToObject(req, "params", p ? TAKE_PTR(p) : cJSON_CreateObject())) {
                free(x);
                cJSON_Delete(req);
                return -ENOMEM;
        }
        r = send_message(b, req);
        if (r < 0) {
                free(x);
                return r;
        }
        *x = (Pending){++b->next_id, reply, userdata, b->pending};
        b->pending = x;
        return 0;
}

/* --- The connection ---------------------------------------------------------------------------- */

static int announce(Bus *b, const char *method, const char *const *topics, size_t n);

static void on_announced(cJSON *result, cJSON *error, void *userdata)
{
        Bus *b = userdata;
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");

        cJSON_Delete(result);
        if (error || !result) {
                log_error("The worker refused this service its topics: %s",
                          cJSON_IsString(message) ? message->valuestring : "no answer");
                bus_remote_fail(b);
        }
        cJSON_Delete(error);
}

static int announce(Bus *b, const char *method, const char *const *topics, size_t n)
{
        cJSON *params, *list;

        if (n == 0)
                return 0;
        params = cJSON_CreateObject();
        list = params ? cJSON_AddArrayToObject(params, "topics") : NULL;
        for (size_t i = 0; list && i < n; i++)
                if (!cJSON_AddItemToArray(list, cJSON_CreateString(topics[i])))
                        list = NULL;
        if (!list) {
                cJSON_Delete(params);
                return -ENOMEM;
        }
        return bus_call(b, method, params, on_announced, b);
}

int bus_remote_announce(Bus *b)
{
        _cleanup_free_ const char **topics = calloc(MAX(b->n_servers, b->n_subs) + 1, sizeof(char *));
        size_t n;
        int r;

        if (!topics)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_servers; i++)
                topics[i] = b->servers[i].topic;
        r = announce(b, "bus:serve", topics, b->n_servers);
        if (r < 0)
                return r;
        n = 0;
        for (size_t i = 0; i < b->n_subs; i++) {
                bool seen = false;
                for (size_t j = 0; j < n && !seen; j++)
                        seen = streq(topics[j], b->subs[i].topic);
                if (!seen)
                        topics[n++] = b->subs[i].topic;
        }
        return announce(b, "bus:subscribe", topics, n);
}

void bus_remote_deliver(Bus *b, const char *topic, const cJSON *params)
{
        deliver_event(b, topic, params, 0);
}

void bus_remote_set_max_message(Bus *b, size_t max_message)
{
        b->max_message = max_message;
        b->reader.max_line = max_message + FORWARD_OVERHEAD;
        reading_update(b);
}

void bus_remote_ready(Bus *b)
{
        b->ready = true;
        while (b->held && !b->closed) {
                Held *h = b->held;
                _cleanup_json_ cJSON *m = h->msg;

                b->held = h->next;
                if (!b->held)
                        b->held_tail = NULL;
                b->n_held--;
                free(h);
                handle_request(b, cJSON_GetObjectItemCaseSensitive(m, "method")->valuestring,
                               cJSON_GetObjectItemCaseSensitive(m, "params"),
                               cJSON_GetObjectItemCaseSensitive(m, "id"));
        }
}

int bus_remote_new(uv_loop_t *loop, int in_fd, int out_fd, size_t max_message, BusRemoteClosedFn closed,
                   void *userdata, Bus **ret)
{
        Bus *b = calloc(1, sizeof(Bus));
        int r;

        assert(loop && closed && ret);
        if (!b)
                return -ENOMEM;
        b->loop = loop;
        b->closed_cb = closed;
        b->userdata = userdata;
        b->same_fd = in_fd == out_fd;
        line_reader_init(&b->reader, max_message + FORWARD_OVERHEAD);
        b->max_message = max_message;
        r = uv_pipe_init(loop, &b->in, false);
        if (r < 0) {
                free(b);
                return r;
        }
        b->in.data = b;
        b->open_handles++;
        r = uv_pipe_open(&b->in, in_fd);
        if (r >= 0 && !b->same_fd) {
                r = uv_pipe_init(loop, &b->out, false);
                if (r >= 0) {
                        b->out.data = b;
                        b->open_handles++;
                        r = uv_pipe_open(&b->out, out_fd);
                }
        }
        *ret = b; /* closed and freed by the caller on failure, as after use */
        if (r < 0)
                return r;
        reading_update(b);
        return b->reading ? 0 : -EIO;
}

static void on_closed(uv_handle_t *h)
{
        Bus *b = h->data;

        b->open_handles--;
}

void bus_remote_close(Bus *b)
{
        if (!b || b->closed)
                return;
        b->closed = true;
        b->reading = false;
        uv_close((uv_handle_t *)&b->in, on_closed);
        if (!b->same_fd && b->open_handles > 1)
                uv_close((uv_handle_t *)&b->out, on_closed);
        /* What this side asked will not be answered. */
        while (b->pending) {
                Pending *x = b->pending;
                cJSON *error = cJSON_CreateObject();

                if (error && (!cJSON_AddNumberToObject(error, "code", RPC_INTERNAL_ERROR) ||
                              !cJSON_AddStringToObject(error, "message", "The worker is gone")))
                        error = (cJSON_Delete(error), NULL);
                b->pending = x->next;
                x->reply(NULL, error, x->userdata);
                free(x);
        }
}

/* The connection ended: close it and tell the owner, once. */
static void bus_remote_fail(Bus *b)
{
        if (b->closed)
                return;
        bus_remote_close(b);
        b->closed_cb(b->userdata);
}

Bus *bus_free(Bus *b)
{
        if (!b)
                return NULL;
        assert(b->open_handles == 0 && b->n_calls == 0);
        line_reader_done(&b->reader);
        for (size_t i = 0; i < b->n_servers; i++)
                free(b->servers[i].topic);
        for (size_t i = 0; i < b->n_subs; i++)
                free(b->subs[i].topic);
        free(b->servers);
        free(b->subs);
        while (b->held) {
                Held *h = b->held;
                b->held = h->next;
                cJSON_Delete(h->msg);
                free(h);
        }
        free(b);
        return NULL;
}
