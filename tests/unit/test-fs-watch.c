/* SPDX-License-Identifier: MIT */
/* The fs service's change notifications, driven through a real Bus and uv loop: the project is
 * loaded by publishing EVENT_PROJECT_LOADED (what the workspace service does), changes are made
 * with plain system calls (from "outside") or through the bus (the worker's own), and what the
 * service publishes on the bus is checked. */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "bus.h"
#include "events.h"
#include "service.h"

#define MAX_EVENTS 256
/* Longer than the coalescing delay, far shorter than the second a user would notice. */
#define SETTLE_MS 150

typedef struct Event {
        char kind[16];
        char path[PATH_MAX];
        char old_path[PATH_MAX];
} Event;

typedef struct Env {
        uv_loop_t loop;
        uv_timer_t timer;
        Bus *bus;
        WorkerConfig config;
        char *roots[1];
        char *excludes[2];
        char root[64]; /* a short mkdtemp() name, so paths built from it are known to fit */
        void *service;

        Event events[MAX_EVENTS];
        size_t n_events;
        unsigned n_errors;
        char error_errno[32];
        char error_path[PATH_MAX];
        uint64_t error_limit;
        unsigned n_replies;
        bool reply_ok;
        char reply_tag[128];
} Env;

static void on_changed(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Env *e = userdata;
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(params, "kind");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(params, "path");
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(params, "oldPath");
        Event *ev;

        assert_true(cJSON_IsString(kind) && cJSON_IsString(path));
        assert_true(e->n_events < MAX_EVENTS);
        ev = &e->events[e->n_events++];
        *ev = (Event){};
        (void)snprintf(ev->kind, sizeof(ev->kind), "%s", kind->valuestring);
        (void)snprintf(ev->path, sizeof(ev->path), "%s", path->valuestring);
        if (cJSON_IsString(old))
                (void)snprintf(ev->old_path, sizeof(ev->old_path), "%s", old->valuestring);
        else
                assert_null(old);
}

static void on_watch_error(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Env *e = userdata;
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(params, "errno");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(params, "path");
        const cJSON *limit = cJSON_GetObjectItemCaseSensitive(params, "limit");

        assert_true(cJSON_IsString(err) && cJSON_IsString(path) && cJSON_IsNumber(limit));
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(params, "message")));
        e->n_errors++;
        (void)snprintf(e->error_errno, sizeof(e->error_errno), "%s", err->valuestring);
        (void)snprintf(e->error_path, sizeof(e->error_path), "%s", path->valuestring);
        e->error_limit = (uint64_t)limit->valuedouble;
}

static void env_start(Env *e, unsigned max_watches)
{
        ServiceContext ctx;

        strcpy(e->root, "/tmp/helios-test-fs-watch-XXXXXX");
        assert_non_null(mkdtemp(e->root));
        e->roots[0] = e->root;
        e->excludes[0] = (char *)".git";
        e->excludes[1] = (char *)"node_modules";
        e->config = (WorkerConfig){
            .roots = e->roots,
            .n_roots = 1,
            .max_message = DEFAULT_MAX_MESSAGE,
            .watch_exclude = e->excludes,
            .n_watch_exclude = 2,
            .max_watches = max_watches,
        };
        assert_int_equal(uv_loop_init(&e->loop), 0);
        assert_int_equal(uv_timer_init(&e->loop, &e->timer), 0);
        assert_int_equal(bus_new(&e->loop, &e->bus), 0);
        ctx = (ServiceContext){&e->loop, e->bus, &e->config};
        assert_int_equal(fs_service_type.start(&ctx, &e->service), 0);
        assert_int_equal(bus_subscribe(e->bus, EVENT_FILE_CHANGED_ON_DISK, on_changed, e), 0);
        assert_int_equal(bus_subscribe(e->bus, "fs:watch_error", on_watch_error, e), 0);
}

static int setup(void **state)
{
        Env *e = calloc(1, sizeof(Env));

        assert_non_null(e);
        env_start(e, DEFAULT_MAX_WATCHES);
        *state = e;
        return 0;
}

static int setup_five_watches(void **state)
{
        Env *e = calloc(1, sizeof(Env));

        assert_non_null(e);
        env_start(e, 5);
        *state = e;
        return 0;
}

static int teardown(void **state)
{
        Env *e = *state;
        char cmd[PATH_MAX + 16];

        fs_service_type.stop(e->service);
        uv_close((uv_handle_t *)&e->timer, NULL);
        assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
        /* Every handle the service opened has been closed. */
        assert_int_equal(uv_loop_close(&e->loop), 0);
        bus_free(e->bus);
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
        assert_int_equal(system(cmd), 0);
        free(e);
        return 0;
}

static void on_timer(uv_timer_t *t)
{
        uv_stop(t->loop);
}

static void run_for(Env *e, uint64_t ms)
{
        assert_int_equal(uv_timer_start(&e->timer, on_timer, ms, 0), 0);
        (void)uv_run(&e->loop, UV_RUN_DEFAULT);
}

static void settle(Env *e)
{
        run_for(e, SETTLE_MS);
}

static const char *at(const Env *e, const char *rel)
{
        static char buf[4][PATH_MAX];
        static unsigned next;
        char *p = buf[next++ % 4];

        (void)snprintf(p, PATH_MAX, "%s%s%s", e->root, *rel ? "/" : "", rel);
        return p;
}

static void load_project(Env *e, const char *rel)
{
        cJSON *p = cJSON_CreateObject();

        assert_non_null(p);
        assert_non_null(cJSON_AddStringToObject(p, "root", at(e, rel)));
        bus_publish(e->bus, EVENT_PROJECT_LOADED, p, BUS_INTERNAL, 0);
}

static void write_file(const char *path, const char *content, int flags)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        assert_int_equal(close(fd), 0);
}

static void expect_event(Env *e, size_t i, const char *kind, const char *rel, const char *old_rel)
{
        if (i >= e->n_events)
                fail_msg("expected event %zu (%s %s), got %zu events", i, kind, rel, e->n_events);
        assert_string_equal(e->events[i].kind, kind);
        assert_string_equal(e->events[i].path, at(e, rel));
        assert_string_equal(e->events[i].old_path, old_rel ? at(e, old_rel) : "");
}

static void expect_events(Env *e, size_t n)
{
        if (e->n_events != n) {
                for (size_t i = 0; i < e->n_events; i++)
                        print_message("event %zu: %s %s %s\n", i, e->events[i].kind, e->events[i].path,
                                      e->events[i].old_path);
                fail_msg("expected %zu events, got %zu", n, e->n_events);
        }
}

static void test_outside_append_is_one_modification(void **state)
{
        Env *e = *state;

        write_file(at(e, "f"), "one\n", 0);
        load_project(e, "");
        settle(e);
        expect_events(e, 0);

        /* echo >> f: open, write, close; a second append in the same burst. */
        write_file(at(e, "f"), "two\n", O_APPEND);
        write_file(at(e, "f"), "three\n", O_APPEND);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "modified", "f", NULL);
}

static void test_created_deleted_moved(void **state)
{
        Env *e = *state;
        char outside[PATH_MAX];

        load_project(e, "");
        write_file(at(e, "new"), "x", 0);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "created", "new", NULL);

        assert_int_equal(rename(at(e, "new"), at(e, "renamed")), 0);
        settle(e);
        expect_events(e, 2);
        expect_event(e, 1, "moved", "renamed", "new");

        assert_int_equal(unlink(at(e, "renamed")), 0);
        settle(e);
        expect_events(e, 3);
        expect_event(e, 2, "deleted", "renamed", NULL);

        /* Created and removed again within one burst: nothing happened. */
        write_file(at(e, "blip"), "x", 0);
        assert_int_equal(unlink(at(e, "blip")), 0);
        settle(e);
        expect_events(e, 3);

        /* Unpaired halves of a move: out of the tree is a deletion, in from outside a creation. */
        (void)snprintf(outside, sizeof(outside), "%s-outside", e->root);
        write_file(at(e, "leaving"), "x", 0);
        settle(e);
        e->n_events = 0;
        assert_int_equal(rename(at(e, "leaving"), outside), 0);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "deleted", "leaving", NULL);
        assert_int_equal(rename(outside, at(e, "arriving")), 0);
        settle(e);
        expect_events(e, 2);
        expect_event(e, 1, "created", "arriving", NULL);
}

static void test_new_directory_contents_reported(void **state)
{
        Env *e = *state;

        load_project(e, "");
        /* No loop iteration in between: the file exists before the directory could be watched. */
        assert_int_equal(mkdir(at(e, "d"), 0755), 0);
        write_file(at(e, "d/f"), "x", 0);
        assert_int_equal(mkdir(at(e, "d/e"), 0755), 0);
        assert_int_equal(mkdir(at(e, "d/e/g"), 0755), 0);
        write_file(at(e, "d/e/g/h"), "x", 0);
        settle(e);
        expect_events(e, 5);
        expect_event(e, 0, "created", "d", NULL);
        /* The rest in scan order; check them as a set. */
        for (size_t i = 1; i < 5; i++)
                assert_string_equal(e->events[i].kind, "created");
        bool seen[4] = {};
        const char *want[4] = {"d/f", "d/e", "d/e/g", "d/e/g/h"};
        for (size_t i = 1; i < 5; i++)
                for (size_t k = 0; k < 4; k++)
                        if (streq(e->events[i].path, at(e, want[k])))
                                seen[k] = true;
        for (size_t k = 0; k < 4; k++)
                assert_true(seen[k]);

        /* And the new directories are watched from now on. */
        write_file(at(e, "d/e/g/h"), "more", O_APPEND);
        settle(e);
        expect_events(e, 6);
        expect_event(e, 5, "modified", "d/e/g/h", NULL);
}

static void test_renamed_directory_keeps_watching(void **state)
{
        Env *e = *state;

        assert_int_equal(mkdir(at(e, "old"), 0755), 0);
        write_file(at(e, "old/f"), "x", 0);
        load_project(e, "");
        assert_int_equal(rename(at(e, "old"), at(e, "new")), 0);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "moved", "new", "old");

        /* Events inside it now carry its new name. */
        write_file(at(e, "new/f"), "y", O_APPEND);
        settle(e);
        expect_events(e, 2);
        expect_event(e, 1, "modified", "new/f", NULL);
}

static void on_reply(cJSON *result_owned, cJSON *error_owned, void *userdata)
{
        _cleanup_json_ cJSON *result = result_owned, *error = error_owned;
        Env *e = userdata;
        const cJSON *tag = cJSON_GetObjectItemCaseSensitive(result, "tag");

        e->n_replies++;
        e->reply_ok = result != NULL;
        if (error)
                print_message("error: %s\n", error->child ? error->child->valuestring : "?");
        if (cJSON_IsString(tag))
                (void)snprintf(e->reply_tag, sizeof(e->reply_tag), "%s", tag->valuestring);
}

/* Call an fs method over the bus with params given as JSON text, and run the loop until it answers. */
static void call(Env *e, const char *method, const char *json_params)
{
        cJSON *p = cJSON_Parse(json_params);
        unsigned before = e->n_replies;

        assert_non_null(p);
        assert_int_equal(bus_call(e->bus, method, p, on_reply, e), 0);
        /* Never inside the call that asked. */
        assert_int_equal(e->n_replies, before);
        while (e->n_replies == before)
                (void)uv_run(&e->loop, UV_RUN_ONCE);
        assert_int_equal(e->n_replies, before + 1);
        assert_true(e->reply_ok);
}

typedef struct Order {
        char seen[8];
        size_t n;
        bool ok[8];
} Order;

static void on_ordered(char what, cJSON *result, cJSON *error, Order *o)
{
        o->ok[o->n] = result && !error;
        o->seen[o->n++] = what;
        cJSON_Delete(result);
        cJSON_Delete(error);
}

static void on_save_answer(cJSON *result, cJSON *error, void *userdata)
{
        on_ordered('w', result, error, userdata);
}

static void on_stat_answer(cJSON *result, cJSON *error, void *userdata)
{
        on_ordered('s', result, error, userdata);
}

static void on_delete_answer(cJSON *result, cJSON *error, void *userdata)
{
        on_ordered('d', result, error, userdata);
}

static void on_read_answer(cJSON *result, cJSON *error, void *userdata)
{
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content");

        const cJSON *size = cJSON_GetObjectItemCaseSensitive(result, "size");

        /* What the save before it wrote, all 4 MiB of it, in the shape a client gets: a string and
         * numbers. */
        if (result && (!cJSON_IsString(content) || strlen(content->valuestring) != 4u * 1024u * 1024u ||
                       !cJSON_IsNumber(size) || size->valuedouble != 4.0 * 1024 * 1024))
                result = (cJSON_Delete(result), NULL);
        on_ordered('r', result, error, userdata);
}

static void ping(BusCall *call, const cJSON *params, void *userdata)
{
        bus_call_reply(call, NULL);
}

static void on_ping_answer(cJSON *result, cJSON *error, void *userdata)
{
        on_ordered('p', result, error, userdata);
}

/* A save, a recursive delete and a large read do not hold the loop: a request to another service made
 * right after them is answered first, while the disk work runs on the thread pool. fs requests keep
 * their order: the read sees what the save wrote, the stat comes last. */
static void test_disk_work_does_not_hold_the_loop(void **state)
{
        Env *e = *state;
        size_t size = 4u * 1024u * 1024u;
        char *big = malloc(size + 1);
        cJSON *p;
        Order o = {};

        assert_non_null(big);
        memset(big, 'q', size);
        big[size] = '\0';
        assert_int_equal(mkdir(at(e, "tree"), 0755), 0);
        write_file(at(e, "tree/f"), "x", 0);
        load_project(e, "");

        p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "path", "big.txt");
        cJSON_AddStringToObject(p, "content", big);
        free(big);
        assert_int_equal(bus_call(e->bus, "fs:write_file", p, on_save_answer, &o), 0);
        assert_int_equal(bus_call(e->bus, "fs:delete", cJSON_Parse("{\"path\":\"tree\",\"recursive\":true}"),
                                  on_delete_answer, &o),
                         0);
        assert_int_equal(
            bus_call(e->bus, "fs:read_file", cJSON_Parse("{\"path\":\"big.txt\"}"), on_read_answer, &o), 0);
        assert_int_equal(bus_call(e->bus, "fs:stat", cJSON_Parse("{\"path\":\".\"}"), on_stat_answer, &o),
                         0);
        assert_int_equal(bus_serve(e->bus, "t:ping", ping, NULL), 0);
        assert_int_equal(bus_call(e->bus, "t:ping", NULL, on_ping_answer, &o), 0);
        assert_int_equal(o.n, 0);
        while (o.n < 5)
                (void)uv_run(&e->loop, UV_RUN_ONCE);
        assert_memory_equal(o.seen, "pwdrs", 5);
        for (size_t i = 0; i < 5; i++)
                assert_true(o.ok[i]);
        assert_int_equal(access(at(e, "tree"), F_OK), -1);
        settle(e);
        expect_events(e, 0);
}

typedef struct Tally {
        unsigned ok, refused, other;
} Tally;

static void on_tallied(cJSON *result, cJSON *error, void *userdata)
{
        Tally *t = userdata;
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");

        if (result)
                t->ok++;
        else if (cJSON_IsNumber(code) && code->valueint == -32000)
                t->refused++;
        else
                t->other++;
        cJSON_Delete(result);
        cJSON_Delete(error);
}

/* Requests waiting behind a save are bounded (64 with the save): the rest are refused at once. */
static void test_waiting_requests_are_bounded(void **state)
{
        Env *e = *state;
        Tally t = {};

        load_project(e, "");
        assert_int_equal(bus_call(e->bus, "fs:write_file", cJSON_Parse("{\"path\":\"x\",\"content\":\"x\"}"),
                                  on_tallied, &t),
                         0);
        for (int i = 0; i < 69; i++)
                assert_int_equal(
                    bus_call(e->bus, "fs:stat", cJSON_Parse("{\"path\":\".\"}"), on_tallied, &t), 0);
        while (t.ok + t.refused + t.other < 70)
                (void)uv_run(&e->loop, UV_RUN_ONCE);
        assert_int_equal(t.ok, 64);
        assert_int_equal(t.refused, 6);
        assert_int_equal(t.other, 0);
        settle(e);
}

static void test_own_changes_are_silent(void **state)
{
        Env *e = *state;

        write_file(at(e, "existing"), "x", 0);
        assert_int_equal(mkdir(at(e, "gone"), 0755), 0);
        assert_int_equal(mkdir(at(e, "gone/deeper"), 0755), 0);
        write_file(at(e, "gone/deeper/f"), "x", 0);
        load_project(e, "");

        /* Relative paths are taken from the loaded project. */
        call(e, "fs:write_file", "{\"path\":\"created.txt\",\"content\":\"new\"}");
        call(e, "fs:write_file", "{\"path\":\"existing\",\"content\":\"replaced\"}");
        call(e, "fs:create_directory", "{\"path\":\"a/b/c\",\"recursive\":true}");
        call(e, "fs:create_directory", "{\"path\":\"plain\"}");
        call(e, "fs:write_file", "{\"path\":\"a/b/c/inner\",\"content\":\"z\"}");
        call(e, "fs:rename", "{\"from\":\"created.txt\",\"to\":\"a/moved.txt\"}");
        call(e, "fs:delete", "{\"path\":\"gone\",\"recursive\":true}");
        call(e, "fs:delete", "{\"path\":\"plain\"}");
        settle(e);
        expect_events(e, 0);

        /* Into a directory that is then removed: the newer memory (the whole tree is gone) wins over
         * the older one (the file was there), with the loop running in between as between requests. */
        call(e, "fs:create_directory", "{\"path\":\"d/e\",\"recursive\":true}");
        settle(e);
        call(e, "fs:write_file", "{\"path\":\"d/e/f\",\"content\":\"z\"}");
        call(e, "fs:rename", "{\"from\":\"a/moved.txt\",\"to\":\"d/e/moved.txt\"}");
        call(e, "fs:delete", "{\"path\":\"d\",\"recursive\":true}");
        settle(e);
        expect_events(e, 0);

        /* A change from outside after the worker's own is reported again. */
        write_file(at(e, "existing"), "outside", O_APPEND);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "modified", "existing", NULL);
}

static void test_outside_change_right_after_own_write_is_reported(void **state)
{
        Env *e = *state;

        load_project(e, "");
        call(e, "fs:write_file", "{\"path\":\"f\",\"content\":\"mine\"}");
        /* Within the same burst, someone else appends: the disk no longer matches the worker's write. */
        write_file(at(e, "f"), "theirs", O_APPEND);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "modified", "f", NULL);
}

static void test_excluded_directories(void **state)
{
        Env *e = *state;

        assert_int_equal(mkdir(at(e, ".git"), 0755), 0);
        assert_int_equal(mkdir(at(e, "src"), 0755), 0);
        assert_int_equal(mkdir(at(e, "src/node_modules"), 0755), 0);
        assert_int_equal(mkdir(at(e, "src/node_modules/pkg"), 0755), 0);
        load_project(e, "");

        write_file(at(e, ".git/index"), "x", 0);
        write_file(at(e, "src/node_modules/pkg/index.js"), "x", 0);
        /* One created later is not watched either, nor announced. */
        assert_int_equal(mkdir(at(e, "node_modules"), 0755), 0);
        write_file(at(e, "node_modules/x.js"), "x", 0);
        settle(e);
        write_file(at(e, "node_modules/y.js"), "x", 0);
        settle(e);
        expect_events(e, 0);

        write_file(at(e, "src/main.c"), "x", 0);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "created", "src/main.c", NULL);
}

static void test_watch_limit(void **state)
{
        Env *e = *state;
        char name[32];

        for (int i = 0; i < 8; i++) {
                (void)snprintf(name, sizeof(name), "dir%d", i);
                assert_int_equal(mkdir(at(e, name), 0755), 0);
        }
        load_project(e, "");
        settle(e);
        assert_int_equal(e->n_errors, 1);
        assert_string_equal(e->error_errno, "ENOSPC");
        assert_int_equal(e->error_limit, 5);

        /* Reported once, not for every directory that cannot be watched. */
        assert_int_equal(mkdir(at(e, "dir0/sub"), 0755), 0);
        assert_int_equal(mkdir(at(e, "another"), 0755), 0);
        settle(e);
        assert_int_equal(e->n_errors, 1);

        /* A new project that fits the limit is watched in full, without complaint. */
        load_project(e, "dir1");
        settle(e);
        assert_int_equal(e->n_errors, 1);
        write_file(at(e, "dir1/f"), "x", 0);
        settle(e);
        expect_event(e, e->n_events - 1, "created", "dir1/f", NULL);
}

static void test_project_change_drops_old_watches(void **state)
{
        Env *e = *state;

        assert_int_equal(mkdir(at(e, "a"), 0755), 0);
        assert_int_equal(mkdir(at(e, "b"), 0755), 0);
        load_project(e, "a");
        load_project(e, "b");
        write_file(at(e, "a/f"), "x", 0);
        write_file(at(e, "b/f"), "x", 0);
        settle(e);
        expect_events(e, 1);
        expect_event(e, 0, "created", "b/f", NULL);
}

static void test_project_outside_workspace_ignored(void **state)
{
        Env *e = *state;
        cJSON *p = cJSON_CreateObject();

        assert_non_null(p);
        assert_non_null(cJSON_AddStringToObject(p, "root", "/tmp"));
        bus_publish(e->bus, EVENT_PROJECT_LOADED, p, BUS_INTERNAL, 0);
        p = cJSON_CreateObject();
        assert_non_null(p);
        assert_non_null(cJSON_AddNumberToObject(p, "root", 7));
        bus_publish(e->bus, EVENT_PROJECT_LOADED, p, BUS_INTERNAL, 0);
        settle(e);
        expect_events(e, 0);
}

static void test_project_root_removed(void **state)
{
        Env *e = *state;

        assert_int_equal(mkdir(at(e, "p"), 0755), 0);
        assert_int_equal(mkdir(at(e, "p/sub"), 0755), 0);
        load_project(e, "p");
        assert_int_equal(rmdir(at(e, "p/sub")), 0);
        assert_int_equal(rmdir(at(e, "p")), 0);
        settle(e);
        expect_events(e, 2);
        expect_event(e, 0, "deleted", "p/sub", NULL);
        expect_event(e, 1, "deleted", "p", NULL);
}

static void test_queue_overflow_is_reported(void **state)
{
        Env *e = *state;
        char path[PATH_MAX];
        FILE *f;
        unsigned long long max_queued = 16384;

        f = fopen("/proc/sys/fs/inotify/max_queued_events", "re");
        if (f) {
                if (fscanf(f, "%llu", &max_queued) != 1)
                        max_queued = 16384;
                fclose(f);
        }
        if (max_queued > 200000) {
                print_message("fs.inotify.max_queued_events is %llu here: too many events to overflow\n",
                              max_queued);
                skip();
        }

        load_project(e, "");
        /* Without running the loop, make more events than the kernel queues. */
        (void)snprintf(path, sizeof(path), "%s", at(e, "churn"));
        for (unsigned long long i = 0; i < max_queued / 2 + 100; i++) {
                write_file(path, "", 0);
                assert_int_equal(unlink(path), 0);
        }
        settle(e);
        assert_int_equal(e->n_errors, 1);
        assert_string_equal(e->error_errno, "EOVERFLOW");
        assert_string_equal(e->error_path, e->root);

        /* Watching goes on. */
        e->n_events = 0;
        write_file(at(e, "after"), "x", 0);
        settle(e);
        expect_event(e, e->n_events - 1, "created", "after", NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_outside_append_is_one_modification, setup, teardown),
            cmocka_unit_test_setup_teardown(test_created_deleted_moved, setup, teardown),
            cmocka_unit_test_setup_teardown(test_new_directory_contents_reported, setup, teardown),
            cmocka_unit_test_setup_teardown(test_renamed_directory_keeps_watching, setup, teardown),
            cmocka_unit_test_setup_teardown(test_own_changes_are_silent, setup, teardown),
            cmocka_unit_test_setup_teardown(test_disk_work_does_not_hold_the_loop, setup, teardown),
            cmocka_unit_test_setup_teardown(test_waiting_requests_are_bounded, setup, teardown),
            cmocka_unit_test_setup_teardown(test_outside_change_right_after_own_write_is_reported, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_excluded_directories, setup, teardown),
            cmocka_unit_test_setup_teardown(test_watch_limit, setup_five_watches, teardown),
            cmocka_unit_test_setup_teardown(test_project_change_drops_old_watches, setup, teardown),
            cmocka_unit_test_setup_teardown(test_project_outside_workspace_ignored, setup, teardown),
            cmocka_unit_test_setup_teardown(test_project_root_removed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_queue_overflow_is_reported, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
