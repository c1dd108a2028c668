/* SPDX-License-Identifier: MIT */
/* The file-system service: the only code in the worker that touches the user's files.
 *
 * Every path is confined to the workspace roots by fs-path (lexical normalization, then a walk
 * beneath the root's fd with openat2), every operation acts on a directory fd and a name (fs-ops), and
 * changes made by anything but the worker are reported from inotify on the loaded project (fs-watch).
 * To tell those apart, the service remembers for a few seconds what it itself left on disk at each
 * path it changed; a change event whose path still looks exactly like that is its own echo. */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "fs-encoding.h"
#include "fs-ops.h"
#include "fs-path.h"
#include "fs-watch.h"
#include "log.h"
#include "service.h"
#include "utf8.h"

/* Client notification: the watch of the project is incomplete. */
#define FS_EVENT_WATCH_ERROR "fs:watch_error"

/* Entries fs:list_directory returns at most. */
#define LIST_MAX_ENTRIES 100000u
/* Upper bound of the JSON for one listed entry besides its name. */
#define LIST_ENTRY_OVERHEAD 96u
/* Bytes of a response that are not content: envelope, id, the other members. */
#define RESPONSE_RESERVE 1024u

/* How long the worker's own change is remembered: its inotify echo arrives within milliseconds. */
#define OWN_CHANGE_TTL_MS 5000u
#define OWN_CHANGE_MAX 1024u
/* Directories a save has looked through for leftover temporary files, remembered so that saves in the
 * same few directories do not read them again and again: leftovers are older than this worker, so one
 * look per directory is enough. */
#define CLEANED_DIRS_MAX 64u

typedef enum OwnState {
        OWN_ABSENT, /* nothing at the path (and below it, if subtree) */
        OWN_ENTRY,  /* exactly this inode, unchanged since: the tag matches */
        OWN_DIR,    /* this directory (its tag changes with its entries, so only its identity counts) */
} OwnState;

typedef struct OwnChange {
        char *path; /* physical; NULL: slot free */
        OwnState state;
        bool subtree;
        dev_t dev;
        ino_t ino;
        char tag[FS_TAG_MAX];
        uint64_t expires; /* uv_now() */
} OwnChange;

typedef struct Fs Fs;

/* A method, and the service it belongs to: what the bus hands back to the trampoline. */
typedef struct FsMethod {
        Fs *fs;
        int (*fn)(Fs *fs, BusCall *call, const cJSON *params);
} FsMethod;

#define FS_N_METHODS 7

struct Fs {
        uv_loop_t *loop;
        Bus *bus;
        const WorkerConfig *config;
        FsRoots *roots;
        char *base; /* relative paths start here: the loaded project as named, else roots[0] */
        FsWatch *watch;
        struct timespec started;       /* temporary files written before this are leftovers */
        struct {
                dev_t dev;
                ino_t ino;
        } cleaned[CLEANED_DIRS_MAX]; /* a ring of directories looked through for leftovers */
        size_t cleaned_next;
        OwnChange own[OWN_CHANGE_MAX]; /* a ring: the oldest is overwritten first */
        size_t own_next;
        FsMethod methods[FS_N_METHODS];
};

typedef enum Encoding {
        ENCODING_AUTO,
        ENCODING_UTF8,
        ENCODING_BASE64,
} Encoding;

/* --- Replies ------------------------------------------------------------------------------------ */

/* The reply_*() helpers answer the call and return a negative errno-style value describing the failure,
 * so a method can `return reply_...()`. */
static cJSON *error_data(int error, const char *path)
{
        cJSON *data = cJSON_CreateObject();
        const char *name = error != 0 ? errno_name(error) : NULL;

        if (data && ((name && !cJSON_AddStringToObject(data, "errno", name)) ||
                     (path && !cJSON_AddStringToObject(data, "path", path)))) {
                cJSON_Delete(data);
                return NULL;
        }
        return data;
}

static int reply_error(BusCall *call, RpcError code, const char *message, int error, const char *path)
{
        bus_call_error(call, code, message, error_data(error, path));
        return -abs(error);
}

/* The error for -errno r about path, in the words a user of this service needs. */
static int reply_errno(BusCall *call, int r, const char *path)
{
        assert(r < 0);
        switch (r) {
        case -EXDEV:
                /* From the resolver: the path, or a symlink on the way, leads out of the roots. */
                return reply_error(call, RPC_PERMISSION_DENIED, "Outside the workspace", r, path);
        case -ENAMETOOLONG:
                return reply_error(call, RPC_INVALID_PARAMS, "File name too long", r, path);
        case -ENOMEM:
                return bus_call_error_oom(call);
        default:
                bus_call_error_errno(call, r, path);
                return r;
        }
}

static int reply_too_large(BusCall *call, const char *path, uint64_t size, size_t limit)
{
        cJSON *data = error_data(EFBIG, path);
        char msg[160];

        if (data && (!cJSON_AddNumberToObject(data, "size", (double)size) ||
                     !cJSON_AddNumberToObject(data, "limit", (double)limit))) {
                cJSON_Delete(data);
                data = NULL;
        }
        (void)snprintf(msg, sizeof(msg), "File too large for one message (%llu bytes; at most %zu fit)",
                       (unsigned long long)size, limit);
        bus_call_error(call, RPC_TOO_LARGE, msg, data);
        return -EFBIG;
}

static bool add_stat(cJSON *o, const struct stat *st, bool with_size)
{
        char tag[FS_TAG_MAX];

        fs_tag_format(st, tag);
        return (!with_size || cJSON_AddNumberToObject(o, "size", (double)st->st_size)) &&
               cJSON_AddNumberToObject(o, "mtime", (double)fs_mtime_ms(st)) &&
               cJSON_AddStringToObject(o, "tag", tag);
}

static cJSON *result_with_path(const char *key, const char *path)
{
        cJSON *o = cJSON_CreateObject();

        if (o && !cJSON_AddStringToObject(o, key, path)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* --- Paths -------------------------------------------------------------------------------------- */

/* The normalized absolute form of a path parameter. On failure the call has been answered. */
static int path_param(Fs *fs, BusCall *call, const char *name, const char *value, char **ret)
{
        int r;

        if (!*value) {
                char reason[64];
                (void)snprintf(reason, sizeof(reason), "'%s' must not be empty", name);
                return bus_call_error_invalid(call, reason, NULL);
        }
        r = path_normalize(fs->base, value, ret);
        if (r < 0)
                return reply_errno(call, r, value);
        return 0;
}

static int parse_encoding(BusCall *call, const char *s, Encoding *ret)
{
        if (!s)
                *ret = ENCODING_AUTO;
        else if (streq(s, "utf-8"))
                *ret = ENCODING_UTF8;
        else if (streq(s, "base64"))
                *ret = ENCODING_BASE64;
        else
                return bus_call_error_invalid(call, "'encoding' must be \"utf-8\" or \"base64\"", NULL);
        return 0;
}

/* --- The worker's own changes ------------------------------------------------------------------ */

static void own_forget(OwnChange *e)
{
        free(e->path);
        *e = (OwnChange){};
}

static void own_record(Fs *fs, const char *path, OwnState state, const struct stat *st, bool subtree)
{
        OwnChange *e = &fs->own[fs->own_next];
        char *p = strdup(path);

        if (!p) {
                /* Only costs a spurious change notification. */
                log_oom();
                return;
        }
        own_forget(e);
        *e = (OwnChange){
                .path = p,
                .state = state,
                .subtree = subtree,
                .expires = uv_now(fs->loop) + OWN_CHANGE_TTL_MS,
        };
        if (st) {
                e->dev = st->st_dev;
                e->ino = st->st_ino;
                fs_tag_format(st, e->tag);
        }
        fs->own_next = (fs->own_next + 1) % OWN_CHANGE_MAX;
}

/* Record what a path holds now, as left by the worker. */
static void own_record_current(Fs *fs, const char *path)
{
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        struct stat st;

        if (fs_chase(fs->roots, path, FS_CHASE_NOFOLLOW, &loc) < 0 || fs_location_stat(&loc, &st) < 0)
                own_record(fs, path, OWN_ABSENT, NULL, false);
        else
                own_record(fs, path, S_ISDIR(st.st_mode) ? OWN_DIR : OWN_ENTRY, &st, false);
}

static OwnChange *own_find(Fs *fs, const char *path)
{
        uint64_t now = uv_now(fs->loop);

        /* Newest first: a later change supersedes an earlier one, whether it was of the path itself or
         * of a tree that held it (a file written, then its directory removed). */
        for (size_t k = 0; k < OWN_CHANGE_MAX; k++) {
                OwnChange *e = &fs->own[(fs->own_next + OWN_CHANGE_MAX - 1 - k) % OWN_CHANGE_MAX];

                if (!e->path)
                        continue;
                if (e->expires < now) {
                        own_forget(e);
                        continue;
                }
                if (streq(e->path, path) || (e->subtree && path_is_below_or_same(path, e->path)))
                        return e;
        }
        return NULL;
}

/* True if path is as the worker itself left it, so a change event about it is the worker's own. */
static bool own_matches(Fs *fs, const char *path)
{
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        OwnChange *e = own_find(fs, path);
        char tag[FS_TAG_MAX];
        struct stat st;
        bool match;
        int r;

        if (!e)
                return false;
        r = fs_chase(fs->roots, path, FS_CHASE_NOFOLLOW, &loc);
        if (r >= 0)
                r = fs_location_stat(&loc, &st);
        switch (e->state) {
        case OWN_ABSENT:
                match = r == -ENOENT || r == -ENOTDIR;
                break;
        case OWN_DIR:
                match = r >= 0 && S_ISDIR(st.st_mode) && st.st_dev == e->dev && st.st_ino == e->ino;
                break;
        default:
                if (r >= 0)
                        fs_tag_format(&st, tag);
                match = r >= 0 && streq(tag, e->tag);
        }
        /* Changed by someone else since: report this, and everything after it. */
        if (!match && streq(e->path, path))
                own_forget(e);
        return match;
}

/* --- Change notifications ---------------------------------------------------------------------- */

static void on_change(FsChangeKind kind, const char *path, const char *old_path, void *userdata)
{
        Fs *fs = userdata;
        bool own;
        cJSON *p;

        /* Both halves of a move are checked, so a stale memory of either is dropped. */
        own = kind == FS_CHANGE_MOVED ? own_matches(fs, old_path) : true;
        if (own_matches(fs, path) && own)
                return;

        p = cJSON_CreateObject();
        if (!p || !cJSON_AddStringToObject(p, "path", path) ||
            !cJSON_AddStringToObject(p, "kind", fs_change_kind_to_string(kind)) ||
            (old_path && !cJSON_AddStringToObject(p, "oldPath", old_path))) {
                cJSON_Delete(p);
                log_oom();
                return;
        }
        log_debug("Changed on disk: %s %s", fs_change_kind_to_string(kind), path);
        bus_publish(fs->bus, EVENT_FILE_CHANGED_ON_DISK, p, BUS_ALL_CLIENTS, 0);
}

static void on_watch_error(const char *path, int error, const char *message, uint64_t limit, void *userdata)
{
        Fs *fs = userdata;
        const char *name = errno_name(error);
        cJSON *p;

        log_warning("%s.", message);
        p = cJSON_CreateObject();
        if (!p || !cJSON_AddStringToObject(p, "path", path) ||
            !cJSON_AddStringToObject(p, "errno", name ? name : "EIO") ||
            !cJSON_AddStringToObject(p, "message", message) ||
            !cJSON_AddNumberToObject(p, "limit", (double)limit)) {
                cJSON_Delete(p);
                log_oom();
                return;
        }
        bus_publish(fs->bus, FS_EVENT_WATCH_ERROR, p, BUS_ALL_CLIENTS, 0);
}

/* The scan of a loaded project (and its rescans) meets every directory in it: where a save was cut
 * short by a killed worker, its temporary file goes. */
static void on_temporary_found(int dir_fd, const char *name, void *userdata)
{
        Fs *fs = userdata;
        struct stat st;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
            fs_is_stale_temp(name, &st, &fs->started) && unlinkat(dir_fd, name, 0) >= 0)
                log_debug("Removed %s, left by an interrupted save.", name);
}

static const FsWatchOps watch_ops = {
    .change = on_change,
    .error = on_watch_error,
    /* The temporary files of atomic writes are nobody's business. */
    .is_temporary = fs_is_temp_name,
    .temporary_found = on_temporary_found,
};

static void on_project_loaded(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(params, "root");
        _cleanup_free_ char *path = NULL;
        Fs *fs = userdata;
        struct stat st;
        int r;

        if (!cJSON_IsString(root) || root->valuestring[0] != '/') {
                log_warning("Ignoring %s without an absolute root.", topic);
                return;
        }
        r = path_normalize(NULL, root->valuestring, &path);
        if (r >= 0)
                r = fs_chase(fs->roots, path, 0, &loc);
        if (r >= 0)
                r = fs_location_stat(&loc, &st);
        if (r >= 0 && !S_ISDIR(st.st_mode))
                r = -ENOTDIR;
        if (r == -EXDEV) {
                log_warning("Not watching project %s: outside the workspace.", root->valuestring);
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Not watching project %s: %m", root->valuestring);
                return;
        }

        free(fs->base);
        fs->base = TAKE_PTR(path);
        r = fs_watch_set_root(fs->watch, loc.path);
        if (r < 0) {
                log_warning_errno(r, "Failed to watch project %s: %m", loc.path);
                return;
        }
        log_debug("Watching project %s (%zu directories).", loc.path, fs_watch_count(fs->watch));
}

/* --- Methods ----------------------------------------------------------------------------------- */

/* Bytes a response may give to content, after the envelope and the path. */
static size_t content_budget(const Fs *fs, const char *path)
{
        size_t reserve = RESPONSE_RESERVE + fs_json_string_size(path, strlen(path));

        return fs->config->max_message > reserve ? fs->config->max_message - reserve : 0;
}

static bool add_integer(cJSON *o, const char *name, int64_t v)
{
        cJSON *i = json_create_integer(v);

        if (!i || !cJSON_AddItemToObject(o, name, i)) {
                cJSON_Delete(i);
                return false;
        }
        return true;
}

static int method_read_file(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL, *encoding_arg = NULL;
        const JsonField fields[] = {
                {"path", JSON_FIELD_STRING, true, &path_arg},
                {"encoding", JSON_FIELD_STRING, false, &encoding_arg},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL, *data = NULL, *encoded = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_json_ cJSON *result = NULL;
        char tag[FS_TAG_MAX];
        Encoding enc;
        struct stat st;
        size_t size, limit;
        cJSON *content;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            parse_encoding(call, encoding_arg, &enc) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        r = fs_chase(fs->roots, path, 0, &loc);
        if (r >= 0 && loc.type == 0)
                r = -ENOENT;
        if (r < 0)
                return reply_errno(call, r, path);
        /* Look before opening: opening a device or a FIFO can have effects of its own. The walk has
         * just looked at the object (lstat); what counts is the fstat() of what was opened. */
        if (S_ISDIR(loc.type))
                return reply_errno(call, -EISDIR, path);
        if (!S_ISREG(loc.type))
                return reply_error(call, RPC_WRONG_TYPE, "Not a regular file", EINVAL, path);
        fd = fs_location_open(&loc, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
        if (fd < 0)
                return reply_errno(call, fd, path);
        if (fstat(fd, &st) < 0)
                return reply_errno(call, negative_errno(), path);
        if (!S_ISREG(st.st_mode))
                return reply_error(call, RPC_WRONG_TYPE, "Not a regular file", EINVAL, path);

        /* Refuse what cannot fit before reading it: text takes at least a byte per byte, base64 four
         * per three. */
        limit = content_budget(fs, path);
        if ((uint64_t)st.st_size > limit ||
            (enc == ENCODING_BASE64 && base64_encoded_size((size_t)st.st_size) > limit))
                return reply_too_large(call, path, (uint64_t)st.st_size, limit);

        r = fs_read_bounded_size(fd, (uint64_t)st.st_size, enc == ENCODING_BASE64 ? limit / 4 * 3 : limit,
                                 &data, &size);
        if (r == -EFBIG)
                return reply_too_large(call, path, MAX((uint64_t)st.st_size, (uint64_t)limit + 1), limit);
        if (r < 0)
                return reply_errno(call, r, path);

        if (enc == ENCODING_AUTO)
                enc = fs_text_is_json_safe(data, size) ? ENCODING_UTF8 : ENCODING_BASE64;
        else if (enc == ENCODING_UTF8) {
                if (!utf8_is_valid(data, size))
                        return bus_call_error_invalid(call, "the file is not valid UTF-8; read it as base64",
                                                      path);
                if (memchr(data, 0, size))
                        return bus_call_error_invalid(
                            call,
                            "the file contains NUL bytes, which a JSON string cannot "
                            "carry here; read it as base64",
                            path);
        }
        if (enc == ENCODING_BASE64 && base64_encoded_size(size) > limit)
                return reply_too_large(call, path, size, limit);
        if (bus_call_is_remote(call)) {
                /* An answer for a client is printed at once: the content goes in as finished JSON text,
                 * escaped in one pass exactly as cJSON would escape it (and held to the limit on the
                 * way), instead of being measured here and then scanned twice more by cJSON. */
                r = enc == ENCODING_UTF8 ? fs_json_quote(data, size, limit, &encoded, NULL)
                                         : base64_encode_quoted(data, size, &encoded, NULL);
                if (r == -EFBIG)
                        return reply_too_large(call, path, size, limit);
                if (r < 0)
                        return bus_call_error_oom(call);
                free(TAKE_PTR(data));
                content = json_create_raw_reference(encoded);
        } else if (enc == ENCODING_UTF8) {
                /* Callers inside the worker read the content as a string. */
                if (fs_json_string_size(data, size) > limit)
                        return reply_too_large(call, path, size, limit);
                content = cJSON_CreateStringReference(data);
        } else {
                r = base64_encode(data, size, &encoded, NULL);
                if (r < 0)
                        return bus_call_error_oom(call);
                content = cJSON_CreateStringReference(encoded);
        }

        /* The content is referenced, not copied: it is printed, or read by the caller, before this
         * function returns. */
        result = result_with_path("path", path);
        if (!result || !content || !cJSON_AddItemToObject(result, "content", content)) {
                cJSON_Delete(content);
                return bus_call_error_oom(call);
        }
        /* What add_stat() adds, with the integers written as such instead of formatted by cJSON as
         * doubles: every file a client opens comes through here. In-process callers get size and mtime
         * as raw JSON text (json_create_integer()). */
        fs_tag_format(&st, tag);
        if (!cJSON_AddStringToObject(result, "encoding", enc == ENCODING_UTF8 ? "utf-8" : "base64") ||
            !add_integer(result, "size", (int64_t)size) || !add_integer(result, "mtime", fs_mtime_ms(&st)) ||
            !cJSON_AddStringToObject(result, "tag", tag))
                return bus_call_error_oom(call);
        bus_call_reply(call, TAKE_PTR(result));
        return 0;
}

static int reply_conflict(BusCall *call, const char *path, const struct stat *st)
{
        cJSON *data = cJSON_CreateObject();
        char tag[FS_TAG_MAX];

        if (st)
                fs_tag_format(st, tag);
        if (data &&
            (!cJSON_AddStringToObject(data, "path", path) ||
             !(st ? cJSON_AddStringToObject(data, "tag", tag) : cJSON_AddNullToObject(data, "tag")))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_CONFLICT, st ? "Changed on disk" : "Removed from disk", data);
        return -ESTALE;
}

/* Where an earlier save in this directory was cut short, its temporary file goes: once per directory
 * and worker. */
static void clean_directory(Fs *fs, int dir_fd, const char *path)
{
        struct stat st;
        int r;

        if (fstat(dir_fd, &st) < 0)
                return;
        for (size_t i = 0; i < CLEANED_DIRS_MAX; i++)
                if (fs->cleaned[i].dev == st.st_dev && fs->cleaned[i].ino == st.st_ino)
                        return;
        r = fs_remove_stale_temps(dir_fd, &fs->started);
        if (r < 0) {
                log_debug_errno(r, "Cannot look for leftover temporary files beside %s, ignoring: %m", path);
                return;
        }
        fs->cleaned[fs->cleaned_next].dev = st.st_dev;
        fs->cleaned[fs->cleaned_next].ino = st.st_ino;
        fs->cleaned_next = (fs->cleaned_next + 1) % CLEANED_DIRS_MAX;
}

static int method_write_file(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL, *content_arg = NULL, *encoding_arg = NULL, *expected = NULL;
        const JsonField fields[] = {
                {"path", JSON_FIELD_STRING, true, &path_arg},
                {"content", JSON_FIELD_STRING, true, &content_arg},
                {"encoding", JSON_FIELD_STRING, false, &encoding_arg},
                {"expectedTag", JSON_FIELD_STRING, false, &expected},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *decoded = NULL;
        const void *data;
        size_t size;
        Encoding enc;
        struct stat st, nst;
        bool exists;
        cJSON *result;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            parse_encoding(call, encoding_arg, &enc) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        if (enc == ENCODING_BASE64) {
                r = base64_decode(content_arg, strlen(content_arg), &decoded, &size);
                if (r == -ENOMEM)
                        return bus_call_error_oom(call);
                if (r < 0)
                        return bus_call_error_invalid(call, "'content' is not valid base64", path);
                data = decoded;
        } else {
                /* Clients cannot send anything else, but requests from inside the worker are checked too. */
                size = strlen(content_arg);
                if (!utf8_is_valid(content_arg, size))
                        return bus_call_error_invalid(call, "'content' is not valid UTF-8", path);
                data = content_arg;
        }

        /* Through a symlink to what it points to, as long as that is inside the workspace. */
        r = fs_chase(fs->roots, path, 0, &loc);
        if (r < 0)
                return reply_errno(call, r, path);
        if (loc.is_root)
                return reply_errno(call, -EISDIR, path);
        r = fs_location_stat(&loc, &st);
        if (r < 0 && r != -ENOENT)
                return reply_errno(call, r, path);
        exists = r >= 0;
        if (exists && S_ISDIR(st.st_mode))
                return reply_errno(call, -EISDIR, path);
        if (exists && !S_ISREG(st.st_mode))
                return reply_error(call, RPC_WRONG_TYPE, "Not a regular file", EINVAL, path);

        /* Replacing by rename needs only the directory's permission; a file its owner made read-only
         * is refused, as a write from the shell would be. */
        if (exists && faccessat(loc.dir_fd, loc.name, W_OK, AT_EACCESS) < 0)
                return reply_errno(call, negative_errno(), path);

        if (expected) {
                char tag[FS_TAG_MAX];

                if (!exists)
                        return reply_conflict(call, path, NULL);
                fs_tag_format(&st, tag);
                if (!streq(tag, expected))
                        return reply_conflict(call, path, &st);
        }

        r = fs_write_atomic(loc.dir_fd, loc.name, data, size, exists ? &st : NULL, &nst);
        if (r < 0)
                return reply_errno(call, r, path);
        clean_directory(fs, loc.dir_fd, path);
        own_record(fs, loc.path, OWN_ENTRY, &nst, false);

        result = result_with_path("path", path);
        if (!result || !add_stat(result, &nst, true)) {
                cJSON_Delete(result);
                return bus_call_error_oom(call);
        }
        bus_call_reply(call, result);
        return 0;
}

static int method_stat(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL;
        const JsonField fields[] = {
                {"path", JSON_FIELD_STRING, true, &path_arg},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ cJSON *result = NULL;
        struct stat st;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        r = fs_chase(fs->roots, path, FS_CHASE_NOFOLLOW, &loc);
        if (r >= 0)
                r = fs_location_stat(&loc, &st);
        if (r < 0)
                return reply_errno(call, r, path);

        result = result_with_path("path", path);
        if (!result || !cJSON_AddStringToObject(result, "type", fs_type_name(st.st_mode)) ||
            !add_stat(result, &st, true) || !cJSON_AddNumberToObject(result, "mode", st.st_mode & 07777))
                return bus_call_error_oom(call);

        if (S_ISLNK(st.st_mode)) {
                _cleanup_(fs_location_done) FsLocation target = FS_LOCATION_NULL;
                struct stat tst;

                /* What the link leads to, if that is inside the workspace and exists. */
                if (fs_chase(fs->roots, path, 0, &target) >= 0 && fs_location_stat(&target, &tst) >= 0 &&
                    !cJSON_AddStringToObject(result, "target", fs_type_name(tst.st_mode)))
                        return bus_call_error_oom(call);
        }
        bus_call_reply(call, TAKE_PTR(result));
        return 0;
}

static int method_list_directory(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL;
        const JsonField fields[] = {
                {"path", JSON_FIELD_STRING, true, &path_arg},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_(fs_listing_done) FsListing listing = {};
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ cJSON *result = NULL;
        cJSON *entries;
        size_t budget, used = 0;
        bool truncated;
        int fd, r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        r = fs_chase(fs->roots, path, 0, &loc);
        if (r < 0)
                return reply_errno(call, r, path);
        fd = fs_location_open(&loc, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return reply_errno(call, fd, path);
        r = fs_list_directory(fd, LIST_MAX_ENTRIES, &fs->started, &listing);
        if (r < 0)
                return reply_errno(call, r, path);

        result = result_with_path("path", path);
        entries = result ? cJSON_AddArrayToObject(result, "entries") : NULL;
        if (!entries)
                return bus_call_error_oom(call);
        /* The answer must fit in one message: stop (and say so) before it would not. */
        budget = content_budget(fs, path);
        truncated = listing.truncated;
        for (size_t i = 0; i < listing.n; i++) {
                const FsEntry *e = &listing.entries[i];
                cJSON *o;

                used += fs_json_string_size(e->name, strlen(e->name)) + LIST_ENTRY_OVERHEAD;
                if (used > budget) {
                        truncated = true;
                        break;
                }
                o = cJSON_CreateObject();
                if (!o || !cJSON_AddItemToArray(entries, o)) {
                        cJSON_Delete(o);
                        return bus_call_error_oom(call);
                }
                if (!cJSON_AddStringToObject(o, "name", e->name) ||
                    !cJSON_AddStringToObject(o, "type", fs_type_name(e->mode)) ||
                    !cJSON_AddNumberToObject(o, "size", (double)e->size) ||
                    !cJSON_AddNumberToObject(o, "mtime", (double)e->mtime_ms))
                        return bus_call_error_oom(call);
        }
        if ((truncated && !cJSON_AddTrueToObject(result, "truncated")) ||
            (listing.skipped > 0 && !cJSON_AddNumberToObject(result, "skipped", (double)listing.skipped)))
                return bus_call_error_oom(call);
        bus_call_reply(call, TAKE_PTR(result));
        return 0;
}

static int method_create_directory(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL;
        bool recursive = false;
        const JsonField fields[] = {
                {"path", JSON_FIELD_STRING, true, &path_arg},
                {"recursive", JSON_FIELD_BOOL, false, &recursive},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL;
        struct stat st;
        cJSON *result;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        if (recursive) {
                /* Like mkdir -p: every missing directory on the way, and fine if it is one already. */
                r = fs_chase(fs->roots, path, FS_CHASE_MKDIR, &loc);
                if (r >= 0)
                        r = fs_location_stat(&loc, &st);
                if (r >= 0 && !S_ISDIR(st.st_mode))
                        r = -EEXIST;
                if (r < 0)
                        return reply_errno(call, r, path);
                /* The created directories are the last n_created components of the physical path. */
                for (unsigned i = 0; i < loc.n_created; i++) {
                        _cleanup_free_ char *p = strdup(loc.path);
                        if (!p)
                                break;
                        for (unsigned k = 0; k < i; k++)
                                *strrchr(p, '/') = '\0';
                        own_record_current(fs, p);
                }
        } else {
                r = fs_chase(fs->roots, path, FS_CHASE_NOFOLLOW, &loc);
                if (r >= 0 && loc.is_root)
                        r = -EEXIST;
                if (r >= 0 && mkdirat(loc.dir_fd, loc.name, 0777) < 0)
                        r = negative_errno();
                if (r < 0)
                        return reply_errno(call, r, path);
                own_record_current(fs, loc.path);
        }

        result = result_with_path("path", path);
        if (!result)
                return bus_call_error_oom(call);
        bus_call_reply(call, result);
        return 0;
}

static int method_rename(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *from_arg = NULL, *to_arg = NULL;
        bool overwrite = false;
        const JsonField fields[] = {
                {"from", JSON_FIELD_STRING, true, &from_arg},
                {"to", JSON_FIELD_STRING, true, &to_arg},
                {"overwrite", JSON_FIELD_BOOL, false, &overwrite},
        };
        _cleanup_(fs_location_done) FsLocation f = FS_LOCATION_NULL, t = FS_LOCATION_NULL;
        _cleanup_free_ char *from = NULL, *to = NULL;
        struct stat st;
        cJSON *result;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            path_param(fs, call, "from", from_arg, &from) < 0 || path_param(fs, call, "to", to_arg, &to) < 0)
                return -EINVAL;

        /* Both names themselves are renamed/replaced, not what a symlink there points to. */
        r = fs_chase(fs->roots, from, FS_CHASE_NOFOLLOW, &f);
        if (r < 0)
                return reply_errno(call, r, from);
        r = fs_chase(fs->roots, to, FS_CHASE_NOFOLLOW, &t);
        if (r < 0)
                return reply_errno(call, r, to);
        if (f.is_root || t.is_root)
                return reply_error(call, RPC_PERMISSION_DENIED,
                                   "A workspace root cannot be renamed or replaced", EPERM,
                                   f.is_root ? from : to);
        r = fs_location_stat(&f, &st);
        if (r < 0)
                return reply_errno(call, r, from);
        if (!streq(f.path, t.path) && path_is_below_or_same(t.path, f.path))
                return bus_call_error_invalid(call, "a directory cannot be moved into itself", to);

        r = renameat2(f.dir_fd, f.name, t.dir_fd, t.name, overwrite ? 0 : RENAME_NOREPLACE);
        if (r < 0 && errno == EINVAL && !overwrite) {
                /* A file system without RENAME_NOREPLACE (some network ones): check, then rename. A file
                 * appearing in between is replaced; that window is the file system's. */
                struct stat tst;
                if (fstatat(t.dir_fd, t.name, &tst, AT_SYMLINK_NOFOLLOW) >= 0)
                        errno = EEXIST;
                else if (errno == ENOENT)
                        r = renameat(f.dir_fd, f.name, t.dir_fd, t.name);
        }
        if (r < 0) {
                r = negative_errno();
                switch (r) {
                case -EXDEV:
                        return reply_error(call, RPC_SERVER_ERROR, "Cannot move across file systems", EXDEV,
                                           to);
                case -EEXIST:
                case -ENOTEMPTY:
                case -EISDIR:
                case -ENOTDIR:
                        return reply_errno(call, r, to);
                default:
                        return reply_errno(call, r, from);
                }
        }
        own_record(fs, f.path, OWN_ABSENT, NULL, false);
        own_record_current(fs, t.path);

        result = result_with_path("from", from);
        if (!result || !cJSON_AddStringToObject(result, "to", to)) {
                cJSON_Delete(result);
                return bus_call_error_oom(call);
        }
        bus_call_reply(call, result);
        return 0;
}

static int method_delete(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL;
        bool recursive = false;
        const JsonField fields[] = {
                {"path", JSON_FIELD_STRING, true, &path_arg},
                {"recursive", JSON_FIELD_BOOL, false, &recursive},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL;
        struct stat st;
        cJSON *result;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        /* A symlink is removed itself, never what it points to. */
        r = fs_chase(fs->roots, path, FS_CHASE_NOFOLLOW, &loc);
        if (r >= 0 && loc.is_root)
                return reply_error(call, RPC_PERMISSION_DENIED, "A workspace root cannot be deleted", EPERM,
                                   path);
        if (r >= 0)
                r = fs_location_stat(&loc, &st);
        if (r < 0)
                return reply_errno(call, r, path);

        if (S_ISDIR(st.st_mode) && recursive)
                r = fs_remove_tree(loc.dir_fd, loc.name);
        else if (unlinkat(loc.dir_fd, loc.name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                /* Some file systems say EEXIST for a directory that is not empty. */
                r = errno == EEXIST ? -ENOTEMPTY : negative_errno();
        /* A tree removed only in part is not recorded: what went is news to whoever watches it. */
        if (r < 0)
                return reply_errno(call, r, path);
        own_record(fs, loc.path, OWN_ABSENT, NULL, S_ISDIR(st.st_mode));

        result = result_with_path("path", path);
        if (!result)
                return bus_call_error_oom(call);
        bus_call_reply(call, result);
        return 0;
}

/* --- Service ----------------------------------------------------------------------------------- */

static void on_method(BusCall *call, const cJSON *params, void *userdata)
{
        FsMethod *m = userdata;

        /* Every path through a method answers the call; the value only says how. */
        (void)m->fn(m->fs, call, params);
}

static void fs_free(void *userdata)
{
        Fs *fs = userdata;

        if (!fs)
                return;
        for (size_t i = 0; i < OWN_CHANGE_MAX; i++)
                free(fs->own[i].path);
        fs_roots_free(fs->roots);
        free(fs->base);
        free(fs);
}

static void fs_stop(void *userdata)
{
        Fs *fs = userdata;

        bus_unsubscribe(fs->bus, EVENT_PROJECT_LOADED, on_project_loaded, fs);
        /* The watch owns handles; the service goes with its last close callback. */
        if (fs->watch)
                fs_watch_close(TAKE_PTR(fs->watch), fs_free, fs);
        else
                fs_free(fs);
}

static int fs_start(const ServiceContext *ctx, void **ret)
{
        static const struct {
                const char *topic;
                int (*fn)(Fs *fs, BusCall *call, const cJSON *params);
        } methods[FS_N_METHODS] = {
                {"fs:read_file", method_read_file},
                {"fs:write_file", method_write_file},
                {"fs:stat", method_stat},
                {"fs:list_directory", method_list_directory},
                {"fs:create_directory", method_create_directory},
                {"fs:rename", method_rename},
                {"fs:delete", method_delete},
        };
        Fs *fs;
        int r;

        assert(ctx && ret);
        fs = calloc(1, sizeof(Fs));
        if (!fs)
                return log_oom();
        fs->loop = ctx->loop;
        fs->bus = ctx->bus;
        fs->config = ctx->config;
        /* The clock file times come from: a file this worker writes is never dated before it. */
        (void)clock_gettime(CLOCK_REALTIME_COARSE, &fs->started);

        r = fs_roots_new(ctx->config->roots, ctx->config->n_roots, &fs->roots);
        if (r < 0) {
                fs_free(fs);
                return log_error_errno(r, "Failed to open the workspace roots: %m");
        }
        fs->base = strdup(ctx->config->roots[0]);
        if (!fs->base) {
                fs_free(fs);
                return log_oom();
        }
        r = fs_watch_new(ctx->loop, fs->roots, ctx->config, &watch_ops, fs, &fs->watch);
        if (r < 0) {
                fs_free(fs);
                return log_error_errno(r, "Failed to set up inotify: %m");
        }

        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                fs->methods[i] = (FsMethod){fs, methods[i].fn};
                r = bus_serve(ctx->bus, methods[i].topic, on_method, &fs->methods[i]);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = bus_subscribe(ctx->bus, EVENT_PROJECT_LOADED, on_project_loaded, fs);
        if (r < 0) {
                /* The server stops on this error and accepts no client, so the topics served so far are
                 * never called. */
                fs_stop(fs);
                return log_error_errno(r, "Failed to register the fs methods: %m");
        }
        *ret = fs;
        return 0;
}

const ServiceType fs_service_type = {
        .name = "fs",
        .start = fs_start,
        .stop = fs_stop,
};
