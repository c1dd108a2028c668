/* SPDX-License-Identifier: MIT */
/* pty_spawn() and friends, on real PTYs and real processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "pty.h"

/* Everything the program wrote until the PTY hung up, and its wait status. */
typedef struct Run {
        char out[8192];
        size_t len;
        int status;
        pid_t pid;
        char slave[64];
} Run;

static void drain(int master, pid_t pid, Run *run)
{
        for (;;) {
                struct pollfd p = {.fd = master, .events = POLLIN};
                ssize_t n;
                int k = poll(&p, 1, 10000);

                assert_true(k > 0); /* a hang here is a bug: every program below ends at once */
                n = read(master, run->out + run->len, sizeof(run->out) - 1 - run->len);
                if (n < 0 && errno == EAGAIN)
                        continue;
                if (n <= 0) {
                        /* EIO: the slave side is closed. */
                        assert_true(n == 0 || errno == EIO);
                        break;
                }
                run->len += (size_t)n;
                assert_true(run->len < sizeof(run->out) - 1);
        }
        run->out[run->len] = '\0';
        assert_int_equal(waitpid(pid, &run->status, 0), pid);
}

static int spawn_run(const PtyOptions *o, Run *run, PtyStep *step)
{
        int master, r;

        memset(run, 0, sizeof(*run));
        r = pty_spawn(o, &master, &run->pid, step);
        if (r < 0)
                return r;
        /* The master is non-blocking and close-on-exec. */
        assert_true(fcntl(master, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(master, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(ptsname_r(master, run->slave, sizeof(run->slave)), 0);
        drain(master, run->pid, run);
        close(master);
        return 0;
}

static int sh(const char *script, Run *run)
{
        char *argv[] = {(char *)"sh", (char *)"-c", (char *)script, NULL};
        PtyOptions o = {.file = "/bin/sh", .argv = argv, .cols = 80, .rows = 24};

        return spawn_run(&o, run, NULL);
}

static void assert_no_children(void)
{
        /* A failed spawn must not leave a zombie behind. */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

static void test_environment(void **state)
{
        Run run;

        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_PID", "1", 1);
        setenv("NOTIFY_SOCKET", "/run/x", 1);
        setenv("JOURNAL_STREAM", "8:9", 1);
        setenv("HELIOS_LOG_LEVEL", "debug", 1);
        setenv("TERM", "dumb", 1);
        setenv("KEEP_ME", "yes", 1);
        assert_int_equal(sh("echo \"T=$TERM C=$COLORTERM L=${LISTEN_FDS-unset},${LISTEN_PID-unset} "
                            "N=${NOTIFY_SOCKET-unset} J=${JOURNAL_STREAM-unset} H=${HELIOS_LOG_LEVEL-unset} "
                            "K=${KEEP_ME-unset}\"",
                            &run),
                         0);
        assert_non_null(
            strstr(run.out, "T=xterm-256color C=truecolor L=unset,unset N=unset J=unset H=unset K=yes"));
        assert_true(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
}

static void test_session_and_controlling_tty(void **state)
{
        Run run;
        long sid = -1, pgrp = -1, tty_nr = 0;
        char name[64] = "";
        const char *p;

        /* Fields 5, 6 and 7 of /proc/PID/stat are the process group, session and tty. */
        assert_int_equal(sh("read -r l < /proc/$$/stat; echo \"STAT ${l##*) }\"; echo \"TTY $(tty)\"; "
                            "if exec 3</dev/tty; then echo CTTY-OK; fi",
                            &run),
                         0);
        p = strstr(run.out, "STAT ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "STAT %*c %*d %ld %ld %ld", &pgrp, &sid, &tty_nr), 3);
        assert_int_equal(sid, run.pid);
        assert_int_equal(pgrp, run.pid);
        assert_true(tty_nr != 0);
        p = strstr(run.out, "TTY ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "TTY %63s", name), 1);
        assert_string_equal(name, run.slave);
        assert_non_null(strstr(run.out, "CTTY-OK"));
}

static void test_window_size(void **state)
{
        char *argv[] = {(char *)"stty", (char *)"size", NULL};
        PtyOptions o = {.file = "stty", .argv = argv, .cols = 123, .rows = 45};
        struct winsize ws;
        Run run;
        int master;
        pid_t pid;

        assert_int_equal(spawn_run(&o, &run, NULL), 0);
        assert_non_null(strstr(run.out, "45 123"));

        assert_int_equal(pty_spawn(&o, &master, &pid, NULL), 0);
        assert_int_equal(pty_resize(master, 90, 20), 0);
        assert_int_equal(ioctl(master, TIOCGWINSZ, &ws), 0);
        assert_int_equal(ws.ws_col, 90);
        assert_int_equal(ws.ws_row, 20);
        assert_int_equal(pty_resize(master, 0, 20), -EINVAL);
        drain(master, pid, &run);
        close(master);
}

static void test_exec_errors(void **state)
{
        char *argv[] = {(char *)"x", NULL};
        PtyOptions o = {.argv = argv, .cols = 80, .rows = 24};
        char tmp[] = "/tmp/helios-test-pty-XXXXXX";
        PtyStep step = _PTY_STEP_MAX;
        Run run;
        int fd;

        o.file = "/nonexistent/program";
        assert_int_equal(spawn_run(&o, &run, &step), -ENOENT);
        assert_int_equal(step, PTY_STEP_EXEC);
        assert_no_children();

        o.file = "helios-no-such-program";
        assert_int_equal(spawn_run(&o, &run, &step), -ENOENT);
        assert_no_children();

        /* Not executable: found, but refused. */
        fd = mkstemp(tmp);
        assert_true(fd >= 0);
        close(fd);
        o.file = tmp;
        assert_int_equal(spawn_run(&o, &run, &step), -EACCES);
        assert_int_equal(step, PTY_STEP_EXEC);
        unlink(tmp);
        assert_no_children();
}

static void test_path_search(void **state)
{
        char *argv[] = {(char *)"sh", (char *)"-c", (char *)"echo found-$((2+3))", NULL};
        PtyOptions o = {.file = "sh", .argv = argv, .cols = 80, .rows = 24};
        Run run;

        assert_int_equal(spawn_run(&o, &run, NULL), 0);
        assert_non_null(strstr(run.out, "found-5"));
}

static void test_cwd(void **state)
{
        char *argv[] = {(char *)"sh", (char *)"-c", (char *)"echo \"CWD $(pwd -P) PWD $PWD\"", NULL};
        PtyOptions o = {.file = "/bin/sh", .argv = argv, .cols = 80, .rows = 24};
        char dir[] = "/tmp/helios-test-pty-XXXXXX", file[64], expect[128], *real;
        PtyStep step = _PTY_STEP_MAX;
        Run run;

        assert_non_null(mkdtemp(dir));
        real = realpath(dir, NULL);
        assert_non_null(real);
        o.cwd = real;
        assert_int_equal(spawn_run(&o, &run, NULL), 0);
        (void)snprintf(expect, sizeof(expect), "CWD %s PWD %s", real, real);
        assert_non_null(strstr(run.out, expect));

        (void)snprintf(file, sizeof(file), "%s/f", real);
        assert_int_equal(close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
        o.cwd = file;
        assert_int_equal(spawn_run(&o, &run, &step), -ENOTDIR);
        assert_int_equal(step, PTY_STEP_CHDIR);

        (void)snprintf(file, sizeof(file), "%s/missing", real);
        o.cwd = file;
        assert_int_equal(spawn_run(&o, &run, &step), -ENOENT);
        assert_int_equal(step, PTY_STEP_CHDIR);
        assert_no_children();

        /* Where the directory was not the client's choice, a missing one is not fatal. */
        o.cwd_optional = true;
        assert_int_equal(spawn_run(&o, &run, NULL), 0);
        assert_non_null(strstr(run.out, "CWD / "));

        (void)snprintf(file, sizeof(file), "%s/f", real);
        unlink(file);
        rmdir(real);
        free(real);
}

static void test_signals_reset(void **state)
{
        char *argv[] = {(char *)"grep", (char *)"-E", (char *)"^Sig(Blk|Ign)", (char *)"/proc/self/status",
                        NULL};
        PtyOptions o = {.file = "grep", .argv = argv, .cols = 80, .rows = 24};
        sigset_t block;
        Run run;

        /* The worker ignores SIGPIPE, and threads block signals; none of that may reach a shell. */
        signal(SIGPIPE, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGCHLD);
        sigprocmask(SIG_BLOCK, &block, NULL);

        /* grep itself, not a shell: dash clears its signal mask at startup and would hide a leak. */
        assert_int_equal(spawn_run(&o, &run, NULL), 0);
        assert_non_null(strstr(run.out, "SigBlk:\t0000000000000000"));
        assert_non_null(strstr(run.out, "SigIgn:\t0000000000000000"));

        sigprocmask(SIG_UNBLOCK, &block, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
}

static void test_fds_closed(void **state)
{
        Run run;
        int fds[2];

        /* Without close-on-exec, as an fd inherited from systemd would be. */
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(dup2(fds[0], 57), 57);
        assert_int_equal(sh("if [ -e /proc/$$/fd/57 ]; then echo FD-LEAKED; else echo FD-CLOSED; fi", &run),
                         0);
        assert_non_null(strstr(run.out, "FD-CLOSED"));
        close(57);
        close(fds[0]);
        close(fds[1]);
}

static void test_exit_status(void **state)
{
        Run run;

        assert_int_equal(sh("exit 3", &run), 0);
        assert_true(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 3);
        assert_int_equal(sh("kill -TERM $$", &run), 0);
        assert_true(WIFSIGNALED(run.status) && WTERMSIG(run.status) == SIGTERM);
}

static void test_signal_name(void **state)
{
        char buf[32];

        assert_string_equal(pty_signal_name(SIGHUP, buf, sizeof(buf)), "SIGHUP");
        assert_string_equal(pty_signal_name(SIGKILL, buf, sizeof(buf)), "SIGKILL");
        assert_string_equal(pty_signal_name(SIGRTMIN + 2, buf, sizeof(buf)), "SIGRTMIN+2");
        assert_string_equal(pty_signal_name(200, buf, sizeof(buf)), "SIG200");
}

static void test_user_shell(void **state)
{
        char *shell = NULL;

        assert_int_equal(pty_user_shell(&shell), 0);
        assert_non_null(shell);
        assert_true(shell[0] == '/');
        free(shell);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_environment),   cmocka_unit_test(test_session_and_controlling_tty),
            cmocka_unit_test(test_window_size),   cmocka_unit_test(test_exec_errors),
            cmocka_unit_test(test_path_search),   cmocka_unit_test(test_cwd),
            cmocka_unit_test(test_signals_reset), cmocka_unit_test(test_fds_closed),
            cmocka_unit_test(test_exit_status),   cmocka_unit_test(test_signal_name),
            cmocka_unit_test(test_user_shell),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
