/* SPDX-License-Identifier: MIT */
/* The bus's promises: a request's params belong to the call, so a service may keep pointers into them
 * and answer later, from the loop, without a copy; and a client gets what the bus sends it in the order
 * it was made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

typedef struct Fixture {
        uv_loop_t loop;
        Bus *bus;
        uv_timer_t later;
        BusCall *held;       /* the call the service answers later */
        const char *content; /* points into the held call's params */
        cJSON *response;     /* a client request's answer */
        cJSON *result;       /* an internal call's answer */
        unsigned n_answers;
        char log[256]; /* what a client connection was given, in order */
        ClientId client;
} Fixture;

/* Keeps the call and a pointer into its params, and answers on a later turn of the loop with what
 * that pointer reads then. */
static void on_later(uv_timer_t *t)
{
        Fixture *f = t->data;

        bus_call_reply(TAKE_PTR(f->held), cJSON_CreateString(f->content));
        f->content = NULL;
}

static void on_keep(BusCall *call, const cJSON *params, void *userdata)
{
        Fixture *f = userdata;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(params, "content");

        assert_true(cJSON_IsString(content));
        assert_null(f->held);
        f->held = call;
        f->content = content->valuestring;
        assert_int_equal(uv_timer_start(&f->later, on_later, 1, 0), 0);
}

static void on_done(cJSON *response, void *userdata)
{
        Fixture *f = userdata;

        f->response = response;
        f->n_answers++;
}

static void on_reply(cJSON *result, cJSON *error, void *userdata)
{
        Fixture *f = userdata;

        assert_null(error);
        f->result = result;
        f->n_answers++;
}

static void log_append(Fixture *f, const char *what)
{
        size_t len = strlen(f->log);

        (void)snprintf(f->log + len, sizeof(f->log) - len, "%s;", what);
}

static int client_send(void *userdata, const char *msg, size_t len)
{
        Fixture *f = userdata;
        char text[64];

        (void)snprintf(text, sizeof(text), "%.*s", (int)len, msg);
        log_append(f, text);
        return 0;
}

static bool client_congested(void *userdata)
{
        return false;
}

static const BusClientOps client_ops = {client_send, client_congested};

/* Answers at once, then sends its client more in the same call, as a terminal's output does after
 * terminal:attach. */
static void on_now(BusCall *call, const cJSON *params, void *userdata)
{
        Fixture *f = userdata;
        ClientId origin = bus_call_origin(call);

        bus_call_reply(call, cJSON_CreateString("answer"));
        assert_int_equal(bus_send_raw(f->bus, origin, "raw-after", 9), 0);
        bus_publish(f->bus, "test:note", NULL, BUS_ONE_CLIENT, origin);
}

static void on_done_logged(cJSON *response, void *userdata)
{
        Fixture *f = userdata;

        log_append(f, cJSON_GetObjectItemCaseSensitive(response, "result")->valuestring);
        cJSON_Delete(response);
        f->n_answers++;
}

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(bus_new(&f->loop, &f->bus), 0);
        assert_int_equal(bus_serve(f->bus, "test:keep", on_keep, f), 0);
        assert_int_equal(bus_serve(f->bus, "test:now", on_now, f), 0);
        assert_int_equal(bus_client_add(f->bus, &client_ops, f, &f->client), 0);
        assert_int_equal(uv_timer_init(&f->loop, &f->later), 0);
        f->later.data = f;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fixture *f = *state;

        uv_close((uv_handle_t *)&f->later, NULL);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        bus_free(f->bus);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        cJSON_Delete(f->response);
        cJSON_Delete(f->result);
        free(f);
        return 0;
}

/* A client request: the params the RPC layer hands over outlive the dispatch. */
static void test_client_params_live_until_answered(void **state)
{
        Fixture *f = *state;
        cJSON *msg = cJSON_Parse("{\"id\":7,\"params\":{\"content\":\"kept by the call\"}}");
        const cJSON *result;

        assert_non_null(msg);
        bus_dispatch(f->bus, 1, "test:keep", cJSON_DetachItemFromObjectCaseSensitive(msg, "params"),
                     cJSON_GetObjectItemCaseSensitive(msg, "id"), on_done, f);
        /* The message the params came from is gone before the service answers. */
        cJSON_Delete(msg);
        assert_int_equal(f->n_answers, 0);
        (void)uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(f->n_answers, 1);
        result = cJSON_GetObjectItemCaseSensitive(f->response, "result");
        assert_true(cJSON_IsString(result));
        assert_string_equal(result->valuestring, "kept by the call");
}

/* An internal call: bus_call() takes the params, and they last until the answer. */
static void test_internal_params_live_until_answered(void **state)
{
        Fixture *f = *state;
        cJSON *params = cJSON_CreateObject();

        assert_non_null(params);
        assert_non_null(cJSON_AddStringToObject(params, "content", "from inside the worker"));
        assert_int_equal(bus_call(f->bus, "test:keep", params, on_reply, f), 0);
        assert_int_equal(f->n_answers, 0);
        (void)uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(f->n_answers, 1);
        assert_true(cJSON_IsString(f->result));
        assert_string_equal(f->result->valuestring, "from inside the worker");
}

/* Nobody serves the topic: the params taken are freed all the same (ASan's leak check). */
static void test_params_of_unserved_requests_are_freed(void **state)
{
        Fixture *f = *state;
        cJSON *id = cJSON_CreateNumber(1);

        assert_int_equal(bus_call(f->bus, "test:nobody", cJSON_CreateObject(), on_reply, f), -ENOENT);
        bus_dispatch(f->bus, 1, "test:nobody", cJSON_CreateObject(), id, on_done, f);
        cJSON_Delete(id);
        (void)uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(f->n_answers, 1);
        assert_non_null(cJSON_GetObjectItemCaseSensitive(f->response, "error"));
}

/* What the bus sends a client reaches it in the order it was made: the answer (delivered on the loop's
 * next turn) before the message sent after it in the same call, and before a notification published
 * then; once nothing waits, messages go straight through. */
static void test_a_client_gets_an_answer_before_what_follows_it(void **state)
{
        Fixture *f = *state;
        cJSON *id = cJSON_CreateNumber(3);

        assert_non_null(id);
        bus_dispatch(f->bus, f->client, "test:now", cJSON_CreateObject(), id, on_done_logged, f);
        cJSON_Delete(id);
        assert_string_equal(f->log, "");
        (void)uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(f->n_answers, 1);
        assert_string_equal(f->log, "answer;raw-after;{\"jsonrpc\":\"2.0\",\"method\":\"test:note\"};");
        assert_int_equal(bus_send_raw(f->bus, f->client, "direct", 6), 0);
        assert_string_equal(f->log,
                            "answer;raw-after;{\"jsonrpc\":\"2.0\",\"method\":\"test:note\"};direct;");
        bus_client_remove(f->bus, f->client);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_client_params_live_until_answered, setup, teardown),
            cmocka_unit_test_setup_teardown(test_internal_params_live_until_answered, setup, teardown),
            cmocka_unit_test_setup_teardown(test_params_of_unserved_requests_are_freed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_a_client_gets_an_answer_before_what_follows_it, setup,
                                            teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
