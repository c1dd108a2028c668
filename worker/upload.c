/* SPDX-License-Identifier: MIT */
/* The upload service: a file sent by the page in bounded chunks, which appears under its name only
 * once it is whole.
 *
 * fs:upload_begin opens an unnamed file (O_TMPFILE) in the target's directory, inside the workspace
 * roots; fs:upload_chunk appends base64 chunks of at most UPLOAD_MAX_CHUNK bytes, in order;
 * fs:upload_commit fsyncs it and gives it its name (linkat; with overwrite, a temporary name renamed
 * over the old file); fs:upload_abort, the connection closing or the worker dying drops it, and an
 * unnamed file leaves nothing behind. An upload belongs to the connection that began it; at most
 * UPLOAD_MAX_ACTIVE run at once, each at most UPLOAD_MAX_SIZE bytes.
 *
 * fs:read_range is the other way: a piece of at most UPLOAD_MAX_CHUNK bytes of a regular file, with
 * the file's size and tag, so that a page downloads a file of any size in bounded messages. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "bus.h"
#include "fs-ops.h"
#include "fs-path.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "macro.h"
#include "path-util.h"
#include "service.h"

#define UPLOAD_MAX_ACTIVE 8u
#define UPLOAD_MAX_SIZE   (1024ull * 1024ull * 1024ull)
#define UPLOAD_MAX_CHUNK  (1024u * 1024u)

typedef struct Upload {
        uint64_t id;
        ClientId owner;
        int dir_fd; /* O_PATH of the target's directory */
        int fd;     /* the unnamed file */
        char *name; /* the final component */
        char *path; /* as answered */
        uint64_t size, received;
        bool overwrite;
} Upload;

typedef struct Uploads {
        Bus *bus;
        FsRoots *roots;
        Upload *active[UPLOAD_MAX_ACTIVE];
        uint64_t next_id;
} Uploads;

static void upload_free(Upload *u)
{
        if (!u)
                return;
        safe_close(u->fd);
        safe_close(u->dir_fd);
        free(u->name);
        free(u->path);
        free(u);
}

/* Parses params into fields, then finds the caller's upload *id among them. Replies with the error
 * and returns NULL when params are invalid or there is no such upload. */
static Upload **upload_from_params(Uploads *s, BusCall *call, const cJSON *params, const JsonField *fields,
                                   size_t n_fields, const uint64_t *id)
{
        cJSON *data;

        if (bus_call_params(call, params, fields, n_fields) < 0)
                return NULL;
        for (size_t i = 0; i < UPLOAD_MAX_ACTIVE; i++)
                if (s->active[i] && s->active[i]->id == *id && s->active[i]->owner == bus_call_origin(call))
                        return &s->active[i];
        data = cJSON_CreateObject();
        if (data && !cJSON_AddNumberToObject(data, "uploadId", (double)*id)) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_NOT_FOUND, "No such upload", data);
        return NULL;
}

static void reply_limit(BusCall *call, const char *message, uint64_t limit)
{
        cJSON *data = cJSON_CreateObject();

        if (data && !cJSON_AddNumberToObject(data, "limit", (double)limit)) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_TOO_LARGE, message, data);
}

static void reply_path_errno(BusCall *call, int r, const char *path)
{
        if (r == -EXDEV)
                bus_call_error_outside(call, path);
        else
                bus_call_error_errno(call, r, path);
}

static void on_begin(BusCall *call, const cJSON *params, void *userdata)
{
        Uploads *s = userdata;
        const char *path_arg = NULL;
        uint64_t size = 0;
        bool overwrite = false;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path_arg},
            {"size", JSON_FIELD_UINT, true, &size, UPLOAD_MAX_SIZE},
            {"overwrite", JSON_FIELD_BOOL, false, &overwrite},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL;
        Upload *u;
        size_t slot = UPLOAD_MAX_ACTIVE;
        struct stat st;
        cJSON *r;
        int k;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (path_arg[0] != '/') {
                (void)bus_call_error_invalid(call, "'path' must be absolute", path_arg);
                return;
        }
        for (size_t i = 0; i < UPLOAD_MAX_ACTIVE; i++)
                if (!s->active[i]) {
                        slot = i;
                        break;
                }
        if (slot == UPLOAD_MAX_ACTIVE) {
                reply_limit(call, "Too many uploads at once", UPLOAD_MAX_ACTIVE);
                return;
        }
        k = path_normalize("/", path_arg, &path);
        if (k < 0) {
                reply_path_errno(call, k, path_arg);
                return;
        }
        /* The name itself is what is created or replaced, never what a symlink there points to. */
        k = fs_chase(s->roots, path, FS_CHASE_NOFOLLOW, &loc);
        if (k < 0) {
                reply_path_errno(call, k, path);
                return;
        }
        if (loc.is_root) {
                (void)bus_call_error_invalid(call, "a workspace root cannot be uploaded over", path);
                return;
        }
        if (fstatat(loc.dir_fd, loc.name, &st, AT_SYMLINK_NOFOLLOW) >= 0) {
                if (!overwrite) {
                        bus_call_error_errno(call, -EEXIST, path);
                        return;
                }
                if (!S_ISREG(st.st_mode)) {
                        bus_call_error_errno(call, S_ISDIR(st.st_mode) ? -EISDIR : -EEXIST, path);
                        return;
                }
        } else if (errno != ENOENT) {
                reply_path_errno(call, -errno, path);
                return;
        }

        u = calloc(1, sizeof(Upload));
        if (!u) {
                (void)bus_call_error_oom(call);
                return;
        }
        u->fd = -EBADF;
        u->dir_fd = fcntl(loc.dir_fd, F_DUPFD_CLOEXEC, 3);
        u->name = strdup(loc.name);
        u->path = strdup(loc.path);
        if (u->dir_fd < 0 || !u->name || !u->path) {
                upload_free(u);
                (void)bus_call_error_oom(call);
                return;
        }
        /* A new file's mode is 0666 less the umask, as for any file the user makes. */
        u->fd = openat(u->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (u->fd < 0) {
                k = -errno;
                upload_free(u);
                reply_path_errno(call, k, path);
                return;
        }
        u->id = ++s->next_id;
        u->owner = bus_call_origin(call);
        u->size = size;
        u->overwrite = overwrite;

        r = cJSON_CreateObject();
        if (!r || !cJSON_AddItemToObject(r, "uploadId", json_create_integer((int64_t)u->id)) ||
            !cJSON_AddStringToObject(r, "path", u->path)) {
                cJSON_Delete(r);
                upload_free(u);
                (void)bus_call_error_oom(call);
                return;
        }
        s->active[slot] = u;
        bus_call_reply(call, r);
}

static void on_chunk(BusCall *call, const cJSON *params, void *userdata)
{
        Uploads *s = userdata;
        uint64_t id = 0, offset = 0;
        const char *data = NULL;
        const JsonField fields[] = {
            {"uploadId", JSON_FIELD_UINT, true, &id},
            {"offset", JSON_FIELD_UINT, true, &offset, UPLOAD_MAX_SIZE},
            {"data", JSON_FIELD_STRING, true, &data},
        };
        _cleanup_free_ uint8_t *bytes = NULL;
        Upload **slot, *u;
        size_t len = 0, text_len;
        cJSON *r;
        int k;

        slot = upload_from_params(s, call, params, fields, ELEMENTSOF(fields), &id);
        if (!slot)
                return;
        u = *slot;
        if (offset != u->received) {
                (void)bus_call_error_invalid(
                    call, "chunks must come in order: 'offset' is not the bytes received so far", u->path);
                return;
        }
        text_len = strlen(data);
        if (text_len > base64_encoded_len(UPLOAD_MAX_CHUNK, true)) {
                reply_limit(call, "Chunk too large", UPLOAD_MAX_CHUNK);
                return;
        }
        bytes = malloc(MAX(base64_decoded_max(text_len), (size_t)1));
        if (!bytes) {
                (void)bus_call_error_oom(call);
                return;
        }
        k = base64_decode_into(data, text_len, BASE64_STANDARD, BASE64_PAD_REQUIRED, bytes,
                               base64_decoded_max(text_len), &len);
        if (k < 0) {
                (void)bus_call_error_invalid(call, "'data' is not valid base64", u->path);
                return;
        }
        if (len > u->size - u->received) {
                reply_limit(call, "More data than the upload's size", u->size);
                return;
        }
        for (size_t done = 0; done < len;) {
                ssize_t n = write(u->fd, bytes + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        /* Disk full or quota: the upload cannot finish; drop it now. */
                        k = -errno;
                        bus_call_error_errno(call, k, u->path);
                        upload_free(TAKE_PTR(*slot));
                        return;
                }
                done += (size_t)n;
        }
        u->received += len;
        r = cJSON_CreateObject();
        if (!r || !cJSON_AddItemToObject(r, "received", json_create_integer((int64_t)u->received))) {
                cJSON_Delete(r);
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
}

/* Name the complete file: link it under a temporary name (through /proc/self/fd), then rename that
 * over the target (overwrite) or to it without replacing anything. */
static int upload_link(Upload *u)
{
        char proc[sizeof("/proc/self/fd/") + 11], tmp[64];
        uint64_t rnd;
        int r;

        (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%i", u->fd);
        if (!u->overwrite && linkat(AT_FDCWD, proc, u->dir_fd, u->name, AT_SYMLINK_FOLLOW) >= 0)
                return 0;
        if (!u->overwrite)
                return -errno;
        for (unsigned attempt = 0;; attempt++) {
                if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return -EIO;
                (void)snprintf(tmp, sizeof(tmp), ".helios-%016" PRIx64 ".tmp", rnd);
                if (linkat(AT_FDCWD, proc, u->dir_fd, tmp, AT_SYMLINK_FOLLOW) >= 0)
                        break;
                if (errno != EEXIST || attempt >= 16)
                        return -errno;
        }
        if (renameat(u->dir_fd, tmp, u->dir_fd, u->name) < 0) {
                r = -errno;
                (void)unlinkat(u->dir_fd, tmp, 0);
                return r;
        }
        return 0;
}

static void on_commit(BusCall *call, const cJSON *params, void *userdata)
{
        Uploads *s = userdata;
        uint64_t id = 0;
        const JsonField fields[] = {
            {"uploadId", JSON_FIELD_UINT, true, &id},
        };
        Upload **slot, *u;
        cJSON *r;
        int k;

        slot = upload_from_params(s, call, params, fields, ELEMENTSOF(fields), &id);
        if (!slot)
                return;
        u = *slot;
        if (u->received != u->size) {
                (void)bus_call_error_invalid(call, "the upload is not complete", u->path);
                return;
        }
        if (fsync(u->fd) < 0)
                k = -errno;
        else
                k = upload_link(u);
        if (k >= 0) {
                /* The new name, too, is on disk once answered. */
                _cleanup_close_ int dfd = openat(u->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0 || fsync(dfd) < 0)
                        log_debug_errno(errno, "Cannot fsync the directory of %s, ignoring: %m", u->path);
        }
        if (k < 0) {
                /* EEXIST: a file of that name appeared meanwhile. The upload stays, to be aborted or
                 * committed again. */
                bus_call_error_errno(call, k, u->path);
                return;
        }
        r = cJSON_CreateObject();
        if (!r || !cJSON_AddStringToObject(r, "path", u->path) ||
            !cJSON_AddItemToObject(r, "size", json_create_integer((int64_t)u->size))) {
                cJSON_Delete(r);
                r = NULL;
        }
        upload_free(TAKE_PTR(*slot));
        if (!r) {
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
}

static void on_abort(BusCall *call, const cJSON *params, void *userdata)
{
        Uploads *s = userdata;
        uint64_t id = 0;
        const JsonField fields[] = {
            {"uploadId", JSON_FIELD_UINT, true, &id},
        };
        Upload **slot;
        cJSON *r;

        slot = upload_from_params(s, call, params, fields, ELEMENTSOF(fields), &id);
        if (!slot)
                return;
        upload_free(TAKE_PTR(*slot));
        r = cJSON_CreateObject();
        if (!r) {
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
}

static void on_read_range(BusCall *call, const cJSON *params, void *userdata)
{
        Uploads *s = userdata;
        const char *path_arg = NULL;
        uint64_t offset = 0, length = 0;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path_arg},
            {"offset", JSON_FIELD_UINT, true, &offset},
            {"length", JSON_FIELD_UINT, true, &length, UPLOAD_MAX_CHUNK},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL, *bytes = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        char tag[FS_TAG_MAX];
        struct stat st;
        size_t got = 0;
        cJSON *r;
        int k;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (path_arg[0] != '/') {
                (void)bus_call_error_invalid(call, "'path' must be absolute", path_arg);
                return;
        }
        k = path_normalize("/", path_arg, &path);
        if (k >= 0)
                k = fs_chase(s->roots, path, 0, &loc);
        if (k >= 0) {
                fd = fs_location_open(&loc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
                k = fd < 0 ? fd : 0;
        }
        if (k >= 0 && fstat(fd, &st) < 0)
                k = -errno;
        if (k < 0) {
                reply_path_errno(call, k, path ? path : path_arg);
                return;
        }
        if (!S_ISREG(st.st_mode)) {
                bus_call_error_errno(call, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, loc.path);
                return;
        }
        bytes = malloc(MAX(length, (uint64_t)1));
        if (!bytes) {
                (void)bus_call_error_oom(call);
                return;
        }
        while (got < length) {
                ssize_t n = pread(fd, bytes + got, length - got, (off_t)(offset + got));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        bus_call_error_errno(call, -errno, loc.path);
                        return;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        text = malloc(base64_encoded_len(got, true) + 1);
        if (!text) {
                (void)bus_call_error_oom(call);
                return;
        }
        base64_encode_into(bytes, got, BASE64_STANDARD, true, text);
        text[base64_encoded_len(got, true)] = 0;
        fs_tag_format(&st, tag);
        r = cJSON_CreateObject();
        if (!r || !cJSON_AddStringToObject(r, "path", loc.path) ||
            !cJSON_AddItemToObject(r, "size", json_create_integer((int64_t)st.st_size)) ||
            !cJSON_AddItemToObject(r, "offset", json_create_integer((int64_t)offset)) ||
            !cJSON_AddStringToObject(r, "data", text) || !cJSON_AddStringToObject(r, "tag", tag)) {
                cJSON_Delete(r);
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
}

/* A connection that goes away takes its unfinished uploads with it. */
static void on_client_disconnected(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Uploads *s = userdata;

        for (size_t i = 0; i < UPLOAD_MAX_ACTIVE; i++)
                if (s->active[i] && s->active[i]->owner == origin)
                        upload_free(TAKE_PTR(s->active[i]));
}

static const BusMethod upload_methods[] = {
    {"fs:upload_begin", on_begin}, {"fs:upload_chunk", on_chunk},    {"fs:upload_commit", on_commit},
    {"fs:upload_abort", on_abort}, {"fs:read_range", on_read_range},
};

static int uploads_start(const ServiceContext *ctx, void **ret)
{
        Uploads *s = calloc(1, sizeof(Uploads));
        int r;

        if (!s)
                return -ENOMEM;
        s->bus = ctx->bus;
        r = fs_roots_new(ctx->config->roots, ctx->config->n_roots, &s->roots);
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        r = bus_serve_all(ctx->bus, upload_methods, ELEMENTSOF(upload_methods), s);
        if (r >= 0)
                r = bus_subscribe(ctx->bus, BUS_EVENT_CLIENT_DISCONNECTED, on_client_disconnected, s);
        return r;
}

static void uploads_stop(void *userdata)
{
        Uploads *s = userdata;

        if (!s)
                return;
        bus_unsubscribe(s->bus, BUS_EVENT_CLIENT_DISCONNECTED, on_client_disconnected, s);
        for (size_t i = 0; i < UPLOAD_MAX_ACTIVE; i++)
                upload_free(TAKE_PTR(s->active[i]));
        fs_roots_free(s->roots);
        free(s);
}

const ServiceType upload_service_type = {
    .name = "upload",
    .start = uploads_start,
    .stop = uploads_stop,
};
