/* SPDX-License-Identifier: MIT */
#include "worker-output.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "line-reader.h"
#include "log.h"
#include "macro.h"

#define WINDOW_MS 1000
/* Lines are read whole up to this length (and logged cut to WORKER_OUTPUT_MAX_LINE); a longer one is
 * skipped to its line feed and logged as a mark. */
#define READ_MAX_LINE (16 * 1024)

struct WorkerOutput {
        uv_poll_t poll;
        uv_timer_t timer;
        int fd;
        char *tag;
        LineReader lines;
        size_t bytes;   /* read in this window */
        unsigned count; /* lines logged in this window */
        bool paused;
        bool eof;
        unsigned open_handles;
};

static void log_line(WorkerOutput *o, char *line, size_t len, bool cut)
{
        char field[64];
        const char *fields[] = {field, NULL};

        /* The user wrote these bytes: no escape sequence reaches an admin's terminal, no line break
         * forges a log line of its own. */
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)line[i] < 0x20 ? line[i] != '\t' : line[i] == 0x7f)
                        line[i] = '?';
        if (len > WORKER_OUTPUT_MAX_LINE) {
                len = WORKER_OUTPUT_MAX_LINE;
                cut = true;
        }
        if (!o->tag) {
                log_info("worker: %.*s%s", (int)len, line, cut ? "…" : "");
                return;
        }
        (void)snprintf(field, sizeof(field), "HELIOS_USER=%s", o->tag);
        log_struct(LOG_INFO, fields, "worker %s: %.*s%s", o->tag, (int)len, line, cut ? "…" : "");
}

/* Log the complete lines read, up to this window's share; the rest waits in the reader. True when the
 * share is used up. */
static bool drain_lines(WorkerOutput *o)
{
        for (;;) {
                char *line;
                size_t len;
                LineReaderEvent e;

                if (o->count >= WORKER_OUTPUT_LINES)
                        return true;
                e = line_reader_next(&o->lines, &line, &len);
                if (e == LINE_READER_NONE)
                        return false;
                o->count++;
                if (e == LINE_READER_LINE)
                        log_line(o, line, len, false);
                else
                        log_line(o, (char[]){'\0'}, 0, true);
        }
}

static void on_readable(uv_poll_t *h, int status, int events);

static void pause_until_next_window(WorkerOutput *o)
{
        (void)uv_poll_stop(&o->poll);
        o->paused = true;
}

static void on_window(uv_timer_t *t)
{
        WorkerOutput *o = container_of(t, WorkerOutput, timer);

        o->bytes = 0;
        o->count = 0;
        if (drain_lines(o))
                return;
        if (o->paused && !o->eof) {
                o->paused = false;
                (void)uv_poll_start(&o->poll, UV_READABLE, on_readable);
        }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
        WorkerOutput *o = container_of(h, WorkerOutput, poll);
        char *buf;
        size_t room;
        ssize_t n;

        if (o->bytes >= WORKER_OUTPUT_BYTES || o->count >= WORKER_OUTPUT_LINES) {
                pause_until_next_window(o);
                return;
        }
        if (line_reader_space(&o->lines, 4096, &buf, &room) < 0)
                room = 0;
        room = MIN(room, WORKER_OUTPUT_BYTES - o->bytes);
        n = room > 0 ? read(o->fd, buf, room) : -1;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                /* End of the stream (every holder of the write end is gone), or it broke. */
                o->eof = true;
                (void)uv_poll_stop(&o->poll);
                return;
        }
        line_reader_commit(&o->lines, (size_t)n);
        o->bytes += (size_t)n;
        if (drain_lines(o))
                pause_until_next_window(o);
}

int worker_output_new(uv_loop_t *loop, int fd, const char *tag, WorkerOutput **ret)
{
        WorkerOutput *o;
        int flags, r;

        assert(loop && fd >= 0 && ret);

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = negative_errno();
                safe_close(fd);
                return r;
        }
        o = calloc(1, sizeof(WorkerOutput));
        if (!o) {
                safe_close(fd);
                return -ENOMEM;
        }
        o->fd = fd;
        line_reader_init(&o->lines, READ_MAX_LINE);
        if (tag) {
                o->tag = strdup(tag);
                if (!o->tag)
                        goto oom;
        }
        r = uv_poll_init(loop, &o->poll, fd);
        if (r < 0)
                goto fail;
        o->open_handles++;
        r = uv_timer_init(loop, &o->timer);
        if (r < 0) {
                worker_output_close(o);
                return r;
        }
        o->open_handles++;
        r = uv_poll_start(&o->poll, UV_READABLE, on_readable);
        if (r >= 0)
                r = uv_timer_start(&o->timer, on_window, WINDOW_MS, WINDOW_MS);
        if (r < 0) {
                worker_output_close(o);
                return r;
        }
        *ret = o;
        return 0;
oom:
        r = -ENOMEM;
fail:
        line_reader_done(&o->lines);
        free(o->tag);
        safe_close(o->fd);
        free(o);
        return r;
}

static void on_closed(uv_handle_t *h)
{
        WorkerOutput *o = h->data;

        if (--o->open_handles > 0)
                return;
        line_reader_done(&o->lines);
        safe_close(o->fd);
        free(o->tag);
        free(o);
}

void worker_output_close(WorkerOutput *o)
{
        if (!o)
                return;
        /* A last line without its line feed is still worth telling (within the window's share). */
        char *b;
        size_t room;
        if (line_reader_pending(&o->lines) > 0 && line_reader_space(&o->lines, 1, &b, &room) >= 0 &&
            room > 0) {
                b[0] = '\n';
                line_reader_commit(&o->lines, 1);
                (void)drain_lines(o);
        }
        o->poll.data = o;
        o->timer.data = o;
        uv_close((uv_handle_t *)&o->poll, on_closed);
        if (o->open_handles > 1)
                uv_close((uv_handle_t *)&o->timer, on_closed);
}
