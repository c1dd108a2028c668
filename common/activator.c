/* SPDX-License-Identifier: MIT */
#include "activator.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "socket-util.h"
#include "worker-output.h"

static void fclosep(FILE **f)
{
        if (*f)
                (void)fclose(*f);
}

/* A worker that exits this soon after its start counts as failing to start. */
#define QUICK_EXIT_MS 1000u
/* After this many failed starts in a row the activator stops trying for BACKOFF_MS, and turns away the
 * clients that keep arriving meanwhile, the way systemd puts a socket unit whose service keeps failing
 * into a failed state instead of spinning. */
#define MAX_QUICK_EXITS 5u
#define BACKOFF_MS      10000u
/* How soon to look again at a socket whose listener exists but did not take a probe connection. */
#define REPROBE_MS 1000u

typedef enum ActivatorState {
        ACTIVATOR_IDLE,
        ACTIVATOR_LISTENING, /* our socket, watched, no worker */
        ACTIVATOR_RUNNING,   /* our socket, our worker serves it */
        ACTIVATOR_FOREIGN,   /* a worker from an earlier run serves the path; we watch its pid */
        ACTIVATOR_BACKOFF,   /* our socket, the worker keeps failing: clients are turned away for a while */
        ACTIVATOR_STOPPED,
        _ACTIVATOR_STATE_MAX,
} ActivatorState;

/* Watches a process that is not our child through a pidfd. Separately allocated: a new one may be
 * needed before the old handle has finished closing. */
typedef struct PidWatch {
        uv_poll_t poll;
        int fd;
        Activator *activator; /* NULL once detached */
} PidWatch;

struct Activator {
        uv_loop_t *loop;
        ActivatorState state;

        char *socket_path;
        char *worker_path;
        char **argv;
        char **envp;
        char *listen_pid_env; /* the LISTEN_PID=... entry of envp, written in the child */
        int (*child_setup)(void *userdata);
        int (*before_start)(void *userdata);
        void (*after_exit)(void *userdata);
        void (*on_change)(void *userdata);
        void *userdata;
        bool have_nofile;
        struct rlimit nofile;
        bool shared;
        uid_t worker_uid;
        gid_t socket_gid;
        mode_t socket_mode;
        char *output_tag;
        WorkerOutput *output; /* the running (or last) worker's standard output and error */

        int listen_fd;
        uv_poll_t listen_poll;
        bool listen_poll_init;
        uv_signal_t sigchld;
        uv_timer_t timer;
        bool handles_init;

        pid_t pid; /* our worker, or the foreign one */
        uint64_t started_ms;
        unsigned quick_exits;
        unsigned long long starts;
        PidWatch *watch;
        unsigned closing_handles; /* closed by activator_stop(), their callbacks still to come */
        bool free_when_closed;
};

#define LISTEN_PID_PREFIX "LISTEN_PID="

static void activator_arm(Activator *a);
static int activator_probe(Activator *a);
static void write_pid_file(const Activator *a, pid_t pid);
static void remove_pid_file(const Activator *a);

static void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int activator_prepare_directory(const char *path)
{
        struct stat st;

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (lstat(path, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* Someone else may have made it first (in /tmp, say): never use a directory we do not own or that
         * others can enter. */
        if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0)
                return -EPERM;
        return 0;
}

int activator_prepare_shared_directory(const char *path, mode_t mode, gid_t gid)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        assert((mode & 0022) == 0);

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        /* Opened without following a symlink, then changed through the descriptor: what is checked is
         * what is changed. */
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ELOOP ? -ENOTDIR : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_uid != geteuid())
                return -EPERM;
        if (st.st_gid != gid && fchown(fd, (uid_t)-1, gid) < 0)
                return negative_errno();
        if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
                return negative_errno();
        return 0;
}

static bool env_dropped(const char *e)
{
        /* What systemd sets per service must describe the worker, not this process. */
        static const char *const prefixes[] = {"LISTEN_PID=",    "LISTEN_FDS=",   "LISTEN_FDNAMES=",
                                               "NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC="};

        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(e, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

/* Everything the child needs is built before fork: between fork and exec only async-signal-safe calls
 * are allowed, and another thread (libuv's pool) may hold the malloc lock at the moment of the fork. */
static int build_envp(Activator *a, char *const *source)
{
        extern char **environ;
        size_t n = 0, k = 0;
        char **v;

        if (!source)
                source = environ;
        for (char *const *e = source; e && *e; e++)
                n++;
        v = calloc(n + 4, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (char *const *e = source; e && *e; e++) {
                if (env_dropped(*e))
                        continue;
                v[k] = strdup(*e);
                if (!v[k++])
                        goto oom;
        }
        v[k] = strdup("LISTEN_FDS=1");
        if (!v[k++])
                goto oom;
        v[k] = strdup("LISTEN_FDNAMES=worker");
        if (!v[k++])
                goto oom;
        /* Room for the longest pid. */
        v[k] = calloc(1, strlen(LISTEN_PID_PREFIX) + 24);
        if (!v[k])
                goto oom;
        strcpy(v[k], LISTEN_PID_PREFIX);
        a->listen_pid_env = v[k++];
        a->envp = v;
        return 0;
oom:
        strv_free(v);
        return -ENOMEM;
}

int activator_new(uv_loop_t *loop, const ActivatorParams *p, Activator **ret)
{
        Activator *a;
        size_t n = 0;
        int r;

        assert(loop && p && p->socket_path && p->worker_path && p->worker_argv && p->worker_argv[0]);

        if (strlen(p->socket_path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
                return -ENAMETOOLONG;
        a = calloc(1, sizeof(Activator));
        if (!a)
                return -ENOMEM;
        a->loop = loop;
        a->listen_fd = -1;
        a->child_setup = p->child_setup;
        a->before_start = p->before_start;
        a->after_exit = p->after_exit;
        a->on_change = p->on_change;
        a->userdata = p->userdata;
        if (p->worker_nofile) {
                a->have_nofile = true;
                a->nofile = *p->worker_nofile;
        }
        a->socket_path = strdup(p->socket_path);
        a->worker_path = strdup(p->worker_path);
        while (p->worker_argv[n])
                n++;
        a->argv = calloc(n + 1, sizeof(char *));
        if (!a->socket_path || !a->worker_path || !a->argv)
                goto oom;
        for (size_t i = 0; i < n; i++) {
                a->argv[i] = strdup(p->worker_argv[i]);
                if (!a->argv[i])
                        goto oom;
        }
        a->shared = p->shared;
        a->worker_uid = p->shared ? p->worker_uid : geteuid();
        a->socket_gid = p->socket_gid;
        a->socket_mode = p->shared ? p->socket_mode : 0600;
        if (p->output_tag) {
                a->output_tag = strdup(p->output_tag);
                if (!a->output_tag)
                        goto oom;
        }
        r = build_envp(a, p->worker_envp);
        if (r < 0)
                goto oom;
        *ret = a;
        return 0;
oom:
        activator_free(a);
        return -ENOMEM;
}

static void notify_change(Activator *a)
{
        if (a->on_change)
                a->on_change(a->userdata);
}

/* ---- the child ---- */

static void write_str(const char *s)
{
        ssize_t r = write(STDERR_FILENO, s, strlen(s));
        (void)r;
}

/* Decimal digits without stdio (not async-signal-safe). */
static void format_pid(char *out, pid_t pid)
{
        char tmp[24];
        size_t n = 0;
        unsigned long v = (unsigned long)pid;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n)
                *out++ = tmp[--n];
        *out = '\0';
}

/* The fd the worker's executable is held by in the child: the first after the listening socket. */
#define EXE_FD (SD_LISTEN_FDS_START + 1)

_noreturn_ static void activator_child(Activator *a, int exe_fd, int null_fd, int output_fd)
{
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigset_t none;

        /* A fresh process as systemd would start it: default signal handling, nothing blocked. */
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void)sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);

        /* The listening socket becomes fd 3 and is inherited across exec; nothing else is. */
        if (a->listen_fd == SD_LISTEN_FDS_START) {
                if (fcntl(a->listen_fd, F_SETFD, 0) < 0)
                        goto fail;
        } else if (dup2(a->listen_fd, SD_LISTEN_FDS_START) < 0)
                goto fail;
        if (dup3(exe_fd, EXE_FD, O_CLOEXEC) < 0)
                goto fail;
        /* Nothing of this process's own standard descriptors: input from /dev/null, output and errors
         * into the worker's own pipe, which this process relays into its log. */
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(output_fd, STDOUT_FILENO) < 0 ||
            dup2(output_fd, STDERR_FILENO) < 0)
                goto fail;
        if (close_range(EXE_FD + 1, ~0U, 0) < 0)
                goto fail;
        if (a->have_nofile)
                (void)setrlimit(RLIMIT_NOFILE, &a->nofile);

        if (a->child_setup && a->child_setup(a->userdata) < 0)
                _exit(EXIT_FAILURE);

        /* After the set-up, which may have made this a new process in a PID namespace of its own. */
        format_pid(a->listen_pid_env + strlen(LISTEN_PID_PREFIX), getpid());

        /* By the file opened before the sandbox was entered: the sandbox may well hide the path (a
         * build tree under /tmp or in another home). A script cannot be run so (its interpreter would
         * have to open the descriptor, which exec closes): ENOENT, and then by its path. Nor, with
         * this kernel, can a file opened outside the workspace's user namespace be run from inside
         * it: EACCES, and then by its path too. */
        execveat(EXE_FD, "", a->argv, a->envp, AT_EMPTY_PATH);
        if (errno == ENOENT || errno == EACCES)
                execve(a->worker_path, a->argv, a->envp);
fail:
        write_str("helios: failed to start the worker ");
        write_str(a->worker_path);
        write_str(": ");
        write_str(strerror(errno));
        write_str("\n");
        _exit(127);
}

/* ---- the parent ---- */

static int activator_spawn(Activator *a)
{
        _cleanup_close_ int fd = -1, exe_fd = -1, null_fd = -1, out_r = -1, out_w = -1;
        int output[2];
        pid_t pid;
        int r;

        assert(a->state == ACTIVATOR_LISTENING);

        /* Opened anew for each start, so that a worker binary replaced by an upgrade is the one run. */
        fd = open(a->worker_path, O_PATH | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot open the worker %s: %m", a->worker_path);
        /* Above the numbers the child moves fds to, so that neither move overwrites the other. */
        exe_fd = fcntl(fd, F_DUPFD_CLOEXEC, EXE_FD + 1);
        if (exe_fd < 0)
                return negative_errno();
        if (a->before_start) {
                r = a->before_start(a->userdata);
                if (r < 0)
                        return r;
        }
        fd = safe_close(fd);
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        null_fd = fcntl(fd, F_DUPFD_CLOEXEC, EXE_FD + 1);
        if (null_fd < 0)
                return negative_errno();
        fd = safe_close(fd);
        if (pipe2(output, O_CLOEXEC) < 0)
                return negative_errno();
        out_r = output[0];
        fd = output[1];
        out_w = fcntl(fd, F_DUPFD_CLOEXEC, EXE_FD + 1);
        if (out_w < 0)
                return negative_errno();
        fd = safe_close(fd);
        /* The worker's end is the worker's: whoever copies it out of the worker gets a pipe of
         * their own. */
        if (a->shared && fchown(out_w, a->worker_uid, (gid_t)-1) < 0)
                return negative_errno();

        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0)
                activator_child(a, exe_fd, null_fd, out_w);

        /* A descendant of the last worker may still hold that pipe: only the new one is relayed. */
        worker_output_close(a->output);
        a->output = NULL;
        r = worker_output_new(a->loop, TAKE_FD(out_r), a->output_tag, &a->output);
        if (r < 0)
                log_warning_errno(r, "Cannot relay the output of the worker on %s, ignoring: %m",
                                  a->socket_path);

        a->pid = pid;
        a->started_ms = uv_now(a->loop);
        a->starts++;
        write_pid_file(a, pid);
        a->state = ACTIVATOR_RUNNING;
        /* From now on the worker owns the socket's queue; watching it would wake us for its clients. */
        (void)uv_poll_stop(&a->listen_poll);
        log_info("Started worker %s (pid %d) on %s.", a->worker_path, (int)pid, a->socket_path);
        notify_change(a);
        return 0;
}

/* Turn away whoever is queued while starts keep failing: a client then sees the connection end instead
 * of waiting for a worker that will not come. */
static void drain_backlog(Activator *a)
{
        int flags = fcntl(a->listen_fd, F_GETFL);

        /* The socket stays in blocking mode for the worker (as systemd hands it over); no worker runs
         * now, so it may turn non-blocking for a moment. */
        if (flags < 0 || fcntl(a->listen_fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return;
        for (unsigned i = 0; i < 256; i++) {
                int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        break;
                safe_close(fd);
        }
        (void)fcntl(a->listen_fd, F_SETFL, flags);
}

static void on_listen_ready(uv_poll_t *h, int status, int events)
{
        Activator *a = h->data;
        int r;

        if (a->state == ACTIVATOR_BACKOFF) {
                drain_backlog(a);
                return;
        }
        if (a->state != ACTIVATOR_LISTENING)
                return;
        if (status < 0) {
                log_warning("Watching %s failed: %s, ignoring.", a->socket_path, uv_strerror(status));
                return;
        }
        r = activator_spawn(a);
        if (r < 0) {
                log_error_errno(r, "Failed to fork the worker: %m");
                a->state = ACTIVATOR_BACKOFF;
                activator_arm(a);
        }
}

static void on_timer(uv_timer_t *t);

/* Watch the listening socket (LISTENING), or keep draining it (BACKOFF). */
static void activator_arm(Activator *a)
{
        int r;

        if (a->state == ACTIVATOR_BACKOFF)
                (void)uv_timer_start(&a->timer, on_timer, BACKOFF_MS, 0);
        r = uv_poll_start(&a->listen_poll, UV_READABLE, on_listen_ready);
        if (r < 0)
                log_error("Failed to watch %s: %s", a->socket_path, uv_strerror(r));
}

static void on_sigchld(uv_signal_t *h, int signum)
{
        Activator *a = h->data;
        int status;
        pid_t p;

        if (a->state != ACTIVATOR_RUNNING)
                return;
        /* Only our worker: other children of this process belong to other code. */
        p = waitpid(a->pid, &status, WNOHANG);
        if (p <= 0)
                return;

        uint64_t ran = uv_now(a->loop) - a->started_ms;
        if (WIFEXITED(status))
                log_full_errno(WEXITSTATUS(status) == 0 ? LOG_INFO : LOG_WARNING, 0,
                               "Worker (pid %d) exited with status %d after %llu ms.", (int)p,
                               WEXITSTATUS(status), (unsigned long long)ran);
        else if (WIFSIGNALED(status))
                log_warning("Worker (pid %d) was killed by signal %s after %llu ms.", (int)p,
                            strna(sigabbrev_np(WTERMSIG(status))), (unsigned long long)ran);
        a->pid = 0;
        remove_pid_file(a);
        if (a->after_exit)
                a->after_exit(a->userdata);

        bool failed = ran < QUICK_EXIT_MS && !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        a->quick_exits = failed ? a->quick_exits + 1 : 0;
        if (a->quick_exits >= MAX_QUICK_EXITS) {
                log_error("Worker failed %u times in a row; refusing clients for %u s.", a->quick_exits,
                          BACKOFF_MS / 1000);
                a->quick_exits = 0;
                a->state = ACTIVATOR_BACKOFF;
        } else
                a->state = ACTIVATOR_LISTENING;
        activator_arm(a);
        notify_change(a);
}

static void on_timer(uv_timer_t *t)
{
        Activator *a = t->data;

        switch (a->state) {
        case ACTIVATOR_BACKOFF:
                a->state = ACTIVATOR_LISTENING;
                log_info("Starting workers for %s again.", a->socket_path);
                activator_arm(a);
                break;
        case ACTIVATOR_FOREIGN:
                (void)activator_probe(a);
                break;
        default:
                break;
        }
}

/* ---- a worker from an earlier run ---- */

static void on_pid_watch_closed(uv_handle_t *h)
{
        PidWatch *w = container_of((uv_poll_t *)h, PidWatch, poll);

        safe_close(w->fd);
        free(w);
}

static void pid_watch_free(Activator *a)
{
        if (!a->watch)
                return;
        a->watch->activator = NULL;
        uv_close((uv_handle_t *)&a->watch->poll, on_pid_watch_closed);
        a->watch = NULL;
}

static void on_foreign_exit(uv_poll_t *h, int status, int events)
{
        PidWatch *w = container_of(h, PidWatch, poll);
        Activator *a = w->activator;

        if (!a)
                return;
        log_info("Worker (pid %d) from an earlier run has exited.", (int)a->pid);
        a->pid = 0;
        pid_watch_free(a);
        remove_pid_file(a);
        if (a->after_exit)
                a->after_exit(a->userdata);
        (void)activator_probe(a);
        notify_change(a);
}

static int watch_foreign(Activator *a, pid_t pid)
{
        PidWatch *w;
        int fd, r;

        fd = pidfd_open(pid, 0);
        if (fd < 0)
                return negative_errno();
        w = calloc(1, sizeof(PidWatch));
        if (!w) {
                safe_close(fd);
                return -ENOMEM;
        }
        w->fd = fd;
        w->activator = a;
        r = uv_poll_init(a->loop, &w->poll, fd);
        if (r < 0) {
                safe_close(fd);
                free(w);
                return r;
        }
        r = uv_poll_start(&w->poll, UV_READABLE, on_foreign_exit);
        a->watch = w;
        if (r < 0) {
                pid_watch_free(a);
                return r;
        }
        a->pid = pid;
        a->state = ACTIVATOR_FOREIGN;
        return 0;
}

/* Does pid hold the listening socket bound to path? The socket's inode comes from /proc/net/unix and
 * is looked for among the process's descriptors. */
static bool process_holds_listener(pid_t pid, const char *path)
{
        char dir[64], link[96], target[64];
        unsigned long inodes[8];
        size_t n_inodes = 0;
        _cleanup_(fclosep) FILE *f = fopen("/proc/net/unix", "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        bool found = false;
        DIR *d;
        struct dirent *de;

        if (!f)
                return false;
        while (getline(&line, &cap, f) > 0 && n_inodes < ELEMENTSOF(inodes)) {
                unsigned long inode;
                unsigned flags, state;
                int pos = 0;
                size_t len;

                /* Num RefCount Protocol Flags Type St Inode Path */
                if (sscanf(line, "%*s %*s %*s %x %*s %x %lu %n", &flags, &state, &inode, &pos) != 3 ||
                    pos == 0)
                        continue;
                len = strcspn(line + pos, "\n");
                if ((flags & 0x10000) && len == strlen(path) && strncmp(line + pos, path, len) == 0)
                        inodes[n_inodes++] = inode;
        }
        if (n_inodes == 0)
                return false;
        (void)snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        d = opendir(dir);
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                ssize_t k;
                if (de->d_name[0] == '.')
                        continue;
                (void)snprintf(link, sizeof(link), "%s/%.16s", dir, de->d_name);
                k = readlink(link, target, sizeof(target) - 1);
                if (k <= 0)
                        continue;
                target[k] = '\0';
                for (size_t i = 0; i < n_inodes; i++) {
                        char want[40];
                        (void)snprintf(want, sizeof(want), "socket:[%lu]", inodes[i]);
                        if (streq(target, want))
                                found = true;
                }
        }
        closedir(d);
        return found;
}

/* The pid of the worker this activator (or an earlier one) started, kept beside the socket, so that a
 * later activator knows whom to watch. */
static char *pid_file_path(const Activator *a)
{
        char *p;

        if (asprintf(&p, "%s.pid", a->socket_path) < 0)
                return NULL;
        return p;
}

static void write_pid_file(const Activator *a, pid_t pid)
{
        _cleanup_free_ char *path = pid_file_path(a), *tmp = NULL;
        _cleanup_close_ int fd = -1;
        char buf[24];
        int n;

        if (!path || asprintf(&tmp, "%s.tmp", path) < 0) {
                tmp = NULL;
                return;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return;
        n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
        if (write(fd, buf, (size_t)n) != n || rename(tmp, path) < 0)
                (void)unlink(tmp);
}

static void remove_pid_file(const Activator *a)
{
        _cleanup_free_ char *path = pid_file_path(a);

        if (path)
                (void)unlink(path);
}

static pid_t read_pid_file(const Activator *a)
{
        _cleanup_free_ char *path = pid_file_path(a);
        _cleanup_close_ int fd = -1;
        char buf[24];
        ssize_t n;

        if (!path)
                return 0;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        return (pid_t)strtol(buf, NULL, 10);
}

static int make_listener(Activator *a)
{
        _cleanup_close_ int fd = -1;
        int r;

        /* Blocking, like the sockets systemd passes: a worker that accepts without polling first must
         * work too. This process only polls it (and accepts in drain_backlog()). */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (unlink(a->socket_path) < 0 && errno != ENOENT)
                return negative_errno();
        /* Only this user may connect: a shared socket is handed to its group once bound. */
        r = unix_socket_bind(fd, a->socket_path, a->shared ? a->socket_gid : (gid_t)-1, a->socket_mode);
        if (r < 0)
                return r;
        if (listen(fd, SOMAXCONN) < 0)
                return negative_errno();

        r = uv_poll_init(a->loop, &a->listen_poll, fd);
        if (r < 0)
                return r;
        /* uv_poll_init() made it non-blocking; polling does not need that, and the worker must not
         * get it so. */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
                r = negative_errno();
                uv_close((uv_handle_t *)&a->listen_poll, NULL);
                return r;
        }
        a->listen_poll.data = a;
        a->listen_poll_init = true;
        a->listen_fd = TAKE_FD(fd);
        a->state = ACTIVATOR_LISTENING;
        activator_arm(a);
        log_debug("Listening on %s for the worker.", a->socket_path);
        return 0;
}

/* Find out who, if anyone, serves the socket path: a live listener (a worker that outlived the process
 * that started it) is left alone and watched; otherwise the path is ours. */
static int activator_probe(Activator *a)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int r;

        strcpy(sa.sun_path, a->socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (errno == EAGAIN) {
                        /* A listener with a full queue: alive, but it did not tell us who it is. */
                        a->state = ACTIVATOR_FOREIGN;
                        return uv_timer_start(&a->timer, on_timer, REPROBE_MS, 0);
                }
                if (errno != ECONNREFUSED && errno != ENOENT)
                        return negative_errno();
                return make_listener(a);
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (cred.uid != a->worker_uid) {
                log_error("%s is served by uid %u, not by uid %u.", a->socket_path, (unsigned)cred.uid,
                          (unsigned)a->worker_uid);
                return -EPERM;
        }
        /* Which process serves it: the worker the pid file names, or (the kernel records whoever last
         * called listen(), and a worker on libuv re-listens on the socket it inherits) the peer — each
         * believed only if it really holds the listening socket. */
        pid_t candidates[] = {read_pid_file(a), cred.pid};
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                if (candidates[i] <= 0 || !process_holds_listener(candidates[i], a->socket_path))
                        continue;
                r = watch_foreign(a, candidates[i]);
                if (r == -ESRCH)
                        continue; /* gone just now */
                if (r < 0)
                        return r;
                log_info("Worker (pid %d) from an earlier run is serving %s; leaving it be.",
                         (int)candidates[i], a->socket_path);
                return 0;
        }
        /* Served, but by nobody we can watch: look again whenever a client cannot connect. */
        log_warning("%s is served by a process that cannot be identified; leaving it be.", a->socket_path);
        a->state = ACTIVATOR_FOREIGN;
        return 0;
}

int activator_start(Activator *a)
{
        int r;

        assert(a->state == ACTIVATOR_IDLE);

        r = uv_timer_init(a->loop, &a->timer);
        if (r < 0)
                return r;
        a->timer.data = a;
        r = uv_signal_init(a->loop, &a->sigchld);
        if (r < 0) {
                uv_close((uv_handle_t *)&a->timer, NULL);
                return r;
        }
        a->sigchld.data = a;
        a->handles_init = true;
        r = uv_signal_start(&a->sigchld, on_sigchld, SIGCHLD);
        if (r < 0)
                return r;
        r = activator_probe(a);
        if (r >= 0)
                notify_change(a);
        return r;
}

void activator_recheck(Activator *a)
{
        struct pollfd p;

        if (a->state != ACTIVATOR_FOREIGN)
                return;
        if (a->watch) {
                /* The pidfd is readable once the process has exited, whether or not the loop has
                 * noticed yet. */
                p = (struct pollfd){.fd = a->watch->fd, .events = POLLIN};
                if (poll(&p, 1, 0) <= 0)
                        return;
                log_info("Worker (pid %d) from an earlier run has exited.", (int)a->pid);
                pid_watch_free(a);
                a->pid = 0;
                if (a->after_exit)
                        a->after_exit(a->userdata);
        }
        (void)uv_timer_stop(&a->timer);
        if (activator_probe(a) >= 0)
                notify_change(a);
}

static void activator_free_now(Activator *a)
{
        safe_close(a->listen_fd);
        free(a->socket_path);
        free(a->worker_path);
        strv_free(a->argv);
        strv_free(a->envp);
        free(a->output_tag);
        free(a);
}

static void on_handle_closed(uv_handle_t *h)
{
        Activator *a = h->data;

        if (--a->closing_handles == 0 && a->free_when_closed)
                activator_free_now(a);
}

static void close_handle(Activator *a, uv_handle_t *h)
{
        h->data = a;
        a->closing_handles++;
        uv_close(h, on_handle_closed);
}

void activator_stop(Activator *a)
{
        if (!a || !a->handles_init || a->state == ACTIVATOR_STOPPED)
                return;

        pid_watch_free(a);
        worker_output_close(a->output);
        a->output = NULL;
        if (a->listen_poll_init)
                close_handle(a, (uv_handle_t *)&a->listen_poll);
        close_handle(a, (uv_handle_t *)&a->timer);
        close_handle(a, (uv_handle_t *)&a->sigchld);

        if (a->listen_fd >= 0) {
                /* With no worker behind it the socket is just a file now; with one, it is the worker's. */
                if (a->state != ACTIVATOR_RUNNING)
                        (void)unlink(a->socket_path);
                else
                        log_info("Worker (pid %d) keeps serving %s.", (int)a->pid, a->socket_path);
                a->listen_fd = safe_close(a->listen_fd);
        }
        a->state = ACTIVATOR_STOPPED;
}

Activator *activator_free(Activator *a)
{
        if (!a)
                return NULL;
        assert(!a->handles_init || a->state == ACTIVATOR_STOPPED);
        /* Stopped while the loop runs: the memory goes once the loop is done with the handles. */
        if (a->closing_handles > 0)
                a->free_when_closed = true;
        else
                activator_free_now(a);
        return NULL;
}

bool activator_failing(const Activator *a)
{
        return a->state == ACTIVATOR_BACKOFF;
}

const char *activator_socket_path(const Activator *a)
{
        return a->socket_path;
}

pid_t activator_worker_pid(const Activator *a)
{
        return a->pid;
}

unsigned long long activator_worker_starts(const Activator *a)
{
        return a->starts;
}
