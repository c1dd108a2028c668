/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <uv.h>

/* One PAM login session, held by a helios-session process (session-main.c) that the launcher starts
 * and watches from its loop. The helper's standard input is a pipe kept here: closing it ends the
 * session. A helper that does not open its session in time, or does not close it in time once told
 * to, is killed with what it started. */

typedef struct SessionHolderParams {
        const char *path;    /* the helios-session executable */
        const char *service; /* PAM service */
        const char *utmp, *wtmp;
        uint64_t timeout_ms; /* to open, and to close once told to */
        char *const *envp;   /* the helper's whole environment */
} SessionHolderParams;

/* r: 0 the session is open; -EACCES PAM refused it (the account, or a session module); -ETIMEDOUT the
 * helper took too long and was killed; -EIO anything else. */
typedef void (*SessionHolderOpened)(int r, void *userdata);
/* The helper is gone (its session closed, or never opened): the holder frees itself after this. */
typedef void (*SessionHolderExited)(void *userdata);

typedef struct SessionHolder SessionHolder;

/* opened runs at most once, before exited; exited runs exactly once. */
int session_holder_start(uv_loop_t *loop, const SessionHolderParams *p, const char *user, const char *line,
                         const char *rhost, SessionHolderOpened opened, SessionHolderExited exited,
                         void *userdata, SessionHolder **ret);
/* Tell the helper to close its session (opened will not run any more). Calling it again does nothing. */
void session_holder_end(SessionHolder *h);
