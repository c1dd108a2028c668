/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <string.h>

#include "log.h"
#include "stop-signals.h"

static void on_signal(uv_signal_t *handle, int signum)
{
        StopSignals *s = handle->data;

        log_info("Received %s; stopping.", sigabbrev_np(signum));
        s->on_stop(s->userdata);
}

void stop_signals_start(StopSignals *s, uv_loop_t *loop, void (*on_stop)(void *userdata), void *userdata)
{
        s->on_stop = on_stop;
        s->userdata = userdata;
        s->term.data = s->intr.data = s;
        (void)uv_signal_init(loop, &s->term);
        (void)uv_signal_init(loop, &s->intr);
        (void)uv_signal_start(&s->term, on_signal, SIGTERM);
        (void)uv_signal_start(&s->intr, on_signal, SIGINT);
}

void stop_signals_close(StopSignals *s)
{
        if (uv_is_closing((uv_handle_t *)&s->term))
                return;
        uv_close((uv_handle_t *)&s->term, NULL);
        uv_close((uv_handle_t *)&s->intr, NULL);
}
