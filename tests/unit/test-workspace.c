/* SPDX-License-Identifier: MIT */
/* The workspace service on a test bus, with an in-memory fs service that follows the fs contract and
 * can answer at once or on a later loop iteration, and two recording clients. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "events.h"
#include "log.h"
#include "service.h"

#define EMOJI "\xF0\x9F\x98\x80"
#define PARTY "\xF0\x9F\x8E\x89"
#define ACUTE "\xCC\x81"
#define ROOT  "/proj"

/* ---- the fake fs service ---- */

typedef struct FakeFile {
        char *path;
        char *content;
        bool binary;
        char tag[32];
} FakeFile;

typedef struct Deferred {
        BusCall *call;
        char *topic;
        cJSON *params;
        struct Deferred *next;
} Deferred;

typedef struct FakeFs {
        Bus *bus;
        bool async;
        FakeFile files[300];
        size_t n_files;
        unsigned tag_counter;
        char root[256];
        unsigned n_reads, n_writes, n_stats;
        /* Once: change this file right after it has been read, before the answer is delivered. */
        const char *race_path, *race_content;
        uv_timer_t timer;
        Deferred *queue, *queue_tail;
} FakeFs;

static FakeFile *fake_find(FakeFs *fs, const char *path)
{
        for (size_t i = 0; i < fs->n_files; i++)
                if (fs->files[i].path && strcmp(fs->files[i].path, path) == 0)
                        return &fs->files[i];
        return NULL;
}

/* Absolute and lexically normalized, relative paths against the loaded project. */
static void fake_resolve(FakeFs *fs, const char *path, char *ret, size_t size)
{
        char joined[1024], *save = NULL, *part;
        size_t n = 0;

        if (path[0] == '/')
                (void)snprintf(joined, sizeof(joined), "%s", path);
        else
                (void)snprintf(joined, sizeof(joined), "%s/%s", fs->root, path);
        ret[0] = '\0';
        for (part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
                if (strcmp(part, ".") == 0)
                        continue;
                if (strcmp(part, "..") == 0) {
                        char *slash = strrchr(ret, '/');
                        if (slash)
                                *slash = '\0';
                        n = strlen(ret);
                        continue;
                }
                n += (size_t)snprintf(ret + n, size - n, "/%s", part);
        }
        if (ret[0] == '\0')
                (void)snprintf(ret, size, "/");
}

static bool fake_is_dir(const char *path)
{
        return strcmp(path, ROOT) == 0 || strcmp(path, ROOT "/sub") == 0 || strcmp(path, "/") == 0;
}

static void fake_set(FakeFs *fs, const char *path, const char *content, bool binary)
{
        FakeFile *f = fake_find(fs, path);

        if (!f) {
                assert_true(fs->n_files < ELEMENTSOF(fs->files));
                f = &fs->files[fs->n_files++];
                f->path = strdup(path);
        }
        free(f->content);
        f->content = strdup(content);
        f->binary = binary;
        (void)snprintf(f->tag, sizeof(f->tag), "tag-%u", ++fs->tag_counter);
}

static void fake_delete(FakeFs *fs, const char *path)
{
        FakeFile *f = fake_find(fs, path);

        assert_non_null(f);
        free(f->path);
        free(f->content);
        *f = (FakeFile){};
}

static void fake_changed(FakeFs *fs, const char *path, const char *kind, const char *old);

static void fake_error(BusCall *call, int code, const char *msg, const char *errname, const char *path)
{
        cJSON *data = cJSON_CreateObject();

        cJSON_AddStringToObject(data, "errno", errname);
        cJSON_AddStringToObject(data, "path", path);
        bus_call_error(call, code, msg, data);
}

static void fake_process(FakeFs *fs, BusCall *call, const char *topic, const cJSON *params)
{
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(params, "path");
        char path[1024];
        FakeFile *f;
        cJSON *r;

        if (!cJSON_IsString(p)) {
                bus_call_error(call, RPC_INVALID_PARAMS, "Invalid params", NULL);
                return;
        }
        fake_resolve(fs, p->valuestring, path, sizeof(path));
        f = fake_find(fs, path);

        if (strcmp(topic, "fs:stat") == 0) {
                fs->n_stats++;
                if (!f && !fake_is_dir(path)) {
                        fake_error(call, RPC_NOT_FOUND, "No such file or directory", "ENOENT", path);
                        return;
                }
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "path", path);
                cJSON_AddStringToObject(r, "type", f ? "file" : "dir");
                cJSON_AddNumberToObject(r, "size", f ? (double)strlen(f->content) : 4096);
                cJSON_AddNumberToObject(r, "mtime", 0);
                cJSON_AddNumberToObject(r, "mode", f ? 0644 : 0755);
                cJSON_AddStringToObject(r, "tag", f ? f->tag : "dir");
                bus_call_reply(call, r);
        } else if (strcmp(topic, "fs:read_file") == 0) {
                fs->n_reads++;
                if (fake_is_dir(path)) {
                        fake_error(call, RPC_WRONG_TYPE, "Is a directory", "EISDIR", path);
                        return;
                }
                if (!f) {
                        fake_error(call, RPC_NOT_FOUND, "No such file or directory", "ENOENT", path);
                        return;
                }
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "path", path);
                cJSON_AddStringToObject(r, "content", f->content);
                cJSON_AddStringToObject(r, "encoding", f->binary ? "base64" : "utf-8");
                cJSON_AddNumberToObject(r, "size", (double)strlen(f->content));
                cJSON_AddNumberToObject(r, "mtime", 0);
                cJSON_AddStringToObject(r, "tag", f->tag);
                if (fs->race_path && strcmp(fs->race_path, path) == 0) {
                        fs->race_path = NULL;
                        fake_set(fs, path, fs->race_content, false);
                        fake_changed(fs, path, "modified", NULL);
                }
                bus_call_reply(call, r);
        } else if (strcmp(topic, "fs:write_file") == 0) {
                const cJSON *content = cJSON_GetObjectItemCaseSensitive(params, "content");
                const cJSON *encoding = cJSON_GetObjectItemCaseSensitive(params, "encoding");
                const cJSON *expected = cJSON_GetObjectItemCaseSensitive(params, "expectedTag");

                fs->n_writes++;
                assert_true(cJSON_IsString(content));
                if (cJSON_IsString(expected) && (!f || strcmp(f->tag, expected->valuestring) != 0)) {
                        cJSON *data = cJSON_CreateObject();
                        cJSON_AddStringToObject(data, "path", path);
                        if (f)
                                cJSON_AddStringToObject(data, "tag", f->tag);
                        else
                                cJSON_AddNullToObject(data, "tag");
                        bus_call_error(call, RPC_CONFLICT, "The file has changed on disk", data);
                        return;
                }
                fake_set(fs, path, content->valuestring,
                         cJSON_IsString(encoding) && strcmp(encoding->valuestring, "base64") == 0);
                f = fake_find(fs, path);
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "path", path);
                cJSON_AddStringToObject(r, "tag", f->tag);
                cJSON_AddNumberToObject(r, "size", (double)strlen(f->content));
                cJSON_AddNumberToObject(r, "mtime", 0);
                bus_call_reply(call, r);
        } else
                bus_call_error(call, RPC_METHOD_NOT_FOUND, NULL, NULL);
}

static void fake_on_timer(uv_timer_t *t)
{
        FakeFs *fs = t->data;
        Deferred *q = fs->queue;

        /* Only what was queued before this run: answers may queue more. */
        fs->queue = fs->queue_tail = NULL;
        while (q) {
                Deferred *next = q->next;
                fake_process(fs, q->call, q->topic, q->params);
                cJSON_Delete(q->params);
                free(q->topic);
                free(q);
                q = next;
        }
}

static void fake_serve(BusCall *call, const cJSON *params, void *userdata, const char *topic)
{
        FakeFs *fs = userdata;
        Deferred *d;

        if (!fs->async) {
                fake_process(fs, call, topic, params);
                return;
        }
        /* Answer later, from a copy: params are only borrowed. */
        d = calloc(1, sizeof(Deferred));
        assert_non_null(d);
        d->call = call;
        d->topic = strdup(topic);
        d->params = cJSON_Duplicate(params, true);
        if (fs->queue_tail)
                fs->queue_tail->next = d;
        else
                fs->queue = d;
        fs->queue_tail = d;
        uv_timer_start(&fs->timer, fake_on_timer, 0, 0);
}

static void fake_read(BusCall *call, const cJSON *params, void *userdata)
{
        fake_serve(call, params, userdata, "fs:read_file");
}

static void fake_write(BusCall *call, const cJSON *params, void *userdata)
{
        fake_serve(call, params, userdata, "fs:write_file");
}

static void fake_stat(BusCall *call, const cJSON *params, void *userdata)
{
        fake_serve(call, params, userdata, "fs:stat");
}

static void fake_on_project_loaded(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        FakeFs *fs = userdata;
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(params, "root");

        assert_true(cJSON_IsString(root));
        (void)snprintf(fs->root, sizeof(fs->root), "%s", root->valuestring);
}

static int fake_fs_start(const ServiceContext *ctx, void **ret)
{
        FakeFs *fs = calloc(1, sizeof(FakeFs));

        assert_non_null(fs);
        fs->bus = ctx->bus;
        uv_timer_init(ctx->loop, &fs->timer);
        fs->timer.data = fs;
        assert_int_equal(bus_serve(ctx->bus, "fs:read_file", fake_read, fs), 0);
        assert_int_equal(bus_serve(ctx->bus, "fs:write_file", fake_write, fs), 0);
        assert_int_equal(bus_serve(ctx->bus, "fs:stat", fake_stat, fs), 0);
        assert_int_equal(bus_subscribe(ctx->bus, EVENT_PROJECT_LOADED, fake_on_project_loaded, fs), 0);
        *ret = fs;
        return 0;
}

static void fake_on_closed(uv_handle_t *h)
{
        FakeFs *fs = h->data;

        for (size_t i = 0; i < fs->n_files; i++) {
                free(fs->files[i].path);
                free(fs->files[i].content);
        }
        free(fs);
}

static void fake_fs_stop(void *userdata)
{
        FakeFs *fs = userdata;

        /* A stopping service still answers what it was asked. */
        fake_on_timer(&fs->timer);
        bus_unsubscribe(fs->bus, EVENT_PROJECT_LOADED, fake_on_project_loaded, fs);
        uv_close((uv_handle_t *)&fs->timer, fake_on_closed);
}

static const ServiceType fake_fs_service_type = {
    .name = "fake-fs",
    .start = fake_fs_start,
    .stop = fake_fs_stop,
};

/* Publish an outside change, as the fs service does. */
static void fake_changed(FakeFs *fs, const char *path, const char *kind, const char *old)
{
        cJSON *ev = cJSON_CreateObject();

        cJSON_AddStringToObject(ev, "path", path);
        cJSON_AddStringToObject(ev, "kind", kind);
        if (old)
                cJSON_AddStringToObject(ev, "oldPath", old);
        bus_publish(fs->bus, EVENT_FILE_CHANGED_ON_DISK, ev, BUS_ALL_CLIENTS, 0);
}

/* ---- the test worker: loop, bus, services and two clients ---- */

typedef struct TestClient {
        ClientId id;
        cJSON *notes[4096];
        size_t n_notes;
} TestClient;

typedef struct T {
        char base[64];
        char state_dir[128];
        uv_loop_t loop;
        Bus *bus;
        WorkerConfig config;
        FakeFs *fs;
        void *ws;
        TestClient clients[2];
} T;

static int client_send(void *userdata, const char *msg, size_t len)
{
        TestClient *c = userdata;
        cJSON *m = cJSON_ParseWithLength(msg, len);

        assert_non_null(m);
        assert_null(memchr(msg, '\n', len));
        assert_true(c->n_notes < ELEMENTSOF(c->notes));
        c->notes[c->n_notes++] = m;
        return 0;
}

static bool client_congested(void *userdata)
{
        return false;
}

static const BusClientOps client_ops = {client_send, client_congested};

static void t_clear_notes(T *t)
{
        for (int k = 0; k < 2; k++) {
                TestClient *c = &t->clients[k];
                for (size_t i = 0; i < c->n_notes; i++)
                        cJSON_Delete(c->notes[i]);
                c->n_notes = 0;
        }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

/* A test worker on base (created if NULL) with the fake fs (unless without_fs). */
static T *t_new(const char *base, bool async, bool with_fs, size_t max_message)
{
        T *t = calloc(1, sizeof(T));
        ServiceContext ctx;

        assert_non_null(t);
        if (base)
                (void)snprintf(t->base, sizeof(t->base), "%s", base);
        else {
                strcpy(t->base, "/tmp/helios-test-workspace-XXXXXX");
                assert_non_null(mkdtemp(t->base));
        }
        (void)snprintf(t->state_dir, sizeof(t->state_dir), "%s/state/helios", t->base);
        t->config.state_dir = t->state_dir;
        t->config.max_message = max_message;
        assert_int_equal(uv_loop_init(&t->loop), 0);
        assert_int_equal(bus_new(&t->loop, &t->bus), 0);
        ctx = (ServiceContext){&t->loop, t->bus, &t->config};
        if (with_fs) {
                void *fs = NULL;
                assert_int_equal(fake_fs_service_type.start(&ctx, &fs), 0);
                t->fs = fs;
                t->fs->async = async;
        }
        for (int k = 0; k < 2; k++)
                assert_int_equal(bus_client_add(t->bus, &client_ops, &t->clients[k], &t->clients[k].id), 0);
        return t;
}

static void t_populate(T *t)
{
        fake_set(t->fs, ROOT "/a.txt", "hello " EMOJI " world", false);
        fake_set(t->fs, ROOT "/b.txt", "bee", false);
        fake_set(t->fs, ROOT "/sub/c.txt", "sea", false);
        fake_set(t->fs, ROOT "/image.png", "iVBORw0KGgo=", true);
}

static void t_run_pending(T *t)
{
        /* Let deferred answers and what they cause happen; the journal's fsync timer may stay armed. */
        for (int i = 0; i < 20; i++)
                uv_run(&t->loop, UV_RUN_NOWAIT);
}

static void t_start_ws(T *t)
{
        ServiceContext ctx = {&t->loop, t->bus, &t->config};

        assert_int_equal(workspace_service_type.start(&ctx, &t->ws), 0);
        t_run_pending(t);
}

static void t_stop_ws(T *t)
{
        if (!t->ws)
                return;
        workspace_service_type.stop(t->ws);
        t->ws = NULL;
}

static void t_free(T *t, bool remove_dir)
{
        t_stop_ws(t);
        /* Answers to operations the workspace had running still arrive, and find it stopped. */
        if (t->fs)
                fake_fs_service_type.stop(t->fs);
        t_clear_notes(t);
        for (int k = 0; k < 2; k++)
                bus_client_remove(t->bus, t->clients[k].id);
        assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&t->loop), 0);
        bus_free(t->bus);
        if (remove_dir)
                assert_int_equal(nftw(t->base, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
        free(t);
}

typedef struct Answer {
        cJSON *response;
        bool done;
} Answer;

static void on_done(cJSON *response, void *userdata)
{
        Answer *a = userdata;

        a->response = response;
        a->done = true;
}

/* Dispatch a request from client k without waiting; the answer lands in *a. */
static void t_send(T *t, int k, const char *method, const char *params_json, Answer *a)
{
        cJSON *params = params_json ? cJSON_Parse(params_json) : NULL;
        cJSON *id = cJSON_CreateNumber(1);

        assert_true(params || !params_json);
        *a = (Answer){};
        bus_dispatch(t->bus, t->clients[k].id, method, params /* taken */, id, on_done, a);
        cJSON_Delete(id);
}

static void t_wait(T *t, Answer *a)
{
        for (int i = 0; !a->done; i++) {
                assert_true(i < 1000);
                uv_run(&t->loop, UV_RUN_NOWAIT);
        }
}

/* The whole response to a request. */
static cJSON *t_call(T *t, int k, const char *method, const char *params_json)
{
        Answer a;

        t_send(t, k, method, params_json, &a);
        t_wait(t, &a);
        assert_non_null(a.response);
        return a.response;
}

/* The result (a copy), asserting there was no error. */
static cJSON *t_ok(T *t, int k, const char *method, const char *params_json)
{
        cJSON *resp = t_call(t, k, method, params_json);
        cJSON *result = cJSON_DetachItemFromObjectCaseSensitive(resp, "result");

        if (!result) {
                char *s = cJSON_PrintUnformatted(resp);
                fail_msg("%s %s failed: %s", method, params_json, s);
        }
        cJSON_Delete(resp);
        return result;
}

/* The error code, and the error object in *ret_error if wanted. */
static int t_err(T *t, int k, const char *method, const char *params_json, cJSON **ret_error)
{
        cJSON *resp = t_call(t, k, method, params_json);
        cJSON *error = cJSON_DetachItemFromObjectCaseSensitive(resp, "error");
        int code;

        if (!error) {
                char *s = cJSON_PrintUnformatted(resp);
                fail_msg("%s %s succeeded: %s", method, params_json, s);
        }
        cJSON_Delete(resp);
        code = cJSON_GetObjectItemCaseSensitive(error, "code")->valueint;
        if (ret_error)
                *ret_error = error;
        else
                cJSON_Delete(error);
        return code;
}

static const cJSON *get(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_non_null(v);
        return v;
}

static const char *get_str(const cJSON *o, const char *key)
{
        const cJSON *v = get(o, key);

        assert_true(cJSON_IsString(v));
        return v->valuestring;
}

static double get_num(const cJSON *o, const char *key)
{
        const cJSON *v = get(o, key);

        assert_true(cJSON_IsNumber(v));
        return v->valuedouble;
}

static bool get_bool(const cJSON *o, const char *key)
{
        const cJSON *v = get(o, key);

        assert_true(cJSON_IsBool(v));
        return cJSON_IsTrue(v);
}

/* The params of client k's notifications of this method, oldest first. */
static size_t t_notes(T *t, int k, const char *method, const cJSON **ret, size_t max)
{
        TestClient *c = &t->clients[k];
        size_t n = 0;

        for (size_t i = 0; i < c->n_notes; i++) {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(c->notes[i], "method");
                if (cJSON_IsString(m) && strcmp(m->valuestring, method) == 0) {
                        if (n < max)
                                ret[n] = cJSON_GetObjectItemCaseSensitive(c->notes[i], "params");
                        n++;
                }
        }
        return n;
}

/* The last state:updated client k got. */
static const cJSON *t_last_state(T *t, int k)
{
        const cJSON *all[4096];
        size_t n = t_notes(t, k, EVENT_STATE_UPDATED, all, ELEMENTSOF(all));

        assert_true(n > 0 && n <= ELEMENTSOF(all));
        return all[n - 1];
}

/* The entry for path in a state's openFiles, or NULL. */
static const cJSON *state_file(const cJSON *state, const char *path)
{
        const cJSON *f;

        cJSON_ArrayForEach(f, get(state, "openFiles")) if (strcmp(get_str(f, "path"), path) == 0) return f;
        return NULL;
}

static size_t count_files(const char *dir, const char *suffix)
{
        char cmd[512];
        FILE *p;
        size_t n = 0;
        char line[256];

        (void)snprintf(cmd, sizeof(cmd), "ls %s 2>/dev/null | grep -c '%s$'", dir, suffix);
        p = popen(cmd, "r");
        assert_non_null(p);
        if (fgets(line, sizeof(line), p))
                n = strtoul(line, NULL, 10);
        pclose(p);
        return n;
}

/* ---- tests ---- */

static int setup_sync(void **state)
{
        T *t = t_new(NULL, false, true, 16u * 1024u * 1024u);

        t_populate(t);
        t_start_ws(t);
        *state = t;
        return 0;
}

static int setup_async(void **state)
{
        T *t = t_new(NULL, true, true, 16u * 1024u * 1024u);

        t_populate(t);
        t_start_ws(t);
        *state = t;
        return 0;
}

static int teardown(void **state)
{
        t_free(*state, true);
        return 0;
}

static void test_open_edit_notify(void **state)
{
        T *t = *state;
        const cJSON *notes[8], *s;
        cJSON *r;

        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "path"), ROOT "/a.txt");
        assert_string_equal(get_str(r, "content"), "hello " EMOJI " world");
        assert_string_equal(get_str(r, "encoding"), "utf-8");
        assert_int_equal(get_num(r, "version"), 1);
        assert_false(get_bool(r, "dirty"));
        assert_string_equal(get_str(r, "tag"), "tag-1");
        cJSON_Delete(r);
        s = t_last_state(t, 1);
        assert_non_null(state_file(s, ROOT "/a.txt"));
        assert_true(cJSON_IsNull(get(s, "root")));
        assert_int_equal(cJSON_GetArraySize(get(s, "terminals")), 0);
        t_clear_notes(t);

        /* Replace the emoji (UTF-16 units 6 and 7) with another astral character. */
        r = t_ok(t, 0, "file:edit",
                 "{\"path\":\"" ROOT
                 "/a.txt\",\"version\":1,\"changes\":[{\"from\":6,\"to\":8,\"insert\":\"" PARTY "\"}]}");
        assert_int_equal(get_num(r, "version"), 2);
        cJSON_Delete(r);
        /* The other client follows the edit; the one that made it is not echoed. */
        assert_int_equal(t_notes(t, 0, EVENT_FILE_EDITED, notes, 8), 0);
        assert_int_equal(t_notes(t, 1, EVENT_FILE_EDITED, notes, 8), 1);
        assert_string_equal(get_str(notes[0], "path"), ROOT "/a.txt");
        assert_int_equal(get_num(notes[0], "version"), 2);
        assert_int_equal(get_num(cJSON_GetArrayItem(get(notes[0], "changes"), 0), "from"), 6);
        assert_string_equal(get_str(cJSON_GetArrayItem(get(notes[0], "changes"), 0), "insert"), PARTY);
        /* Both learn the buffer is dirty. */
        for (int k = 0; k < 2; k++) {
                const cJSON *f = state_file(t_last_state(t, k), ROOT "/a.txt");
                assert_non_null(f);
                assert_true(get_bool(f, "dirty"));
                assert_int_equal(get_num(f, "version"), 2);
                assert_false(get_bool(f, "diskChanged"));
        }

        /* Combining marks are code units like any other: "e" + U+0301, then remove just the accent. */
        r = t_ok(t, 1, "file:edit",
                 "{\"path\":\"" ROOT
                 "/a.txt\",\"version\":2,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"e" ACUTE
                 "\"},{\"from\":1,\"to\":2,\"insert\":\"\"},{\"from\":1,\"to\":1,\"insert\":\"" ACUTE ACUTE
                 "\"}]}");
        assert_int_equal(get_num(r, "version"), 3);
        cJSON_Delete(r);

        /* The second client opening the file gets the live buffer with the unsaved edits. */
        r = t_ok(t, 1, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "e" ACUTE ACUTE "hello " PARTY " world");
        assert_int_equal(get_num(r, "version"), 3);
        assert_true(get_bool(r, "dirty"));
        cJSON_Delete(r);
        /* The disk is untouched. */
        assert_string_equal(fake_find(t->fs, ROOT "/a.txt")->content, "hello " EMOJI " world");
}

static void test_edit_errors(void **state)
{
        T *t = *state;
        cJSON *r, *e;
        const char *bad[] = {
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"X\"},"
            "{\"from\":99,\"to\":99,\"insert\":\"Y\"}]}",
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"X\"},"
            "{\"from\":8,\"to\":8,\"insert\":\"Y\"}]}", /* inside the emoji once X is there */
            "{\"path\":\"" ROOT
            "/a.txt\",\"version\":1,\"changes\":[{\"from\":3,\"to\":2,\"insert\":\"\"}]}",
            "{\"path\":\"" ROOT
            "/a.txt\",\"version\":1,\"changes\":[{\"from\":\"0\",\"to\":0,\"insert\":\"\"}]}",
            "{\"path\":\"" ROOT
            "/a.txt\",\"version\":1,\"changes\":[{\"from\":-1,\"to\":0,\"insert\":\"\"}]}",
            "{\"path\":\"" ROOT
            "/a.txt\",\"version\":1,\"changes\":[{\"from\":0.5,\"to\":1,\"insert\":\"\"}]}",
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":5}]}",
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0}]}",
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":[1]}",
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":{}}",
            "{\"path\":\"" ROOT "/a.txt\",\"version\":1,\"changes\":[]}",
            "{\"path\":\"" ROOT "/a.txt\",\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"\"}]}",
            "{\"path\":7,\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"\"}]}",
            "[]",
        };

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}"));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(t_err(t, 0, "file:edit", bad[i], NULL), RPC_INVALID_PARAMS);
        /* Nothing of any of them was applied. */
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "hello " EMOJI " world");
        assert_int_equal(get_num(r, "version"), 1);
        assert_false(get_bool(r, "dirty"));
        cJSON_Delete(r);

        /* A stale version is refused, never merged. */
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"1\"}]}"));
        assert_int_equal(
            t_err(t, 1, "file:edit",
                  "{\"path\":\"" ROOT
                  "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"2\"}]}",
                  &e),
            RPC_CONFLICT);
        assert_string_equal(get_str(get(e, "data"), "reason"), "stale version");
        assert_int_equal(get_num(get(e, "data"), "version"), 2);
        cJSON_Delete(e);
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "1hello " EMOJI " world");
        cJSON_Delete(r);

        /* Not open; binary. */
        assert_int_equal(t_err(t, 0, "file:edit",
                               "{\"path\":\"" ROOT
                               "/b.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"\"}]}",
                               NULL),
                         RPC_NOT_FOUND);
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/image.png\"}");
        assert_string_equal(get_str(r, "encoding"), "base64");
        assert_string_equal(get_str(r, "content"), "iVBORw0KGgo=");
        cJSON_Delete(r);
        assert_int_equal(
            t_err(t, 0, "file:edit",
                  "{\"path\":\"" ROOT
                  "/image.png\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"x\"}]}",
                  NULL),
            RPC_WRONG_TYPE);
        /* Other methods check their params too. */
        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"\"}", NULL), RPC_INVALID_PARAMS);
        assert_int_equal(t_err(t, 0, "file:open", "{}", NULL), RPC_INVALID_PARAMS);
        assert_int_equal(t_err(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\",\"force\":1}", NULL),
                         RPC_INVALID_PARAMS);
        assert_int_equal(
            t_err(t, 0, "file:close", "{\"path\":\"" ROOT "/a.txt\",\"discard\":\"yes\"}", NULL),
            RPC_INVALID_PARAMS);
        assert_int_equal(t_err(t, 0, "project:load", "{\"root\":null}", NULL), RPC_INVALID_PARAMS);
        assert_int_equal(t_err(t, 0, "workspace:state", "[1]", NULL), RPC_INVALID_PARAMS);
        /* Errors of the fs service come back unchanged. */
        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"" ROOT "/nope\"}", &e), RPC_NOT_FOUND);
        assert_string_equal(get_str(e, "message"), "No such file or directory");
        assert_string_equal(get_str(get(e, "data"), "errno"), "ENOENT");
        assert_string_equal(get_str(get(e, "data"), "path"), ROOT "/nope");
        cJSON_Delete(e);
}

static void test_save_and_conflict(void **state)
{
        T *t = *state;
        cJSON *r, *e;
        const cJSON *f;

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}"));
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/b.txt\",\"version\":1,\"changes\":[{\"from\":3,\"to\":3,\"insert\":\"s\"}]}"));
        assert_int_equal(count_files(t->state_dir, ".snap"), 1);
        r = t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/b.txt\"}");
        assert_int_equal(get_num(r, "version"), 2);
        assert_string_equal(get_str(r, "tag"), fake_find(t->fs, ROOT "/b.txt")->tag);
        cJSON_Delete(r);
        assert_string_equal(fake_find(t->fs, ROOT "/b.txt")->content, "bees");
        f = state_file(t_last_state(t, 1), ROOT "/b.txt");
        assert_false(get_bool(f, "dirty"));
        /* Saved: nothing left in the journal. */
        assert_int_equal(count_files(t->state_dir, ".snap"), 0);
        assert_int_equal(count_files(t->state_dir, ".log"), 0);

        /* Edited here, changed outside: the user's text stays, flagged. */
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/b.txt\",\"version\":2,\"changes\":[{\"from\":0,\"to\":1,\"insert\":\"B\"}]}"));
        fake_set(t->fs, ROOT "/b.txt", "wasps", false);
        fake_changed(t->fs, ROOT "/b.txt", "modified", NULL);
        t_run_pending(t);
        f = state_file(t_last_state(t, 1), ROOT "/b.txt");
        assert_true(get_bool(f, "dirty"));
        assert_true(get_bool(f, "diskChanged"));
        assert_int_equal(get_num(f, "version"), 3);

        /* A save would overwrite the outside change: refused with the fs service's own error. */
        assert_int_equal(t_err(t, 0, "file:save", "{\"path\":\"" ROOT "/b.txt\"}", &e), RPC_CONFLICT);
        assert_string_equal(get_str(e, "message"), "The file has changed on disk");
        assert_string_equal(get_str(get(e, "data"), "path"), ROOT "/b.txt");
        assert_string_equal(get_str(get(e, "data"), "tag"), fake_find(t->fs, ROOT "/b.txt")->tag);
        cJSON_Delete(e);
        assert_string_equal(fake_find(t->fs, ROOT "/b.txt")->content, "wasps");
        /* Forced, it goes through. */
        r = t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/b.txt\",\"force\":true}");
        assert_int_equal(get_num(r, "version"), 3);
        cJSON_Delete(r);
        assert_string_equal(fake_find(t->fs, ROOT "/b.txt")->content, "Bees");
        f = state_file(t_last_state(t, 1), ROOT "/b.txt");
        assert_false(get_bool(f, "dirty"));
        assert_false(get_bool(f, "diskChanged"));
        /* And the next plain save agrees with the disk again. */
        cJSON_Delete(t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/b.txt\"}"));
        assert_int_equal(t_err(t, 0, "file:save", "{\"path\":\"" ROOT "/zzz\"}", NULL), RPC_NOT_FOUND);
}

static void test_close(void **state)
{
        T *t = *state;
        cJSON *r, *e;

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}"));
        cJSON_Delete(
            t_ok(t, 0, "file:edit",
                 "{\"path\":\"" ROOT
                 "/b.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":3,\"insert\":\"gone\"}]}"));
        assert_int_equal(t_err(t, 1, "file:close", "{\"path\":\"" ROOT "/b.txt\"}", &e),
                         RPC_UNSAVED_CHANGES);
        assert_string_equal(get_str(get(e, "data"), "path"), ROOT "/b.txt");
        cJSON_Delete(e);
        assert_non_null(state_file(t_last_state(t, 0), ROOT "/b.txt"));
        r = t_ok(t, 1, "file:close", "{\"path\":\"" ROOT "/b.txt\",\"discard\":true}");
        assert_true(cJSON_IsObject(r));
        cJSON_Delete(r);
        /* Closed for everyone, journal dropped. */
        for (int k = 0; k < 2; k++)
                assert_null(state_file(t_last_state(t, k), ROOT "/b.txt"));
        assert_int_equal(count_files(t->state_dir, ".snap"), 0);
        assert_int_equal(t_err(t, 0, "file:close", "{\"path\":\"" ROOT "/b.txt\"}", NULL), RPC_NOT_FOUND);
        /* Reopened: the disk's text, a fresh buffer. */
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}");
        assert_string_equal(get_str(r, "content"), "bee");
        assert_int_equal(get_num(r, "version"), 1);
        cJSON_Delete(r);
        /* Clean buffers close without discard. */
        cJSON_Delete(t_ok(t, 0, "file:close", "{\"path\":\"" ROOT "/b.txt\"}"));
        assert_int_equal(cJSON_GetArraySize(get(t_last_state(t, 0), "openFiles")), 0);
}

static void test_revert(void **state)
{
        T *t = *state;
        const cJSON *notes[8], *c;
        cJSON *r;

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}"));
        cJSON_Delete(t_ok(
            t, 0, "file:edit",
            "{\"path\":\"" ROOT
            "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"" EMOJI EMOJI "\"}]}"));
        t_clear_notes(t);
        r = t_ok(t, 1, "file:revert", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "hello " EMOJI " world");
        assert_int_equal(get_num(r, "version"), 3);
        assert_false(get_bool(r, "dirty"));
        assert_string_equal(get_str(r, "encoding"), "utf-8");
        cJSON_Delete(r);
        /* Every client, the reverting one too, gets one whole-document change. */
        for (int k = 0; k < 2; k++) {
                assert_int_equal(t_notes(t, k, EVENT_FILE_EDITED, notes, 8), 1);
                assert_int_equal(get_num(notes[0], "version"), 3);
                assert_int_equal(cJSON_GetArraySize(get(notes[0], "changes")), 1);
                c = cJSON_GetArrayItem(get(notes[0], "changes"), 0);
                assert_int_equal(get_num(c, "from"), 0);
                assert_int_equal(get_num(c, "to"), 4 + 14); /* two emoji + the old text, in UTF-16 units */
                assert_string_equal(get_str(c, "insert"), "hello " EMOJI " world");
                assert_false(get_bool(state_file(t_last_state(t, k), ROOT "/a.txt"), "dirty"));
        }
        assert_int_equal(count_files(t->state_dir, ".snap"), 0);
        assert_int_equal(t_err(t, 0, "file:revert", "{\"path\":\"" ROOT "/b.txt\"}", NULL), RPC_NOT_FOUND);
}

static void test_outside_changes(void **state)
{
        T *t = *state;
        const cJSON *notes[8], *f;
        cJSON *r;

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}"));
        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}"));
        t_clear_notes(t);

        /* A clean buffer follows the disk. */
        fake_set(t->fs, ROOT "/a.txt", "new text", false);
        fake_changed(t->fs, ROOT "/a.txt", "modified", NULL);
        t_run_pending(t);
        for (int k = 0; k < 2; k++) {
                assert_int_equal(t_notes(t, k, EVENT_FILE_EDITED, notes, 8), 1);
                assert_int_equal(get_num(notes[0], "version"), 2);
                assert_string_equal(get_str(cJSON_GetArrayItem(get(notes[0], "changes"), 0), "insert"),
                                    "new text");
                f = state_file(t_last_state(t, k), ROOT "/a.txt");
                assert_int_equal(get_num(f, "version"), 2);
                assert_false(get_bool(f, "dirty"));
                assert_false(get_bool(f, "diskChanged"));
        }
        /* Its tag followed too: a plain save is no conflict. */
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":2,\"changes\":[{\"from\":0,\"to\":3,\"insert\":\"old\"}]}"));
        cJSON_Delete(t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}"));
        assert_string_equal(fake_find(t->fs, ROOT "/a.txt")->content, "old text");

        /* A change while the reload after an earlier one is under way: followed too. */
        t->fs->race_path = ROOT "/a.txt";
        t->fs->race_content = "raced";
        fake_set(t->fs, ROOT "/a.txt", "first", false);
        fake_changed(t->fs, ROOT "/a.txt", "modified", NULL);
        t_run_pending(t);
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "raced");
        assert_int_equal(get_num(r, "version"), 5);
        cJSON_Delete(r);
        fake_set(t->fs, ROOT "/a.txt", "old text", false);
        fake_changed(t->fs, ROOT "/a.txt", "modified", NULL);
        t_run_pending(t);

        /* A touch that changes nothing is no new version. */
        t_clear_notes(t);
        fake_set(t->fs, ROOT "/a.txt", "old text", false);
        fake_changed(t->fs, ROOT "/a.txt", "modified", NULL);
        t_run_pending(t);
        assert_int_equal(t_notes(t, 0, EVENT_FILE_EDITED, notes, 8), 0);
        cJSON_Delete(t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}"));

        /* Deleted: flagged, text kept. Created again: followed. */
        fake_delete(t->fs, ROOT "/b.txt");
        fake_changed(t->fs, ROOT "/b.txt", "deleted", NULL);
        t_run_pending(t);
        f = state_file(t_last_state(t, 1), ROOT "/b.txt");
        assert_true(get_bool(f, "diskChanged"));
        r = t_ok(t, 1, "file:open", "{\"path\":\"" ROOT "/b.txt\"}");
        assert_string_equal(get_str(r, "content"), "bee");
        cJSON_Delete(r);
        fake_set(t->fs, ROOT "/b.txt", "bumblebee", false);
        fake_changed(t->fs, ROOT "/b.txt", "created", NULL);
        t_run_pending(t);
        f = state_file(t_last_state(t, 1), ROOT "/b.txt");
        assert_false(get_bool(f, "diskChanged"));
        assert_int_equal(get_num(f, "version"), 2);

        /* Moved away: the old path counts as deleted. */
        fake_set(t->fs, ROOT "/sub/moved.txt", "bumblebee", false);
        fake_delete(t->fs, ROOT "/b.txt");
        fake_changed(t->fs, ROOT "/sub/moved.txt", "moved", ROOT "/b.txt");
        t_run_pending(t);
        assert_true(get_bool(state_file(t_last_state(t, 1), ROOT "/b.txt"), "diskChanged"));

        /* A dirty buffer whose file is deleted keeps its text. */
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":6,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\">\"}]}"));
        fake_delete(t->fs, ROOT "/a.txt");
        fake_changed(t->fs, ROOT "/a.txt", "deleted", NULL);
        t_run_pending(t);
        f = state_file(t_last_state(t, 1), ROOT "/a.txt");
        assert_true(get_bool(f, "dirty"));
        assert_true(get_bool(f, "diskChanged"));
        /* Unrelated paths and malformed events change nothing. */
        fake_changed(t->fs, ROOT "/elsewhere", "modified", NULL);
        bus_publish(t->bus, EVENT_FILE_CHANGED_ON_DISK, cJSON_CreateNumber(3), BUS_INTERNAL, 0);
        t_run_pending(t);
}

static void test_project_and_paths(void **state)
{
        T *t = *state;
        cJSON *r, *e;
        unsigned reads;

        assert_int_equal(t_err(t, 0, "project:load", "{\"root\":\"" ROOT "/a.txt\"}", &e), RPC_WRONG_TYPE);
        cJSON_Delete(e);
        assert_int_equal(t_err(t, 0, "project:load", "{\"root\":\"/nope\"}", &e), RPC_NOT_FOUND);
        assert_string_equal(get_str(get(e, "data"), "path"), "/nope");
        cJSON_Delete(e);
        /* Relative paths mean nothing before a project is loaded (the fake resolves them against ""). */
        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"a.txt\"}", NULL), RPC_NOT_FOUND);

        t_clear_notes(t);
        r = t_ok(t, 0, "project:load", "{\"root\":\"" ROOT "/sub/..\"}");
        assert_string_equal(get_str(r, "root"), ROOT);
        cJSON_Delete(r);
        assert_string_equal(t->fs->root, ROOT);
        assert_string_equal(get_str(t_last_state(t, 1), "root"), ROOT);

        r = t_ok(t, 0, "file:open", "{\"path\":\"sub/../a.txt\"}");
        assert_string_equal(get_str(r, "path"), ROOT "/a.txt");
        cJSON_Delete(r);
        /* Other spellings find the open buffer without asking the disk again. */
        reads = t->fs->n_reads;
        r = t_ok(t, 1, "file:open", "{\"path\":\"" ROOT "/./sub//../a.txt\"}");
        assert_string_equal(get_str(r, "path"), ROOT "/a.txt");
        cJSON_Delete(r);
        r = t_ok(t, 1, "file:open", "{\"path\":\"./a.txt\"}");
        cJSON_Delete(r);
        assert_int_equal(t->fs->n_reads, reads);
        cJSON_Delete(
            t_ok(t, 1, "file:edit",
                 "{\"path\":\"a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"!\"}]}"));
        r = t_ok(t, 0, "workspace:state", "{}");
        assert_int_equal(cJSON_GetArraySize(get(r, "openFiles")), 1);
        assert_string_equal(get_str(r, "root"), ROOT);
        cJSON_Delete(r);
        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"" ROOT "\"}", NULL), RPC_WRONG_TYPE);
}

static void test_terminals(void **state)
{
        T *t = *state;
        const cJSON *notes[8];
        cJSON *ev, *r;

        t_clear_notes(t);
        ev = cJSON_Parse(
            "{\"terminals\":[{\"terminalId\":1,\"cols\":80,\"rows\":24,\"pid\":42,\"alive\":true}]}");
        bus_publish(t->bus, EVENT_TERMINALS_CHANGED, cJSON_Duplicate(ev, true), BUS_INTERNAL, 0);
        assert_int_equal(t_notes(t, 0, EVENT_STATE_UPDATED, notes, 8), 1);
        assert_int_equal(get_num(cJSON_GetArrayItem(get(notes[0], "terminals"), 0), "terminalId"), 1);
        /* The same list again changes nothing. */
        bus_publish(t->bus, EVENT_TERMINALS_CHANGED, ev, BUS_INTERNAL, 0);
        assert_int_equal(t_notes(t, 0, EVENT_STATE_UPDATED, notes, 8), 1);
        r = t_ok(t, 1, "workspace:state", NULL);
        assert_int_equal(cJSON_GetArraySize(get(r, "terminals")), 1);
        cJSON_Delete(r);
}

static void test_concurrency(void **state)
{
        T *t = *state;
        Answer a[4];
        const cJSON *f;
        cJSON *r;

        /* (The fs service answers later here, so requests overlap.) Two clients open the same file at
         * once: one buffer. */
        t_send(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}", &a[0]);
        t_send(t, 1, "file:open", "{\"path\":\"" ROOT "/a.txt\"}", &a[1]);
        t_wait(t, &a[0]);
        t_wait(t, &a[1]);
        for (int i = 0; i < 2; i++) {
                assert_non_null(cJSON_GetObjectItem(a[i].response, "result"));
                cJSON_Delete(a[i].response);
        }
        r = t_ok(t, 0, "workspace:state", "{}");
        assert_int_equal(cJSON_GetArraySize(get(r, "openFiles")), 1);
        cJSON_Delete(r);

        /* Two saves back to back: the second waits for the first, and neither conflicts. Edits made
         * while a save runs keep the buffer dirty, on top of what was written. */
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"1\"}]}"));
        t_send(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}", &a[0]);
        t_send(t, 1, "file:save", "{\"path\":\"" ROOT "/a.txt\"}", &a[1]);
        r = t_ok(t, 0, "file:edit",
                 "{\"path\":\"" ROOT
                 "/a.txt\",\"version\":2,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"2\"}]}");
        cJSON_Delete(r);
        t_wait(t, &a[0]);
        t_wait(t, &a[1]);
        for (int i = 0; i < 2; i++) {
                r = cJSON_GetObjectItem(a[i].response, "result");
                assert_non_null(r);
                cJSON_Delete(a[i].response);
        }
        /* The first wrote version 2, the second version 3. */
        assert_string_equal(fake_find(t->fs, ROOT "/a.txt")->content, "21hello " EMOJI " world");
        f = state_file(t_last_state(t, 1), ROOT "/a.txt");
        assert_false(get_bool(f, "dirty"));

        /* Edited while the save ran: still dirty, based on the written text, so saving again works. */
        t_send(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}", &a[0]);
        cJSON_Delete(t_ok(t, 1, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":3,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"3\"}]}"));
        t_wait(t, &a[0]);
        assert_int_equal(get_num(get(a[0].response, "result"), "version"), 3);
        cJSON_Delete(a[0].response);
        f = state_file(t_last_state(t, 1), ROOT "/a.txt");
        assert_true(get_bool(f, "dirty"));
        assert_int_equal(count_files(t->state_dir, ".snap"), 1);
        cJSON_Delete(t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}"));
        assert_string_equal(fake_find(t->fs, ROOT "/a.txt")->content, "321hello " EMOJI " world");
        assert_int_equal(count_files(t->state_dir, ".snap"), 0);
}

static void test_stop_with_requests_running(void **state)
{
        T *t = *state;
        Answer a[3];

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}"));
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"1\"}]}"));
        t_send(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}", &a[0]);
        t_send(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}", &a[1]);
        t_send(t, 1, "file:save", "{\"path\":\"" ROOT "/a.txt\"}", &a[2]);
        t_stop_ws(t);
        /* The queued save is answered on stop, the ones the fs service holds when it answers. */
        t_run_pending(t);
        for (int i = 0; i < 3; i++) {
                assert_true(a[i].done);
                assert_non_null(cJSON_GetObjectItem(a[i].response, "error"));
                cJSON_Delete(a[i].response);
        }
        /* The unsaved edit is still journalled for the next start. */
        assert_int_equal(count_files(t->state_dir, ".snap"), 1);
}

static void test_no_fs_service(void **state)
{
        T *t = t_new(NULL, false, false, 16u * 1024u * 1024u);
        cJSON *e;

        t_start_ws(t);
        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"/x\"}", &e), RPC_INTERNAL_ERROR);
        assert_string_equal(get_str(e, "message"), "The file service is not available");
        cJSON_Delete(e);
        assert_int_equal(t_err(t, 0, "project:load", "{\"root\":\"/x\"}", NULL), RPC_INTERNAL_ERROR);
        t_free(t, true);
}

static void test_limits(void **state)
{
        T *t = t_new(NULL, false, true, 4096);
        char path[64], params[4096], big[5000];
        cJSON *e, *r;
        int opened = 0;

        /* One file may hold what fits in a message; all of them together sixteen messages' worth. */
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        fake_set(t->fs, "/big", big, false);
        /* Under the limit in bytes, over it as JSON: the answer could not be sent. */
        memset(big, '\n', 2100);
        big[2100] = '\0';
        fake_set(t->fs, "/newlines", big, false);
        memset(big, 'x', 2500);
        big[2500] = '\0';
        for (int i = 0; i < 30; i++) {
                (void)snprintf(path, sizeof(path), "/m%02d", i);
                fake_set(t->fs, path, big, false);
        }
        for (int i = 0; i < 260; i++) {
                (void)snprintf(path, sizeof(path), "/s%03d", i);
                fake_set(t->fs, path, "s", false);
        }
        t_start_ws(t);

        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"/big\"}", &e), RPC_TOO_LARGE);
        assert_int_equal(get_num(get(e, "data"), "limit"), 4096);
        cJSON_Delete(e);
        assert_int_equal(t_err(t, 0, "file:open", "{\"path\":\"/newlines\"}", NULL), RPC_TOO_LARGE);

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"/m00\"}"));
        /* An edit that would grow a buffer past its limit is refused, whole. */
        (void)snprintf(
            params, sizeof(params),
            "{\"path\":\"/m00\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"%0800d\"},"
            "{\"from\":0,\"to\":0,\"insert\":\"%0800d\"}]}",
            0, 0);
        assert_int_equal(t_err(t, 0, "file:edit", params, NULL), RPC_TOO_LARGE);
        r = t_ok(t, 0, "file:open", "{\"path\":\"/m00\"}");
        assert_int_equal(strlen(get_str(r, "content")), 2500);
        cJSON_Delete(r);

        /* The total: 26 × 2500 bytes fit in 64 KiB, the 27th does not. */
        for (opened = 1; opened < 30; opened++) {
                (void)snprintf(params, sizeof(params), "{\"path\":\"/m%02d\"}", opened);
                cJSON *resp = t_call(t, 0, "file:open", params);
                bool failed = cJSON_GetObjectItem(resp, "error") != NULL;
                cJSON_Delete(resp);
                if (failed)
                        break;
        }
        assert_int_equal(opened, 26);
        for (int i = 0; i < opened; i++) {
                (void)snprintf(params, sizeof(params), "{\"path\":\"/m%02d\"}", i);
                cJSON_Delete(t_ok(t, 0, "file:close", params));
        }

        /* The count. */
        for (opened = 0; opened < 260; opened++) {
                (void)snprintf(params, sizeof(params), "{\"path\":\"/s%03d\"}", opened);
                cJSON *resp = t_call(t, 0, "file:open", params);
                bool failed = cJSON_GetObjectItem(resp, "error") != NULL;
                if (failed)
                        assert_int_equal(get_num(get(resp, "error"), "code"), RPC_TOO_LARGE);
                cJSON_Delete(resp);
                if (failed)
                        break;
        }
        assert_int_equal(opened, 256);
        t_free(t, true);
}

static void test_journal_failure_refuses_edit(void **state)
{
        T *t = *state;
        struct rlimit old, small;
        void (*prev)(int);
        char params[8192];
        cJSON *r;
        int code;

        cJSON_Delete(t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}"));
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/b.txt\",\"version\":1,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"1\"}]}"));
        /* No room for the next record (a full disk, as far as this process can tell). */
        (void)snprintf(params, sizeof(params),
                       "{\"path\":\"" ROOT
                       "/b.txt\",\"version\":2,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\"%04000d\"}]}",
                       7);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        small = old;
        small.rlim_cur = 200;
        prev = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        code = t_err(t, 0, "file:edit", params, NULL);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, prev);
        /* Refused rather than acknowledged without being durable, and taken back. */
        assert_int_equal(code, RPC_TOO_LARGE);
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/b.txt\"}");
        assert_string_equal(get_str(r, "content"), "1bee");
        assert_int_equal(get_num(r, "version"), 2);
        cJSON_Delete(r);
        cJSON_Delete(t_ok(t, 0, "file:edit", params));
}

/* ---- restarts ---- */

#define CHILD_CHECK(x)                                                                        \
        do {                                                                                  \
                if (!(x)) {                                                                   \
                        fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #x); \
                        _exit(2);                                                             \
                }                                                                             \
        } while (0)

static void child_edit(T *t, const char *path, int version, int from, int to, const char *insert)
{
        char params[512];
        cJSON *resp;

        (void)snprintf(
            params, sizeof(params),
            "{\"path\":\"%s\",\"version\":%d,\"changes\":[{\"from\":%d,\"to\":%d,\"insert\":\"%s\"}]}", path,
            version, from, to, insert);
        resp = t_call(t, 0, "file:edit", params);
        CHILD_CHECK(cJSON_GetObjectItem(resp, "result"));
        cJSON_Delete(resp);
}

/* In a child process: load the project, open a.txt (edited three times) and b.txt (clean), then die
 * without any shutdown, like a worker killed with SIGKILL. */
static void crash_child(const char *base, bool async)
{
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                T *t = t_new(base, async, true, 16u * 1024u * 1024u);
                cJSON *resp;

                t_populate(t);
                t_start_ws(t);
                resp = t_call(t, 0, "project:load", "{\"root\":\"" ROOT "\"}");
                CHILD_CHECK(cJSON_GetObjectItem(resp, "result"));
                cJSON_Delete(resp);
                resp = t_call(t, 0, "file:open", "{\"path\":\"b.txt\"}");
                CHILD_CHECK(cJSON_GetObjectItem(resp, "result"));
                cJSON_Delete(resp);
                resp = t_call(t, 0, "file:open", "{\"path\":\"a.txt\"}");
                CHILD_CHECK(cJSON_GetObjectItem(resp, "result"));
                cJSON_Delete(resp);
                child_edit(t, ROOT "/a.txt", 1, 0, 5, "HELLO");
                child_edit(t, ROOT "/a.txt", 2, 6, 8, PARTY);
                child_edit(t, ROOT "/a.txt", 3, 14, 14, "!");
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void on_late_project_loaded(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        char *root = userdata;

        (void)snprintf(root, 256, "%s", get_str(params, "root"));
}

static void test_crash_restore(void **state)
{
        bool async = *(bool *)*state;
        T *t = t_new(NULL, async, true, 16u * 1024u * 1024u);
        ServiceContext ctx = {&t->loop, t->bus, &t->config};
        char late_root[256] = "";
        const cJSON *f;
        cJSON *r;

        t_populate(t);
        crash_child(t->base, async);
        /* A service that starts after the workspace (the terminal service) hears of the restored root
         * too. */
        assert_int_equal(workspace_service_type.start(&ctx, &t->ws), 0);
        assert_int_equal(bus_subscribe(t->bus, EVENT_PROJECT_LOADED, on_late_project_loaded, late_root), 0);
        t_run_pending(t);
        assert_string_equal(late_root, ROOT);

        r = t_ok(t, 0, "workspace:state", "{}");
        assert_string_equal(get_str(r, "root"), ROOT);
        assert_string_equal(t->fs->root, ROOT);
        assert_int_equal(cJSON_GetArraySize(get(r, "openFiles")), 2);
        f = state_file(r, ROOT "/a.txt");
        assert_true(get_bool(f, "dirty"));
        assert_false(get_bool(f, "diskChanged"));
        assert_int_equal(get_num(f, "version"), 4);
        f = state_file(r, ROOT "/b.txt");
        assert_false(get_bool(f, "dirty"));
        assert_int_equal(get_num(f, "version"), 1);
        cJSON_Delete(r);

        r = t_ok(t, 1, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "HELLO " PARTY " world!");
        assert_int_equal(get_num(r, "version"), 4);
        assert_true(get_bool(r, "dirty"));
        cJSON_Delete(r);
        /* The edits go on from there, and the restored tag lets a plain save through. */
        cJSON_Delete(t_ok(t, 0, "file:edit",
                          "{\"path\":\"" ROOT
                          "/a.txt\",\"version\":4,\"changes\":[{\"from\":0,\"to\":0,\"insert\":\">\"}]}"));
        cJSON_Delete(t_ok(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}"));
        assert_string_equal(fake_find(t->fs, ROOT "/a.txt")->content, ">HELLO " PARTY " world!");
        t_free(t, true);
}

static void test_crash_restore_torn(void **state)
{
        T *t = t_new(NULL, false, true, 16u * 1024u * 1024u);
        char cmd[512];
        cJSON *r;

        t_populate(t);
        crash_child(t->base, false);
        /* The last record was only partly written when the worker died. */
        (void)snprintf(cmd, sizeof(cmd), "f=$(ls %s/*.log) && truncate -s -2 $f", t->state_dir);
        assert_int_equal(system(cmd), 0);
        t_start_ws(t);
        r = t_ok(t, 0, "file:open", "{\"path\":\"" ROOT "/a.txt\"}");
        assert_string_equal(get_str(r, "content"), "HELLO " PARTY " world");
        assert_int_equal(get_num(r, "version"), 3);
        assert_true(get_bool(r, "dirty"));
        cJSON_Delete(r);
        t_free(t, true);
}

static void test_restore_with_disk_changes(void **state)
{
        T *t = t_new(NULL, false, true, 16u * 1024u * 1024u);
        const cJSON *f;
        cJSON *r;

        t_populate(t);
        crash_child(t->base, false);
        /* While the worker was down, a.txt changed on disk: restored dirty, and flagged. */
        fake_set(t->fs, ROOT "/a.txt", "changed meanwhile", false);
        t_start_ws(t);
        r = t_ok(t, 0, "workspace:state", "{}");
        f = state_file(r, ROOT "/a.txt");
        assert_true(get_bool(f, "dirty"));
        assert_true(get_bool(f, "diskChanged"));
        cJSON_Delete(r);
        assert_int_equal(t_err(t, 0, "file:save", "{\"path\":\"" ROOT "/a.txt\"}", NULL), RPC_CONFLICT);
        t_free(t, true);

        /* Or the unsaved text got onto the disk after all: then the buffer is simply clean. */
        t = t_new(NULL, false, true, 16u * 1024u * 1024u);
        t_populate(t);
        crash_child(t->base, false);
        fake_set(t->fs, ROOT "/a.txt", "HELLO " PARTY " world!", false);
        t_start_ws(t);
        r = t_ok(t, 0, "workspace:state", "{}");
        f = state_file(r, ROOT "/a.txt");
        assert_false(get_bool(f, "dirty"));
        assert_false(get_bool(f, "diskChanged"));
        cJSON_Delete(r);
        assert_int_equal(count_files(t->state_dir, ".snap"), 0);
        t_free(t, true);
}

static void test_restore_missing_file(void **state)
{
        T *t = t_new(NULL, false, true, 16u * 1024u * 1024u);
        cJSON *r;

        t_populate(t);
        crash_child(t->base, false);
        fake_delete(t->fs, ROOT "/b.txt");
        fake_delete(t->fs, ROOT "/a.txt");
        t_start_ws(t);
        r = t_ok(t, 0, "workspace:state", "{}");
        /* The clean file is not reopened; the dirty one is kept, flagged. */
        assert_null(state_file(r, ROOT "/b.txt"));
        assert_true(get_bool(state_file(r, ROOT "/a.txt"), "diskChanged"));
        cJSON_Delete(r);
        t_free(t, true);
}

static const bool no = false, yes = true;

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_open_edit_notify, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_open_edit_notify, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_edit_errors, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_edit_errors, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_save_and_conflict, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_save_and_conflict, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_close, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_revert, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_revert, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_outside_changes, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_outside_changes, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_project_and_paths, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_project_and_paths, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_terminals, setup_sync, teardown),
            cmocka_unit_test_setup_teardown(test_concurrency, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_stop_with_requests_running, setup_async, teardown),
            cmocka_unit_test_setup_teardown(test_journal_failure_refuses_edit, setup_sync, teardown),
            cmocka_unit_test(test_no_fs_service),
            cmocka_unit_test(test_limits),
            cmocka_unit_test_prestate(test_crash_restore, (void *)&no),
            cmocka_unit_test_prestate(test_crash_restore, (void *)&yes),
            cmocka_unit_test(test_crash_restore_torn),
            cmocka_unit_test(test_restore_with_disk_changes),
            cmocka_unit_test(test_restore_missing_file),
        };

        log_set_max_level(LOG_ERR); /* the warnings these tests provoke are expected */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
