/* SPDX-License-Identifier: MIT */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

/* The sandbox policy of a Helios worker and of every process in its terminals, as data. It is the one
 * source for both ways a worker runs:
 *
 *   embedded mode: the launcher applies it between fork and exec (launcher/sandbox.c), mount by mount
 *   and limit by limit, and loads the seccomp filter built from policy_syscalls[];
 *
 *   under systemd: `helios-policy --unit-template` writes the sandbox directives of
 *   helios-worker@.service from the same tables at build time, and the worker, started with
 *   --seccomp, loads the same filter itself for the rules no directive can express.
 *
 * One file per concern: filesystem.c (what is visible and writable), syscalls.c (the deny list),
 * limits.c (resource limits and privileges). Each entry says why it is there. */

/* ---- System calls (syscalls.c) ---- */

typedef enum PolicyMatch {
        /* Every call is refused. */
        POLICY_MATCH_ALWAYS,
        /* Refused when argument `arg` has any of the bits of `value` set (namespace flags of clone). */
        POLICY_MATCH_ANY_BIT,
        /* Refused when the low 32 bits of argument `arg` equal `value`. The kernel truncates an ioctl
         * request to 32 bits, so a comparison on all 64 would let cmd | 0xffffffff00000000 through. */
        POLICY_MATCH_LOW32,
        _POLICY_MATCH_MAX,
} PolicyMatch;

typedef struct PolicySyscall {
        const char *name;
        int error; /* the errno the caller sees */
        PolicyMatch match;
        unsigned arg;
        uint64_t value;
        const char *concern; /* groups the entries; printed in the unit as a comment */
        /* Needed to set up the workspace (policy/namespaces.c) and by pasta: under systemd these are
         * left out of the unit's filter, which binds the whole unit, and refused by the filter the
         * worker loads before it serves anything, which binds the workspace. */
        bool workspace_setup;
} PolicySyscall;

extern const PolicySyscall policy_syscalls[];
extern const size_t policy_n_syscalls;

/* ---- File system (filesystem.c) ---- */

typedef enum PolicyFsKind {
        /* The whole tree below is read-only and set-user-ID bits do nothing. */
        POLICY_FS_READ_ONLY,
        /* An empty tmpfs: every home under it disappears; the user's own comes back read-write. */
        POLICY_FS_HOMES,
        /* An empty, read-only tmpfs: Helios' own runtime state stays out of reach. */
        POLICY_FS_HIDDEN,
        /* A fresh tmpfs (mode 1777) shared by nobody outside the sandbox. */
        POLICY_FS_PRIVATE_TMP,
        /* A tmpfs holding only policy_devices[], a private devpts and /dev/shm. */
        POLICY_FS_DEV,
        /* A fresh procfs in which other users' processes do not exist. */
        POLICY_FS_PROC,
        _POLICY_FS_KIND_MAX,
} PolicyFsKind;

typedef struct PolicyFsRule {
        const char *path;
        PolicyFsKind kind;
        /* Optional: a rule whose path does not exist is skipped (/var/tmp on a minimal system). */
        bool optional;
} PolicyFsRule;

extern const PolicyFsRule policy_filesystem[];
extern const size_t policy_n_filesystem;

/* Device nodes bind-mounted from the host into the minimal /dev. */
extern const char *const policy_devices[];
extern const size_t policy_n_devices;

/* Mount options (for mount(2)'s data argument) of the file systems the sandbox creates. */
#define POLICY_TMPFS_TMP_OPTIONS   "mode=1777"
#define POLICY_TMPFS_EMPTY_OPTIONS "mode=0755,size=4k,nr_inodes=64"
#define POLICY_TMPFS_DEV_OPTIONS   "mode=0755,size=64k,nr_inodes=64"
#define POLICY_TMPFS_SHM_OPTIONS   "mode=1777"
#define POLICY_DEVPTS_OPTIONS      "newinstance,ptmxmode=0666,mode=0620"
#define POLICY_PROC_OPTIONS        "hidepid=invisible"

/* The runtime directory of the launcher and of workers' sockets under systemd: always hidden. */
#define POLICY_RUNTIME_DIR "/run/helios"

/* ---- Limits and privileges (limits.c) ---- */

typedef struct PolicyLimit {
        int resource;     /* RLIMIT_* */
        const char *unit; /* the directive name under systemd, LimitNOFILE */
        rlim_t value;     /* soft and hard; lowered to the inherited hard limit if above it */
} PolicyLimit;

extern const PolicyLimit policy_limits[];
extern const size_t policy_n_limits;

/* ---- Namespaces (namespaces.c) ---- */

/* Debian's user-mode network stack (package passt), the workspace's way out. */
#define POLICY_PASTA "/usr/bin/pasta"

/* The name of the setting that turns the workspace's outbound network off (yes by default), the same
 * in every place a setting is read: the launcher's --outbound-network=, the worker's
 * --outbound-network= (HELIOS_OUTBOUND_NETWORK= in the unit's environment under systemd). */
#define POLICY_SETTING_OUTBOUND_NETWORK "outbound-network"
#define POLICY_OUTBOUND_NETWORK_DEFAULT true

/* Put the caller into a workspace of its own: new user (mapping only the caller's uid and gid), network
 * (loopback up; outbound through pasta when outbound_network) and PID namespaces, and a /proc of the
 * workspace. Call as the user, single-threaded, before the seccomp filter. Async-signal-safe.
 *
 * Returns 0 in the workspace's first process (PID 2 of the new PID namespace, no capabilities, its
 * signal mask as the caller's), where the caller goes on, with *ret_answerer the (close-on-exec) socket
 * on which the supervisor tells peers' credentials as the machine sees them (peer_credentials_ask() of
 * common/socket-util.h): inside, every uid but the user's reads as the overflow uid. The calling
 * process never returns once the namespaces exist: it supervises the workspace, passes SIGTERM,
 * SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on, answers those questions, and exits with the
 * workspace's status. -errno when nothing could be made. */
int policy_namespaces_enter(bool outbound_network, int *ret_answerer);

/* Where the launcher leaves the answering socket for the worker it execs, named in the environment
 * variable POLICY_CREDENTIALS_FD_ENV. */
#define POLICY_CREDENTIALS_FD     9
#define POLICY_CREDENTIALS_FD_STR "9"
#define POLICY_CREDENTIALS_FD_ENV "HELIOS_CREDENTIALS_FD"

/* ---- The seccomp filter (seccomp.c), shared by the launcher and the worker ---- */

/* Build the filter of policy_syscalls[] for the native architecture and compile it to a BPF program,
 * for a caller that cannot use libseccomp when it loads it (between fork and exec). The program is
 * allocated with malloc(); free ret->filter. */
int policy_seccomp_export(struct sock_fprog *ret);

/* Build and load the filter into the calling process (and, through TSYNC, all its threads). Sets
 * no_new_privs too, which loading a filter unprivileged needs. */
int policy_seccomp_apply(void);

/* Load a program made by policy_seccomp_export(). Async-signal-safe. No_new_privs must be set. */
int policy_seccomp_load_bpf(const struct sock_fprog *prog);

/* ---- Unit directives (unit.c) ---- */

/* Write the sandbox directives of helios-worker@.service derived from the tables above. */
int policy_write_unit_directives(FILE *f);

/* Copy a unit file, replacing the line POLICY_UNIT_PLACEHOLDER with the directives. -ENOENT when the
 * template has no such line. */
#define POLICY_UNIT_PLACEHOLDER "@SANDBOX_DIRECTIVES@"
int policy_render_unit_template(FILE *in, FILE *out);
