/* SPDX-License-Identifier: MIT */
/* The terminal service on a real bus and loop, with a stand-in fs service and client: the parts a
 * client cannot reach on its own (how fs:stat answers, a congested connection, internal events). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "events.h"
#include "service.h"

typedef enum FsMode {
        FS_ABSENT,
        FS_DIR,   /* answers at once: a directory */
        FS_FILE,  /* answers at once: not a directory */
        FS_ERROR, /* answers at once with an error */
        FS_LATER, /* keeps the call for the test to answer */
} FsMode;

typedef struct Fixture {
        uv_loop_t loop;
        uv_timer_t tick;
        Bus *bus;
        WorkerConfig cfg;
        char *roots[1];
        char home[64];
        char dir[PATH_MAX];
        void *svc;

        ClientId client;
        bool congested;
        char *sent[4096];
        size_t n_sent;

        FsMode fs;
        BusCall *fs_call;
        char fs_path[PATH_MAX];

        cJSON *response;
        unsigned n_changed;
        bool last_alive;
} Fixture;

static int client_send(void *userdata, const char *msg, size_t len)
{
        Fixture *f = userdata;

        assert_true(f->n_sent < ELEMENTSOF(f->sent));
        f->sent[f->n_sent] = strndup(msg, len);
        assert_non_null(f->sent[f->n_sent]);
        f->n_sent++;
        return 0;
}

static bool client_congested(void *userdata)
{
        return ((Fixture *)userdata)->congested;
}

static const BusClientOps client_ops = {client_send, client_congested};

static void fake_stat(BusCall *call, const cJSON *params, void *userdata)
{
        Fixture *f = userdata;
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(params, "path");
        cJSON *r;

        assert_true(cJSON_IsString(path));
        (void)snprintf(f->fs_path, sizeof(f->fs_path), "%s", path->valuestring);
        switch (f->fs) {
        case FS_DIR:
        case FS_FILE:
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "path", f->dir);
                cJSON_AddStringToObject(r, "type", f->fs == FS_DIR ? "dir" : "file");
                bus_call_reply(call, r);
                break;
        case FS_ERROR:
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "errno", "EXDEV");
                bus_call_error(call, -32002, "Outside the workspace (from fs)", r);
                break;
        case FS_LATER:
                f->fs_call = call;
                break;
        default:
                fail();
        }
}

static void on_changed(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Fixture *f = userdata;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, "terminals");

        f->n_changed++;
        f->last_alive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "alive"));
}

static void on_tick(uv_timer_t *t)
{
        /* Only here so that a UV_RUN_ONCE returns now and then. */
}

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(Fixture));
        ServiceContext ctx;

        assert_non_null(f);
        strcpy(f->home, "/tmp/helios-test-terminal-XXXXXX");
        assert_non_null(mkdtemp(f->home));
        (void)snprintf(f->dir, sizeof(f->dir), "%s/sub", f->home);
        assert_int_equal(mkdir(f->dir, 0700), 0);
        f->roots[0] = f->home;
        f->cfg = (WorkerConfig){
            .roots = f->roots,
            .n_roots = 1,
            .home = f->home,
            .max_message = DEFAULT_MAX_MESSAGE,
            .max_terminals = 4,
            .scrollback = DEFAULT_SCROLLBACK,
            .high_water = DEFAULT_HIGH_WATER,
        };
        assert_int_equal(uv_loop_init(&f->loop), 0);
        assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
        assert_int_equal(uv_timer_start(&f->tick, on_tick, 20, 20), 0);
        assert_int_equal(bus_new(&f->loop, &f->bus), 0);
        assert_int_equal(bus_client_add(f->bus, &client_ops, f, &f->client), 0);
        assert_int_equal(bus_subscribe(f->bus, EVENT_TERMINALS_CHANGED, on_changed, f), 0);
        ctx = (ServiceContext){&f->loop, f->bus, &f->cfg};
        assert_int_equal(terminal_service_type.start(&ctx, &f->svc), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fixture *f = *state;

        if (f->svc)
                terminal_service_type.stop(f->svc);
        uv_close((uv_handle_t *)&f->tick, NULL);
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        /* Every handle the service opened is closed again. */
        assert_int_equal(uv_loop_close(&f->loop), 0);
        bus_free(f->bus);
        /* The service hung its terminals up; reap them here, nobody else will. */
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
        for (size_t i = 0; i < f->n_sent; i++)
                free(f->sent[i]);
        cJSON_Delete(f->response);
        rmdir(f->dir);
        rmdir(f->home);
        free(f);
        return 0;
}

static void on_done(cJSON *response, void *userdata)
{
        Fixture *f = userdata;

        cJSON_Delete(f->response);
        f->response = response;
}

/* Let the loop deliver the answers the bus holds (the tick timer keeps it alive: a few turns). */
static void settle(Fixture *f)
{
        for (int i = 0; i < 10; i++)
                (void)uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void dispatch(Fixture *f, const char *method, const char *params_json)
{
        cJSON *params = cJSON_Parse(params_json), *id = cJSON_CreateNumber(1);

        assert_non_null(params);
        cJSON_Delete(f->response);
        f->response = NULL;
        bus_dispatch(f->bus, f->client, method, params /* taken */, id, on_done, f);
        cJSON_Delete(id);
        settle(f);
}

/* Run the loop until some message sent to the client contains needle. */
static bool run_until_sent(Fixture *f, const char *needle, double seconds)
{
        uint64_t deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);

        for (;;) {
                for (size_t i = 0; i < f->n_sent; i++)
                        if (strstr(f->sent[i], needle))
                                return true;
                if (uv_hrtime() > deadline)
                        return false;
                (void)uv_run(&f->loop, UV_RUN_ONCE);
        }
}

static void run_for(Fixture *f, double seconds)
{
        uint64_t deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);

        while (uv_hrtime() < deadline)
                (void)uv_run(&f->loop, UV_RUN_ONCE);
}

static int error_code(Fixture *f)
{
        settle(f);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->response, "error");

        assert_non_null(e);
        return cJSON_GetObjectItemCaseSensitive(e, "code")->valueint;
}

static void test_cwd_checked_by_fs(void **state)
{
        Fixture *f = *state;
        char expect[PATH_MAX + 16], home_sub[PATH_MAX];

        f->fs = FS_DIR;
        assert_int_equal(bus_serve(f->bus, "fs:stat", fake_stat, f), 0);
        dispatch(f, "terminal:create",
                 "{\"cols\":80,\"rows\":24,\"cwd\":\"sub\",\"command\":\"pwd -P; exit 4\"}");
        assert_non_null(cJSON_GetObjectItemCaseSensitive(f->response, "result"));
        /* A relative cwd reaches fs:stat joined to the home directory (no project is loaded). */
        (void)snprintf(home_sub, sizeof(home_sub), "%s/sub", f->home);
        assert_string_equal(f->fs_path, home_sub);
        (void)snprintf(expect, sizeof(expect), "\"data\":\"%s\\r\\n", f->dir);
        assert_true(run_until_sent(f, expect, 10));
        assert_true(run_until_sent(
            f, "\"method\":\"terminal:exit\",\"params\":{\"terminalId\":\"1\",\"exitCode\":4,", 10));

        f->fs = FS_FILE;
        dispatch(f, "terminal:create", "{\"cols\":80,\"rows\":24,\"cwd\":\"/tmp\"}");
        assert_int_equal(error_code(f), -32006);

        /* The fs service's own verdict is passed on as it is. */
        f->fs = FS_ERROR;
        dispatch(f, "terminal:create", "{\"cols\":80,\"rows\":24,\"cwd\":\"/etc\"}");
        assert_int_equal(error_code(f), -32002);
        {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->response, "error");
                assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring,
                                    "Outside the workspace (from fs)");
                assert_string_equal(
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "data"), "errno")
                        ->valuestring,
                    "EXDEV");
        }
}

static void test_fs_answering_later(void **state)
{
        Fixture *f = *state;
        cJSON *r;

        f->fs = FS_LATER;
        assert_int_equal(bus_serve(f->bus, "fs:stat", fake_stat, f), 0);
        dispatch(f, "terminal:create",
                 "{\"cols\":80,\"rows\":24,\"cwd\":\"sub\",\"command\":\"echo late-$((3*3))\"}");
        assert_null(f->response);
        assert_non_null(f->fs_call);
        run_for(f, 0.1);
        r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "path", f->dir);
        cJSON_AddStringToObject(r, "type", "dir");
        bus_call_reply(TAKE_PTR(f->fs_call), r);
        settle(f);
        assert_non_null(cJSON_GetObjectItemCaseSensitive(f->response, "result"));
        assert_true(run_until_sent(f, "late-9", 10));
}

static void test_stop_while_fs_is_answering(void **state)
{
        Fixture *f = *state;
        cJSON *r;

        f->fs = FS_LATER;
        assert_int_equal(bus_serve(f->bus, "fs:stat", fake_stat, f), 0);
        dispatch(f, "terminal:create", "{\"cols\":80,\"rows\":24,\"cwd\":\"sub\"}");
        assert_null(f->response);
        terminal_service_type.stop(TAKE_PTR(f->svc));
        settle(f);
        assert_int_equal(error_code(f), -32000);
        /* The late answer finds only the request to free (ASan watches). */
        r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "path", f->dir);
        cJSON_AddStringToObject(r, "type", "dir");
        bus_call_reply(TAKE_PTR(f->fs_call), r);
        settle(f);
}

static void test_creator_gone_while_fs_is_answering(void **state)
{
        Fixture *f = *state;
        size_t sent;
        cJSON *r;

        f->fs = FS_LATER;
        assert_int_equal(bus_serve(f->bus, "fs:stat", fake_stat, f), 0);
        dispatch(f, "terminal:create",
                 "{\"cols\":80,\"rows\":24,\"cwd\":\"sub\",\"command\":\"echo orphan\"}");
        bus_client_remove(f->bus, f->client);
        r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "path", f->dir);
        cJSON_AddStringToObject(r, "type", "dir");
        sent = f->n_sent;
        bus_call_reply(TAKE_PTR(f->fs_call), r);
        settle(f);
        run_for(f, 0.5);
        /* Nothing is sent to a client that is gone, and nothing waits on it. */
        assert_int_equal(f->n_sent, sent);
        assert_int_equal(f->n_changed, 2);
        assert_false(f->last_alive);
}

static void test_without_fs_the_child_checks(void **state)
{
        Fixture *f = *state;

        dispatch(f, "terminal:create", "{\"cols\":80,\"rows\":24,\"cwd\":\"missing\"}");
        assert_int_equal(error_code(f), -32001);
        dispatch(f, "terminal:create", "{\"cols\":80,\"rows\":24,\"cwd\":\"sub/../..\"}");
        assert_int_equal(error_code(f), -32002);
}

static void test_project_root_is_the_default_cwd(void **state)
{
        Fixture *f = *state;
        char expect[PATH_MAX + 16];
        cJSON *p = cJSON_CreateObject();

        cJSON_AddStringToObject(p, "root", f->dir);
        bus_publish(f->bus, EVENT_PROJECT_LOADED, p, BUS_INTERNAL, 0);
        dispatch(f, "terminal:create", "{\"cols\":80,\"rows\":24,\"command\":\"pwd -P\"}");
        (void)snprintf(expect, sizeof(expect), "\"data\":\"%s\\r\\n", f->dir);
        assert_true(run_until_sent(f, expect, 10));
}

static void test_congested_client_stops_reading(void **state)
{
        Fixture *f = *state;

        f->congested = true;
        dispatch(f, "terminal:create",
                 "{\"cols\":80,\"rows\":24,\"command\":\"echo flow-$((6*7)); sleep 5\"}");
        assert_non_null(cJSON_GetObjectItemCaseSensitive(f->response, "result"));
        assert_int_equal(f->n_changed, 1);
        assert_true(f->last_alive);
        assert_false(run_until_sent(f, "flow-42", 0.5));
        f->congested = false;
        bus_client_drained(f->bus, f->client);
        assert_true(run_until_sent(f, "flow-42", 5));

        /* Pausing works the same way, for this connection's attachment. */
        dispatch(f, "terminal:pause", "{\"terminalId\":\"1\"}");
        dispatch(f, "terminal:data_in", "{\"terminalId\":\"1\",\"data\":\"paused-$((1+1))\"}");
        assert_false(run_until_sent(f, "paused-", 0.5));
        dispatch(f, "terminal:resume", "{\"terminalId\":\"1\"}");
        assert_true(run_until_sent(f, "paused-", 5));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_cwd_checked_by_fs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fs_answering_later, setup, teardown),
            cmocka_unit_test_setup_teardown(test_stop_while_fs_is_answering, setup, teardown),
            cmocka_unit_test_setup_teardown(test_creator_gone_while_fs_is_answering, setup, teardown),
            cmocka_unit_test_setup_teardown(test_without_fs_the_child_checks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_project_root_is_the_default_cwd, setup, teardown),
            cmocka_unit_test_setup_teardown(test_congested_client_stops_reading, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
