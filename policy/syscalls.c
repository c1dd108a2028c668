/* SPDX-License-Identifier: MIT */
/* The system calls a worker and everything in its terminals may not make.
 *
 * A deny list, not an allow list: users compile, run and debug arbitrary programs, and an allow list
 * would break them one by one. What is denied is what reaches into the kernel's or other users' state
 * and what a user of a shared machine never needs: loading code into the kernel, mounting, new
 * namespaces (each one a large new attack surface reachable without privilege), keyrings shared across
 * the machine, pushing input into someone else's terminal, setting the clock.
 *
 * Every refusal is EPERM, as if the process lacked a privilege, which programs already handle. clone3
 * is the exception: its flags live in memory a filter cannot read, so it is refused as a whole, with
 * ENOSYS, which makes the C library fall back to clone, whose flags the filter does see.
 *
 * ptrace, process_vm_readv and friends stay: debugging one's own programs is part of the job, and the
 * kernel already confines them to the same user (and Yama to descendants).
 *
 * Calls that do not exist on the machine's architecture are skipped. Calls from any other
 * architecture's system-call table (a 32-bit program on a 64-bit kernel) kill the process: the filter
 * is written for the native table only. */
#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "macro.h"
#include "policy.h"

#define DENY(n, c)                                                                        \
        {                                                                                 \
                .name = (n), .error = EPERM, .match = POLICY_MATCH_ALWAYS, .concern = (c) \
        }
#define DENY_SETUP(n, c)                                                                   \
        {                                                                                  \
                .name = (n), .error = EPERM, .match = POLICY_MATCH_ALWAYS, .concern = (c), \
                .workspace_setup = true                                                    \
        }
#define DENY_ERRNO(n, e, c)                                                             \
        {                                                                               \
                .name = (n), .error = (e), .match = POLICY_MATCH_ALWAYS, .concern = (c) \
        }

/* Namespace flags clone() may not carry. CLONE_NEWTIME has no place in clone()'s flags (that bit is
 * part of the exit signal there); it is only reachable through clone3 and unshare, both refused. */
#define CLONE_NAMESPACE_FLAGS                                                                     \
        ((uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                    CLONE_NEWPID | CLONE_NEWNET))

/* What a working day needs: local sockets, IPv4 and IPv6, and netlink for the routing protocol only
 * (the C library asks it for the machine's addresses, getaddrinfo with AI_ADDRCONFIG among others).
 * Everything else is kernel code most machines never run, reachable by anyone who can call socket():
 * AF_VSOCK, AF_PACKET (raw frames), AF_ALG (the kernel's crypto), AF_BLUETOOTH, AF_XDP, AF_KEY and
 * the rest, and netlink's other protocols (NETLINK_AUDIT, NETLINK_KOBJECT_UEVENT, ...). */
const PolicyFamily policy_socket_families[] = {
    {AF_UNIX, "AF_UNIX"},
    {AF_INET, "AF_INET"},
    {AF_INET6, "AF_INET6"},
    {AF_NETLINK, "AF_NETLINK"},
};

const size_t policy_n_socket_families = ELEMENTSOF(policy_socket_families);

/* Above every family the kernel knows (AF_MAX is 46 in Linux 6.x): refused as one range. */
#define SOCKET_FAMILY_BOUND 64

#define SOCKET_FAMILIES(n)                                                                    \
        {                                                                                     \
                .name = (n), .error = EPERM, .match = POLICY_MATCH_NOT_IN, .arg = 0,          \
                .value = SOCKET_FAMILY_BOUND, .allowed = policy_socket_families,              \
                .n_allowed = ELEMENTSOF(policy_socket_families), .concern = "socket families" \
        }

const PolicySyscall policy_syscalls[] = {
    /* Code in the kernel runs with every privilege there is. */
    DENY("init_module", "kernel modules"),
    DENY("finit_module", "kernel modules"),
    DENY("delete_module", "kernel modules"),

    /* Replacing or stopping the running kernel. */
    DENY("kexec_load", "rebooting"),
    DENY("kexec_file_load", "rebooting"),
    DENY("reboot", "rebooting"),

    /* Programs run by the kernel itself, and a window onto every CPU's activity: the two largest
     * sources of kernel exploits reachable by ordinary users. */
    DENY("bpf", "kernel programs and tracing"),
    DENY("perf_event_open", "kernel programs and tracing"),

    /* The kernel log tells where the kernel is in memory. */
    DENY("syslog", "kernel log"),

    /* Mounting, old API and new: a user who could mount could undo the file system of
     * filesystem.c. chroot and pivot_root belong here too (systemd's @mount agrees). */
    DENY_SETUP("mount", "mounts"),
    DENY("umount", "mounts"),
    DENY_SETUP("umount2", "mounts"),
    DENY("fsopen", "mounts"),
    DENY("fsconfig", "mounts"),
    DENY("fsmount", "mounts"),
    DENY("fspick", "mounts"),
    DENY("move_mount", "mounts"),
    DENY("open_tree", "mounts"),
    DENY("mount_setattr", "mounts"),
    DENY("chroot", "mounts"),
    DENY_SETUP("pivot_root", "mounts"),

    /* New namespaces: a user namespace makes its creator root inside it, which opens code paths
     * of the kernel meant for root only; the others would let a process leave the sandbox's
     * mount and process view. Denying unshare does not stop clone() with the same flags, so
     * clone is filtered on its flags (argument 0 on every architecture Helios builds for). */
    DENY_SETUP("unshare", "namespaces"),
    DENY_SETUP("setns", "namespaces"),
    {.name = "clone",
     .error = EPERM,
     .match = POLICY_MATCH_ANY_BIT,
     .arg = 0,
     .value = CLONE_NAMESPACE_FLAGS,
     .concern = "namespaces",
     .workspace_setup = true},
    DENY_ERRNO("clone3", ENOSYS, "namespaces"),

    /* io_uring: its operations are carried out by the kernel on the process's behalf without ever
     * passing this filter (an openat, connect or socket submitted through the ring is never seen
     * here), and it has been the source of a long run of kernel exploits. Programs fall back to
     * ordinary calls when it is refused. */
    DENY("io_uring_setup", "io_uring"),
    DENY("io_uring_enter", "io_uring"),
    DENY("io_uring_register", "io_uring"),

    /* The socket families above, and netlink for routing only. */
    SOCKET_FAMILIES("socket"),
    SOCKET_FAMILIES("socketpair"),
    {.name = "socket",
     .error = EPERM,
     .match = POLICY_MATCH_EQ_BUT_NOT,
     .arg = 0,
     .value = AF_NETLINK,
     .arg2 = 2,
     .value2 = NETLINK_ROUTE,
     .concern = "socket families"},

    /* Kernel keyrings are shared across the machine and a long history of bugs. */
    DENY("keyctl", "keyrings"),
    DENY("add_key", "keyrings"),
    DENY("request_key", "keyrings"),

    /* Typing into a terminal as if its user had: TIOCSTI pushes bytes into a tty's input,
     * TIOCLINUX can paste the console's selection. A shell in a terminal could otherwise type
     * commands into whatever runs after it on the same tty. */
    {.name = "ioctl",
     .error = EPERM,
     .match = POLICY_MATCH_LOW32,
     .arg = 1,
     .value = TIOCSTI,
     .concern = "terminal input"},
    {.name = "ioctl",
     .error = EPERM,
     .match = POLICY_MATCH_LOW32,
     .arg = 1,
     .value = TIOCLINUX,
     .concern = "terminal input"},

    /* Lets a process stall the kernel at a page fault of its choosing, the usual tool to win a
     * kernel race. */
    DENY("userfaultfd", "memory"),

    DENY("swapon", "swap"),
    DENY("swapoff", "swap"),

    /* The clock is the machine's, not the user's. */
    DENY("settimeofday", "clock"),
    DENY("stime", "clock"),
    DENY("clock_settime", "clock"),
    DENY("clock_settime64", "clock"),
    DENY("clock_adjtime", "clock"),
    DENY("clock_adjtime64", "clock"),
    DENY("adjtimex", "clock"),

    /* Opens any file of a file system by its handle, past every directory permission. */
    DENY("open_by_handle_at", "file handles"),

    /* Direct hardware access (privileged anyway; refusing it costs nothing). */
    DENY("ioperm", "raw I/O"),
    DENY("iopl", "raw I/O"),
    DENY("pciconfig_iobase", "raw I/O"),
    DENY("pciconfig_read", "raw I/O"),
    DENY("pciconfig_write", "raw I/O"),
    DENY("s390_pci_mmio_read", "raw I/O"),
    DENY("s390_pci_mmio_write", "raw I/O"),

    /* Emulating other CPUs' memory models: rarely used, often buggy. */
    DENY("modify_ldt", "CPU emulation"),
    DENY("subpage_prot", "CPU emulation"),
    DENY("switch_endian", "CPU emulation"),
    DENY("vm86", "CPU emulation"),
    DENY("vm86old", "CPU emulation"),

    /* Calls no current program makes; what nobody uses nobody maintains. */
    DENY("_sysctl", "obsolete"),
    DENY("afs_syscall", "obsolete"),
    DENY("bdflush", "obsolete"),
    DENY("break", "obsolete"),
    DENY("create_module", "obsolete"),
    DENY("ftime", "obsolete"),
    DENY("get_kernel_syms", "obsolete"),
    DENY("getpmsg", "obsolete"),
    DENY("gtty", "obsolete"),
    DENY("idle", "obsolete"),
    DENY("lock", "obsolete"),
    DENY("mpx", "obsolete"),
    DENY("prof", "obsolete"),
    DENY("profil", "obsolete"),
    DENY("putpmsg", "obsolete"),
    DENY("query_module", "obsolete"),
    DENY("security", "obsolete"),
    DENY("sgetmask", "obsolete"),
    DENY("ssetmask", "obsolete"),
    DENY("stty", "obsolete"),
    DENY("sysfs", "obsolete"),
    DENY("tuxcall", "obsolete"),
    DENY("ulimit", "obsolete"),
    DENY("uselib", "obsolete"),
    DENY("ustat", "obsolete"),
    DENY("vserver", "obsolete"),
};

const size_t policy_n_syscalls = ELEMENTSOF(policy_syscalls);
