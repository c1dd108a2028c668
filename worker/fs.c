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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
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

/* fs requests waiting for the disk job before them (or running), and the file content they hold: a
 * client that sends saves faster than the disk takes them is refused, not buffered without end. */
#define JOBS_MAX                    64u
#define JOBS_MAX_BYTES(max_message) (4u * (max_message))

/* Files up to this size are read on the loop: a trip to the thread pool would cost more. */
#define READ_INLINE_MAX (64u * 1024u)

/* Entries fs:list_directory returns at most. */
#define LIST_MAX_ENTRIES 100000u
/* Upper bound of the JSON for one listed entry besides its name. */
#define LIST_ENTRY_OVERHEAD 96u
/* Bytes of a response that are not content: envelope, id, the other members. */
#define RESPONSE_RESERVE 1024u

/* How long the worker's own change is remembered: its inotify echo arrives within milliseconds. */
#define OWN_CHANGE_TTL_MS 5000u
#define OWN_CHANGE_MAX    1024u
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
        struct timespec started; /* temporary files written before this are leftovers */
        struct {
                dev_t dev;
                ino_t ino;
        } cleaned[CLEANED_DIRS_MAX]; /* a ring of directories looked through for leftovers */
        size_t cleaned_next;
        OwnChange own[OWN_CHANGE_MAX]; /* a ring: the oldest is overwritten first */
        size_t own_next;
        FsMethod methods[FS_N_METHODS];
        /* Saves and recursive deletes run on libuv's thread pool, one at a time and in order, so that
         * a save's check of expectedTag and its write are one step against every other change. */
        struct DiskJob *jobs, *jobs_tail; /* the running job first, then those waiting */
        bool stopped;                     /* freed once the running job has finished */
        bool replaying;                   /* a request that waited for its turn is being handled */
        unsigned n_jobs;                  /* queued or running */
        size_t jobs_bytes;                /* content they hold */
        bool watch_closed;
};

typedef enum Encoding {
        ENCODING_AUTO, /* read: UTF-8 text if it can be, else base64 */
        ENCODING_TEXT, /* read: as ENCODING_AUTO, but text in an 8-bit encoding is text too */
        ENCODING_UTF8,
        ENCODING_BASE64,
        ENCODING_LATIN1, /* text, decoded from and encoded to ISO-8859-1 */
        ENCODING_CP1252, /* text, decoded from and encoded to Windows-1252 */
} Encoding;

static Charset encoding_charset(Encoding e)
{
        return e == ENCODING_LATIN1 ? CHARSET_LATIN1 : e == ENCODING_CP1252 ? CHARSET_CP1252 : CHARSET_UTF8;
}

static const char *encoding_name(Encoding e)
{
        return e == ENCODING_BASE64 ? "base64" : charset_to_string(encoding_charset(e));
}

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

static int parse_encoding(BusCall *call, const char *s, bool reading, Encoding *ret)
{
        if (!s)
                *ret = reading ? ENCODING_AUTO : ENCODING_UTF8;
        else if (streq(s, "utf-8"))
                *ret = ENCODING_UTF8;
        else if (streq(s, "base64"))
                *ret = ENCODING_BASE64;
        else if (streq(s, "iso-8859-1"))
                *ret = ENCODING_LATIN1;
        else if (streq(s, "windows-1252"))
                *ret = ENCODING_CP1252;
        else if (reading && streq(s, "text"))
                *ret = ENCODING_TEXT;
        else
                return bus_call_error_invalid(call,
                                              reading ? "'encoding' must be \"utf-8\", \"base64\", "
                                                        "\"iso-8859-1\", \"windows-1252\" or \"text\""
                                                      : "'encoding' must be \"utf-8\", \"base64\", "
                                                        "\"iso-8859-1\" or \"windows-1252\"",
                                              NULL);
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

static bool being_changed(const Fs *fs, const char *path);

static void on_change(FsChangeKind kind, const char *path, const char *old_path, void *userdata)
{
        Fs *fs = userdata;
        bool own;
        cJSON *p;

        /* The worker's own change: remembered, or made by the job still running on the thread pool (it
         * is remembered when done). Both halves of a move are checked, so a stale memory of either is
         * dropped. */
        own = kind == FS_CHANGE_MOVED ? being_changed(fs, old_path) || own_matches(fs, old_path) : true;
        if ((being_changed(fs, path) || own_matches(fs, path)) && own)
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

/* Tell the other services (the workspace's open buffers) of a name this service renamed or removed. */
static void publish_deleted(Fs *fs, const char *path)
{
        cJSON *p = result_with_path("path", path);

        if (!p) {
                log_oom();
                return;
        }
        bus_publish(fs->bus, EVENT_FS_DELETED, p, BUS_INTERNAL, 0);
}

static void publish_renamed(Fs *fs, const char *from, const char *to, const char *old_tag,
                            const char *new_tag)
{
        cJSON *p = result_with_path("from", from);

        if (!p || !cJSON_AddStringToObject(p, "to", to) ||
            (*old_tag && (!cJSON_AddStringToObject(p, "oldTag", old_tag) ||
                          !cJSON_AddStringToObject(p, "tag", new_tag)))) {
                cJSON_Delete(p);
                log_oom();
                return;
        }
        bus_publish(fs->bus, EVENT_FS_RENAMED, p, BUS_INTERNAL, 0);
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

typedef enum ReadErrorKind {
        READ_ERRNO,
        READ_TOO_LARGE,
        READ_INVALID,
} ReadErrorKind;

typedef struct ReadError {
        ReadErrorKind kind;
        int r;              /* READ_ERRNO */
        uint64_t size;      /* READ_TOO_LARGE */
        const char *reason; /* READ_INVALID: static text */
} ReadError;

static int read_error(ReadError *err, ReadErrorKind kind, int r, uint64_t size, const char *reason)
{
        *err = (ReadError){kind, r, size, reason};
        return -EIO;
}

static int reply_read_error(BusCall *call, const char *path, const ReadError *err, size_t limit)
{
        switch (err->kind) {
        case READ_TOO_LARGE:
                return reply_too_large(call, path, err->size, limit);
        case READ_INVALID:
                return bus_call_error_invalid(call, err->reason, path);
        default:
                return err->r == -ENOMEM ? bus_call_error_oom(call) : reply_errno(call, err->r, path);
        }
}

/* The answer to fs:read_file for the open regular file fd: touches nothing but its arguments, so that
 * it can run on the thread pool. On failure, err says how to answer. */
static int read_answer(int fd, const struct stat *st, Encoding enc, size_t limit, const char *path,
                       ReadError *err, cJSON **ret)
{
        _cleanup_free_ char *data = NULL, *encoded = NULL;
        _cleanup_json_ cJSON *result = NULL;
        char tag[FS_TAG_MAX];
        size_t size, text_size;
        cJSON *content;
        int r;

        r = fs_read_bounded_size(fd, (uint64_t)st->st_size, enc == ENCODING_BASE64 ? limit / 4 * 3 : limit,
                                 &data, &size);
        if (r == -EFBIG)
                return read_error(err, READ_TOO_LARGE, 0, MAX((uint64_t)st->st_size, (uint64_t)limit + 1),
                                  NULL);
        if (r < 0)
                return read_error(err, READ_ERRNO, r, 0, NULL);

        if (enc == ENCODING_AUTO)
                enc = fs_text_is_json_safe(data, size) ? ENCODING_UTF8 : ENCODING_BASE64;
        else if (enc == ENCODING_TEXT) {
                Charset c =
                    fs_text_is_json_safe(data, size) ? CHARSET_UTF8 : charset_detect_legacy(data, size);
                enc = c == CHARSET_UTF8     ? ENCODING_UTF8
                      : c == CHARSET_LATIN1 ? ENCODING_LATIN1
                      : c == CHARSET_CP1252 ? ENCODING_CP1252
                                            : ENCODING_BASE64;
        } else if (enc == ENCODING_LATIN1 || enc == ENCODING_CP1252) {
                if (memchr(data, 0, size))
                        return read_error(err, READ_INVALID, 0, 0,
                                          "the file contains NUL bytes, which a JSON string cannot "
                                          "carry here; read it as base64");
        } else if (enc == ENCODING_UTF8) {
                if (!utf8_is_valid(data, size))
                        return read_error(err, READ_INVALID, 0, 0,
                                          "the file is not valid UTF-8; read it as base64");
                if (memchr(data, 0, size))
                        return read_error(err, READ_INVALID, 0, 0,
                                          "the file contains NUL bytes, which a JSON string cannot "
                                          "carry here; read it as base64");
        }
        if (enc == ENCODING_BASE64 && base64_encoded_size(size) > limit)
                return read_error(err, READ_TOO_LARGE, 0, size, NULL);
        /* The text, decoded when the file is in an 8-bit encoding; size stays the file's. */
        text_size = size;
        /* One shape for every caller, in the worker or not: the content is a JSON string, which the
         * receiver owns; the buffer goes into the answer rather than being copied. */
        if (enc == ENCODING_LATIN1 || enc == ENCODING_CP1252) {
                Buf text = {};

                r = charset_decode_append(encoding_charset(enc), data, size, &text);
                if (r < 0) {
                        buf_done(&text);
                        return r == -EINVAL ? read_error(err, READ_INVALID, 0, 0,
                                                         "the file has a byte Windows-1252 does not "
                                                         "define; read it as base64")
                                            : read_error(err, READ_ERRNO, r, 0, NULL);
                }
                free(data);
                data = buf_steal(&text, &text_size);
        }
        if (enc != ENCODING_BASE64) {
                if (fs_json_string_size(data, text_size) > limit)
                        return read_error(err, READ_TOO_LARGE, 0, size, NULL);
                content = json_create_string_take(TAKE_PTR(data));
        } else {
                r = base64_encode(data, size, &encoded, NULL);
                if (r < 0)
                        return read_error(err, READ_ERRNO, -ENOMEM, 0, NULL);
                content = json_create_string_take(TAKE_PTR(encoded));
        }

        result = result_with_path("path", path);
        if (!result || !content || !cJSON_AddItemToObject(result, "content", content)) {
                cJSON_Delete(content);
                return read_error(err, READ_ERRNO, -ENOMEM, 0, NULL);
        }
        /* Numbers, for every caller: in-process ones read them as such too. */
        fs_tag_format(st, tag);
        if (!cJSON_AddStringToObject(result, "encoding", encoding_name(enc)) ||
            !cJSON_AddNumberToObject(result, "size", (double)size) ||
            !cJSON_AddNumberToObject(result, "mtime", (double)fs_mtime_ms(st)) ||
            !cJSON_AddStringToObject(result, "tag", tag))
                return read_error(err, READ_ERRNO, -ENOMEM, 0, NULL);
        *ret = TAKE_PTR(result);
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

/* -32602 for text with a character the file's encoding cannot hold: nothing was written. */
static int reply_unencodable(BusCall *call, const char *path, Charset charset, const CharsetBadChar *bad)
{
        cJSON *data = cJSON_CreateObject();
        char message[160], code_point[16];

        (void)snprintf(code_point, sizeof(code_point), "U+%04" PRIX32, bad->code_point);
        (void)snprintf(message, sizeof(message),
                       "The text has a character %s cannot hold (%s at offset %zu); nothing was written",
                       charset_to_string(charset), code_point, bad->offset);
        if (data && (!cJSON_AddStringToObject(data, "reason", "unencodable") ||
                     !cJSON_AddStringToObject(data, "path", path) ||
                     !cJSON_AddStringToObject(data, "encoding", charset_to_string(charset)) ||
                     !cJSON_AddStringToObject(data, "codePoint", code_point) ||
                     !cJSON_AddNumberToObject(data, "offset", (double)bad->offset))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_INVALID_PARAMS, message, data);
        return -EILSEQ;
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

/* A save or a recursive delete, from the loop to the thread pool and back. The work function touches
 * nothing but this. */
typedef struct DiskJob {
        uv_work_t work;
        Fs *fs;
        BusCall *call;
        bool remove_tree; /* a delete of (dir_fd, name) and everything below it */
        bool read;        /* fs:read_file of fd */
        /* A request that came while jobs were queued: it is handled, on the loop, when its turn comes,
         * so that every fs request sees the disk as the requests before it left it. */
        const FsMethod *method;
        cJSON *params;
        size_t bytes; /* content held, counted in the service's bound */
        bool counted; /* in n_jobs and jobs_bytes */
        int fd;
        Encoding enc;
        size_t limit;
        cJSON *result; /* read: the answer */
        ReadError read_error;
        char *path;     /* as the client named it (normalized) */
        char *physical; /* where it is, for own_record() */
        int dir_fd;     /* the job's own */
        char *name;
        char *data;
        size_t size;
        bool check_utf8;
        Charset charset;    /* what data is written in: encoded from UTF-8 on the thread pool */
        CharsetBadChar bad; /* JOB_UNENCODABLE */
        char *expected;     /* expectedTag, or NULL */
        /* Outcome, written by the work function. */
        int r;
        enum {
                JOB_DONE,
                JOB_ERRNO,
                JOB_INVALID_UTF8,
                JOB_UNENCODABLE,
                JOB_WRONG_TYPE,
                JOB_CONFLICT,
                JOB_GONE,
                JOB_READ_FAILED,
        } outcome;
        struct stat st; /* before (JOB_CONFLICT), after (JOB_DONE) */
        struct DiskJob *next;
} DiskJob;

static void disk_job_free(DiskJob *j)
{
        if (!j)
                return;
        if (j->call)
                bus_call_error(TAKE_PTR(j->call), RPC_INTERNAL_ERROR, "The worker is shutting down", NULL);
        if (j->counted) {
                j->fs->n_jobs--;
                j->fs->jobs_bytes -= j->bytes;
        }
        free(j->path);
        free(j->physical);
        safe_close(j->dir_fd);
        safe_close(j->fd);
        cJSON_Delete(j->result);
        cJSON_Delete(j->params);
        free(j->name);
        free(j->data);
        free(j->expected);
        free(j);
}

static void disk_job_work(uv_work_t *w)
{
        DiskJob *j = container_of(w, DiskJob, work);
        struct stat st;
        bool exists;
        int r;

        if (j->read) {
                j->r = read_answer(j->fd, &j->st, j->enc, j->limit, j->path, &j->read_error, &j->result);
                j->outcome = j->r < 0 ? JOB_READ_FAILED : JOB_DONE;
                return;
        }
        if (j->remove_tree) {
                j->r = fs_remove_tree(j->dir_fd, j->name);
                j->outcome = j->r < 0 ? JOB_ERRNO : JOB_DONE;
                return;
        }
        if (j->check_utf8 && !utf8_is_valid(j->data, j->size)) {
                j->outcome = JOB_INVALID_UTF8;
                return;
        }
        if (j->charset != CHARSET_UTF8) {
                Buf bytes = {};

                r = charset_encode_append(j->charset, j->data, j->size, &bytes, &j->bad);
                if (r < 0) {
                        buf_done(&bytes);
                        j->outcome = r == -EILSEQ ? JOB_UNENCODABLE : JOB_ERRNO, j->r = r;
                        return;
                }
                free(j->data);
                j->data = buf_steal(&bytes, &j->size);
        }
        r = fstatat(j->dir_fd, j->name, &st, 0) < 0 ? negative_errno() : 0;
        if (r < 0 && r != -ENOENT) {
                j->outcome = JOB_ERRNO, j->r = r;
                return;
        }
        exists = r >= 0;
        if (exists && S_ISDIR(st.st_mode)) {
                j->outcome = JOB_ERRNO, j->r = -EISDIR;
                return;
        }
        if (exists && !S_ISREG(st.st_mode)) {
                j->outcome = JOB_WRONG_TYPE;
                return;
        }
        /* Replacing by rename needs only the directory's permission; a file its owner made read-only
         * is refused, as a write from the shell would be. */
        if (exists && faccessat(j->dir_fd, j->name, W_OK, AT_EACCESS) < 0) {
                j->outcome = JOB_ERRNO, j->r = negative_errno();
                return;
        }
        if (j->expected) {
                char tag[FS_TAG_MAX];

                if (!exists) {
                        j->outcome = JOB_GONE;
                        return;
                }
                fs_tag_format(&st, tag);
                if (!streq(tag, j->expected)) {
                        j->outcome = JOB_CONFLICT, j->st = st;
                        return;
                }
        }
        r = fs_write_atomic(j->dir_fd, j->name, j->data, j->size, exists ? &st : NULL, &j->st);
        j->outcome = r < 0 ? JOB_ERRNO : JOB_DONE;
        j->r = r;
}

static void disk_job_next(Fs *fs);
static void fs_free(void *userdata);

static bool being_changed(const Fs *fs, const char *path)
{
        /* Only the first job runs; those after it have not touched the disk yet. */
        if (!fs->jobs || fs->jobs->read)
                return false;
        return fs->jobs->remove_tree ? path_is_below_or_same(path, fs->jobs->physical)
                                     : streq(fs->jobs->physical, path);
}

static void disk_job_after(uv_work_t *w, int status)
{
        DiskJob *j = container_of(w, DiskJob, work);
        Fs *fs = j->fs;
        BusCall *call = TAKE_PTR(j->call);
        cJSON *result;

        assert(fs->jobs == j);
        fs->jobs = j->next;
        if (!fs->jobs)
                fs->jobs_tail = NULL;

        if (fs->stopped)
                bus_call_error(call, RPC_INTERNAL_ERROR, "The worker is shutting down", NULL);
        else if (status < 0)
                bus_call_error_errno(call, status, j->path);
        else
                switch (j->outcome) {
                case JOB_DONE:
                        if (j->read) {
                                bus_call_reply(call, TAKE_PTR(j->result));
                                break;
                        }
                        if (j->remove_tree) {
                                own_record(fs, j->physical, OWN_ABSENT, NULL, true);
                                result = result_with_path("path", j->path);
                                if (result)
                                        bus_call_reply(call, result);
                                else
                                        (void)bus_call_error_oom(call);
                                publish_deleted(fs, j->path);
                                break;
                        }
                        clean_directory(fs, j->dir_fd, j->path);
                        own_record(fs, j->physical, OWN_ENTRY, &j->st, false);
                        result = result_with_path("path", j->path);
                        if (!result || !add_stat(result, &j->st, true)) {
                                cJSON_Delete(result);
                                (void)bus_call_error_oom(call);
                        } else
                                bus_call_reply(call, result);
                        break;
                case JOB_ERRNO:
                        (void)reply_errno(call, j->r, j->path);
                        break;
                case JOB_INVALID_UTF8:
                        (void)bus_call_error_invalid(call, "'content' is not valid UTF-8", j->path);
                        break;
                case JOB_UNENCODABLE:
                        (void)reply_unencodable(call, j->path, j->charset, &j->bad);
                        break;
                case JOB_WRONG_TYPE:
                        (void)reply_error(call, RPC_WRONG_TYPE, "Not a regular file", EINVAL, j->path);
                        break;
                case JOB_CONFLICT:
                        (void)reply_conflict(call, j->path, &j->st);
                        break;
                case JOB_GONE:
                        (void)reply_conflict(call, j->path, NULL);
                        break;
                case JOB_READ_FAILED:
                        (void)reply_read_error(call, j->path, &j->read_error, j->limit);
                        break;
                }
        disk_job_free(j);
        if (fs->stopped) {
                /* What waits never starts; the service goes once its watch has closed too. */
                while (fs->jobs) {
                        DiskJob *next = fs->jobs->next;
                        disk_job_free(fs->jobs);
                        fs->jobs = next;
                }
                fs->jobs_tail = NULL;
                if (fs->watch_closed)
                        fs_free(fs);
                return;
        }
        disk_job_next(fs);
}

static void disk_job_next(Fs *fs)
{
        int r;

        while (fs->jobs) {
                DiskJob *j = fs->jobs;

                if (j->method) {
                        /* A job this request starts goes first, before those behind it. */
                        fs->jobs = j->next;
                        if (!fs->jobs)
                                fs->jobs_tail = NULL;
                        fs->replaying = true;
                        (void)j->method->fn(fs, TAKE_PTR(j->call), j->params);
                        fs->replaying = false;
                        disk_job_free(j);
                        continue;
                }
                r = uv_queue_work(fs->loop, &j->work, disk_job_work, disk_job_after);
                if (r >= 0)
                        return;
                fs->jobs = j->next;
                if (!fs->jobs)
                        fs->jobs_tail = NULL;
                bus_call_error_errno(TAKE_PTR(j->call), r, j->path);
                disk_job_free(j);
        }
}

/* Queue j, which answers call, behind the jobs already running or waiting. */
static void disk_job_start(Fs *fs, DiskJob *j, BusCall *call)
{
        bool idle = !fs->jobs;

        if (!fs->replaying && (fs->n_jobs >= JOBS_MAX ||
                               fs->jobs_bytes + j->bytes > JOBS_MAX_BYTES(fs->config->max_message))) {
                bus_call_error(call, RPC_SERVER_ERROR, "Too many file operations waiting", NULL);
                disk_job_free(j);
                return;
        }
        j->call = call;
        j->counted = true;
        fs->n_jobs++;
        fs->jobs_bytes += j->bytes;
        if (fs->replaying) {
                /* Started by a request whose turn it is: ahead of those that came after it. */
                j->next = fs->jobs;
                fs->jobs = j;
                if (!fs->jobs_tail)
                        fs->jobs_tail = j;
                return;
        }
        if (fs->jobs_tail)
                fs->jobs_tail->next = j;
        else
                fs->jobs = j;
        fs->jobs_tail = j;
        if (idle)
                disk_job_next(fs);
}

/* A job for (loc's directory, loc's name), named path by the client; NULL without memory or fds. */
static DiskJob *disk_job_new(Fs *fs, const FsLocation *loc, const char *path, int *ret_error)
{
        DiskJob *j = calloc(1, sizeof(DiskJob));

        *ret_error = -ENOMEM;
        if (!j)
                return NULL;
        j->fs = fs;
        j->fd = -1;
        /* The job's own fd: the location's may be a root's, closed when the service stops. */
        j->dir_fd = fcntl(loc->dir_fd, F_DUPFD_CLOEXEC, 3);
        if (j->dir_fd < 0) {
                *ret_error = negative_errno();
                disk_job_free(j);
                return NULL;
        }
        j->path = strdup(path);
        j->physical = strdup(loc->path);
        j->name = strdup(loc->name);
        if (!j->path || !j->physical || !j->name) {
                disk_job_free(j);
                return NULL;
        }
        return j;
}

static int method_read_file(Fs *fs, BusCall *call, const cJSON *params)
{
        const char *path_arg = NULL, *encoding_arg = NULL;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path_arg},
            {"encoding", JSON_FIELD_STRING, false, &encoding_arg},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_json_ cJSON *result = NULL;
        ReadError err;
        Encoding enc;
        struct stat st;
        size_t limit;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            parse_encoding(call, encoding_arg, true, &enc) < 0 ||
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

        /* Small files are read at once; larger ones on the thread pool, like saves. */
        if ((uint64_t)st.st_size > READ_INLINE_MAX) {
                DiskJob *j = disk_job_new(fs, &loc, path, &r);
                if (!j)
                        return r == -ENOMEM ? bus_call_error_oom(call) : reply_errno(call, r, path);
                j->read = true;
                j->fd = TAKE_FD(fd);
                j->st = st;
                j->enc = enc;
                j->limit = limit;
                disk_job_start(fs, j, call);
                return 0;
        }
        r = read_answer(fd, &st, enc, limit, path, &err, &result);
        if (r < 0)
                return reply_read_error(call, path, &err, limit);
        bus_call_reply(call, TAKE_PTR(result));
        return 0;
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
        DiskJob *j;
        Encoding enc;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0 ||
            parse_encoding(call, encoding_arg, false, &enc) < 0 ||
            path_param(fs, call, "path", path_arg, &path) < 0)
                return -EINVAL;

        /* Through a symlink to what it points to, as long as that is inside the workspace. */
        r = fs_chase(fs->roots, path, 0, &loc);
        if (r < 0)
                return reply_errno(call, r, path);
        if (loc.is_root)
                return reply_errno(call, -EISDIR, path);

        j = disk_job_new(fs, &loc, path, &r);
        if (!j)
                return r == -ENOMEM ? bus_call_error_oom(call) : reply_errno(call, r, path);
        j->expected = expected ? strdup(expected) : NULL;
        if (expected && !j->expected) {
                disk_job_free(j);
                return bus_call_error_oom(call);
        }
        if (enc == ENCODING_BASE64) {
                r = base64_decode(content_arg, strlen(content_arg), (uint8_t **)&j->data, &j->size);
                if (r < 0) {
                        disk_job_free(j);
                        if (r == -ENOMEM)
                                return bus_call_error_oom(call);
                        return bus_call_error_invalid(call, "'content' is not valid base64", path);
                }
        } else {
                /* Clients cannot send anything else, but requests from inside the worker are checked
                 * too (on the thread pool, with the write). */
                j->size = strlen(content_arg);
                j->data = malloc(MAX(j->size, (size_t)1));
                j->check_utf8 = true;
                j->charset = encoding_charset(enc);
                if (j->data)
                        memcpy(j->data, content_arg, j->size);
                else {
                        disk_job_free(j);
                        return bus_call_error_oom(call);
                }
        }
        j->bytes = j->size;
        disk_job_start(fs, j, call);
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
        char old_tag[FS_TAG_MAX] = "", new_tag[FS_TAG_MAX] = "";
        struct stat st, after;
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
        /* A rename changes a file's ctime, and with it its tag: the buffer of a file that was not
         * changed otherwise takes the new one (oldTag says which it replaces). */
        if (S_ISREG(st.st_mode) && fstatat(t.dir_fd, t.name, &after, AT_SYMLINK_NOFOLLOW) >= 0 &&
            S_ISREG(after.st_mode) && after.st_ino == st.st_ino && after.st_dev == st.st_dev) {
                fs_tag_format(&st, old_tag);
                fs_tag_format(&after, new_tag);
        }

        result = result_with_path("from", from);
        if (!result || !cJSON_AddStringToObject(result, "to", to)) {
                cJSON_Delete(result);
                (void)bus_call_error_oom(call);
        } else
                bus_call_reply(call, result);
        publish_renamed(fs, from, to, old_tag, new_tag);
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

        if (S_ISDIR(st.st_mode) && recursive) {
                /* A tree can be large: removed on the thread pool. */
                DiskJob *j = disk_job_new(fs, &loc, path, &r);
                if (!j)
                        return r == -ENOMEM ? bus_call_error_oom(call) : reply_errno(call, r, path);
                j->remove_tree = true;
                disk_job_start(fs, j, call);
                return 0;
        }
        if (unlinkat(loc.dir_fd, loc.name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                /* Some file systems say EEXIST for a directory that is not empty. */
                r = errno == EEXIST ? -ENOTEMPTY : negative_errno();
        /* A tree removed only in part is not recorded: what went is news to whoever watches it. */
        if (r < 0)
                return reply_errno(call, r, path);
        own_record(fs, loc.path, OWN_ABSENT, NULL, S_ISDIR(st.st_mode));

        result = result_with_path("path", path);
        if (!result)
                (void)bus_call_error_oom(call);
        else
                bus_call_reply(call, result);
        publish_deleted(fs, path);
        return 0;
}

/* --- Service ----------------------------------------------------------------------------------- */

static void on_method(BusCall *call, const cJSON *params, void *userdata)
{
        FsMethod *m = userdata;
        Fs *fs = m->fs;
        const cJSON *content;
        DiskJob *j;

        if (fs->jobs) {
                /* Its turn comes after the jobs queued before it. */
                j = calloc(1, sizeof(DiskJob));
                if (!j) {
                        (void)bus_call_error_oom(call);
                        return;
                }
                j->fs = fs;
                j->fd = j->dir_fd = -1;
                j->method = m;
                j->params = params ? cJSON_Duplicate(params, true) : NULL;
                content = cJSON_GetObjectItemCaseSensitive(params, "content");
                j->bytes = cJSON_IsString(content) ? strlen(content->valuestring) : 0;
                if (params && !j->params) {
                        disk_job_free(j);
                        (void)bus_call_error_oom(call);
                        return;
                }
                disk_job_start(fs, j, call);
                return;
        }
        /* Every path through a method answers the call; the value only says how. */
        (void)m->fn(fs, call, params);
}

static void fs_free(void *userdata)
{
        Fs *fs = userdata;

        if (!fs)
                return;
        fs->watch_closed = true;
        if (fs->jobs)
                return; /* the running save frees the service when it finishes */
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
        fs->stopped = true;
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

static const char *const fs_events[] = {EVENT_FILE_CHANGED_ON_DISK, NULL};

const ServiceType fs_service_type = {
    .name = "fs",
    .events = fs_events,
    .start = fs_start,
    .stop = fs_stop,
};
