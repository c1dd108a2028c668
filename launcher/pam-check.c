/* SPDX-License-Identifier: MIT */
#include "pam-check.h"

#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "pam-helper.h"

struct PamCheck {
        uv_process_t process;
        uv_pipe_t input;
        uv_timer_t timer;
        unsigned open_handles;
        bool exited, timed_out;
        PamCheckCallback cb; /* NULL once called or abandoned */
        void *userdata;
};

static void on_handle_closed(uv_handle_t *h)
{
        PamCheck *c = h->data;

        if (--c->open_handles == 0)
                free(c);
}

static void pam_check_close(PamCheck *c)
{
        uv_handle_t *handles[] = {(uv_handle_t *)&c->process, (uv_handle_t *)&c->input,
                                  (uv_handle_t *)&c->timer};

        for (size_t i = 0; i < ELEMENTSOF(handles); i++)
                if (handles[i]->data && !uv_is_closing(handles[i]))
                        uv_close(handles[i], on_handle_closed);
}

static void on_helper_exit(uv_process_t *p, int64_t status, int sig)
{
        PamCheck *c = container_of(p, PamCheck, process);
        PamCheckResult result;

        c->exited = true;
        if (c->timed_out)
                result = PAM_CHECK_TIMEOUT;
        else if (sig == 0 && status == PAM_HELPER_EXIT_OK)
                result = PAM_CHECK_OK;
        else if (sig == 0 && status == PAM_HELPER_EXIT_DENIED)
                result = PAM_CHECK_DENIED;
        else
                result = PAM_CHECK_FAILED;
        if (c->cb)
                TAKE_PTR(c->cb)(result, c->userdata);
        pam_check_close(c);
}

static void on_timeout(uv_timer_t *t)
{
        PamCheck *c = container_of(t, PamCheck, timer);

        if (c->exited)
                return;
        c->timed_out = true;
        /* The helper leads its own process group (it was started detached): whatever a PAM module
         * started goes with it. */
        (void)kill(-c->process.pid, SIGKILL);
}

int pam_check_start(uv_loop_t *loop, const PamCheckParams *p, const char *user, const char *password,
                    size_t password_len, PamCheckCallback cb, void *userdata, PamCheck **ret)
{
        char self[] = "/proc/self/exe";
        char *args[] = {(char *)"helios-launcher", (char *)"--pam-helper", (char *)p->service, NULL};
        char input[LAUNCHER_USER_MAX + 1 + LAUNCHER_PASSWORD_MAX + 1];
        size_t ulen = strlen(user);
        uv_stdio_container_t stdio[3];
        uv_process_options_t po;
        PamCheck *c;
        int k;

        assert(loop && p && user && cb && ret);
        assert(password || password_len == 0);
        assert(ulen <= LAUNCHER_USER_MAX && password_len <= LAUNCHER_PASSWORD_MAX);

        c = calloc(1, sizeof(PamCheck));
        if (!c)
                return -ENOMEM;
        k = uv_pipe_init(loop, &c->input, 0);
        if (k < 0) {
                free(c);
                return k;
        }
        c->input.data = c;
        c->open_handles++;
        k = uv_timer_init(loop, &c->timer);
        if (k < 0)
                goto fail;
        c->timer.data = c;
        c->open_handles++;

        stdio[0] = (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_READABLE_PIPE,
                                          .data.stream = (uv_stream_t *)&c->input};
        stdio[1] = (uv_stdio_container_t){.flags = UV_IGNORE};
        stdio[2] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO};
        po = (uv_process_options_t){
            .exit_cb = on_helper_exit,
            .file = self,
            .args = args,
            .env = (char **)p->envp, /* no secrets of ours, no LISTEN_* */
            .flags = UV_PROCESS_DETACHED,
            .stdio_count = 3,
            .stdio = stdio,
        };
        /* The handle joins the loop even when the start fails, and is closed either way. */
        c->process.data = c;
        c->open_handles++;
        k = uv_spawn(loop, &c->process, &po);
        if (k < 0) {
                c->exited = true;
                goto fail;
        }

        /* A fresh pipe holds far more than one packet: the write is complete or the helper is gone. */
        memcpy(input, user, ulen + 1);
        if (password) {
                memcpy(input + ulen + 1, password, password_len);
                input[ulen + 1 + password_len] = '\0';
        }
        uv_buf_t buf = uv_buf_init(input, (unsigned)(ulen + 1 + (password ? password_len + 1 : 0)));
        int w = uv_try_write((uv_stream_t *)&c->input, &buf, 1);
        explicit_bzero(input, sizeof(input));
        if (w != (int)buf.len)
                log_error("Cannot hand the credentials to the PAM helper: %s",
                          w < 0 ? uv_strerror(w) : "short write");
        /* EOF tells the helper the input is complete (and a short write makes it fail). */
        uv_close((uv_handle_t *)&c->input, on_handle_closed);
        (void)uv_timer_start(&c->timer, on_timeout, p->timeout_ms, 0);
        c->cb = cb;
        c->userdata = userdata;
        *ret = c;
        return 0;
fail:
        pam_check_close(c);
        return k;
}

void pam_check_abandon(PamCheck *c)
{
        if (!c)
                return;
        c->cb = NULL;
        if (!c->exited) {
                (void)kill(-c->process.pid, SIGKILL);
                /* The exit callback still comes, and closes the handles. */
                return;
        }
        pam_check_close(c);
}
