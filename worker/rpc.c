/* SPDX-License-Identifier: MIT */
#include "rpc.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "log.h"

typedef struct Batch Batch;
typedef struct ParseJob ParseJob;

/* One dispatched request whose answer has not arrived yet. */
typedef struct Pending {
        RpcSession *session; /* NULL once the session is gone */
        Batch *batch;        /* NULL for a single request */
        struct Pending *prev, *next;
} Pending;

/* A batch runs its members one after the other: the next once the one before has been answered, so
 * that members after the answer outgrew the message limit never run. */
struct Batch {
        RpcSession *session; /* NULL once the session is gone */
        cJSON *msg;          /* the batch, owned */
        cJSON *next;         /* the member to run next */
        Buf text;            /* "[resp,resp,…" */
        unsigned outstanding;
        unsigned n_responses;
        bool dispatching;
        bool overflow; /* the answer outgrew the message limit: text dropped, one error instead */
};

/* What reading one message found, before anything is dispatched. */
typedef enum ParseOutcome {
        PARSE_BLANK,       /* a blank line: not a message */
        PARSE_SCAN_FAILED, /* json_prescan() refused it: scan says why */
        PARSE_BIG_BATCH,   /* a batch of more than RPC_MAX_BATCH members */
        PARSE_INVALID,     /* not JSON */
        PARSE_OOM,
        PARSE_OK,
} ParseOutcome;

typedef struct Parsed {
        ParseOutcome outcome;
        JsonScanResult scan;
        cJSON *msg; /* PARSE_OK: the message; PARSE_SCAN_FAILED: for a NUL, the message for its id */
} Parsed;

/* A message read on libuv's pool. */
struct ParseJob {
        uv_work_t work;
        RpcSession *session; /* NULL once the session is gone */
        char *buf;           /* owns the text */
        const char *line;
        size_t len;
        RpcResumeFn resume;
        void *userdata;
        Parsed parsed;
};

/* A big answer being printed on libuv's pool. */
typedef struct PrintJob {
        uv_work_t work;
        RpcSession *session; /* NULL once the session is gone: then slot is gone too */
        cJSON *response;
        size_t max_message;
        void *slot;
        char *text;
        size_t len;
        struct PrintJob *prev, *next;
} PrintJob;

struct RpcSession {
        Bus *bus;
        ClientId client;
        size_t max_message;
        RpcSendFn send;
        void *userdata;
        Pending *pending;
        ParseJob *parsing; /* the message being read on libuv's pool: the next waits for it */
        uv_loop_t *loop;
        const RpcLaterOps *later; /* NULL: every answer is printed on the loop */
        PrintJob *printing;
        unsigned n_printing;
};

int rpc_session_new(Bus *bus, ClientId client, size_t max_message, RpcSendFn send, void *userdata,
                    RpcSession **ret)
{
        RpcSession *s = calloc(1, sizeof(RpcSession));

        assert(bus && send && ret);
        if (!s)
                return -ENOMEM;
        *s = (RpcSession){
            .bus = bus, .client = client, .max_message = max_message, .send = send, .userdata = userdata};
        *ret = s;
        return 0;
}

RpcSession *rpc_session_free(RpcSession *s)
{
        if (!s)
                return NULL;
        for (Pending *p = s->pending; p; p = p->next) {
                p->session = NULL;
                if (p->batch)
                        p->batch->session = NULL;
        }
        if (s->parsing)
                s->parsing->session = NULL;
        for (PrintJob *j = s->printing; j; j = j->next)
                j->session = NULL;
        free(s);
        return NULL;
}

/* Serialize a response; one that would exceed the message limit becomes a -32004 error instead, so
 * the client still learns what happened to its request. Touches nothing but its arguments: it runs on
 * libuv's pool for big answers. */
static char *print_response(const cJSON *response, size_t limit, size_t *ret_len)
{
        _cleanup_json_ cJSON *err = NULL;
        char *text = json_print(response, ret_len);
        char msg[128];

        if (text && *ret_len <= limit)
                return text;
        if (text) {
                free(text);
                (void)snprintf(msg, sizeof(msg), "Response larger than the message size limit (%zu bytes)",
                               limit);
                err = jsonrpc_error_new(cJSON_GetObjectItemCaseSensitive(response, "id"), RPC_TOO_LARGE, msg,
                                        NULL);
                text = err ? json_print(err, ret_len) : NULL;
        }
        return text;
}

static void send_response(RpcSession *s, const cJSON *response)
{
        size_t len;
        _cleanup_free_ char *text = print_response(response, s->max_message, &len);

        if (text)
                (void)s->send(s->userdata, text, len);
        else
                log_oom();
}

static void send_error(RpcSession *s, const cJSON *id, int code, const char *message, cJSON *data)
{
        _cleanup_json_ cJSON *e = jsonrpc_error_new(id, code, message, data);

        if (e)
                send_response(s, e);
        else
                log_oom();
}

/* Answers from this size on are printed on libuv's pool, up to this many of a session's at once (the
 * rest on the loop, in their turn): answers not yet printed are not yet counted as queued output. */
#define PRINT_LATER_MIN (64u * 1024u)
#define PRINT_LATER_MAX 4u

/* The one answer to a batch that cannot be answered member by member. */
static void send_batch_error(RpcSession *s, const char *what, size_t limit)
{
        char text[160];
        cJSON *data = cJSON_CreateObject();

        if (data)
                (void)cJSON_AddNumberToObject(data, "limit", (double)limit);
        (void)snprintf(text, sizeof(text), "%s (limit %zu)", what, limit);
        send_error(s, NULL, RPC_TOO_LARGE, text, data);
}

static void batch_run(Batch *b);

static void batch_maybe_finish(Batch *b)
{
        if (b->outstanding > 0 || b->dispatching)
                return;
        if (b->next && b->session && !b->overflow) {
                batch_run(b);
                return;
        }
        if (b->session && b->overflow)
                send_batch_error(b->session, "Batch answer larger than the message size limit",
                                 b->session->max_message);
        /* A batch of notifications only is answered with nothing at all. */
        else if (b->session && b->n_responses > 0 && buf_append(&b->text, "]", 1) >= 0)
                (void)b->session->send(b->session->userdata, b->text.data, b->text.len);
        buf_done(&b->text);
        cJSON_Delete(b->msg);
        free(b);
}

static void batch_add(Batch *b, cJSON *response)
{
        size_t len;
        _cleanup_free_ char *text = NULL;

        if (!b->session || b->overflow)
                return;
        /* A member whose own answer is too large is answered with a -32004 error for its id. */
        text = print_response(response, b->session->max_message, &len);
        if (!text) {
                log_oom();
                return;
        }
        /* The whole batch answer is one message, "[" answers joined by "," "]": once it cannot fit
         * the limit, the batch gets one -32004 error instead, and members not yet run never run. */
        if (b->text.len + 1 + len + 1 > b->session->max_message) {
                b->overflow = true;
                buf_done(&b->text);
                return;
        }
        if (buf_append(&b->text, b->n_responses == 0 ? "[" : ",", 1) < 0 ||
            buf_append(&b->text, text, len) < 0) {
                log_oom();
                return;
        }
        b->n_responses++;
}

static void print_job_work(uv_work_t *w)
{
        PrintJob *j = container_of(w, PrintJob, work);

        j->text = print_response(j->response, j->max_message, &j->len);
        /* The tree goes here too: a big answer's is freed off the loop as well. */
        cJSON_Delete(j->response);
        j->response = NULL;
}

static void print_job_after(uv_work_t *w, int status)
{
        PrintJob *j = container_of(w, PrintJob, work);
        RpcSession *s = j->session;

        if (s) {
                if (j->prev)
                        j->prev->next = j->next;
                else
                        s->printing = j->next;
                if (j->next)
                        j->next->prev = j->prev;
                s->n_printing--;
                if (!j->text)
                        log_oom();
                s->later->fill(s->userdata, j->slot, TAKE_PTR(j->text), j->len);
        }
        cJSON_Delete(j->response);
        free(j->text);
        free(j);
}

/* Print a big answer on libuv's pool, in its place among the connection's output. Takes response, or
 * gives it back when it cannot, to be sent at once. The answer is the session's own (the bus's rule),
 * so nothing in it borrows memory the loop may change meanwhile. */
static cJSON *print_later(RpcSession *s, cJSON *response)
{
        PrintJob *j = calloc(1, sizeof(PrintJob));

        if (!j)
                return response;
        j->slot = s->later->reserve(s->userdata);
        if (!j->slot) {
                free(j);
                return response;
        }
        j->session = s;
        j->response = response;
        j->max_message = s->max_message;
        if (uv_queue_work(s->loop, &j->work, print_job_work, print_job_after) < 0) {
                s->later->fill(s->userdata, j->slot, NULL, 0);
                free(j);
                return response;
        }
        j->next = s->printing;
        if (s->printing)
                s->printing->prev = j;
        s->printing = j;
        s->n_printing++;
        return NULL;
}

static void on_done(cJSON *response, void *userdata)
{
        Pending *p = userdata;
        RpcSession *s = p->session;

        if (s) {
                if (p->prev)
                        p->prev->next = p->next;
                else
                        s->pending = p->next;
                if (p->next)
                        p->next->prev = p->prev;
        }
        if (p->batch) {
                Batch *b = p->batch;
                if (response)
                        batch_add(b, response);
                b->outstanding--;
                batch_maybe_finish(b);
        } else if (s && response) {
                if (s->later && s->n_printing < PRINT_LATER_MAX &&
                    json_size_at_least(response, PRINT_LATER_MIN))
                        response = print_later(s, response);
                if (response)
                        send_response(s, response);
        }
        cJSON_Delete(response);
        free(p);
}

static void handle_one(RpcSession *s, cJSON *msg, Batch *batch);

/* Run members until one waits for its answer (which runs the rest), or none is left. */
static void batch_run(Batch *b)
{
        b->dispatching = true;
        while (b->next && b->session && !b->overflow && b->outstanding == 0) {
                cJSON *m = b->next;
                b->next = m->next;
                handle_one(b->session, m, b);
        }
        b->dispatching = false;
        batch_maybe_finish(b);
}

/* msg stays the caller's, but its params are detached and go to the bus. */
static void handle_one(RpcSession *s, cJSON *msg, Batch *batch)
{
        JsonRpcRequest req;
        const char *reason;
        Pending *p;

        if (jsonrpc_parse_request(msg, &req, &reason) < 0) {
                char text[160];
                _cleanup_json_ cJSON *e = NULL;

                (void)snprintf(text, sizeof(text), "Invalid Request: %s", reason);
                e = jsonrpc_error_new(req.id, RPC_INVALID_REQUEST, text, NULL);
                if (!e)
                        log_oom();
                else if (batch)
                        batch_add(batch, e);
                else
                        send_response(s, e);
                return;
        }

        /* A service's notification on its own topics is published, not dispatched. */
        if (!req.id && bus_client_notification(s->bus, s->client, req.method, req.params))
                return;

        p = calloc(1, sizeof(Pending));
        if (!p) {
                log_oom();
                return;
        }
        p->session = s;
        p->batch = batch;
        p->next = s->pending;
        if (s->pending)
                s->pending->prev = p;
        s->pending = p;
        if (batch)
                batch->outstanding++;

        /* Params given by position are refused by each method's own check as "params must be an
         * object", which is the -32602 the specification asks for. */
        bus_dispatch(s->bus, s->client, req.method,
                     req.params ? cJSON_DetachItemViaPointer(msg, (cJSON *)req.params) : NULL, req.id,
                     on_done, p);
}

/* Everything that reads the text of a message. It touches nothing but its arguments, so it may run on
 * a thread of libuv's pool. */
static void parse_message(const char *line, size_t len, Parsed *ret)
{
        size_t i = 0;

        *ret = (Parsed){};

        /* Blank lines (keep-alives, a stray CRLF) are not messages. */
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
                i++;
        if (i == len) {
                ret->outcome = PARSE_BLANK;
                return;
        }

        ret->scan = json_prescan(line, len, RPC_MAX_DEPTH, RPC_MAX_VALUES);
        if (ret->scan != JSON_SCAN_OK) {
                ret->outcome = PARSE_SCAN_FAILED;
                /* Well-formed JSON with a NUL in a string is refused, not misread. cJSON would cut
                 * strings at the NUL, so nothing from the parse is used but the id's own text, which
                 * lets the client match the refusal to its request. */
                if (ret->scan == JSON_SCAN_NUL) {
                        ret->msg = json_parse(line, len);
                        if (ret->msg && jsonrpc_keep_id_text(ret->msg, line, len) < 0) {
                                cJSON_Delete(ret->msg);
                                ret->msg = NULL;
                        }
                }
                return;
        }

        /* Before cJSON builds a tree of a batch: a message of "{}," members would cost it ~100 bytes
         * of memory per 3 bytes of text, and each member an answer of ~100 bytes. */
        i = json_skip_space(line, len, i);
        if (line[i] == '[' && json_count_members(line, len, i, RPC_MAX_BATCH) > RPC_MAX_BATCH) {
                ret->outcome = PARSE_BIG_BATCH;
                return;
        }

        ret->msg = json_parse(line, len);
        if (!ret->msg) {
                ret->outcome = PARSE_INVALID;
                return;
        }
        if (jsonrpc_keep_id_text(ret->msg, line, len) < 0) {
                cJSON_Delete(ret->msg);
                ret->msg = NULL;
                ret->outcome = PARSE_OOM;
                return;
        }
        ret->outcome = PARSE_OK;
}

/* Answer or dispatch a message parse_message() has read; takes p->msg. */
static void handle_parsed(RpcSession *s, Parsed *p)
{
        _cleanup_json_ cJSON *msg = TAKE_PTR(p->msg);
        char text[160];

        switch (p->outcome) {
        case PARSE_BLANK:
                return;
        case PARSE_SCAN_FAILED:
                if (p->scan == JSON_SCAN_TOO_MANY)
                        send_batch_error(s, "Too many values in one message", RPC_MAX_VALUES);
                else if (p->scan == JSON_SCAN_NUL || p->scan == JSON_SCAN_TOO_DEEP) {
                        const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
                        (void)snprintf(text, sizeof(text), "Invalid Request: %s",
                                       json_scan_result_to_string(p->scan));
                        send_error(s, cJSON_IsNumber(id) || cJSON_IsRaw(id) ? id : NULL, RPC_INVALID_REQUEST,
                                   text, NULL);
                } else {
                        (void)snprintf(text, sizeof(text), "Parse error: %s",
                                       json_scan_result_to_string(p->scan));
                        send_error(s, NULL, RPC_PARSE_ERROR, text, NULL);
                }
                return;
        case PARSE_BIG_BATCH:
                send_batch_error(s, "Too many requests in one batch", RPC_MAX_BATCH);
                return;
        case PARSE_INVALID:
                send_error(s, NULL, RPC_PARSE_ERROR, "Parse error: invalid JSON", NULL);
                return;
        case PARSE_OOM:
                send_error(s, NULL, RPC_INTERNAL_ERROR, "Out of memory", NULL);
                return;
        case PARSE_OK:
                break;
        }

        if (cJSON_IsObject(msg) && !cJSON_GetObjectItemCaseSensitive(msg, "method") &&
            (cJSON_GetObjectItemCaseSensitive(msg, "result") ||
             cJSON_GetObjectItemCaseSensitive(msg, "error"))) {
                /* A service's answer to a request the bus forwarded to it. */
                const cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
                bus_client_response(s->bus, s->client, cJSON_GetObjectItemCaseSensitive(msg, "id"),
                                    cJSON_GetObjectItemCaseSensitive(msg, "result"),
                                    cJSON_IsObject(error) ? error : NULL);
                return;
        }
        if (!cJSON_IsArray(msg)) {
                handle_one(s, msg, NULL);
                return;
        }

        if (!msg->child) {
                send_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: empty batch", NULL);
                return;
        }

        Batch *b = calloc(1, sizeof(Batch));
        if (!b) {
                log_oom();
                return;
        }
        b->session = s;
        b->next = msg->child;
        b->msg = TAKE_PTR(msg);
        batch_run(b);
}

void rpc_session_handle(RpcSession *s, const char *line, size_t len)
{
        Parsed p;

        parse_message(line, len, &p);
        handle_parsed(s, &p);
}

static void parse_job_work(uv_work_t *w)
{
        ParseJob *j = container_of(w, ParseJob, work);

        parse_message(j->line, j->len, &j->parsed);
}

static void parse_job_after(uv_work_t *w, int status)
{
        ParseJob *j = container_of(w, ParseJob, work);
        RpcSession *s = j->session;

        /* The text goes before the message is handled: a big one is not held twice meanwhile. */
        free(j->buf);
        if (s) {
                s->parsing = NULL;
                /* Nothing cancels the job; were it cancelled, the client would still get an answer. */
                if (status < 0)
                        send_error(s, NULL, RPC_INTERNAL_ERROR, "Internal error: message not read", NULL);
                else
                        handle_parsed(s, &j->parsed);
                j->resume(j->userdata);
        }
        cJSON_Delete(j->parsed.msg);
        free(j);
}

void rpc_session_print_later(RpcSession *s, uv_loop_t *loop, const RpcLaterOps *ops)
{
        assert(s && loop && ops && ops->reserve && ops->fill);
        s->loop = loop;
        s->later = ops;
}

int rpc_session_handle_async(RpcSession *s, uv_loop_t *loop, char *buf, const char *line, size_t len,
                             RpcResumeFn resume, void *userdata)
{
        ParseJob *j;
        int r;

        assert(s && loop && buf && line && resume);
        assert(!s->parsing);
        j = calloc(1, sizeof(ParseJob));
        if (!j)
                return -ENOMEM;
        *j = (ParseJob){
            .session = s, .buf = buf, .line = line, .len = len, .resume = resume, .userdata = userdata};
        r = uv_queue_work(loop, &j->work, parse_job_work, parse_job_after);
        if (r < 0) {
                free(j);
                return r;
        }
        s->parsing = j;
        return 0;
}

bool rpc_session_parsing(const RpcSession *s)
{
        return s->parsing;
}

void rpc_session_handle_oversize(RpcSession *s)
{
        char text[128];
        cJSON *data = cJSON_CreateObject();

        if (data)
                (void)cJSON_AddNumberToObject(data, "limit", (double)s->max_message);
        (void)snprintf(text, sizeof(text), "Message larger than the limit of %zu bytes", s->max_message);
        send_error(s, NULL, RPC_TOO_LARGE, text, data);
}
