/* SPDX-License-Identifier: MIT */
/* The RPC session and the bus together, without sockets: messages in, messages out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <uv.h>

#include <cmocka.h>

#include "bus.h"
#include "rpc.h"

typedef struct Fixture {
        uv_loop_t loop;
        Bus *bus;
        RpcSession *rpc;
        ClientId client;
        char *out[64];
        size_t n_out;
        BusCall *held; /* a call answered later, to test asynchronous answers */
} Fixture;

static int send_cb(void *userdata, const char *msg, size_t len)
{
        Fixture *f = userdata;

        assert_null(memchr(msg, '\n', len));
        assert_true(f->n_out < 64);
        f->out[f->n_out++] = strndup(msg, len);
        return 0;
}

static bool congested_cb(void *userdata)
{
        return false;
}

static const BusClientOps ops = {send_cb, congested_cb};

static void echo(BusCall *call, const cJSON *params, void *userdata)
{
        bus_call_reply(call, params ? cJSON_Duplicate(params, true) : NULL);
}

static void hold(BusCall *call, const cJSON *params, void *userdata)
{
        Fixture *f = userdata;
        f->held = call;
}

static void big(BusCall *call, const cJSON *params, void *userdata)
{
        char *s = malloc(10000);
        memset(s, 'z', 9999);
        s[9999] = '\0';
        cJSON *r = cJSON_CreateString(s);
        free(s);
        bus_call_reply(call, r);
}

static void strict(BusCall *call, const cJSON *params, void *userdata)
{
        const char *path = NULL;
        const JsonField fields[] = {{"path", JSON_FIELD_STRING, true, &path}};

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) >= 0)
                bus_call_reply(call, NULL);
}

/* Fails with what params say: {"code": …, "data": …}. */
static void failing(BusCall *call, const cJSON *params, void *userdata)
{
        const cJSON *data = cJSON_GetObjectItem(params, "data");

        bus_call_error(call, (int)cJSON_GetObjectItem(params, "code")->valuedouble, "it failed",
                       data ? cJSON_Duplicate(data, true) : NULL);
}

static void on_forward_reply(cJSON *result, cJSON *error, void *userdata)
{
        assert_null(result);
        bus_call_error_forward(userdata, error);
        cJSON_Delete(error);
}

/* Asks t:fail with its own params and passes the error on; a forged error object is refused. */
static void forward(BusCall *call, const cJSON *params, void *userdata)
{
        if (cJSON_GetObjectItem(params, "forged")) {
                cJSON *e = cJSON_Parse("{\"code\":1.5,\"message\":\"x\"}");
                bus_call_error_forward(call, e);
                cJSON_Delete(e);
                return;
        }
        assert_int_equal(
            bus_call(bus_call_bus(call), "t:fail", cJSON_Duplicate(params, true), on_forward_reply, call),
            0);
}

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(bus_new(&f->loop, &f->bus), 0);
        assert_int_equal(bus_serve(f->bus, "t:echo", echo, f), 0);
        assert_int_equal(bus_serve(f->bus, "t:hold", hold, f), 0);
        assert_int_equal(bus_serve(f->bus, "t:big", big, f), 0);
        assert_int_equal(bus_serve(f->bus, "t:fail", failing, f), 0);
        assert_int_equal(bus_serve(f->bus, "t:strict", strict, f), 0);
        assert_int_equal(bus_serve(f->bus, "t:forward", forward, f), 0);
        assert_int_equal(bus_serve(f->bus, "t:echo", echo, f), -EEXIST);
        assert_int_equal(bus_client_add(f->bus, &ops, f, &f->client), 0);
        assert_int_equal(rpc_session_new(f->bus, f->client, 4096, send_cb, f, &f->rpc), 0);
        *state = f;
        return 0;
}

/* Deliver the answers the bus holds, and what they cause. */
static void settle(Fixture *f)
{
        while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0)
                ;
}

static int teardown(void **state)
{
        Fixture *f = *state;

        rpc_session_free(f->rpc);
        bus_client_remove(f->bus, f->client);
        settle(f);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        bus_free(f->bus);
        for (size_t i = 0; i < f->n_out; i++)
                free(f->out[i]);
        free(f);
        return 0;
}

static void handle(Fixture *f, const char *line)
{
        char *copy = strdup(line);
        rpc_session_handle(f->rpc, copy, strlen(copy));
        free(copy);
        settle(f);
}

static void test_request_and_notification(void **state)
{
        Fixture *f = *state;

        handle(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t:echo\",\"params\":{\"a\":[1,\"\\n\"]}}");
        assert_int_equal(f->n_out, 1);
        assert_string_equal(f->out[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":[1,\"\\n\"]}}");
        handle(f, "{\"jsonrpc\":\"2.0\",\"method\":\"t:echo\",\"params\":{}}");
        handle(f, "{\"jsonrpc\":\"2.0\",\"method\":\"t:nothing\"}");
        assert_int_equal(f->n_out, 1);
}

static void test_batch_waits_for_async_answers(void **state)
{
        Fixture *f = *state;

        handle(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t:hold\"},"
                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"t:echo\",\"params\":{}},"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"t:echo\"}]");
        assert_int_equal(f->n_out, 0); /* one answer is still outstanding */
        assert_non_null(f->held);
        bus_call_reply(f->held, cJSON_CreateString("late"));
        settle(f);
        assert_int_equal(f->n_out, 1);
        cJSON *arr = cJSON_Parse(f->out[0]);
        assert_true(cJSON_IsArray(arr));
        assert_int_equal(cJSON_GetArraySize(arr), 2);
        cJSON_Delete(arr);
}

static void test_answer_after_session_is_gone(void **state)
{
        Fixture *f = *state;

        handle(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t:hold\"}");
        assert_non_null(f->held);
        f->rpc = rpc_session_free(f->rpc);
        /* The connection went away; its late answer is dropped without touching freed memory. */
        bus_call_reply(f->held, cJSON_CreateTrue());
        settle(f);
        assert_int_equal(f->n_out, 0);
}

static void test_too_large_response(void **state)
{
        Fixture *f = *state;

        handle(f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"t:big\"}");
        assert_int_equal(f->n_out, 1);
        cJSON *r = cJSON_Parse(f->out[0]);
        assert_int_equal(cJSON_GetObjectItem(r, "id")->valueint, 9);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "code")->valueint,
                         RPC_TOO_LARGE);
        cJSON_Delete(r);
}

/* "[first,member,member,…,last]" with n copies of member; first and last may be NULL. */
static char *batch_text(const char *first, const char *member, size_t n, const char *last)
{
        size_t size =
            3 + (first ? strlen(first) + 1 : 0) + n * (strlen(member) + 1) + (last ? strlen(last) : 0);
        char *t = malloc(size);

        assert_non_null(t);
        strcpy(t, "[");
        if (first)
                strcat(strcat(t, first), ",");
        for (size_t i = 0; i < n; i++)
                strcat(strcat(t, member), ",");
        if (last)
                strcat(t, last);
        else
                t[strlen(t) - 1] = '\0';
        strcat(t, "]");
        return t;
}

#define HOLD        "{\"jsonrpc\":\"2.0\",\"method\":\"t:hold\",\"id\":2}"
#define ECHO_MEMBER "{\"jsonrpc\":\"2.0\",\"method\":\"t:echo\",\"id\":1,\"params\":{\"x\":\"0123456789\"}}"

static void test_batch_bounds(void **state)
{
        Fixture *f = *state;
        char *t;

        /* 1025 members are refused before anything runs; 1024 run. */
        t = batch_text(NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"t:hold\"}", 1025, NULL);
        handle(f, t);
        free(t);
        assert_null(f->held);
        assert_int_equal(f->n_out, 1);
        assert_non_null(strstr(f->out[0], "\"id\":null,\"error\":{\"code\":-32004"));
        assert_non_null(strstr(f->out[0], "\"data\":{\"limit\":1024}"));
        t = batch_text(NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"t:echo\"}", 1024, NULL);
        handle(f, t);
        free(t);
        assert_int_equal(f->n_out, 1); /* notifications: no answer */

        /* The answers outgrow the 4096-byte limit once the first member is in: one error, and the
         * members after the overflow never run (a batch runs its members one after the other). */
        t = batch_text(HOLD, ECHO_MEMBER, 100, HOLD);
        handle(f, t);
        free(t);
        assert_int_equal(f->n_out, 1);
        assert_non_null(f->held);
        BusCall *first = TAKE_PTR(f->held);
        bus_call_reply(first, cJSON_CreateTrue());
        settle(f);
        assert_null(f->held);
        assert_int_equal(f->n_out, 2);
        assert_true(strlen(f->out[1]) < 200);
        assert_non_null(strstr(f->out[1], "\"id\":null,\"error\":{\"code\":-32004"));
        assert_non_null(strstr(f->out[1], "\"data\":{\"limit\":4096}"));

        /* Answers too large each become an error for their own id, and these fit. */
        t = batch_text(NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"t:big\",\"id\":3}", 3, NULL);
        handle(f, t);
        free(t);
        assert_int_equal(f->n_out, 3);
        cJSON *r = cJSON_Parse(f->out[2]);
        assert_int_equal(cJSON_GetArraySize(r), 3);
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(r, 2), "error"), "code")->valueint,
            RPC_TOO_LARGE);
        cJSON_Delete(r);
}

static void test_error_forwarding(void **state)
{
        Fixture *f = *state;

        handle(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t:forward\",\"params\":{\"code\":-32001,"
                  "\"data\":{\"path\":\"/x\"}}}");
        handle(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"t:forward\",\"params\":{\"forged\":true}}");
        handle(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"t:strict\",\"params\":{}}");
        assert_int_equal(f->n_out, 3);
        assert_string_equal(f->out[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,"
                                       "\"message\":\"it failed\",\"data\":{\"path\":\"/x\"}}}");
        assert_non_null(strstr(f->out[1], "\"code\":-32603"));
        assert_string_equal(f->out[2],
                            "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":"
                            "\"Invalid params: missing parameter 'path'\",\"data\":{\"reason\":"
                            "\"missing parameter 'path'\"}}}");
}

static void test_oversize_message(void **state)
{
        Fixture *f = *state;

        rpc_session_handle_oversize(f->rpc);
        assert_int_equal(f->n_out, 1);
        assert_non_null(strstr(f->out[0], "\"code\":-32004"));
        assert_non_null(strstr(f->out[0], "\"id\":null"));
}

static void on_owned(cJSON *result, cJSON *error, void *userdata)
{
        assert_null(error);
        *(cJSON **)userdata = result;
}

/* Answers arrive from the loop, never inside the call that asked, to a client and to the worker alike,
 * in one shape, and the receiver owns what it gets. */
static void test_answers_come_from_the_loop(void **state)
{
        Fixture *f = *state;
        cJSON *got = NULL;

        const char *line = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"t:echo\",\"params\":[7]}";

        rpc_session_handle(f->rpc, line, strlen(line));
        assert_int_equal(f->n_out, 0);
        settle(f);
        assert_int_equal(f->n_out, 1);
        assert_string_equal(f->out[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[7]}");

        assert_int_equal(bus_call(f->bus, "t:echo", cJSON_Parse("[7]"), on_owned, &got), 0);
        assert_null(got);
        settle(f);
        assert_true(cJSON_IsArray(got));
        assert_int_equal(cJSON_GetArrayItem(got, 0)->valueint, 7);
        cJSON_Delete(got);
        assert_int_equal(bus_call(f->bus, "t:nobody", NULL, on_owned, &got), -ENOENT);
}

static void test_events_reach_clients(void **state)
{
        Fixture *f = *state;
        ClientId other;

        assert_int_equal(bus_client_add(f->bus, &ops, f, &other), 0);
        bus_publish(f->bus, "x:ev", cJSON_CreateObject(), BUS_OTHER_CLIENTS, f->client);
        assert_int_equal(f->n_out, 1); /* only the other client */
        bus_publish(f->bus, "x:ev", cJSON_CreateObject(), BUS_ALL_CLIENTS, 0);
        assert_int_equal(f->n_out, 3);
        bus_publish(f->bus, "x:ev", cJSON_CreateObject(), BUS_INTERNAL, 0);
        assert_int_equal(f->n_out, 3);
        assert_string_equal(f->out[0], "{\"jsonrpc\":\"2.0\",\"method\":\"x:ev\",\"params\":{}}");
        bus_client_remove(f->bus, other);
        assert_false(bus_client_exists(f->bus, other));
        assert_int_equal(bus_send_raw(f->bus, other, "x", 1), -ENOENT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_request_and_notification, setup, teardown),
            cmocka_unit_test_setup_teardown(test_batch_waits_for_async_answers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_answer_after_session_is_gone, setup, teardown),
            cmocka_unit_test_setup_teardown(test_batch_bounds, setup, teardown),
            cmocka_unit_test_setup_teardown(test_error_forwarding, setup, teardown),
            cmocka_unit_test_setup_teardown(test_too_large_response, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oversize_message, setup, teardown),
            cmocka_unit_test_setup_teardown(test_events_reach_clients, setup, teardown),
            cmocka_unit_test_setup_teardown(test_answers_come_from_the_loop, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
