/* SPDX-License-Identifier: MIT */
/* The archive service: a folder downloaded as one zip file, made by the worker while the page reads it.
 *
 * fs:archive_begin opens the folder (inside the workspace roots) and starts a zip (libarchive, deflate);
 * each fs:archive_read makes the next piece of at most ARCHIVE_CHUNK bytes on the thread pool and
 * answers it, so the worker never runs ahead of its reader: a page that reads slowly, or stops, costs
 * one piece of memory, never the archive. The walk never follows a symbolic link (links are left out
 * of the archive, whether they lead inside the workspace or not) and opens every name beneath the
 * directory it was found in, so nothing outside the folder can be read through it. An archive belongs
 * to the connection that began it and ends with it (or with fs:archive_cancel, or when not read for
 * --archive-idle-timeout); at most ARCHIVE_MAX_ACTIVE are made at once in a worker. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "bus.h"
#include "fs-path.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "macro.h"
#include "path-util.h"
#include "service.h"
#include "utf8.h"

#define ARCHIVE_MAX_ACTIVE 2u
#define ARCHIVE_CHUNK      (512u * 1024u)
#define ARCHIVE_READ_BLOCK (64u * 1024u)
#define ARCHIVE_MAX_DEPTH  128u

typedef struct Frame {
        DIR *dir;
        char *prefix; /* the folder's name in the archive, with a trailing slash */
} Frame;

typedef struct Archive {
        struct Archives *svc;
        uint64_t id;
        ClientId owner;
        char *path; /* the folder, as answered */

        struct archive *zip;
        Buf out; /* bytes the zip writer produced, not yet answered */
        Frame stack[ARCHIVE_MAX_DEPTH];
        unsigned depth;
        int file_fd; /* the file being written, or -1 */
        uint64_t file_left;
        uint64_t offset; /* bytes of the archive answered so far */
        uint64_t files, skipped;
        bool finished;
        int error; /* from the work: -errno */
        char *error_path;

        uv_work_t work;
        BusCall *call; /* the fs:archive_read being answered */
        bool running;
        bool dropped; /* cancelled while running: freed when the work returns */
        uint64_t last_used;
} Archive;

typedef struct Archives {
        uv_loop_t *loop;
        Bus *bus;
        FsRoots *roots;
        Archive *active[ARCHIVE_MAX_ACTIVE];
        uint64_t next_id;
        uv_timer_t idle_timer;
        uint64_t idle_ms;
        unsigned running;
        bool stopping;
} Archives;

static void job_free(Archive *a)
{
        if (!a)
                return;
        if (a->call)
                bus_call_error(TAKE_PTR(a->call), RPC_INTERNAL_ERROR, "The archive was cancelled", NULL);
        if (a->zip)
                archive_write_free(a->zip);
        for (unsigned i = 0; i < a->depth; i++) {
                closedir(a->stack[i].dir);
                free(a->stack[i].prefix);
        }
        safe_close(a->file_fd);
        buf_done(&a->out);
        free(a->error_path);
        free(a->path);
        free(a);
}

/* Take an archive out of its slot; one whose piece is being made goes once the work returns. */
static void job_drop(Archive **slot)
{
        Archive *a = TAKE_PTR(*slot);

        if (a->running)
                a->dropped = true;
        else
                job_free(a);
}

static la_ssize_t zip_write(struct archive *zip, void *userdata, const void *p, size_t n)
{
        Archive *a = userdata;

        if (buf_append(&a->out, p, n) < 0) {
                archive_set_error(zip, ENOMEM, "Out of memory");
                return -1;
        }
        return (la_ssize_t)n;
}

static int zip_error(Archive *a)
{
        int e = archive_errno(a->zip);

        return e > 0 ? -e : -EIO;
}

/* ---- the walk, on the thread pool ---- */

static int add_entry(Archive *a, const char *name, const struct stat *st)
{
        struct archive_entry *e = archive_entry_new2(a->zip);
        int r = 0;

        if (!e)
                return -ENOMEM;
        archive_entry_set_pathname_utf8(e, name);
        archive_entry_set_filetype(e, S_ISDIR(st->st_mode) ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, st->st_mode & 0777);
        archive_entry_set_size(e, S_ISDIR(st->st_mode) ? 0 : st->st_size);
        archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        if (archive_write_header(a->zip, e) != ARCHIVE_OK)
                r = zip_error(a);
        archive_entry_free(e);
        return r;
}

/* Write the next block of the current file. The size in its header is what fstat() said: a file that
 * shrinks meanwhile is padded with zeros, one that grows is cut there. */
static int write_file_block(Archive *a)
{
        static const char zeros[4096];
        char block[ARCHIVE_READ_BLOCK];
        size_t want = (size_t)MIN(a->file_left, (uint64_t)sizeof(block));
        ssize_t n = 0;

        if (want > 0 && a->file_fd >= 0) {
                n = read(a->file_fd, block, want);
                if (n < 0 && errno != EINTR && errno != EAGAIN)
                        n = 0;
                n = MAX(n, (ssize_t)0);
        }
        if (n == 0 && want > 0) {
                n = (ssize_t)MIN(want, sizeof(zeros));
                memcpy(block, zeros, (size_t)n);
        }
        if (n > 0 && archive_write_data(a->zip, block, (size_t)n) < 0)
                return zip_error(a);
        a->file_left -= (uint64_t)n;
        if (a->file_left == 0) {
                a->file_fd = safe_close(a->file_fd);
                if (archive_write_finish_entry(a->zip) != ARCHIVE_OK)
                        return zip_error(a);
        }
        return 0;
}

static int push_dir(Archive *a, int fd, const char *prefix)
{
        DIR *d;
        char *p;

        if (a->depth >= ARCHIVE_MAX_DEPTH) {
                close(fd);
                a->skipped++;
                return 0;
        }
        p = strdup(prefix);
        d = p ? fdopendir(fd) : NULL;
        if (!d) {
                free(p);
                close(fd);
                return -ENOMEM;
        }
        a->stack[a->depth++] = (Frame){d, p};
        return 0;
}

/* One name of the folder on top of the stack: a subfolder is entered, a regular file begun, anything
 * else (symlinks, devices, FIFOs, sockets, names that are not UTF-8) left out. */
static int walk_step(Archive *a)
{
        Frame *f = &a->stack[a->depth - 1];
        _cleanup_free_ char *name = NULL;
        struct dirent *de;
        struct stat st;
        int fd, dfd = dirfd(f->dir);

        errno = 0;
        de = readdir(f->dir);
        if (!de) {
                if (errno != 0)
                        return -errno;
                closedir(f->dir);
                free(f->prefix);
                a->depth--;
                return 0;
        }
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                return 0;
        if (!utf8_is_valid(de->d_name, strlen(de->d_name)) ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
                a->skipped++;
                return 0;
        }
        if (asprintf(&name, "%s%s%s", f->prefix, de->d_name, S_ISDIR(st.st_mode) ? "/" : "") < 0)
                return -ENOMEM;
        /* O_NOFOLLOW: a name swapped for a symlink since the fstatat() is refused, not followed. */
        fd = openat(dfd, de->d_name,
                    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
                        (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
        if (fd < 0 || fstat(fd, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
                safe_close(fd);
                a->skipped++;
                return 0;
        }
        if (add_entry(a, name, &st) < 0) {
                close(fd);
                return zip_error(a);
        }
        if (S_ISDIR(st.st_mode)) {
                if (archive_write_finish_entry(a->zip) != ARCHIVE_OK) {
                        close(fd);
                        return zip_error(a);
                }
                return push_dir(a, fd, name);
        }
        a->files++;
        a->file_fd = fd;
        a->file_left = (uint64_t)st.st_size;
        if (a->file_left == 0) {
                a->file_fd = safe_close(a->file_fd);
                if (archive_write_finish_entry(a->zip) != ARCHIVE_OK)
                        return zip_error(a);
        }
        return 0;
}

static void job_work(uv_work_t *w)
{
        Archive *a = container_of(w, Archive, work);
        int r = 0;

        while (r >= 0 && !a->finished && a->out.len < ARCHIVE_CHUNK) {
                if (a->file_left > 0)
                        r = write_file_block(a);
                else if (a->depth > 0)
                        r = walk_step(a);
                else {
                        if (archive_write_close(a->zip) != ARCHIVE_OK)
                                r = zip_error(a);
                        a->finished = true;
                }
        }
        a->error = MIN(r, 0);
}

/* ---- requests ---- */

static Archive **job_from_params(Archives *s, BusCall *call, const cJSON *params)
{
        uint64_t id = 0;
        const JsonField fields[] = {
            {"archiveId", JSON_FIELD_UINT, true, &id},
        };
        cJSON *data;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return NULL;
        for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                if (s->active[i] && s->active[i]->id == id && s->active[i]->owner == bus_call_origin(call))
                        return &s->active[i];
        data = cJSON_CreateObject();
        if (data && !cJSON_AddItemToObject(data, "archiveId", json_create_integer((int64_t)id))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_NOT_FOUND, "No such archive", data);
        return NULL;
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
        Archives *s = userdata;
        const char *path_arg = NULL;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path_arg},
        };
        _cleanup_(fs_location_done) FsLocation loc = FS_LOCATION_NULL;
        _cleanup_free_ char *path = NULL, *prefix = NULL;
        size_t slot = ARCHIVE_MAX_ACTIVE;
        const char *base;
        Archive *a;
        struct stat st;
        cJSON *result, *data;
        int fd, r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (path_arg[0] != '/') {
                (void)bus_call_error_invalid(call, "'path' must be absolute", path_arg);
                return;
        }
        for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                if (!s->active[i]) {
                        slot = i;
                        break;
                }
        if (slot == ARCHIVE_MAX_ACTIVE) {
                data = cJSON_CreateObject();
                if (data && !cJSON_AddNumberToObject(data, "limit", ARCHIVE_MAX_ACTIVE))
                        data = (cJSON_Delete(data), NULL);
                bus_call_error(call, RPC_TOO_LARGE, "Too many archives are being made", data);
                return;
        }
        r = path_normalize("/", path_arg, &path);
        if (r >= 0)
                r = fs_chase(s->roots, path, 0, &loc);
        fd = r < 0 ? r : fs_location_open(&loc, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0) {
                reply_path_errno(call, fd == -ENOTDIR ? -ENOTDIR : fd, path ? path : path_arg);
                return;
        }
        if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
                close(fd);
                bus_call_error_errno(call, -ENOTDIR, path);
                return;
        }
        /* Everything in the archive sits in a folder named as this one (the root of a workspace, "/",
         * is named "files"). */
        base = streq(path, "/") ? "files" : strrchr(path, '/') + 1;
        a = calloc(1, sizeof(Archive));
        if (!a || asprintf(&prefix, "%s/", base) < 0 || !(a->path = strdup(path))) {
                free(prefix);
                prefix = NULL;
                free(a);
                close(fd);
                (void)bus_call_error_oom(call);
                return;
        }
        a->svc = s;
        a->id = ++s->next_id;
        a->owner = bus_call_origin(call);
        a->file_fd = -1;
        a->last_used = uv_now(s->loop);
        a->zip = archive_write_new();
        /* Names are UTF-8 (others are left out), and flagged so: Windows and macOS read them as such. */
        if (!a->zip || archive_write_set_format_zip(a->zip) != ARCHIVE_OK ||
            archive_write_set_format_option(a->zip, "zip", "hdrcharset", "UTF-8") != ARCHIVE_OK ||
            archive_write_set_bytes_per_block(a->zip, 0) != ARCHIVE_OK ||
            archive_write_open2(a->zip, a, NULL, zip_write, NULL, NULL) != ARCHIVE_OK) {
                close(fd);
                job_free(a);
                (void)bus_call_error_oom(call);
                return;
        }
        r = push_dir(a, fd, prefix);
        if (r >= 0) {
                st.st_mode = S_IFDIR | (st.st_mode & 0777);
                r = add_entry(a, prefix, &st);
        }
        if (r < 0 || archive_write_finish_entry(a->zip) != ARCHIVE_OK) {
                job_free(a);
                (void)bus_call_error_oom(call);
                return;
        }
        /* The name a browser saves it under. */
        free(path);
        path = NULL;
        result =
            asprintf(&path, "%.*s.zip", (int)(strlen(prefix) - 1), prefix) < 0 ? NULL : cJSON_CreateObject();
        if (!result || !cJSON_AddItemToObject(result, "archiveId", json_create_integer((int64_t)a->id)) ||
            !cJSON_AddStringToObject(result, "path", a->path) ||
            !cJSON_AddStringToObject(result, "name", path)) {
                cJSON_Delete(result);
                job_free(a);
                (void)bus_call_error_oom(call);
                return;
        }
        s->active[slot] = a;
        log_debug("Archive %" PRIu64 " of %s begun.", a->id, a->path);
        bus_call_reply(call, result);
}

static void archives_free(uv_handle_t *h)
{
        Archives *s = h->data;

        fs_roots_free(s->roots);
        free(s);
}

static void job_after(uv_work_t *w, int status)
{
        Archive *a = container_of(w, Archive, work);
        Archives *s = a->svc;
        BusCall *call = TAKE_PTR(a->call);
        _cleanup_free_ char *text = NULL;
        cJSON *result;

        a->running = false;
        s->running--;
        if (a->dropped) {
                if (call)
                        bus_call_error(call, RPC_INTERNAL_ERROR, "The archive was cancelled", NULL);
                job_free(a);
                if (s->stopping && s->running == 0)
                        uv_close((uv_handle_t *)&s->idle_timer, archives_free);
                return;
        }
        a->last_used = uv_now(s->loop);
        if (status < 0 || a->error < 0) {
                bus_call_error_errno(call, status < 0 ? status : a->error, a->path);
                for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                        if (s->active[i] == a)
                                job_drop(&s->active[i]);
                return;
        }
        text = malloc(base64_encoded_len(a->out.len, true) + 1);
        result = text ? cJSON_CreateObject() : NULL;
        if (text) {
                base64_encode_into(a->out.data ?: "", a->out.len, BASE64_STANDARD, true, text);
                text[base64_encoded_len(a->out.len, true)] = '\0';
        }
        if (!result || !cJSON_AddItemToObject(result, "archiveId", json_create_integer((int64_t)a->id)) ||
            !cJSON_AddItemToObject(result, "offset", json_create_integer((int64_t)a->offset)) ||
            !cJSON_AddStringToObject(result, "data", text) ||
            !cJSON_AddBoolToObject(result, "done", a->finished) ||
            !cJSON_AddItemToObject(result, "files", json_create_integer((int64_t)a->files)) ||
            !cJSON_AddItemToObject(result, "skipped", json_create_integer((int64_t)a->skipped))) {
                cJSON_Delete(result);
                (void)bus_call_error_oom(call);
                return;
        }
        a->offset += a->out.len;
        a->out.len = 0;
        /* The buffer goes back to its usual size after a large piece. */
        if (a->out.cap > 2 * ARCHIVE_CHUNK)
                buf_done(&a->out);
        if (a->finished)
                for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                        if (s->active[i] == a) {
                                log_debug("Archive %" PRIu64 " of %s done: %" PRIu64 " bytes.", a->id,
                                          a->path, a->offset);
                                job_drop(&s->active[i]);
                        }
        bus_call_reply(call, result);
}

static void on_read(BusCall *call, const cJSON *params, void *userdata)
{
        Archives *s = userdata;
        Archive **slot = job_from_params(s, call, params);
        Archive *a;
        int r;

        if (!slot)
                return;
        a = *slot;
        if (a->running) {
                (void)bus_call_error_invalid(call, "a piece of this archive is being made: wait for it",
                                             a->path);
                return;
        }
        a->call = call;
        a->running = true;
        s->running++;
        r = uv_queue_work(s->loop, &a->work, job_work, job_after);
        if (r < 0) {
                a->running = false;
                s->running--;
                a->call = NULL;
                bus_call_error_errno(call, r, a->path);
        }
}

static void on_cancel(BusCall *call, const cJSON *params, void *userdata)
{
        Archives *s = userdata;
        Archive **slot = job_from_params(s, call, params);

        if (!slot)
                return;
        job_drop(slot);
        bus_call_reply(call, cJSON_CreateObject());
}

/* A connection that goes away takes its archives with it. */
static void on_client_disconnected(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        Archives *s = userdata;

        for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                if (s->active[i] && s->active[i]->owner == origin)
                        job_drop(&s->active[i]);
}

/* So does one that stops reading: its folder stays open otherwise. */
static void on_idle_timer(uv_timer_t *t)
{
        Archives *s = t->data;
        uint64_t now = uv_now(s->loop);

        for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                if (s->active[i] && !s->active[i]->running && now - s->active[i]->last_used >= s->idle_ms) {
                        log_debug("Archive %" PRIu64 " of %s not read for a while, dropped.",
                                  s->active[i]->id, s->active[i]->path);
                        job_drop(&s->active[i]);
                }
}

static const BusMethod archive_methods[] = {
    {"fs:archive_begin", on_begin},
    {"fs:archive_read", on_read},
    {"fs:archive_cancel", on_cancel},
};

static int archives_start(const ServiceContext *ctx, void **ret)
{
        Archives *s = calloc(1, sizeof(Archives));
        int r;

        if (!s)
                return -ENOMEM;
        s->loop = ctx->loop;
        s->bus = ctx->bus;
        s->idle_ms = ctx->config->archive_idle_ms;
        r = fs_roots_new(ctx->config->roots, ctx->config->n_roots, &s->roots);
        if (r < 0) {
                free(s);
                return r;
        }
        r = uv_timer_init(ctx->loop, &s->idle_timer);
        if (r < 0) {
                fs_roots_free(s->roots);
                free(s);
                return r;
        }
        s->idle_timer.data = s;
        uv_unref((uv_handle_t *)&s->idle_timer);
        *ret = s;
        r = uv_timer_start(&s->idle_timer, on_idle_timer, s->idle_ms / 4, s->idle_ms / 4);
        if (r >= 0)
                r = bus_serve_all(ctx->bus, archive_methods, ELEMENTSOF(archive_methods), s);
        if (r >= 0)
                r = bus_subscribe(ctx->bus, BUS_EVENT_CLIENT_DISCONNECTED, on_client_disconnected, s);
        return r;
}

static void archives_stop(void *userdata)
{
        Archives *s = userdata;

        if (!s)
                return;
        bus_unsubscribe(s->bus, BUS_EVENT_CLIENT_DISCONNECTED, on_client_disconnected, s);
        s->stopping = true;
        for (size_t i = 0; i < ARCHIVE_MAX_ACTIVE; i++)
                if (s->active[i])
                        job_drop(&s->active[i]);
        /* The memory goes with the timer's close, once no piece is being made. */
        if (s->running == 0)
                uv_close((uv_handle_t *)&s->idle_timer, archives_free);
}

const ServiceType archive_service_type = {
    .name = "archive",
    .start = archives_start,
    .stop = archives_stop,
};
