/* SPDX-License-Identifier: MIT */
/* The namespaces of a workspace: its own network (loopback, abstract Unix sockets, /proc/net) and its
 * own processes, so that nothing one student runs can reach, see or outlive what another runs.
 *
 * Both modes enter them the same way, as the user and before the seccomp filter (which refuses every
 * namespace call): the launcher's sandbox in embedded mode, the worker itself (--namespaces) under
 * systemd, where no directive of systemd 252 gives a private network that still has a way out.
 *
 *   supervisor (the caller: as the user, in the machine's network and PID namespaces)
 *    ├── pasta (the user-mode network stack of Debian's passt package, when outbound is on)
 *    └── init (PID 1 of the workspace's PID namespace, in a user and network namespace of its own)
 *         └── the workspace: the caller's code goes on here (the worker, or the program run)
 *
 * The user namespace maps the user's own uid and gid to themselves and nothing else, so files, `id`
 * and `ps` read as before; it exists so that pasta, running as the user, may attach to the network
 * namespace. Inside it the workspace holds no capability (all are dropped before the caller goes on),
 * and the seccomp filter loaded next refuses every namespace call.
 *
 * When the workspace's first process ends, init ends, and the kernel kills everything left in its PID
 * namespace: a double-forked daemon does not outlive its workspace. The supervisor then stops pasta,
 * whose network namespace goes with it, and exits with the workspace's status.
 *
 * Everything here is async-signal-safe: the launcher calls it between fork and exec. For the same reason
 * children are made with _Fork(), not fork(): a process forked from one that uses libuv has libuv's
 * fork handler, which closes and reopens descriptors by their numbers in the parent, here taken by
 * others. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "policy.h"
#include "socket-util.h"

/* The descriptors pasta is given, at fixed numbers so that its arguments can be constant. */
#define PASTA_USERNS_FD 3
#define PASTA_NETNS_FD  4
#define PASTA_READY_FD  5

/* How pasta runs, each option for a reason:
 *   --config-net      the workspace gets the host's addresses and routes, and its interface is up;
 *   -f                it stays the supervisor's child, so it ends with the workspace;
 *   -t/-u none        no port of the workspace is reachable from outside: inbound stays closed;
 *   -T/-U none        no port of the host's loopback is forwarded in: what listens on the host's
 *                     127.0.0.1 (and other workspaces never do) stays out of reach;
 *   --no-map-gw       nor does the gateway address lead to the host's loopback;
 *   -P                it writes its pid once its set-up is done: that is when the workspace may start.
 * It sandboxes itself (namespaces of its own, an empty root, a seccomp filter) once attached. */
static const char *const pasta_argv[] = {
    "pasta",       "--config-net",
    "-f",          "-q",
    "-t",          "none",
    "-u",          "none",
    "-T",          "none",
    "-U",          "none",
    "--no-map-gw", "--no-netns-quit",
    "--userns",    "/proc/self/fd/3",
    "--netns",     "/proc/self/fd/4",
    "-P",          "/proc/self/fd/5",
    NULL,
};

/* How long the workspace waits for pasta's set-up before it starts without a way out. */
#define PASTA_READY_TIMEOUT_MS 10000

/* The signals the supervisor and init pass on to the workspace. */
static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void say(const char *s)
{
        ssize_t r = write(STDERR_FILENO, s, strlen(s));
        (void)r;
}

/* Says what failed and returns r (-errno). */
static int fail(const char *what, int r)
{
        const char *name = strerrorname_np(-r);

        say("helios: ");
        say(what);
        say(": ");
        say(name ? name : "error");
        say("\n");
        return r;
}

/* Decimal digits without stdio. */
static char *format_uint(char *out, unsigned long v)
{
        char tmp[24];
        size_t n = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n)
                *out++ = tmp[--n];
        *out = '\0';
        return out;
}

/* "ID ID 1\n": the id maps to itself, and nothing else is mapped. */
static int write_map(const char *path, unsigned long id)
{
        char line[64], *p = line;

        p = format_uint(p, id);
        *p++ = ' ';
        p = format_uint(p, id);
        memcpy(p, " 1\n", 4);
        return write_string_file(path, line, 0);
}

static int drop_capabilities(void)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};

        for (unsigned long cap = 0; cap < 64; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break;
                        return negative_errno();
                }
        if (syscall(SYS_capset, &h, d) < 0)
                return negative_errno();
        return 0;
}

static int loopback_up(void)
{
        struct ifreq ifr = {.ifr_name = "lo"};
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                r = negative_errno();
        else {
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                        r = negative_errno();
        }
        safe_close(fd);
        return r;
}

static int send_fds(int sock, const int *fds, size_t n)
{
        char byte = 'n';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control = {};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = CMSG_SPACE(n * sizeof(int))};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

        assert(n >= 1 && n <= 2);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n * sizeof(int));
        if (sendmsg(sock, &msg, MSG_NOSIGNAL) != 1)
                return negative_errno();
        return 0;
}

static int recv_fds(int sock, int *fds, size_t n)
{
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control = {};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        struct cmsghdr *c;
        ssize_t k;

        do
                k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return negative_errno();
        c = CMSG_FIRSTHDR(&msg);
        if (k != 1 || !c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(n * sizeof(int)))
                return -EBADMSG;
        memcpy(fds, CMSG_DATA(c), n * sizeof(int));
        return 0;
}

static void default_signals(const sigset_t *mask)
{
        struct sigaction sa = {.sa_handler = SIG_DFL};

        for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
                (void)sigaction(forwarded[i], &sa, NULL);
        (void)sigaction(SIGCHLD, &sa, NULL);
        (void)sigprocmask(SIG_SETMASK, mask, NULL);
}

static void on_signal(int sig)
{
}

/* Answer one question of the workspace's worker: the peer of the socket it sent, as the machine sees
 * it (common/socket-util.h). Returns false once the worker's end is closed. */
static bool answer_credentials(int answerer)
{
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        PeerCredentials answer = {.error = EBADMSG};
        struct cmsghdr *c;
        ssize_t n = recvmsg(answerer, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return false;
        if (n < 0)
                return true;
        c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int))) {
                struct ucred cred;
                socklen_t len = sizeof(cred);
                int fd;

                memcpy(&fd, CMSG_DATA(c), sizeof(int));
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                        answer.error = errno;
                else
                        answer =
                            (PeerCredentials){.uid = cred.uid, .gid = cred.gid, .pid = (uint32_t)cred.pid};
                safe_close(fd);
        }
        (void)send(answerer, &answer, sizeof(answer), MSG_NOSIGNAL | MSG_DONTWAIT);
        return true;
}

/* Wait for signals: children that ended are reaped, the others are passed on to main. Returns the wait
 * status of main once it has ended. `also`, when it ends, is forgotten (*also set to 0). Questions
 * arriving on answerer (when >= 0) are answered meanwhile. */
static int supervise(const sigset_t *set, pid_t main, pid_t *also, int answerer)
{
        int sfd = signalfd(-1, set, SFD_CLOEXEC);

        if (sfd < 0) {
                /* Without a way to hear signals the workspace cannot be supervised: end it. */
                int status;
                (void)fail("cannot supervise the workspace", negative_errno());
                (void)kill(main, SIGKILL);
                while (waitpid(main, &status, 0) < 0 && errno == EINTR)
                        ;
                return status;
        }
        for (;;) {
                struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = answerer, .events = POLLIN}};
                struct signalfd_siginfo si;
                int status;
                pid_t p;

                if (poll(pfd, answerer >= 0 ? 2 : 1, -1) < 0)
                        continue;
                if (answerer >= 0 && pfd[1].revents != 0 && !answer_credentials(answerer))
                        answerer = safe_close(answerer);
                if (!(pfd[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
                        continue;
                if (si.ssi_signo != SIGCHLD) {
                        (void)kill(main, (int)si.ssi_signo);
                        continue;
                }
                while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
                        if (p == main) {
                                safe_close(sfd);
                                safe_close(answerer);
                                return status;
                        }
                        if (also && p == *also) {
                                say("helios: the workspace's network stack (pasta) ended; no outbound "
                                    "network "
                                    "until the workspace restarts\n");
                                *also = 0;
                        }
                }
        }
}

_noreturn_ static void exit_like(int status)
{
        if (WIFSIGNALED(status))
                _exit(128 + WTERMSIG(status));
        _exit(WEXITSTATUS(status));
}

/* PID 1 of the workspace: sets up what needs its capabilities in the new namespaces, starts the
 * workspace, then reaps orphans and passes signals on until the workspace ends. Returns 0 in the
 * workspace's first process. */
static int run_init(int sock, int answerer, uid_t uid, gid_t gid, const sigset_t *set, const sigset_t *saved)
{
        int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), fds[2], r, status;
        char go;
        pid_t p;

        /* Installed handlers: PID 1 of a namespace gets no signal it has left at the default. */
        for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
                (void)sigaction(forwarded[i], &(struct sigaction){.sa_handler = on_signal}, NULL);
        (void)sigaction(SIGCHLD, &(struct sigaction){.sa_handler = on_signal}, NULL);

        /* A process that changed its uid (the launcher's child) is not dumpable, and then its /proc
         * files belong to root, which the new user namespace does not map: for the moment of writing
         * its own maps it is made dumpable. */
        if (dumpable == 0 && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                return negative_errno();
        r = write_map("/proc/self/uid_map", uid);
        if (r >= 0)
                r = write_string_file("/proc/self/setgroups", "deny\n", 0);
        if (r >= 0)
                r = write_map("/proc/self/gid_map", gid);
        /* Not dumpable from here on: nothing in the workspace may trace its init. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 && r >= 0)
                r = negative_errno();
        if (r < 0)
                return fail("cannot map the user into the workspace's user namespace", r);

        /* A /proc of the workspace's own processes, in a mount namespace this user namespace owns. */
        if (unshare(CLONE_NEWNS) < 0)
                return fail("cannot make the workspace's mount namespace", negative_errno());
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, POLICY_PROC_OPTIONS) < 0)
                return fail("cannot mount the workspace's /proc", negative_errno());
        /* pasta opens /dev/net/tun from the supervisor's view; the workspace has no use for it. */
        if (mount("tmpfs", "/dev/net", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  POLICY_TMPFS_EMPTY_OPTIONS) < 0 &&
            errno != ENOENT)
                return fail("cannot hide /dev/net", negative_errno());
        r = loopback_up();
        if (r < 0)
                return fail("cannot bring up the workspace's loopback", r);

        /* The supervisor attaches pasta to these; then it says go. */
        fds[0] = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
        fds[1] = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fds[0] < 0 || fds[1] < 0)
                return fail("cannot open the workspace's namespaces", negative_errno());
        r = send_fds(sock, fds, 2);
        safe_close(fds[0]);
        safe_close(fds[1]);
        if (r < 0)
                return fail("cannot hand the namespaces to the supervisor", r);
        if (read(sock, &go, 1) != 1)
                return -EPIPE;
        safe_close(sock);

        p = _Fork();
        if (p < 0)
                return negative_errno();
        if (p == 0) {
                /* The workspace: as its caller left it, but with no capability in the new user
                 * namespace either. */
                default_signals(saved);
                if (dumpable > 0)
                        (void)prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
                r = drop_capabilities();
                if (r < 0)
                        return fail("cannot drop the workspace's capabilities", r);
                return 0;
        }
        safe_close(answerer);
        (void)drop_capabilities();
        status = supervise(set, p, NULL, -1);
        exit_like(status);
}

_noreturn_ static void exec_pasta(int userns, int netns, int ready, const sigset_t *saved)
{
        default_signals(saved);
        /* systemd starts services with SIGPIPE ignored, which exec keeps, and this pasta takes an
         * ignored SIGPIPE for a failure to set up its own handlers. */
        (void)signal(SIGPIPE, SIG_DFL);
        if (dup2(userns, PASTA_USERNS_FD) < 0 || dup2(netns, PASTA_NETNS_FD) < 0 ||
            dup2(ready, PASTA_READY_FD) < 0 || close_range(PASTA_READY_FD + 1, ~0U, 0) < 0)
                _exit(127);
        execve(POLICY_PASTA, (char *const *)pasta_argv, (char *const[]){"PATH=/usr/bin:/bin", NULL});
        (void)fail("cannot run " POLICY_PASTA, negative_errno());
        _exit(127);
}

/* Start pasta attached to the workspace's namespaces and wait until its set-up is done. Returns its pid,
 * or 0 when the workspace goes on without a way out (which is said on stderr). */
static pid_t start_pasta(const int ns[2], const sigset_t *saved)
{
        int ready[2], r;
        char buf[32];
        pid_t p;

        if (pipe2(ready, O_CLOEXEC) < 0)
                return (void)fail("cannot start pasta", negative_errno()), 0;
        p = _Fork();
        if (p < 0) {
                (void)fail("cannot start pasta", negative_errno());
                safe_close(ready[0]);
                safe_close(ready[1]);
                return 0;
        }
        if (p == 0)
                exec_pasta(ns[0], ns[1], ready[1], saved);
        safe_close(ready[1]);

        /* Its pid arrives when it is ready; end of file or silence means it failed. */
        struct pollfd pfd = {.fd = ready[0], .events = POLLIN};
        do
                r = poll(&pfd, 1, PASTA_READY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        ssize_t n = r > 0 ? read(ready[0], buf, sizeof(buf)) : -1;
        safe_close(ready[0]);
        if (n > 0)
                return p;
        say("helios: pasta did not start; the workspace has no outbound network\n");
        (void)kill(p, SIGKILL);
        (void)waitpid(p, NULL, 0);
        return 0;
}

int policy_workspace_enter(bool outbound_network, int *ret_answerer)
{
        /* Inside the new user namespace, before its maps are written, every id reads as the overflow id. */
        uid_t uid = getuid();
        gid_t gid = getgid();
        sigset_t set, saved;
        int sock[2], cred[2], ns[2], r, status;
        pid_t init, pasta = 0;

        /* The signals the supervisor waits for are blocked before there is anyone to send them. */
        sigemptyset(&set);
        for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
                sigaddset(&set, forwarded[i]);
        sigaddset(&set, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &set, &saved) < 0)
                return negative_errno();
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0)
                return negative_errno();
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cred) < 0) {
                r = negative_errno();
                safe_close(sock[0]);
                safe_close(sock[1]);
                return r;
        }

        /* clone() as fork(): the child is PID 1 of a new PID namespace, in a new user namespace
         * (owned by the user, who is the caller) and a new network namespace. */
        init = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID | SIGCHLD, NULL, NULL,
                              NULL, NULL);
        if (init < 0) {
                r = negative_errno();
                safe_close(sock[0]);
                safe_close(sock[1]);
                safe_close(cred[0]);
                safe_close(cred[1]);
                (void)sigprocmask(SIG_SETMASK, &saved, NULL);
                return r;
        }
        if (init == 0) {
                safe_close(sock[0]);
                safe_close(cred[0]);
                r = run_init(sock[1], cred[1], uid, gid, &set, &saved);
                if (r < 0)
                        _exit(EXIT_FAILURE);
                *ret_answerer = cred[1];
                return 0;
        }

        /* The supervisor: never returns. */
        safe_close(sock[1]);
        safe_close(cred[1]);
        r = recv_fds(sock[0], ns, 2);
        if (r < 0) {
                /* init failed and said why; its status ends the supervisor too. */
                (void)waitpid(init, &status, 0);
                exit_like(status);
        }
        if (outbound_network)
                pasta = start_pasta(ns, &saved);
        safe_close(ns[0]);
        safe_close(ns[1]);
        if (write(sock[0], "g", 1) != 1) {
                (void)waitpid(init, &status, 0);
                exit_like(status);
        }
        safe_close(sock[0]);

        status = supervise(&set, init, &pasta, cred[0]);
        if (pasta > 0) {
                (void)kill(pasta, SIGTERM);
                (void)waitpid(pasta, NULL, 0);
        }
        exit_like(status);
}
