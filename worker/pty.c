/* SPDX-License-Identifier: MIT */
#include "pty.h"
#include "strv.h"

#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>

#include "macro.h"

extern char **environ;

/* Variables that describe the worker's own service rather than the user's session: a shell that
 * inherited LISTEN_FDS or NOTIFY_SOCKET could make a program believe it was socket-activated or
 * let it send notifications on the worker's behalf. TERM, COLORTERM and PWD are set afresh below;
 * OLDPWD would be the worker's. */
static const char *const env_drop[] = {
    "LISTEN_PID",     "LISTEN_FDS",       "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC",
    "JOURNAL_STREAM", "SYSTEMD_EXEC_PID", "TERM",           "COLORTERM",     "PWD",          "OLDPWD",
};

/* Everything the child needs, prepared before fork(): between fork and exec only async-signal-safe
 * calls are allowed (the worker has libuv's thread pool, whose locks may be held at fork time). */
typedef struct SpawnPlan {
        int master;
        int err_fd;
        int max_fd;
        char slave_name[64];
        char *const *argv;
        const char **envp;
        char **candidates;
        const char *cwd;
        bool cwd_optional;
        sigset_t empty_mask;
} SpawnPlan;

/* What the child reports through the error pipe when it cannot exec. */
typedef struct ChildError {
        int step;
        int error;
} ChildError;

static bool env_dropped(const char *entry)
{
        size_t n = strcspn(entry, "=");

        if (entry[n] != '=')
                return true; /* not NAME=value: nothing a program could use */
        if (n >= 7 && strncmp(entry, "HELIOS_", 7) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(env_drop); i++)
                if (strlen(env_drop[i]) == n && strncmp(entry, env_drop[i], n) == 0)
                        return true;
        return false;
}

/* The child's environment: pointers into environ plus our own entries (pwd, if given, is owned by
 * the caller). Only the array is allocated. */
static int env_build(const char *pwd, const char ***ret)
{
        size_t n = 0, k = 0;
        const char **v;

        for (char **e = environ; e && *e; e++)
                n++;
        v = calloc(n + 4, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (char **e = environ; e && *e; e++)
                if (!env_dropped(*e))
                        v[k++] = *e;
        v[k++] = "TERM=xterm-256color";
        v[k++] = "COLORTERM=truecolor";
        if (pwd)
                v[k++] = pwd;
        v[k] = NULL;
        *ret = v;
        return 0;
}

/* The paths execve() is tried on, in order: file itself if it names a path, else each PATH entry
 * joined with it, as execvp() would (an empty entry is the current directory). execvp() itself is
 * not async-signal-safe, so the search is planned here and walked in the child. */
static int exec_candidates(const char *file, char ***ret)
{
        const char *path = getenv("PATH");
        _cleanup_(strv_freep) char **v = NULL;
        size_t n = 1, k = 0;
        char buf[256];

        if (strchr(file, '/') || !*file) {
                v = calloc(2, sizeof(char *));
                if (!v || !(v[0] = strdup(file)))
                        return -ENOMEM;
                *ret = TAKE_PTR(v);
                return 0;
        }
        if (!path) {
                size_t len = confstr(_CS_PATH, buf, sizeof(buf));
                path = len > 0 && len <= sizeof(buf) ? buf : "/bin:/usr/bin";
        }
        for (const char *p = path; *p; p++)
                n += *p == ':';
        v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (const char *p = path;; p++) {
                size_t len = strcspn(p, ":");
                int r =
                    len == 0 ? asprintf(&v[k], "%s", file) : asprintf(&v[k], "%.*s/%s", (int)len, p, file);

                if (r < 0) {
                        v[k] = NULL;
                        return -ENOMEM;
                }
                k++;
                p += len;
                if (*p == '\0')
                        break;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

_noreturn_ static void child_fail(int fd, PtyStep step, int error)
{
        ChildError e = {step, error};

        /* If even this fails the parent sees a closed pipe and a child that exits 127 at once. */
        (void)!write(fd, &e, sizeof(e));
        _exit(127);
}

static void close_all_but(int keep, int max_fd)
{
        int lo = 3;

        if (keep >= lo) {
                if (keep > lo && close_range((unsigned)lo, (unsigned)keep - 1, 0) < 0 && errno == ENOSYS)
                        for (int fd = lo; fd < keep; fd++)
                                (void)close(fd);
                lo = keep + 1;
        }
        if (close_range((unsigned)lo, ~0U, 0) < 0 && errno == ENOSYS)
                for (int fd = lo; fd <= max_fd; fd++)
                        (void)close(fd);
}

/* Runs in the forked child: async-signal-safe calls only. */
_noreturn_ static void child_exec(const SpawnPlan *p)
{
        struct sigaction sa = {.sa_handler = SIG_DFL};
        int fd, err = ENOENT;
        bool eacces = false;

        /* All signals arrive blocked (see pty_spawn()). The worker's handlers belong to the worker
         * (libuv's would write into the worker's own signal pipe) and it ignores SIGPIPE: a program
         * must start with the default dispositions and the empty mask a login would give it. Those
         * the kernel refuses to change (SIGKILL, SIGSTOP, glibc's internal ones) fail harmlessly. */
        for (int sig = 1; sig < _NSIG; sig++)
                (void)sigaction(sig, &sa, NULL);
        (void)sigprocmask(SIG_SETMASK, &p->empty_mask, NULL);

        /* A new session without a controlling terminal: the PTY becomes it, so job control and
         * hangups work, and TIOCSTI from inside cannot reach any other terminal. */
        if (setsid() < 0)
                child_fail(p->err_fd, PTY_STEP_SETUP, errno);

        /* TIOCGPTPEER opens the peer of this very master, immune to a /dev/pts that is not the
         * instance the master came from; the path is the fallback for kernels before 4.13. */
        fd = ioctl(p->master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
        if (fd < 0)
                fd = open(p->slave_name, O_RDWR | O_NOCTTY);
        if (fd < 0)
                child_fail(p->err_fd, PTY_STEP_SETUP, errno);
        if (ioctl(fd, TIOCSCTTY, 0) < 0)
                child_fail(p->err_fd, PTY_STEP_SETUP, errno);
        for (int i = 0; i < 3; i++)
                if (fd != i && dup2(fd, i) < 0)
                        child_fail(p->err_fd, PTY_STEP_SETUP, errno);
        if (fd > 2)
                (void)close(fd);
        /* Everything else the worker holds (client sockets, the listener, inotify) is off limits,
         * close-on-exec or not. The error pipe closes itself on exec. */
        close_all_but(p->err_fd, p->max_fd);

        if (p->cwd && chdir(p->cwd) < 0) {
                if (!p->cwd_optional)
                        child_fail(p->err_fd, PTY_STEP_CHDIR, errno);
                (void)!chdir("/");
        }

        for (char **c = p->candidates; *c; c++) {
                (void)execve(*c, p->argv, (char *const *)p->envp);
                switch (errno) {
                case EACCES:
                        eacces = true;
                        continue;
                case ENOENT:
                case ENOTDIR:
                case ESTALE:
                case ENODEV:
                case ETIMEDOUT:
                        err = errno;
                        continue;
                default:
                        child_fail(p->err_fd, PTY_STEP_EXEC, errno);
                }
        }
        child_fail(p->err_fd, PTY_STEP_EXEC, eacces ? EACCES : err);
}

static int open_master(unsigned cols, unsigned rows, int *ret_fd, char *name, size_t name_size)
{
        _cleanup_close_ int fd = -1;
        struct termios tio;
        int r;

        fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (grantpt(fd) < 0 || unlockpt(fd) < 0)
                return negative_errno();
        r = ptsname_r(fd, name, name_size);
        if (r != 0)
                return -r;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                return negative_errno();
        /* Termios on the master reaches the slave. IUTF8 lets the line discipline erase a whole
         * multi-byte character; the kernel's default leaves it off. */
        if (tcgetattr(fd, &tio) == 0) {
                tio.c_iflag |= IUTF8;
                (void)tcsetattr(fd, TCSANOW, &tio);
        }
        r = pty_resize(fd, cols, rows);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int pty_spawn(const PtyOptions *o, int *ret_master, pid_t *ret_pid, PtyStep *failed_step)
{
        _cleanup_(strv_freep) char **candidates = NULL;
        _cleanup_free_ const char **envp = NULL;
        _cleanup_free_ char *pwd = NULL;
        _cleanup_close_ int master = -1, err_read = -1, err_write = -1;
        SpawnPlan plan = {};
        sigset_t all, saved;
        struct rlimit rl;
        ChildError e;
        ssize_t n;
        pid_t pid;
        int pipefd[2], r;

        assert(o && o->file && o->argv && o->argv[0] && ret_master && ret_pid);

        if (failed_step)
                *failed_step = PTY_STEP_SETUP;
        r = open_master(o->cols, o->rows, &master, plan.slave_name, sizeof(plan.slave_name));
        if (r < 0)
                return r;
        if (o->cwd && asprintf(&pwd, "PWD=%s", o->cwd) < 0) {
                pwd = NULL;
                return -ENOMEM;
        }
        r = env_build(pwd, &envp);
        if (r < 0)
                return r;
        r = exec_candidates(o->file, &candidates);
        if (r < 0)
                return r;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        err_read = pipefd[0];
        err_write = pipefd[1];

        plan.master = master;
        plan.err_fd = err_write;
        plan.max_fd =
            getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)INT_MAX ? (int)rl.rlim_cur : 65536;
        plan.argv = o->argv;
        plan.envp = envp;
        plan.candidates = candidates;
        plan.cwd = o->cwd;
        plan.cwd_optional = o->cwd_optional;
        sigemptyset(&plan.empty_mask);
        sigfillset(&all);

        /* With every signal blocked across fork() the worker's handlers cannot run in the child
         * before it has reset them. */
        r = -pthread_sigmask(SIG_SETMASK, &all, &saved);
        if (r < 0)
                return r;
        pid = fork();
        if (pid == 0)
                child_exec(&plan);
        r = pid < 0 ? negative_errno() : 0;
        (void)pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return r;

        err_write = safe_close(err_write);
        /* The pipe closes on a successful exec and carries the errno otherwise; waiting for that is
         * short (the child only sets itself up) and lets the caller answer with the real error. */
        do
                n = read(err_read, &e, sizeof(e));
        while (n < 0 && errno == EINTR);

        if (n != 0) {
                int status;

                if (n != (ssize_t)sizeof(e)) {
                        /* Cannot happen with a pipe and 8 bytes; do not leave a half-started child. */
                        (void)kill(pid, SIGKILL);
                        e = (ChildError){PTY_STEP_SETUP, n < 0 ? errno : EIO};
                }
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                if (failed_step && e.step >= 0 && e.step < _PTY_STEP_MAX)
                        *failed_step = (PtyStep)e.step;
                return e.error > 0 ? -e.error : -EIO;
        }

        *ret_master = TAKE_FD(master);
        *ret_pid = pid;
        return 0;
}

int pty_resize(int master, unsigned cols, unsigned rows)
{
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};

        if (cols == 0 || rows == 0 || cols > USHRT_MAX || rows > USHRT_MAX)
                return -EINVAL;
        if (ioctl(master, TIOCSWINSZ, &ws) < 0)
                return negative_errno();
        return 0;
}

int pty_user_shell(char **ret)
{
        const struct passwd *pw = getpwuid(getuid());
        const char *shell = getenv("SHELL");
        char *s;

        if (pw && pw->pw_shell && pw->pw_shell[0] == '/')
                shell = pw->pw_shell;
        else if (!shell || shell[0] != '/')
                shell = "/bin/sh";
        s = strdup(shell);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

const char *pty_signal_name(int sig, char *buf, size_t size)
{
        const char *abbrev = sigabbrev_np(sig);

        if (abbrev)
                (void)snprintf(buf, size, "SIG%s", abbrev);
        else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
                (void)snprintf(buf, size, "SIGRTMIN+%d", sig - SIGRTMIN);
        else
                (void)snprintf(buf, size, "SIG%d", sig);
        return buf;
}
