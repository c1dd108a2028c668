/* SPDX-License-Identifier: MIT */
/* The seccomp filter of policy/syscalls.c, loaded the two ways Helios loads it (libseccomp in the
 * worker, the exported BPF program in the launcher's child), each in a forked child: every denied call
 * gets the policy's errno, the argument rules cannot be dodged, and what users need still works. */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "policy.h"

typedef enum LoadMode {
        LOAD_LIBSECCOMP, /* policy_seccomp_apply(), as helios-worker --seccomp */
        LOAD_BPF,        /* policy_seccomp_export() then load, as the launcher's child */
        LOAD_NONE,       /* no filter: what the kernel says by itself */
} LoadMode;

static const LoadMode filtered_modes[] = {LOAD_LIBSECCOMP, LOAD_BPF};

/* Load the filter in the calling (child) process. */
static int load(LoadMode mode)
{
        struct sock_fprog prog;
        int r;

        switch (mode) {
        case LOAD_LIBSECCOMP:
                return policy_seccomp_apply();
        case LOAD_BPF:
                r = policy_seccomp_export(&prog);
                if (r < 0)
                        return r;
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                        return -errno;
                r = policy_seccomp_load_bpf(&prog);
                free(prog.filter);
                return r;
        default:
                return 0;
        }
}

/* Run fn in a child with the filter loaded; the child's exit status is its number of failures. */
static int in_child(LoadMode mode, int (*fn)(void))
{
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int r = load(mode);
                if (r < 0) {
                        fprintf(stderr, "loading the filter: %s\n", strerror(-r));
                        _exit(100);
                }
                _exit(fn());
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status))
                fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static int expect(const char *what, long ret, int want_errno)
{
        if (ret != -1 || errno != want_errno) {
                fprintf(stderr, "%s: returned %ld, errno %s; expected %s\n", what, ret, strerror(errno),
                        strerror(want_errno));
                return 1;
        }
        return 0;
}

/* Arguments that are invalid for every call (bad pointers, fds, flags), so that a call the filter
 * failed to stop only fails in the kernel, and does nothing. */
#define BAD -1L
static long call_with_bad_args(int nr)
{
        return syscall(nr, BAD, BAD, BAD, BAD, BAD, BAD);
}

static int check_every_always_rule(void)
{
        int failures = 0;

        for (size_t i = 0; i < policy_n_syscalls; i++) {
                const PolicySyscall *s = &policy_syscalls[i];
                int nr = seccomp_syscall_resolve_name(s->name);

                if (s->match != POLICY_MATCH_ALWAYS || nr < 0)
                        continue;
                failures += expect(s->name, call_with_bad_args(nr), s->error);
        }
        return failures;
}

static void test_denied_calls(void **state)
{
        for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                assert_int_equal(in_child(filtered_modes[m], check_every_always_rule), 0);
}

/* Without the filter these calls fail differently (or succeed), so the test above sees the filter's
 * answer and not the kernel's. Only as root: an ordinary user gets EPERM from the kernel for most. */
static int check_unfiltered(void)
{
        static const char *const names[] = {
            "mount",        "umount2",        "chroot",         "pivot_root",
            "unshare",      "setns",          "keyctl",         "add_key",
            "bpf",          "userfaultfd",    "fsopen",         "open_tree",
            "reboot",       "swapon",         "kexec_load",     "clock_settime",
            "settimeofday", "io_uring_setup", "io_uring_enter", "io_uring_register",
        };
        int failures = 0;

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                long r = call_with_bad_args(seccomp_syscall_resolve_name(names[i]));
                if (r == -1 && errno == EPERM) {
                        fprintf(stderr, "%s: EPERM without the filter\n", names[i]);
                        failures++;
                }
        }
        return failures;
}

static void test_unfiltered_answers_differ(void **state)
{
        if (geteuid() != 0) {
                print_message("not root: the kernel itself answers EPERM to an ordinary user\n");
                skip();
        }
        assert_int_equal(in_child(LOAD_NONE, check_unfiltered), 0);
}

/* The kernel takes the ioctl request as 32 bits; the filter must too. */
static int check_ioctl(void)
{
        static const unsigned long high = 0xffffffff00000000UL;
        struct winsize ws = {};
        int master, slave, failures = 0;
        char c = 'x';

        if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
                return 50;
        failures += expect("TIOCSTI", syscall(SYS_ioctl, slave, (unsigned long)TIOCSTI, &c), EPERM);
        failures += expect("TIOCSTI|high bits", syscall(SYS_ioctl, slave, TIOCSTI | high, &c), EPERM);
        failures +=
            expect("TIOCSTI on the master", syscall(SYS_ioctl, master, (unsigned long)TIOCSTI, &c), EPERM);
        failures += expect("TIOCLINUX", syscall(SYS_ioctl, slave, (unsigned long)TIOCLINUX, &c), EPERM);
        failures += expect("TIOCLINUX|high bits", syscall(SYS_ioctl, slave, TIOCLINUX | high, &c), EPERM);
        /* Ordinary terminal ioctls are untouched. */
        ws.ws_col = 99;
        if (ioctl(master, TIOCSWINSZ, &ws) < 0 || ioctl(slave, TIOCGWINSZ, &ws) < 0 || ws.ws_col != 99) {
                fprintf(stderr, "TIOCSWINSZ/TIOCGWINSZ: %s\n", strerror(errno));
                failures++;
        }
        if (ioctl(slave, FIONREAD, &(int){0}) < 0) {
                fprintf(stderr, "FIONREAD: %s\n", strerror(errno));
                failures++;
        }
        close(master);
        close(slave);
        return failures;
}

static void test_ioctl(void **state)
{
        for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                assert_int_equal(in_child(filtered_modes[m], check_ioctl), 0);
}

/* clone() as fork: returns twice; the child leaves at once. */
static long raw_clone(unsigned long flags)
{
        long r = syscall(SYS_clone, flags, 0L, NULL, NULL, 0L);
        if (r == 0)
                _exit(0);
        if (r > 0)
                (void)waitpid((pid_t)r, NULL, 0);
        return r;
}

static void *thread_main(void *arg)
{
        return arg;
}

static int check_clone(void)
{
        static const struct {
                const char *name;
                unsigned long flag;
        } flags[] = {
            {"CLONE_NEWUSER", CLONE_NEWUSER},     {"CLONE_NEWNS", CLONE_NEWNS},
            {"CLONE_NEWPID", CLONE_NEWPID},       {"CLONE_NEWNET", CLONE_NEWNET},
            {"CLONE_NEWUTS", CLONE_NEWUTS},       {"CLONE_NEWIPC", CLONE_NEWIPC},
            {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
        };
        int failures = 0, status;
        pthread_t t;
        void *ret;
        pid_t pid;

        for (size_t i = 0; i < ELEMENTSOF(flags); i++)
                failures += expect(flags[i].name, raw_clone(flags[i].flag | SIGCHLD), EPERM);
        failures +=
            expect("CLONE_NEWUSER|CLONE_NEWNS", raw_clone(CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD), EPERM);
        /* Any other bit set besides must not hide a namespace flag. */
        failures +=
            expect("CLONE_NEWUSER|CLONE_FILES", raw_clone(CLONE_NEWUSER | CLONE_FILES | SIGCHLD), EPERM);
        failures += expect("clone3", syscall(SYS_clone3, NULL, (size_t)0), ENOSYS);

        /* fork() (clone without namespace flags) and threads (clone3, then clone) still work. */
        pid = fork();
        if (pid == 0)
                _exit(7);
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7) {
                fprintf(stderr, "fork: %s\n", strerror(errno));
                failures++;
        }
        if (raw_clone(SIGCHLD) <= 0) {
                fprintf(stderr, "clone(SIGCHLD): %s\n", strerror(errno));
                failures++;
        }
        if (pthread_create(&t, NULL, thread_main, &failures) != 0 || pthread_join(t, &ret) != 0 ||
            ret != &failures) {
                fprintf(stderr, "pthread_create\n");
                failures++;
        }
        return failures;
}

static void test_clone(void **state)
{
        for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                assert_int_equal(in_child(filtered_modes[m], check_clone), 0);
}

/* Only the families of policy_socket_families[], and netlink for routing only; the family compared on
 * the 32 bits the kernel reads. */
static int check_sockets(void)
{
        static const struct {
                const char *name;
                unsigned long family;
                int type, protocol;
        } refused[] = {
            {"AF_VSOCK", AF_VSOCK, SOCK_STREAM, 0},
            {"AF_PACKET", AF_PACKET, SOCK_DGRAM, 0},
            {"AF_ALG", AF_ALG, SOCK_SEQPACKET, 0},
            {"AF_KEY", AF_KEY, SOCK_RAW, 2},
            {"AF_BLUETOOTH", AF_BLUETOOTH, SOCK_RAW, 0},
            {"AF_XDP", AF_XDP, SOCK_RAW, 0},
            {"AF_UNSPEC", AF_UNSPEC, SOCK_STREAM, 0},
            {"family 63", 63, SOCK_STREAM, 0},
            {"family 64", 64, SOCK_STREAM, 0},
            {"family -1", (unsigned long)-1, SOCK_STREAM, 0},
            {"AF_VSOCK|high bits", AF_VSOCK | 0xffffffff00000000UL, SOCK_STREAM, 0},
            {"NETLINK_AUDIT", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT},
            {"NETLINK_KOBJECT_UEVENT", AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT},
            {"NETLINK_SOCK_DIAG", AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG},
        };
        static const struct {
                const char *name;
                int family, type, protocol;
        } allowed[] = {
            {"AF_UNIX", AF_UNIX, SOCK_STREAM, 0},
            {"AF_INET", AF_INET, SOCK_STREAM, 0},
            {"AF_INET UDP", AF_INET, SOCK_DGRAM, 0},
            {"NETLINK_ROUTE", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE},
        };
        int failures = 0, sv[2];

        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                failures += expect(
                    refused[i].name,
                    syscall(SYS_socket, refused[i].family, refused[i].type, refused[i].protocol), EPERM);
        failures +=
            expect("socketpair(AF_VSOCK)", syscall(SYS_socketpair, AF_VSOCK, SOCK_STREAM, 0, sv), EPERM);
        failures +=
            expect("socketpair(AF_TIPC)", syscall(SYS_socketpair, AF_TIPC, SOCK_STREAM, 0, sv), EPERM);
        for (size_t i = 0; i < ELEMENTSOF(allowed); i++) {
                int fd = socket(allowed[i].family, allowed[i].type, allowed[i].protocol);
                if (fd < 0) {
                        fprintf(stderr, "%s: %s\n", allowed[i].name, strerror(errno));
                        failures++;
                } else
                        close(fd);
        }
        /* IPv6 may be off on the machine; only the filter's EPERM would be wrong. */
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        if (fd >= 0)
                close(fd);
        else if (errno == EPERM) {
                fprintf(stderr, "AF_INET6: EPERM\n");
                failures++;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
                fprintf(stderr, "socketpair(AF_UNIX): %s\n", strerror(errno));
                failures++;
        } else {
                close(sv[0]);
                close(sv[1]);
        }
        return failures;
}

static void test_socket_families(void **state)
{
        for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                assert_int_equal(in_child(filtered_modes[m], check_sockets), 0);
}

/* Without the filter, AF_VSOCK and NETLINK_AUDIT sockets can be made (where the kernel has them): the
 * test above sees the filter's answer. */
static int check_sockets_unfiltered(void)
{
        int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);

        if (fd < 0) {
                fprintf(stderr, "NETLINK_AUDIT without the filter: %s\n", strerror(errno));
                return 1;
        }
        close(fd);
        return 0;
}

static void test_sockets_unfiltered_differ(void **state)
{
        assert_int_equal(in_child(LOAD_NONE, check_sockets_unfiltered), 0);
}

/* Debugging one's own programs: the filter leaves ptrace alone. */
static int check_ptrace(void)
{
        int status, failures = 0;
        pid_t pid = fork();

        if (pid < 0)
                return 50;
        if (pid == 0) {
                for (;;)
                        pause();
        }
        if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0) {
                fprintf(stderr, "PTRACE_ATTACH: %s\n", strerror(errno));
                failures++;
        } else if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
                fprintf(stderr, "the traced child did not stop\n");
                failures++;
        } else if ((errno = 0, ptrace(PTRACE_PEEKUSER, pid, (void *)0, NULL)) == -1 && errno != 0) {
                fprintf(stderr, "PTRACE_PEEKUSER: %s\n", strerror(errno));
                failures++;
        } else if (ptrace(PTRACE_DETACH, pid, NULL, NULL) < 0) {
                fprintf(stderr, "PTRACE_DETACH: %s\n", strerror(errno));
                failures++;
        }
        kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        return failures;
}

static void test_ptrace_own_child(void **state)
{
        for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                assert_int_equal(in_child(filtered_modes[m], check_ptrace), 0);
}

/* A call through another architecture's table must not slip past rules written for the native one:
 * the process is killed. x86-64 only, where int 0x80 reaches the i386 table and the x32 bit the x32
 * one. */
#if defined(__x86_64__)
static int i386_getpid(void)
{
        long ret = 20; /* __NR_getpid on i386 */
        __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
        return (int)ret;
}

static int x32_getpid(void)
{
        return (int)syscall(0x40000000 | SYS_getpid);
}

/* How a child running fn ends: its exit status, or 1000 + the signal that killed it. */
static int child_end(LoadMode mode, int (*fn)(void))
{
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (load(mode) < 0)
                        _exit(100);
                (void)fn();
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void test_other_architectures(void **state)
{
        int tested = 0;

        /* Without IA-32 emulation int 0x80 faults before any filter runs: nothing to test there. */
        if (child_end(LOAD_NONE, i386_getpid) == 0) {
                for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                        assert_int_equal(child_end(filtered_modes[m], i386_getpid), 1000 + SIGSYS);
                tested++;
        }
        for (size_t m = 0; m < ELEMENTSOF(filtered_modes); m++)
                assert_int_equal(child_end(filtered_modes[m], x32_getpid), 1000 + SIGSYS);
        tested++;
        assert_true(tested > 0);
}
#endif

/* Every call the policy refuses outright is in the unit's SystemCallFilter=, with its errno, but those
 * the workspace's set-up needs, which only the worker's own filter refuses. */
static void test_unit_directives(void **state)
{
        char *text = NULL, needle[128];
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        assert_int_equal(policy_write_unit_directives(f), 0);
        assert_int_equal(fclose(f), 0);

        for (size_t i = 0; i < policy_n_syscalls; i++) {
                const PolicySyscall *s = &policy_syscalls[i];
                char *line;
                bool found = false;

                if (s->match != POLICY_MATCH_ALWAYS || s->workspace_setup ||
                    seccomp_syscall_resolve_name(s->name) == __NR_SCMP_ERROR)
                        continue;
                snprintf(needle, sizeof(needle), "%s%s", s->name, s->error == ENOSYS ? ":ENOSYS" : "");
                for (line = strstr(text, "\nSystemCallFilter=~"); line && !found;
                     line = strstr(line + 1, "\nSystemCallFilter=~")) {
                        const char *p = line + strlen("\nSystemCallFilter=~");
                        const char *end = strchr(p, '\n');
                        size_t n = strlen(needle);

                        for (; p && p < end; p = strchr(p, ' '), p = p ? p + 1 : NULL)
                                if (strncmp(p, needle, n) == 0 && (p[n] == ' ' || p[n] == '\n'))
                                        found = true;
                }
                if (!found)
                        fprintf(stderr, "%s is not in the unit's SystemCallFilter=\n", needle);
                assert_true(found);
        }
        assert_non_null(strstr(text, "\nNoNewPrivileges=yes\n"));
        assert_non_null(strstr(text, "\nRestrictNamespaces=~cgroup\n"));
        assert_null(strstr(text, "SystemCallFilter=~mount "));
        assert_non_null(strstr(text, "\nLimitNOFILE=8192\n"));
        assert_non_null(strstr(text, "\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n"));
        assert_non_null(strstr(text, "\nPrivateIPC=yes\n"));
        assert_non_null(strstr(text, "\nRemoveIPC=yes\n"));
        assert_non_null(
            strstr(text, "\nTemporaryFileSystem=/tmp:mode=1777,size=1073741824,nr_inodes=65536,"));
        assert_non_null(strstr(text, "\nTemporaryFileSystem=/dev/shm:mode=1777,size=268435456,"));
        assert_null(strstr(text, "PrivateTmp="));
        assert_non_null(strstr(text, "\nStandardInput=null\n"));
        assert_non_null(strstr(text, "\nStandardOutput=journal\n"));
        free(text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_denied_calls),
                cmocka_unit_test(test_unfiltered_answers_differ),
                cmocka_unit_test(test_ioctl),
                cmocka_unit_test(test_socket_families),
                cmocka_unit_test(test_sockets_unfiltered_differ),
                cmocka_unit_test(test_clone),
                cmocka_unit_test(test_ptrace_own_child),
                cmocka_unit_test(test_unit_directives),
#if defined(__x86_64__)
                cmocka_unit_test(test_other_architectures),
#endif
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
