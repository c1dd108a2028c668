/* SPDX-License-Identifier: MIT */
#include "session-holder.h"

#include <assert.h>
#include <signal.h>
#include <stdlib.h>

#include "macro.h"
#include "pam-helper.h"

struct SessionHolder {
        uv_process_t process;
        uv_pipe_t input;  /* the helper's standard input: its end is the session's end */
        uv_pipe_t output; /* one byte when the session is open */
        uv_timer_t timer;
        char read_buf[16];
        unsigned open_handles;
        uint64_t timeout_ms;
        bool opened, ending, exited, timed_out;
        SessionHolderOpened on_opened; /* NULL once called or no longer wanted */
        SessionHolderExited on_exited;
        void *userdata;
};

static void on_handle_closed(uv_handle_t *handle)
{
        SessionHolder *h = handle->data;

        if (--h->open_handles == 0)
                free(h);
}

static void close_handle(SessionHolder *h, uv_handle_t *handle)
{
        if (handle->data && !uv_is_closing(handle))
                uv_close(handle, on_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
        SessionHolder *h = container_of(t, SessionHolder, timer);

        if (h->exited)
                return;
        h->timed_out = true;
        /* The helper leads its own process group: what a PAM module started goes with it. */
        (void)kill(-h->process.pid, SIGKILL);
}

static void call_opened(SessionHolder *h, int r)
{
        if (h->on_opened)
                TAKE_PTR(h->on_opened)(r, h->userdata);
}

static void on_helper_exit(uv_process_t *p, int64_t status, int sig)
{
        SessionHolder *h = container_of(p, SessionHolder, process);

        h->exited = true;
        if (h->timed_out)
                call_opened(h, -ETIMEDOUT);
        else if (sig == 0 && status == PAM_HELPER_EXIT_DENIED)
                call_opened(h, -EACCES);
        else
                call_opened(h, -EIO);
        h->on_exited(h->userdata);
        close_handle(h, (uv_handle_t *)&h->process);
        close_handle(h, (uv_handle_t *)&h->input);
        close_handle(h, (uv_handle_t *)&h->output);
        close_handle(h, (uv_handle_t *)&h->timer);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
        SessionHolder *h = handle->data;

        *buf = uv_buf_init(h->read_buf, sizeof(h->read_buf));
}

static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        SessionHolder *h = container_of((uv_pipe_t *)s, SessionHolder, output);

        if (n == 0)
                return;
        /* The byte, or the end of the output (the exit status then tells why): nothing more to read. */
        (void)uv_read_stop(s);
        if (n > 0 && !h->opened) {
                h->opened = true;
                (void)uv_timer_stop(&h->timer);
                call_opened(h, 0);
        }
}

int session_holder_start(uv_loop_t *loop, const SessionHolderParams *p, const char *user, const char *line,
                         const char *rhost, SessionHolderOpened opened, SessionHolderExited exited,
                         void *userdata, SessionHolder **ret)
{
        char *args[] = {
            (char *)"helios-session", (char *)p->service, (char *)user, (char *)line, (char *)rhost,
            (char *)p->utmp,          (char *)p->wtmp,    NULL};
        uv_stdio_container_t stdio[3];
        uv_process_options_t po;
        SessionHolder *h;
        int k;

        assert(loop && p && user && line && rhost && opened && exited && ret);

        h = calloc(1, sizeof(SessionHolder));
        if (!h)
                return -ENOMEM;
        uv_handle_t *handles[] = {(uv_handle_t *)&h->input, (uv_handle_t *)&h->output};
        for (size_t i = 0; i < ELEMENTSOF(handles); i++) {
                k = uv_pipe_init(loop, (uv_pipe_t *)handles[i], 0);
                if (k < 0)
                        goto fail;
                handles[i]->data = h;
                h->open_handles++;
        }
        k = uv_timer_init(loop, &h->timer);
        if (k < 0)
                goto fail;
        h->timer.data = h;
        h->open_handles++;

        stdio[0] = (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_READABLE_PIPE,
                                          .data.stream = (uv_stream_t *)&h->input};
        stdio[1] = (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
                                          .data.stream = (uv_stream_t *)&h->output};
        stdio[2] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO};
        po = (uv_process_options_t){
            .exit_cb = on_helper_exit,
            .file = p->path,
            .args = args,
            .env = (char **)p->envp,
            .flags = UV_PROCESS_DETACHED,
            .stdio_count = 3,
            .stdio = stdio,
        };
        h->process.data = h;
        h->open_handles++;
        k = uv_spawn(loop, &h->process, &po);
        if (k < 0) {
                h->exited = true;
                goto fail;
        }
        h->timeout_ms = p->timeout_ms;
        h->on_opened = opened;
        h->on_exited = exited;
        h->userdata = userdata;
        (void)uv_read_start((uv_stream_t *)&h->output, on_alloc, on_output);
        (void)uv_timer_start(&h->timer, on_timeout, p->timeout_ms, 0);
        *ret = h;
        return 0;
fail:
        close_handle(h, (uv_handle_t *)&h->process);
        close_handle(h, (uv_handle_t *)&h->input);
        close_handle(h, (uv_handle_t *)&h->output);
        close_handle(h, (uv_handle_t *)&h->timer);
        if (h->open_handles == 0)
                free(h);
        return k;
}

void session_holder_end(SessionHolder *h)
{
        if (!h || h->ending || h->exited)
                return;
        h->ending = true;
        h->on_opened = NULL;
        /* The end of its input is the helper's signal; a helper still opening sees it once its session
         * is open, and closes it at once. */
        close_handle(h, (uv_handle_t *)&h->input);
        (void)uv_timer_stop(&h->timer);
        (void)uv_timer_start(&h->timer, on_timeout, h->timeout_ms, 0);
}
