/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Pseudo-terminals and the processes that run in them: everything between "run this" and a master fd
 * plus a pid. The terminal service owns what happens after that. */

/* Which step of starting a program failed: it tells a bad directory from a bad command. */
typedef enum PtyStep {
        PTY_STEP_SETUP, /* the PTY, fork, session or controlling terminal */
        PTY_STEP_CHDIR,
        PTY_STEP_EXEC,
        _PTY_STEP_MAX,
} PtyStep;

typedef struct PtyOptions {
        const char *file;  /* the program: a path containing '/', else a name looked up in PATH */
        char *const *argv; /* NULL-terminated; argv[0] is what the program sees ("-bash") */
        const char *cwd;   /* NULL: the worker's own */
        bool cwd_optional; /* if cwd cannot be entered, start in "/" instead of failing */
        unsigned cols, rows;
} PtyOptions;

/* Start o->file on a new PTY, in a new session with the PTY as its controlling terminal, with the
 * worker's environment cleaned of what describes the worker (socket activation, notify socket,
 * HELIOS_*) and TERM/COLORTERM set for xterm.js. Returns the master (non-blocking, close-on-exec)
 * and the pid of the session leader. Returns only once the program has been exec'd or has failed:
 * on failure the child is reaped, the error is the child's real errno and, if failed_step is not
 * NULL, *failed_step names the step that failed. */
int pty_spawn(const PtyOptions *o, int *ret_master, pid_t *ret_pid, PtyStep *failed_step);

/* Set the window size; the kernel sends SIGWINCH to the foreground process group. */
int pty_resize(int master, unsigned cols, unsigned rows);

/* The user's login shell: the passwd entry's, else $SHELL, else /bin/sh. */
int pty_user_shell(char **ret);

/* "SIGHUP", or "SIGRTMIN+3", or "SIG77": written into buf, which is returned. */
const char *pty_signal_name(int sig, char *buf, size_t size);
