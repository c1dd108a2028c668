/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

/* SIGTERM and SIGINT, as both launcher programs stop on them. */
typedef struct StopSignals {
        uv_signal_t term, intr;
        void (*on_stop)(void *userdata);
        void *userdata;
} StopSignals;

/* Watches SIGTERM and SIGINT on loop: each is logged, then on_stop(userdata) is called. */
void stop_signals_start(StopSignals *s, uv_loop_t *loop, void (*on_stop)(void *userdata), void *userdata);

/* Closes both handles, so that the loop can end; calling it again does nothing. */
void stop_signals_close(StopSignals *s);
