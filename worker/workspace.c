/* SPDX-License-Identifier: MIT */
/* The workspace service: the ground truth of what is open and unsaved.
 *
 * One shared buffer per file for all connections. The workspace never touches the user's files: it
 * reads and writes them through the fs service's topics on the bus, and learns of outside changes from
 * file:changed_on_disk. Its only disk I/O is its own journal (journal.c), which makes every
 * acknowledged edit survive a crash of the worker. */
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "charset.h"
#include "document.h"
#include "events.h"
#include "journal.h"
#include "log.h"
#include "path-util.h"
#include "service.h"
#include "utf8.h"

/* Open buffers at most, and their bytes at most (but never below one message's worth). */
#define MAX_BUFFERS     256u
#define MAX_TOTAL_BYTES (256u * 1024u * 1024u)
/* Saves of one buffer waiting behind the one running. */
#define MAX_QUEUED_SAVES 16u
/* What one edit may cost (bytes walked and moved, see doc_edit()): ordered changes cost about twice
 * the document; this only stops requests built to make the worker shuffle memory for minutes. */
#define EDIT_COST_MIN    (64u * 1024u * 1024u)
#define EDIT_COST_FACTOR 8u
/* Room in a file:open answer for everything but the content. */
#define OPEN_REPLY_OVERHEAD 1024u

typedef struct Workspace Workspace;
typedef struct Buffer Buffer;
typedef struct Op Op;

struct Buffer {
        Workspace *ws;
        char *path; /* normalized and absolute, as the fs service returned it */
        Document *doc;
        bool binary;     /* content is base64 (not text): it can be saved, not edited */
        Charset charset; /* text: what the file is saved in */
        uint64_t version;
        char *tag;         /* the disk content this buffer is based on */
        uint64_t base_gen; /* counts replacements of the whole buffer from disk (revert, reload) */
        bool dirty, disk_changed;
        JournalEntry *journal; /* set exactly while dirty */

        /* One save at a time: a second one would carry a tag the first is about to change. */
        bool saving;
        Op *save_queue, *save_queue_tail;
        unsigned n_queued_saves;
        /* One reload after outside changes at a time, and one more if changes came meanwhile. */
        bool reloading, reload_again;

        bool closed;     /* gone from the workspace; operations still running keep it allocated */
        unsigned n_refs; /* the workspace's list holds one */
};

/* workspace:state requests that wait for the restore; more are answered with the state as it is. */
#define WS_STATE_WAITING_MAX 64u

struct Workspace {
        uv_loop_t *loop;
        Bus *bus;
        const WorkerConfig *config;
        Journal *journal;
        size_t max_buffer_bytes, max_total_bytes;

        char *root;
        Buffer **buffers; /* in the order they were opened */
        size_t n_buffers;
        size_t total_bytes;
        cJSON *terminals; /* the last list EVENT_TERMINALS_CHANGED brought */

        /* What the journal held at start. It is restored on the first turn of the loop, once every
         * service has started and subscribed: the terminal service starts after this one and wants
         * to hear of the project root too. */
        uv_timer_t restore_timer;
        JournalState saved;
        JournalDoc *saved_docs;
        size_t n_saved_docs;

        unsigned n_ops;     /* bus calls to the fs service not answered yet */
        unsigned restoring; /* the restore and its operations still running */
        /* workspace:state asked while the restore runs: answered once it is complete, so a page that
         * connects to a worker just (re)started sees the restored workspace, however long the fs
         * service takes to answer (it may be a process the worker starts first). */
        BusCall *state_waiting[WS_STATE_WAITING_MAX];
        size_t n_state_waiting;
        bool state_unsaved; /* the state file is written once the restore is complete */
        bool stopping;
        bool timer_closed;
};

typedef enum OpKind {
        OP_LOAD,          /* project:load: fs:stat of the root */
        OP_LOAD_WATCHED,  /* project:load: fs:stat again, answered once fs has heard project:loaded */
        OP_OPEN,          /* file:open: fs:read_file */
        OP_SAVE,          /* file:save: fs:write_file */
        OP_REVERT,        /* file:revert: fs:read_file */
        OP_RELOAD,        /* outside change to a clean buffer: fs:read_file */
        OP_RESTORE_ROOT,  /* start: fs:stat of the saved root */
        OP_RESTORE_OPEN,  /* start: fs:read_file of a file that was open and clean */
        OP_RESTORE_CHECK, /* start: fs:read_file to compare a journalled buffer with the disk */
        _OP_KIND_MAX,
} OpKind;

/* A request to the fs service in flight, and what to do with its answer. */
struct Op {
        Workspace *ws;
        OpKind kind;
        BusCall *call;    /* the client request to answer; NULL for the workspace's own work */
        Buffer *buffer;   /* holds a reference */
        uint64_t version; /* the buffer's version when the operation began */
        uint64_t base_gen;
        bool force;
        char *path;
        Op *next; /* in the buffer's save queue */
};

/* The fs service's answer to fs:read_file. Strings borrowed from the answer. */
typedef struct FileContent {
        const char *path;
        const char *content;
        size_t content_len;
        bool binary;
        Charset charset;
        const char *tag;
} FileContent;

static void ws_maybe_free(Workspace *ws);
static void start_save(Op *op);
static void start_reload(Buffer *b);

/* ---- helpers ---- */

static bool path_param_ok(const char *p)
{
        size_t n = strlen(p);

        return n > 0 && n < PATH_MAX;
}

static Buffer *ws_find(Workspace *ws, const char *path)
{
        _cleanup_free_ char *norm = NULL;

        for (size_t i = 0; i < ws->n_buffers; i++)
                if (streq(ws->buffers[i]->path, path))
                        return ws->buffers[i];
        /* The spelling under which a buffer may be open: the fs service has the final word on what a
         * path means; this only saves a trip to it. */
        if (path_normalize(ws->root, path, &norm) < 0 || streq(norm, path))
                return NULL;
        for (size_t i = 0; i < ws->n_buffers; i++)
                if (streq(ws->buffers[i]->path, norm))
                        return ws->buffers[i];
        return NULL;
}

/* Bytes the JSON string form of s[0..n) takes, quotes excluded. */
static size_t json_string_cost(const char *str, size_t n)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t cost = n;

        for (size_t i = 0; i < n; i++) {
                uint8_t c = s[i];

                if (_likely_(c >= 0x20 && c != '"' && c != '\\'))
                        continue;
                switch (c) {
                case '"':
                case '\\':
                case '\n':
                case '\r':
                case '\t':
                case '\b':
                case '\f':
                        cost += 1; /* \n */
                        break;
                default:
                        cost += 5; /* \u001f */
                }
        }
        return cost;
}

static cJSON *json_object_path(const char *path)
{
        cJSON *o = cJSON_CreateObject();

        if (o && !cJSON_AddStringToObject(o, "path", path)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

static void call_error_path(BusCall *call, int code, const char *message, const char *path)
{
        bus_call_error(call, code, message, json_object_path(path));
}

/* The open buffer for path, or NULL once the call has been answered with -32001. */
static Buffer *ws_find_or_fail(Workspace *ws, BusCall *call, const char *path)
{
        Buffer *b = ws_find(ws, path);

        if (!b)
                call_error_path(call, RPC_NOT_FOUND, "The file is not open", path);
        return b;
}

static const char *error_message(const cJSON *error)
{
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");

        return cJSON_IsString(m) ? m->valuestring : "unknown error";
}

static bool tag_ok(const cJSON *t)
{
        return cJSON_IsString(t) && strlen(t->valuestring) <= 1024;
}

static int parse_file_content(const cJSON *result, FileContent *ret)
{
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(result, "path");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content");
        const cJSON *encoding = cJSON_GetObjectItemCaseSensitive(result, "encoding");
        const cJSON *tag = cJSON_GetObjectItemCaseSensitive(result, "tag");
        bool binary = cJSON_IsString(encoding) && streq(encoding->valuestring, "base64");
        Charset charset = CHARSET_UTF8;

        if (!cJSON_IsString(path) || path->valuestring[0] != '/' || !path_param_ok(path->valuestring) ||
            !cJSON_IsString(content) || !tag_ok(tag) || !(encoding == NULL || cJSON_IsString(encoding)))
                return -EBADMSG;
        if (encoding && !binary) {
                charset = charset_from_string(encoding->valuestring);
                if (charset < 0)
                        return -EBADMSG;
        }
        *ret = (FileContent){
            .path = path->valuestring,
            .content = content->valuestring,
            .content_len = strlen(content->valuestring),
            .binary = binary,
            .charset = charset,
            .tag = tag->valuestring,
        };
        return 0;
}

static const char *buffer_encoding(const Buffer *b)
{
        return b->binary ? "base64" : charset_to_string(b->charset);
}

static bool same_encoding(const Buffer *b, const FileContent *fc)
{
        return b->binary == fc->binary && b->charset == fc->charset;
}

/* ---- state ---- */

static cJSON *ws_state_json(Workspace *ws)
{
        _cleanup_json_ cJSON *o = cJSON_CreateObject();
        cJSON *files, *terms;

        if (!o ||
            !(ws->root ? cJSON_AddStringToObject(o, "root", ws->root) : cJSON_AddNullToObject(o, "root")) ||
            !(files = cJSON_AddArrayToObject(o, "openFiles")))
                return NULL;
        for (size_t i = 0; i < ws->n_buffers; i++) {
                const Buffer *b = ws->buffers[i];
                cJSON *f = json_object_path(b->path);

                if (!f || !cJSON_AddItemToArray(files, f)) {
                        cJSON_Delete(f);
                        return NULL;
                }
                if (!cJSON_AddNumberToObject(f, "version", (double)b->version) ||
                    !cJSON_AddBoolToObject(f, "dirty", b->dirty) ||
                    !cJSON_AddBoolToObject(f, "diskChanged", b->disk_changed))
                        return NULL;
        }
        terms = ws->terminals ? cJSON_Duplicate(ws->terminals, true) : cJSON_CreateArray();
        if (!terms || !cJSON_AddItemToObject(o, "terminals", terms)) {
                cJSON_Delete(terms);
                return NULL;
        }
        return TAKE_PTR(o);
}

static void ws_publish_state(Workspace *ws)
{
        cJSON *s = ws_state_json(ws);

        if (!s) {
                log_oom();
                return;
        }
        bus_publish(ws->bus, EVENT_STATE_UPDATED, s, BUS_ALL_CLIENTS, 0);
}

/* Write the state file: the root and the open files, for the next start. */
static void ws_persist_state(Workspace *ws)
{
        _cleanup_free_ const char **paths = NULL;
        int r;

        /* While the restore runs, the list is incomplete: writing it now could forget files that a
         * crash right then would never bring back. */
        if (ws->restoring > 0) {
                ws->state_unsaved = true;
                return;
        }
        ws->state_unsaved = false;
        paths = calloc(MAX(ws->n_buffers, (size_t)1), sizeof(char *));
        if (!paths) {
                log_oom();
                return;
        }
        for (size_t i = 0; i < ws->n_buffers; i++)
                paths[i] = ws->buffers[i]->path;
        r = journal_write_state(ws->journal, ws->root, paths, ws->n_buffers);
        if (r < 0)
                log_warning_errno(r, "Failed to write the workspace state file, ignoring: %m");
}

/* ---- buffers ---- */

static Buffer *buffer_ref(Buffer *b)
{
        b->n_refs++;
        return b;
}

static void buffer_unref(Buffer *b)
{
        if (!b)
                return;
        assert(b->n_refs > 0);
        if (--b->n_refs > 0)
                return;
        assert(b->closed && !b->save_queue);
        free(b->path);
        free(b->tag);
        doc_free(b->doc);
        free(b);
}

/* A new clean buffer from disk content, added to the workspace. Takes doc. */
static int buffer_add(Workspace *ws, const char *path, Document *doc, bool binary, Charset charset,
                      const char *tag, uint64_t version, Buffer **ret)
{
        Buffer *b, **list;

        list = reallocarray(ws->buffers, ws->n_buffers + 1, sizeof(Buffer *));
        if (!list) {
                doc_free(doc);
                return -ENOMEM;
        }
        ws->buffers = list;
        b = calloc(1, sizeof(Buffer));
        if (!b || !(b->path = strdup(path)) || !(b->tag = strdup(tag))) {
                if (b)
                        free(b->path);
                free(b);
                doc_free(doc);
                return -ENOMEM;
        }
        b->ws = ws;
        b->doc = doc;
        b->binary = binary;
        b->charset = charset;
        b->version = version;
        b->n_refs = 1;
        ws->buffers[ws->n_buffers++] = b;
        ws->total_bytes += doc_size(doc);
        *ret = b;
        return 0;
}

/* Take a buffer out of the workspace (for everyone). */
static void buffer_close(Buffer *b)
{
        Workspace *ws = b->ws;
        size_t i;

        for (i = 0; i < ws->n_buffers && ws->buffers[i] != b; i++)
                ;
        assert(i < ws->n_buffers);
        memmove(ws->buffers + i, ws->buffers + i + 1, (ws->n_buffers - i - 1) * sizeof(Buffer *));
        ws->n_buffers--;
        ws->total_bytes -= doc_size(b->doc);
        if (b->journal && !ws->stopping)
                journal_remove(b->journal);
        b->journal = NULL;
        b->closed = true;
        buffer_unref(b);
}

/* The most text a buffer may hold now: its own limit, and what the others leave of the total. */
static size_t buffer_room(const Workspace *ws, size_t current)
{
        size_t others = ws->total_bytes - current;

        return MIN(ws->max_buffer_bytes, ws->max_total_bytes > others ? ws->max_total_bytes - others : 0);
}

/* Does new disk content fit in the limits (for a buffer now holding current bytes)? */
static int check_content_size(const Workspace *ws, const FileContent *fc, size_t current)
{
        if (fc->content_len > buffer_room(ws, current))
                return -EFBIG;
        return 0;
}

static void call_error_unencodable(BusCall *call, const Buffer *b, size_t change, const CharsetBadChar *bad)
{
        cJSON *data = json_object_path(b->path);
        char message[192], code_point[16];

        (void)snprintf(code_point, sizeof(code_point), "U+%04" PRIX32, bad->code_point);
        (void)snprintf(message, sizeof(message),
                       "changes[%zu] inserts %s, which %s (the file's encoding) cannot hold", change,
                       code_point, charset_to_string(b->charset));
        if (data && (!cJSON_AddStringToObject(data, "reason", "unencodable") ||
                     !cJSON_AddStringToObject(data, "encoding", charset_to_string(b->charset)) ||
                     !cJSON_AddStringToObject(data, "codePoint", code_point) ||
                     !cJSON_AddNumberToObject(data, "change", (double)change))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_INVALID_PARAMS, message, data);
}

static void call_error_too_large(BusCall *call, const Workspace *ws, const char *path, size_t size)
{
        cJSON *data = json_object_path(path);

        if (data && (!cJSON_AddNumberToObject(data, "size", (double)size) ||
                     !cJSON_AddNumberToObject(data, "limit", (double)ws->max_buffer_bytes) ||
                     !cJSON_AddNumberToObject(data, "totalLimit", (double)ws->max_total_bytes))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_TOO_LARGE, "The file is too large for the open buffers' limits", data);
}

/* Replace the whole text with disk content (revert, reload): version+1, clean, and every client is
 * told with one whole-document change. */
static int buffer_replace(Buffer *b, const FileContent *fc)
{
        Workspace *ws = b->ws;
        _cleanup_json_ cJSON *ev = NULL;
        cJSON *changes, *ch;
        Document *doc;
        char *tag;
        size_t old16 = doc_length16(b->doc);
        int r;

        r = doc_new(fc->content, fc->content_len, &doc);
        if (r < 0)
                return r;
        tag = strdup(fc->tag);
        ev = json_object_path(b->path);
        if (!tag || !ev || !cJSON_AddNumberToObject(ev, "version", (double)(b->version + 1)) ||
            !cJSON_AddStringToObject(ev, "encoding",
                                     fc->binary ? "base64" : charset_to_string(fc->charset)) ||
            !(changes = cJSON_AddArrayToObject(ev, "changes")) || !(ch = cJSON_CreateObject()) ||
            !cJSON_AddItemToArray(changes, ch) || !cJSON_AddNumberToObject(ch, "from", 0) ||
            !cJSON_AddNumberToObject(ch, "to", (double)old16) ||
            !cJSON_AddStringToObject(ch, "insert", fc->content)) {
                free(tag);
                doc_free(doc);
                return -ENOMEM;
        }

        ws->total_bytes = ws->total_bytes - doc_size(b->doc) + doc_size(doc);
        doc_free(b->doc);
        b->doc = doc;
        free(b->tag);
        b->tag = tag;
        b->binary = fc->binary;
        b->charset = fc->charset;
        b->version++;
        b->base_gen++;
        b->dirty = b->disk_changed = false;
        if (b->journal)
                journal_remove(b->journal);
        b->journal = NULL;
        bus_publish(ws->bus, EVENT_FILE_EDITED, TAKE_PTR(ev), BUS_ALL_CLIENTS, 0);
        return 0;
}

/* {path, content, encoding, version, tag, dirty, diskChanged} */
static cJSON *buffer_json(Buffer *b)
{
        cJSON *o = json_object_path(b->path);

        if (!o || !cJSON_AddStringToObject(o, "content", doc_text(b->doc)) ||
            !cJSON_AddStringToObject(o, "encoding", buffer_encoding(b)) ||
            !cJSON_AddNumberToObject(o, "version", (double)b->version) ||
            !cJSON_AddStringToObject(o, "tag", b->tag) || !cJSON_AddBoolToObject(o, "dirty", b->dirty) ||
            !cJSON_AddBoolToObject(o, "diskChanged", b->disk_changed)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

static void reply_buffer(BusCall *call, Buffer *b)
{
        cJSON *o = buffer_json(b);

        if (!o) {
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, o);
}

static void set_disk_changed(Buffer *b)
{
        if (b->disk_changed)
                return;
        b->disk_changed = true;
        ws_publish_state(b->ws);
}

/* ---- operations (calls to the fs service) ---- */

static Op *op_new(Workspace *ws, OpKind kind, BusCall *call, Buffer *b)
{
        Op *op = calloc(1, sizeof(Op));

        if (!op)
                return NULL;
        op->ws = ws;
        op->kind = kind;
        op->call = call;
        if (b) {
                op->buffer = buffer_ref(b);
                op->version = b->version;
                op->base_gen = b->base_gen;
        }
        if (kind >= OP_RESTORE_ROOT)
                ws->restoring++;
        ws->n_ops++;
        return op;
}

static void ws_answer_state_waiting(Workspace *ws)
{
        for (size_t i = 0; i < ws->n_state_waiting; i++) {
                BusCall *call = TAKE_PTR(ws->state_waiting[i]);
                cJSON *state;

                if (ws->stopping)
                        bus_call_error(call, RPC_INTERNAL_ERROR, "The worker is shutting down", NULL);
                else if (!(state = ws_state_json(ws)))
                        (void)bus_call_error_oom(call);
                else
                        bus_call_reply(call, state);
        }
        ws->n_state_waiting = 0;
}

/* Free an operation whose call (if any) has been answered. May free the workspace if it is stopping. */
static void op_free(Op *op)
{
        Workspace *ws = op->ws;
        bool restore = op->kind >= OP_RESTORE_ROOT;

        assert(!op->call);
        buffer_unref(op->buffer);
        free(op->path);
        free(op);
        ws->n_ops--;
        if (ws->stopping) {
                ws_maybe_free(ws);
                return;
        }
        if (restore && --ws->restoring == 0) {
                log_debug("Workspace restored: %zu open file%s.", ws->n_buffers,
                          ws->n_buffers == 1 ? "" : "s");
                if (ws->state_unsaved)
                        ws_persist_state(ws);
                ws_answer_state_waiting(ws);
        }
}

static void op_fail(Op *op, int code, const char *message)
{
        if (op->call)
                bus_call_error(TAKE_PTR(op->call), code, message, NULL);
        op_free(op);
}

static void on_fs_reply(cJSON *result, cJSON *error, void *userdata);

/* Send params (taken) to topic; the answer goes to on_fs_reply() with op, from the loop. Without a
 * file service, or without memory, the operation fails at once. */
static void ws_fs_call(Workspace *ws, const char *topic, cJSON *params, Op *op)
{
        int r = params ? bus_call(ws->bus, topic, params, on_fs_reply, op) : -ENOMEM;

        if (r == -ENOENT)
                log_warning("Nobody serves %s: is the fs service running?", topic);
        if (r < 0) {
                cJSON *err = cJSON_CreateObject();

                if (err && (!cJSON_AddNumberToObject(err, "code", RPC_INTERNAL_ERROR) ||
                            !cJSON_AddStringToObject(err, "message",
                                                     r == -ENOENT ? "The file service is not available"
                                                                  : "Out of memory")))
                        err = (cJSON_Delete(err), NULL);
                on_fs_reply(NULL, err, op);
        }
}

/* Topics stay registered on the bus after stop(); nothing may start then. */
static bool ws_refuse_stopping(Workspace *ws, BusCall *call)
{
        if (!ws->stopping)
                return false;
        bus_call_error(call, RPC_INTERNAL_ERROR, "The worker is shutting down", NULL);
        return true;
}

/* Text in an 8-bit encoding opens as text too, and is saved back in it. */
static cJSON *read_params(const char *path)
{
        cJSON *params = json_object_path(path);

        if (params && !cJSON_AddStringToObject(params, "encoding", "text"))
                params = (cJSON_Delete(params), NULL);
        return params;
}

/* ---- project:load, workspace:state ---- */

static void on_project_load(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        const char *root = NULL;
        const JsonField fields[] = {
            {"root", JSON_FIELD_STRING, true, &root},
        };
        Op *op;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (!path_param_ok(root)) {
                (void)bus_call_error_invalid(call, "'root' must be a non-empty path", NULL);
                return;
        }
        op = op_new(ws, OP_LOAD, call, NULL);
        if (!op) {
                (void)bus_call_error_oom(call);
                return;
        }
        ws_fs_call(ws, "fs:stat", read_params(root), op);
}

static int ws_set_root(Workspace *ws, const char *root)
{
        cJSON *ev;
        char *copy = strdup(root);

        ev = copy ? cJSON_CreateObject() : NULL;
        if (!ev || !cJSON_AddStringToObject(ev, "root", root)) {
                free(copy);
                cJSON_Delete(ev);
                return -ENOMEM;
        }
        free(ws->root);
        ws->root = copy;
        bus_publish(ws->bus, EVENT_PROJECT_LOADED, ev, BUS_INTERNAL, 0);
        ws_persist_state(ws);
        ws_publish_state(ws);
        return 0;
}

/* The root must be a directory; the fs service's spelling of it is the one kept. */
static int parse_dir_stat(const cJSON *result, const char **ret_path, const char **ret_type)
{
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(result, "path");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(result, "type");

        if (!cJSON_IsString(path) || path->valuestring[0] != '/' || !path_param_ok(path->valuestring) ||
            !cJSON_IsString(type))
                return -EBADMSG;
        *ret_path = path->valuestring;
        *ret_type = type->valuestring;
        return streq(type->valuestring, "dir") ? 0 : -ENOTDIR;
}

static void op_load_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        BusCall *call = TAKE_PTR(op->call);
        const char *path, *type;
        int r;

        if (error) {
                bus_call_error_forward(call, error);
                op_free(op);
                return;
        }
        r = parse_dir_stat(result, &path, &type);
        if (r == -ENOTDIR) {
                cJSON *data = json_object_path(path);
                if (data && !cJSON_AddStringToObject(data, "type", type))
                        data = (cJSON_Delete(data), NULL);
                bus_call_error(call, RPC_WRONG_TYPE, "The project root is not a directory", data);
        } else if (r < 0)
                bus_call_error(call, RPC_INTERNAL_ERROR, "Malformed answer from the file service", NULL);
        else if (ws_set_root(ws, path) < 0)
                (void)bus_call_error_oom(call);
        else {
                /* The answer waits for an fs request sent after project:loaded: the fs service answers it
                 * only once it has handled the event and watches the project, whether it runs in the
                 * worker or in a process of its own, so a change made after project:load is reported. */
                Op *watched = op_new(ws, OP_LOAD_WATCHED, call, NULL);

                if (watched)
                        ws_fs_call(ws, "fs:stat", read_params(path), watched);
                else
                        (void)bus_call_error_oom(call);
        }
        op_free(op);
}

static void op_load_watched_done(Op *op)
{
        BusCall *call = TAKE_PTR(op->call);
        cJSON *state = ws_state_json(op->ws);

        /* The root is loaded whatever this second look found: a change since is reported as such. */
        if (!state)
                (void)bus_call_error_oom(call);
        else
                bus_call_reply(call, state);
        op_free(op);
}

static void on_workspace_state(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        cJSON *state;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, NULL, 0) < 0)
                return;
        if (ws->restoring > 0 && ws->n_state_waiting < WS_STATE_WAITING_MAX) {
                ws->state_waiting[ws->n_state_waiting++] = call;
                return;
        }
        state = ws_state_json(ws);
        if (!state) {
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, state);
}

/* ---- file:open ---- */

static void on_file_open(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        const char *path = NULL;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path},
        };
        Buffer *b;
        Op *op;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (!path_param_ok(path)) {
                (void)bus_call_error_invalid(call, "'path' must be a non-empty path", NULL);
                return;
        }
        b = ws_find(ws, path);
        if (b) {
                reply_buffer(call, b);
                return;
        }
        op = op_new(ws, OP_OPEN, call, NULL);
        if (!op) {
                (void)bus_call_error_oom(call);
                return;
        }
        ws_fs_call(ws, "fs:read_file", read_params(path), op);
}

/* A buffer for content just read, unless the path is open already (another spelling, or a request that
 * crossed this one). -EMFILE / -EFBIG when over the limits. */
static int ws_open_content(Workspace *ws, const FileContent *fc, Buffer **ret)
{
        Document *doc;
        Buffer *b = ws_find(ws, fc->path);
        int r;

        if (b) {
                *ret = b;
                return 0;
        }
        if (ws->n_buffers >= MAX_BUFFERS)
                return -EMFILE;
        if (check_content_size(ws, fc, 0) < 0 ||
            json_string_cost(fc->content, fc->content_len) + 6 * strlen(fc->path) + OPEN_REPLY_OVERHEAD >
                ws->config->max_message)
                return -EFBIG;
        r = doc_new(fc->content, fc->content_len, &doc);
        if (r < 0)
                return r;
        r = buffer_add(ws, fc->path, doc, fc->binary, fc->charset, fc->tag, 1, &b);
        if (r < 0)
                return r;
        ws_persist_state(ws);
        ws_publish_state(ws);
        *ret = b;
        return 0;
}

static void op_open_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        BusCall *call = TAKE_PTR(op->call);
        FileContent fc;
        Buffer *b;
        int r;

        op_free(op);
        if (error) {
                bus_call_error_forward(call, error);
                return;
        }
        if (parse_file_content(result, &fc) < 0) {
                bus_call_error(call, RPC_INTERNAL_ERROR, "Malformed answer from the file service", NULL);
                return;
        }
        r = ws_open_content(ws, &fc, &b);
        if (r == -EMFILE) {
                cJSON *data = json_object_path(fc.path);
                if (data && !cJSON_AddNumberToObject(data, "limit", MAX_BUFFERS))
                        data = (cJSON_Delete(data), NULL);
                bus_call_error(call, RPC_TOO_LARGE, "Too many open files", data);
        } else if (r == -EFBIG)
                call_error_too_large(call, ws, fc.path, fc.content_len);
        else if (r == -EINVAL)
                call_error_path(call, RPC_INTERNAL_ERROR, "The file service returned text that is not UTF-8",
                                fc.path);
        else if (r < 0)
                (void)bus_call_error_oom(call);
        else
                reply_buffer(call, b);
}

/* ---- file:edit ---- */

static void on_file_edit(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        const char *path = NULL;
        uint64_t version = 0;
        const cJSON *changes = NULL, *item;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path},
            {"version", JSON_FIELD_UINT, true, &version},
            {"changes", JSON_FIELD_ARRAY, true, &changes},
        };
        _cleanup_free_ DocChange *list = NULL;
        _cleanup_json_ cJSON *ev = NULL, *result = NULL;
        size_t n = 0, failed = 0, cost = 0, inserted = 0, before, max_cost;
        cJSON *changes_copy;
        Buffer *b;
        int r;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        n = (size_t)cJSON_GetArraySize(changes);
        if (n == 0) {
                (void)bus_call_error_invalid(call, "'changes' is empty", path);
                return;
        }
        list = calloc(n, sizeof(DocChange));
        if (!list) {
                (void)bus_call_error_oom(call);
                return;
        }
        n = 0;
        cJSON_ArrayForEach(item, changes)
        {
                const char *insert = NULL, *reason;
                uint64_t from = 0, to = 0;
                const JsonField cf[] = {
                    {"from", JSON_FIELD_UINT, true, &from},
                    {"to", JSON_FIELD_UINT, true, &to},
                    {"insert", JSON_FIELD_STRING, true, &insert},
                };
                char msg[256];

                if (json_dispatch(item, cf, ELEMENTSOF(cf), &reason) < 0) {
                        (void)snprintf(msg, sizeof(msg), "changes[%zu]: %s", n, reason);
                        (void)bus_call_error_invalid(call, msg, path);
                        return;
                }
                list[n] = (DocChange){from, to, insert, strlen(insert)};
                inserted += list[n].insert_len;
                n++;
        }

        b = ws_find_or_fail(ws, call, path);
        if (!b)
                return;
        if (b->binary) {
                call_error_path(call, RPC_WRONG_TYPE, "A binary (base64) buffer cannot be edited", b->path);
                return;
        }
        /* A file in an 8-bit encoding is saved back in it: text it cannot hold is refused now, while the
         * user sees what was typed, rather than at the save. */
        for (size_t i = 0; b->charset != CHARSET_UTF8 && i < n; i++) {
                CharsetBadChar bad;

                if (charset_check(b->charset, list[i].insert, list[i].insert_len, &bad) < 0) {
                        call_error_unencodable(call, b, i, &bad);
                        return;
                }
        }
        if (version != b->version) {
                cJSON *data = cJSON_CreateObject();
                if (data && (!cJSON_AddStringToObject(data, "reason", "stale version") ||
                             !cJSON_AddNumberToObject(data, "version", (double)b->version) ||
                             !cJSON_AddStringToObject(data, "path", b->path)))
                        data = (cJSON_Delete(data), NULL);
                bus_call_error(call, RPC_CONFLICT, "Stale version: the buffer has changed since", data);
                return;
        }

        /* Built before the edit, so that nothing can fail once it is applied and journalled. */
        ev = json_object_path(b->path);
        result = cJSON_CreateObject();
        if (!ev || !result || !cJSON_AddNumberToObject(ev, "version", (double)(version + 1)) ||
            !cJSON_AddNumberToObject(result, "version", (double)(version + 1))) {
                (void)bus_call_error_oom(call);
                return;
        }
        changes_copy = cJSON_Duplicate(changes, true);
        if (!changes_copy || !cJSON_AddItemToObject(ev, "changes", changes_copy)) {
                cJSON_Delete(changes_copy);
                (void)bus_call_error_oom(call);
                return;
        }

        before = doc_size(b->doc);
        max_cost = MAX((size_t)EDIT_COST_MIN, EDIT_COST_FACTOR * (before + inserted));
        r = doc_edit(b->doc, list, n, buffer_room(ws, before), max_cost, &cost, &failed);
        if (r < 0) {
                char msg[256];

                switch (r) {
                case -ERANGE:
                        (void)snprintf(msg, sizeof(msg),
                                       "changes[%zu] is not a range within the text it applies to", failed);
                        (void)bus_call_error_invalid(call, msg, path);
                        return;
                case -EILSEQ:
                        (void)snprintf(msg, sizeof(msg),
                                       "changes[%zu] splits a surrogate pair or inserts invalid text",
                                       failed);
                        (void)bus_call_error_invalid(call, msg, path);
                        return;
                case -EFBIG:
                        call_error_too_large(call, ws, b->path, before);
                        return;
                case -E2BIG:
                        call_error_path(call, RPC_TOO_LARGE,
                                        "The edit is too costly: send its changes in document order",
                                        b->path);
                        return;
                default:
                        (void)bus_call_error_oom(call);
                        return;
                }
        }

        /* Journalled before it is acknowledged: an edit the client has been told about survives a crash.
         * If it cannot be journalled, it is taken back and refused. */
        if (b->journal)
                r = journal_append_edit(b->journal, version, list, n, cost, b->doc);
        else
                r = journal_add(ws->journal, b->path, b->tag, b->charset, version + 1, b->doc, &b->journal);
        if (r < 0) {
                doc_rollback(b->doc);
                log_warning_errno(r, "Failed to journal an edit of %s, refusing it: %m", b->path);
                bus_call_error_errno(call, r, b->path);
                return;
        }
        doc_commit(b->doc);
        ws->total_bytes = ws->total_bytes - before + doc_size(b->doc);
        b->version++;
        b->dirty = true;

        bus_publish(ws->bus, EVENT_FILE_EDITED, TAKE_PTR(ev), BUS_OTHER_CLIENTS, bus_call_origin(call));
        ws_publish_state(ws);
        bus_call_reply(call, TAKE_PTR(result));
}

/* ---- file:save ---- */

static void on_file_save(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        const char *path = NULL;
        bool force = false;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path},
            {"force", JSON_FIELD_BOOL, false, &force},
        };
        Buffer *b;
        Op *op;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        b = ws_find_or_fail(ws, call, path);
        if (!b)
                return;
        if (b->saving && b->n_queued_saves >= MAX_QUEUED_SAVES) {
                call_error_path(call, RPC_SERVER_ERROR, "Too many saves of this file pending", b->path);
                return;
        }
        op = op_new(ws, OP_SAVE, call, b);
        if (!op) {
                (void)bus_call_error_oom(call);
                return;
        }
        op->force = force;
        if (b->saving) {
                if (b->save_queue_tail)
                        b->save_queue_tail->next = op;
                else
                        b->save_queue = op;
                b->save_queue_tail = op;
                b->n_queued_saves++;
                return;
        }
        start_save(op);
}

static void start_save(Op *op)
{
        Buffer *b = op->buffer;
        cJSON *params;

        b->saving = true;
        op->version = b->version;
        op->base_gen = b->base_gen;
        /* The fs service owns its copy of the text: it writes it while the buffer may change. */
        params = json_object_path(b->path);
        if (params && (!cJSON_AddStringToObject(params, "content", doc_text(b->doc)) ||
                       !cJSON_AddStringToObject(params, "encoding", buffer_encoding(b)) ||
                       (!op->force && !cJSON_AddStringToObject(params, "expectedTag", b->tag))))
                params = (cJSON_Delete(params), NULL);
        ws_fs_call(b->ws, "fs:write_file", params, op);
}

static void save_next(Buffer *b)
{
        Op *next = b->save_queue;

        b->saving = false;
        if (!next || b->ws->stopping)
                return;
        b->save_queue = next->next;
        if (!b->save_queue)
                b->save_queue_tail = NULL;
        b->n_queued_saves--;
        next->next = NULL;
        start_save(next);
}

static void op_save_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        Buffer *b = buffer_ref(op->buffer);
        BusCall *call = TAKE_PTR(op->call);
        const cJSON *tag = cJSON_GetObjectItemCaseSensitive(result, "tag");
        uint64_t version = op->version, base_gen = op->base_gen;
        cJSON *reply;
        char *copy;

        op_free(op);
        if (error)
                bus_call_error_forward(call, error);
        else if (!tag_ok(tag))
                bus_call_error(call, RPC_INTERNAL_ERROR, "Malformed answer from the file service", NULL);
        else if (!(reply = cJSON_CreateObject()) ||
                 !cJSON_AddNumberToObject(reply, "version", (double)version) ||
                 !cJSON_AddStringToObject(reply, "tag", tag->valuestring) ||
                 !(copy = strdup(tag->valuestring))) {
                cJSON_Delete(reply);
                (void)bus_call_error_oom(call);
        } else {
                if (!b->closed && base_gen != b->base_gen) {
                        /* Reverted or reloaded while saving: the buffer now stands on what was read, the
                         * disk on what was written. */
                        if (!streq(b->tag, copy))
                                set_disk_changed(b);
                        free(copy);
                } else if (!b->closed) {
                        free(b->tag);
                        b->tag = copy;
                        b->disk_changed = false;
                        if (b->version == version) {
                                b->dirty = false;
                                if (b->journal)
                                        journal_remove(b->journal);
                                b->journal = NULL;
                        } else if (b->journal) {
                                /* Edited while saving: still dirty, now based on what was written. */
                                int r = journal_set_tag(b->journal, b->version, b->tag, b->doc);
                                if (r < 0)
                                        log_warning_errno(
                                            r, "Failed to journal the new tag of %s, ignoring: %m", b->path);
                        }
                        ws_publish_state(ws);
                } else
                        free(copy);
                bus_call_reply(call, reply);
        }
        if (!b->closed || b->save_queue)
                save_next(b);
        buffer_unref(b);
}

/* ---- file:revert ---- */

static void on_file_revert(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        const char *path = NULL;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path},
        };
        Buffer *b;
        Op *op;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        b = ws_find_or_fail(ws, call, path);
        if (!b)
                return;
        op = op_new(ws, OP_REVERT, call, b);
        if (!op) {
                (void)bus_call_error_oom(call);
                return;
        }
        ws_fs_call(ws, "fs:read_file", read_params(b->path), op);
}

static void op_revert_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        Buffer *b = buffer_ref(op->buffer);
        BusCall *call = TAKE_PTR(op->call);
        FileContent fc;
        int r;

        op_free(op);
        if (error)
                bus_call_error_forward(call, error);
        else if (b->closed)
                call_error_path(call, RPC_NOT_FOUND, "The file was closed", b->path);
        else if (parse_file_content(result, &fc) < 0)
                bus_call_error(call, RPC_INTERNAL_ERROR, "Malformed answer from the file service", NULL);
        else if (check_content_size(ws, &fc, doc_size(b->doc)) < 0)
                call_error_too_large(call, ws, b->path, fc.content_len);
        else if ((r = buffer_replace(b, &fc)) < 0) {
                if (r == -EINVAL)
                        call_error_path(call, RPC_INTERNAL_ERROR,
                                        "The file service returned text that is not UTF-8", b->path);
                else
                        (void)bus_call_error_oom(call);
        } else {
                ws_publish_state(ws);
                reply_buffer(call, b);
        }
        buffer_unref(b);
}

/* ---- file:close ---- */

static void on_file_close(BusCall *call, const cJSON *params, void *userdata)
{
        Workspace *ws = userdata;
        const char *path = NULL;
        bool discard = false;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path},
            {"discard", JSON_FIELD_BOOL, false, &discard},
        };
        Buffer *b;

        if (ws_refuse_stopping(ws, call) || bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        b = ws_find_or_fail(ws, call, path);
        if (!b)
                return;
        if (b->dirty && !discard) {
                cJSON *data = json_object_path(b->path);
                if (data && !cJSON_AddNumberToObject(data, "version", (double)b->version))
                        data = (cJSON_Delete(data), NULL);
                bus_call_error(call, RPC_UNSAVED_CHANGES, "The file has unsaved changes", data);
                return;
        }
        buffer_close(b);
        ws_persist_state(ws);
        ws_publish_state(ws);
        bus_call_reply(call, cJSON_CreateObject());
}

/* ---- outside changes ---- */

static void start_reload(Buffer *b)
{
        Op *op;

        if (b->reloading) {
                b->reload_again = true;
                return;
        }
        op = op_new(b->ws, OP_RELOAD, NULL, b);
        if (!op) {
                log_oom();
                set_disk_changed(b);
                return;
        }
        b->reloading = true;
        ws_fs_call(b->ws, "fs:read_file", read_params(b->path), op);
}

static void op_reload_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        Buffer *b = buffer_ref(op->buffer);
        uint64_t version = op->version;
        FileContent fc;

        op_free(op);
        b->reloading = false;
        if (b->closed)
                goto finish;
        if (error) {
                log_debug("Reloading %s failed: %s", b->path, error_message(error));
                set_disk_changed(b);
        } else if (b->dirty || b->version != version) {
                /* Edited meanwhile: the user's text stays, flagged. */
                set_disk_changed(b);
        } else if (parse_file_content(result, &fc) < 0 ||
                   check_content_size(ws, &fc, doc_size(b->doc)) < 0) {
                set_disk_changed(b);
        } else if (same_encoding(b, &fc) && doc_equal(b->doc, fc.content, fc.content_len)) {
                /* Touched, or changed and changed back: no new version, just the new tag. */
                char *tag = strdup(fc.tag);
                if (tag) {
                        free(b->tag);
                        b->tag = tag;
                }
                if (b->disk_changed) {
                        b->disk_changed = false;
                        ws_publish_state(ws);
                }
        } else if (buffer_replace(b, &fc) < 0) {
                set_disk_changed(b);
        } else
                ws_publish_state(ws);
        if (b->reload_again && !b->closed) {
                b->reload_again = false;
                start_reload(b);
        }
finish:
        buffer_unref(b);
}

static void disk_modified(Workspace *ws, const char *path)
{
        Buffer *b = ws_find(ws, path);

        if (!b)
                return;
        if (b->dirty)
                set_disk_changed(b);
        else
                start_reload(b);
}

static void disk_deleted(Workspace *ws, const char *path)
{
        Buffer *b = ws_find(ws, path);

        if (b)
                set_disk_changed(b);
}

static void on_changed_on_disk(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Workspace *ws = userdata;
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(params, "path");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(params, "kind");
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(params, "oldPath");

        if (ws->stopping || !cJSON_IsString(path) || !cJSON_IsString(kind))
                return;
        if (streq(kind->valuestring, "deleted"))
                disk_deleted(ws, path->valuestring);
        else if (streq(kind->valuestring, "moved")) {
                /* The old name is gone; whatever is at the new name may be a file someone has open. */
                if (cJSON_IsString(old))
                        disk_deleted(ws, old->valuestring);
                disk_modified(ws, path->valuestring);
        } else if (streq(kind->valuestring, "created") || streq(kind->valuestring, "modified"))
                disk_modified(ws, path->valuestring);
}

/* Give buffer b the path `to`, journal entry included, and tell every connection. tag: the file's tag
 * after the rename when it is the file the buffer was based on, else NULL. */
static int buffer_move(Buffer *b, const char *to, const char *tag)
{
        _cleanup_json_ cJSON *ev = NULL;
        char *path = strdup(to);
        int r;

        if (!path)
                return -ENOMEM;
        if (tag && !streq(tag, b->tag)) {
                char *copy = strdup(tag);

                r = !copy ? -ENOMEM : b->journal ? journal_set_tag(b->journal, b->version, tag, b->doc) : 0;
                if (r < 0) {
                        free(copy);
                        free(path);
                        return r;
                }
                free(b->tag);
                b->tag = copy;
        }

        ev = json_object_path(to);
        if (!ev || !cJSON_AddStringToObject(ev, "oldPath", b->path) ||
            !cJSON_AddNumberToObject(ev, "version", (double)b->version)) {
                free(path);
                return -ENOMEM;
        }
        /* The journal first: if it cannot follow, the buffer stays where a restart would put it. */
        if (b->journal) {
                r = journal_set_path(b->journal, to, b->version, b->doc);
                if (r < 0) {
                        free(path);
                        return r;
                }
        }
        log_debug("Buffer %s follows its file to %s.", b->path, to);
        free(b->path);
        b->path = path;
        bus_publish(b->ws->bus, EVENT_FILE_RENAMED, TAKE_PTR(ev), BUS_ALL_CLIENTS, 0);
        return 0;
}

/* The fs service renamed `from` (a file, or a folder with everything in it) to `to`: the buffers at or
 * below it follow with their unsaved edits. A buffer already open at a new name (a rename over it)
 * gives way when it is clean; when it has unsaved edits, both stay where they are, flagged. */
static void on_fs_renamed(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Workspace *ws = userdata;
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(params, "from");
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(params, "to");
        const cJSON *old_tag = cJSON_GetObjectItemCaseSensitive(params, "oldTag");
        const cJSON *tag = cJSON_GetObjectItemCaseSensitive(params, "tag");
        size_t from_len;
        bool changed = false;

        if (ws->stopping || !cJSON_IsString(from) || !cJSON_IsString(to) || from->valuestring[0] != '/' ||
            to->valuestring[0] != '/' || streq(from->valuestring, to->valuestring))
                return;
        from_len = strlen(from->valuestring);
        for (size_t i = 0; i < ws->n_buffers;) {
                Buffer *b = ws->buffers[i], *there;
                _cleanup_free_ char *dest = NULL;
                int r;

                if (!path_is_below_or_same(b->path, from->valuestring) ||
                    asprintf(&dest, "%s%s", to->valuestring, b->path + from_len) < 0 ||
                    strlen(dest) >= PATH_MAX) {
                        i++;
                        continue;
                }
                there = ws_find(ws, dest);
                if (there && there->dirty) {
                        set_disk_changed(there);
                        set_disk_changed(b);
                        i++;
                        continue;
                }
                if (there) {
                        /* Its file was replaced by the one that moved there. */
                        size_t k;
                        for (k = 0; k < ws->n_buffers && ws->buffers[k] != there; k++)
                                ;
                        buffer_close(there);
                        if (k < i)
                                i--;
                        changed = true;
                }
                /* The renamed file itself, unchanged since the buffer read it, keeps it clean of
                 * conflicts: its new tag is the same content's. */
                r = buffer_move(b, dest,
                                streq(b->path, from->valuestring) && cJSON_IsString(old_tag) &&
                                        tag_ok(tag) && streq(old_tag->valuestring, b->tag)
                                    ? tag->valuestring
                                    : NULL);
                if (r < 0) {
                        log_warning_errno(r, "Failed to move the buffer of %s to %s, leaving it: %m",
                                          b->path, dest);
                        set_disk_changed(b);
                } else
                        changed = true;
                i++;
        }
        if (changed) {
                ws_persist_state(ws);
                ws_publish_state(ws);
        }
}

/* The fs service removed `path`: buffers at or below it say so (their text stays, to be saved again). */
static void on_fs_deleted(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Workspace *ws = userdata;
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(params, "path");

        if (ws->stopping || !cJSON_IsString(path))
                return;
        for (size_t i = 0; i < ws->n_buffers; i++)
                if (path_is_below_or_same(ws->buffers[i]->path, path->valuestring))
                        set_disk_changed(ws->buffers[i]);
}

static void on_terminals_changed(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Workspace *ws = userdata;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(params, "terminals");
        cJSON *copy;

        if (ws->stopping || !cJSON_IsArray(list))
                return;
        if (ws->terminals && cJSON_Compare(ws->terminals, list, true))
                return;
        copy = cJSON_Duplicate(list, true);
        if (!copy) {
                log_oom();
                return;
        }
        cJSON_Delete(ws->terminals);
        ws->terminals = copy;
        ws_publish_state(ws);
}

/* ---- restore at start ---- */

static void op_restore_root_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        const char *path, *type;

        if (error)
                log_warning("Not restoring the project root %s: %s", op->path, error_message(error));
        else if (parse_dir_stat(result, &path, &type) < 0)
                log_warning("Not restoring the project root %s: not a directory.", op->path);
        else if (ws_set_root(ws, path) < 0)
                log_oom();
        op_free(op);
}

static void op_restore_open_done(Op *op, const cJSON *result, const cJSON *error)
{
        Workspace *ws = op->ws;
        FileContent fc;
        Buffer *b;
        int r;

        if (error)
                log_warning("Not reopening %s: %s", op->path, error_message(error));
        else if (parse_file_content(result, &fc) < 0)
                log_warning("Not reopening %s: malformed answer from the file service.", op->path);
        else if ((r = ws_open_content(ws, &fc, &b)) < 0)
                log_warning_errno(r, "Not reopening %s: %m", op->path);
        op_free(op);
}

/* A journalled buffer is back, dirty. Now see what the disk holds: the same text means the edits were
 * saved after all (the journal just did not hear of it); another tag means an outside change. */
static void op_restore_check_done(Op *op, const cJSON *result, const cJSON *error)
{
        Buffer *b = buffer_ref(op->buffer);
        uint64_t version = op->version;
        FileContent fc;

        op_free(op);
        if (b->closed)
                goto finish;
        if (error) {
                log_info("Restored unsaved %s, which cannot be read from disk now: %s", b->path,
                         error_message(error));
                set_disk_changed(b);
        } else if (parse_file_content(result, &fc) < 0)
                set_disk_changed(b);
        else if (b->dirty && b->version == version && same_encoding(b, &fc) &&
                 doc_equal(b->doc, fc.content, fc.content_len)) {
                char *tag = strdup(fc.tag);
                if (!tag) {
                        log_oom();
                        goto finish;
                }
                free(b->tag);
                b->tag = tag;
                b->dirty = b->disk_changed = false;
                if (b->journal)
                        journal_remove(b->journal);
                b->journal = NULL;
                ws_publish_state(b->ws);
        } else if (!streq(fc.tag, b->tag))
                set_disk_changed(b);
finish:
        buffer_unref(b);
}

static void ws_restore_open(Workspace *ws, const char *path)
{
        Op *op = op_new(ws, OP_RESTORE_OPEN, NULL, NULL);

        if (!op || !(op->path = strdup(path))) {
                log_oom();
                if (op)
                        op_free(op);
                return;
        }
        ws_fs_call(ws, "fs:read_file", read_params(path), op);
}

static void ws_restore_doc(Workspace *ws, JournalDoc *jd)
{
        Buffer *b;
        Op *op;
        int r;

        r = buffer_add(ws, jd->path, TAKE_PTR(jd->doc), false, jd->charset, jd->tag, jd->version, &b);
        if (r < 0) {
                /* Its files stay in the journal for the next start. */
                log_oom();
                return;
        }
        b->dirty = true;
        b->journal = jd->entry;
        log_info("Restored unsaved changes to %s (version %" PRIu64 ").", b->path, b->version);

        op = op_new(ws, OP_RESTORE_CHECK, NULL, b);
        if (!op) {
                log_oom();
                return;
        }
        ws_fs_call(ws, "fs:read_file", read_params(b->path), op);
}

static void on_restore_timer(uv_timer_t *t)
{
        Workspace *ws = t->data;
        JournalState *st = &ws->saved;
        JournalDoc *docs = ws->saved_docs;
        size_t n_docs = ws->n_saved_docs;
        Op *op;

        /* The saved order first, then journalled buffers the state file did not list (it is written
         * after the journal, so a crash in between can leave it behind). */
        for (size_t i = 0; i < st->n_paths; i++) {
                bool journalled = false;

                if (ws_find(ws, st->paths[i]))
                        continue;
                for (size_t k = 0; k < n_docs; k++)
                        if (docs[k].doc && streq(docs[k].path, st->paths[i])) {
                                ws_restore_doc(ws, &docs[k]);
                                journalled = true;
                                break;
                        }
                if (!journalled)
                        ws_restore_open(ws, st->paths[i]);
        }
        for (size_t k = 0; k < n_docs; k++)
                if (docs[k].doc)
                        ws_restore_doc(ws, &docs[k]);
        journal_docs_free(TAKE_PTR(ws->saved_docs), n_docs);
        ws->n_saved_docs = 0;

        if (st->root) {
                op = op_new(ws, OP_RESTORE_ROOT, NULL, NULL);
                if (op && (op->path = strdup(st->root)))
                        ws_fs_call(ws, "fs:stat", read_params(st->root), op);
                else {
                        log_oom();
                        if (op)
                                op_free(op);
                }
        }
        journal_state_done(st);

        /* The hold taken in start(): answers that arrived at once could not write a partial state. */
        if (--ws->restoring == 0) {
                if (ws->state_unsaved)
                        ws_persist_state(ws);
                ws_answer_state_waiting(ws);
        }
}

/* ---- dispatch of fs answers ---- */

static void on_fs_reply(cJSON *result_owned, cJSON *error_owned, void *userdata)
{
        _cleanup_json_ cJSON *result = result_owned, *error = error_owned;
        Op *op = userdata;

        if (!result && !error) {
                op_fail(op, RPC_INTERNAL_ERROR, "Out of memory");
                return;
        }
        if (op->ws->stopping) {
                op_fail(op, RPC_INTERNAL_ERROR, "The worker is shutting down");
                return;
        }
        switch (op->kind) {
        case OP_LOAD:
                op_load_done(op, result, error);
                break;
        case OP_LOAD_WATCHED:
                op_load_watched_done(op);
                break;
        case OP_OPEN:
                op_open_done(op, result, error);
                break;
        case OP_SAVE:
                op_save_done(op, result, error);
                break;
        case OP_REVERT:
                op_revert_done(op, result, error);
                break;
        case OP_RELOAD:
                op_reload_done(op, result, error);
                break;
        case OP_RESTORE_ROOT:
                op_restore_root_done(op, result, error);
                break;
        case OP_RESTORE_OPEN:
                op_restore_open_done(op, result, error);
                break;
        case OP_RESTORE_CHECK:
                op_restore_check_done(op, result, error);
                break;
        default:
                assert(!"unknown operation");
                op_fail(op, RPC_INTERNAL_ERROR, NULL);
        }
}

/* ---- service ---- */

/* A stopping workspace goes once its operations have been answered and its timer has closed. */
static void ws_maybe_free(Workspace *ws)
{
        if (!ws->stopping || ws->n_ops > 0 || !ws->timer_closed)
                return;
        assert(ws->n_buffers == 0);
        journal_docs_free(ws->saved_docs, ws->n_saved_docs);
        journal_state_done(&ws->saved);
        free(ws->buffers);
        free(ws->root);
        cJSON_Delete(ws->terminals);
        free(ws);
}

static const BusMethod methods[] = {
    {"project:load", on_project_load}, {"workspace:state", on_workspace_state},
    {"file:open", on_file_open},       {"file:edit", on_file_edit},
    {"file:save", on_file_save},       {"file:revert", on_file_revert},
    {"file:close", on_file_close},
};

static void on_timer_closed(uv_handle_t *h)
{
        Workspace *ws = h->data;

        ws->timer_closed = true;
        ws_maybe_free(ws);
}

static int workspace_start(const ServiceContext *ctx, void **ret)
{
        const WorkerConfig *cfg = ctx->config;
        Workspace *ws;
        JournalLimits limits;
        int r;

        ws = calloc(1, sizeof(Workspace));
        if (!ws)
                return -ENOMEM;
        ws->loop = ctx->loop;
        ws->bus = ctx->bus;
        ws->config = cfg;
        ws->max_buffer_bytes = cfg->max_message;
        /* Enough for many files, bounded for a shared server; never below what one file may hold. */
        size_t total = MIN((size_t)MAX_TOTAL_BYTES, 16 * cfg->max_message);
        ws->max_total_bytes = MAX(cfg->max_message, total);
        limits = (JournalLimits){
            .max_entries = MAX_BUFFERS,
            .max_doc_size = ws->max_buffer_bytes,
            .max_total_size = ws->max_total_bytes,
        };

        r = journal_open(ctx->loop, cfg->state_dir, &limits, &ws->journal);
        if (r < 0) {
                free(ws);
                if (r == -EBUSY)
                        return log_error_errno(r, "State directory %s is in use by another worker.",
                                               cfg->state_dir);
                return log_error_errno(r, "Failed to open the state directory %s: %m", cfg->state_dir);
        }

        (void)uv_timer_init(ctx->loop, &ws->restore_timer);
        ws->restore_timer.data = ws;
        /* From here on a failure is cleaned up by stop(), which the caller runs. */
        *ret = ws;

        r = bus_serve_all(ctx->bus, methods, ELEMENTSOF(methods), ws);
        if (r >= 0)
                r = bus_subscribe(ctx->bus, EVENT_FILE_CHANGED_ON_DISK, on_changed_on_disk, ws);
        if (r >= 0)
                r = bus_subscribe(ctx->bus, EVENT_FS_RENAMED, on_fs_renamed, ws);
        if (r >= 0)
                r = bus_subscribe(ctx->bus, EVENT_FS_DELETED, on_fs_deleted, ws);
        if (r >= 0)
                r = bus_subscribe(ctx->bus, EVENT_TERMINALS_CHANGED, on_terminals_changed, ws);
        if (r >= 0)
                r = journal_load(ws->journal, &ws->saved, &ws->saved_docs, &ws->n_saved_docs);
        if (r >= 0) {
                ws->restoring = 1;
                r = uv_timer_start(&ws->restore_timer, on_restore_timer, 0, 0);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to start the workspace: %m");
        return 0;
}

static void workspace_stop(void *userdata)
{
        Workspace *ws = userdata;

        if (!ws)
                return;
        assert(!ws->stopping);
        ws->stopping = true;
        /* Held until the end, so that no operation finishing below frees the workspace under us. */
        ws->n_ops++;
        bus_unsubscribe(ws->bus, EVENT_FILE_CHANGED_ON_DISK, on_changed_on_disk, ws);
        bus_unsubscribe(ws->bus, EVENT_FS_RENAMED, on_fs_renamed, ws);
        bus_unsubscribe(ws->bus, EVENT_FS_DELETED, on_fs_deleted, ws);
        bus_unsubscribe(ws->bus, EVENT_TERMINALS_CHANGED, on_terminals_changed, ws);
        ws_answer_state_waiting(ws);

        /* Saves that have not started are answered now; running operations finish with an error when
         * their answer comes, and the last one frees the workspace. */
        for (size_t i = 0; i < ws->n_buffers; i++) {
                Buffer *b = ws->buffers[i];
                while (b->save_queue) {
                        Op *op = b->save_queue;
                        b->save_queue = op->next;
                        op_fail(op, RPC_INTERNAL_ERROR, "The worker is shutting down");
                }
                b->save_queue_tail = NULL;
                b->n_queued_saves = 0;
        }
        /* The journal's entries go with it, flushed and fsynced. */
        for (size_t i = 0; i < ws->n_buffers; i++)
                ws->buffers[i]->journal = NULL;
        journal_close(TAKE_PTR(ws->journal));
        while (ws->n_buffers > 0)
                buffer_close(ws->buffers[ws->n_buffers - 1]);
        uv_close((uv_handle_t *)&ws->restore_timer, on_timer_closed);
        ws->n_ops--;
        ws_maybe_free(ws);
}

const ServiceType workspace_service_type = {
    .name = "workspace",
    .start = workspace_start,
    .stop = workspace_stop,
};
