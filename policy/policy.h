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
        /* Refused unless the low 32 bits of argument `arg` are one of the families of `allowed[]` (an
         * allow list inside the deny list). Values at or above `value` are refused as one range; below
         * it each value not allowed has a rule of its own (libseccomp takes one comparison per
         * argument and rule, so "none of these" cannot be one rule). */
        POLICY_MATCH_NOT_IN,
        /* Refused when the low 32 bits of argument `arg` equal `value` and those of argument `arg2`
         * differ from `value2`: netlink sockets of any protocol but routing. */
        POLICY_MATCH_EQ_BUT_NOT,
        _POLICY_MATCH_MAX,
} PolicyMatch;

/* The socket families a worker may create (the allow list of socket() and socketpair() in
 * policy_syscalls[]), with the names RestrictAddressFamilies= knows them by. */
typedef struct PolicyFamily {
        int family;
        const char *name;
} PolicyFamily;

extern const PolicyFamily policy_socket_families[];
extern const size_t policy_n_socket_families;

typedef struct PolicySyscall {
        const char *name;
        int error; /* the errno the caller sees */
        PolicyMatch match;
        unsigned arg;
        uint64_t value;
        const struct PolicyFamily *allowed; /* POLICY_MATCH_NOT_IN */
        size_t n_allowed;
        unsigned arg2; /* POLICY_MATCH_EQ_BUT_NOT */
        uint64_t value2;
        const char *concern; /* groups the entries; printed in the unit as a comment */
        /* Needed to set up the workspace (policy/workspace.c) and by pasta: under systemd these are
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

/* Mount options (for mount(2)'s data argument) of the file systems the sandbox creates. The private
 * temporary directories and the devpts instance get their bounds from policy_bounds on top. */
#define POLICY_TMPFS_TMP_OPTIONS   "mode=1777"
#define POLICY_TMPFS_EMPTY_OPTIONS "mode=0755,size=4k,nr_inodes=64"
#define POLICY_TMPFS_DEV_OPTIONS   "mode=0755,size=64k,nr_inodes=64"
#define POLICY_TMPFS_SHM_OPTIONS   "mode=1777"
#define POLICY_DEVPTS_OPTIONS      "newinstance,ptmxmode=0666,mode=0620"
#define POLICY_PROC_OPTIONS        "hidepid=invisible"

/* The runtime directory of the launcher and of workers' sockets under systemd: always hidden. */
#define POLICY_RUNTIME_DIR "/run/helios"
/* Under systemd, where each workspace's devpts instance is mounted for its unit to bind. */
#define POLICY_UNIT_PTS_DIR POLICY_RUNTIME_DIR "/pts"

/* ---- Namespaces (namespaces.c) ---- */

typedef struct PolicyNamespace {
        int flag;              /* CLONE_NEW* */
        const char *directive; /* the unit's lines for it; NULL when other directives make it */
} PolicyNamespace;

extern const PolicyNamespace policy_namespaces[];
extern const size_t policy_n_namespaces;

/* ---- Limits and privileges (limits.c) ---- */

typedef struct PolicyLimit {
        int resource;     /* RLIMIT_* */
        const char *unit; /* the directive name under systemd, LimitNOFILE */
        rlim_t value;     /* soft and hard; lowered to the inherited hard limit if above it */
} PolicyLimit;

extern const PolicyLimit policy_limits[];
extern const size_t policy_n_limits;

/* What one workspace may hold of what is otherwise shared by the whole machine: RAM in its temporary
 * file systems and pseudo-terminals. One struct, so that a setting can override any of them. */
typedef struct PolicyBounds {
        uint64_t tmp_size;   /* bytes of /tmp, and again of /var/tmp */
        uint64_t tmp_inodes; /* files in each */
        uint64_t shm_size;   /* bytes of /dev/shm */
        uint64_t shm_inodes;
        unsigned ptys; /* pseudo-terminals open at once */
} PolicyBounds;

/* The defaults of policy_bounds, which are also those of the settings tmp_size, shm_size, pty_max. */
#define POLICY_TMP_SIZE_DEFAULT (UINT64_C(1) << 30)
#define POLICY_SHM_SIZE_DEFAULT (UINT64_C(256) << 20)
#define POLICY_PTYS_DEFAULT     256

extern const PolicyBounds policy_bounds;

/* The mount options of a private temporary file system at path (/tmp, /var/tmp, /dev/shm) and of the
 * sandbox's devpts instance, with the bounds of b. Allocated; NULL when out of memory. */
char *policy_tmpfs_options(const PolicyBounds *b, const char *path);
char *policy_devpts_options(const PolicyBounds *b, int tty_gid);

/* ---- Settings an admin changes, server-wide and per user (settings.c) ---- */

typedef enum PolicySettingId {
        POLICY_SETTING_MEMORY_MAX,
        POLICY_SETTING_TASKS_MAX,
        POLICY_SETTING_CPU_WEIGHT,
        POLICY_SETTING_OPEN_FILES,
        POLICY_SETTING_TMP_SIZE,
        POLICY_SETTING_SHM_SIZE,
        POLICY_SETTING_PTY_MAX,
        POLICY_SETTING_OUTBOUND_NETWORK,
        _POLICY_SETTING_MAX,
        _POLICY_SETTING_INVALID = -1,
} PolicySettingId;

typedef enum PolicySettingType {
        POLICY_SETTING_SIZE,  /* bytes, with K, M, G suffixes */
        POLICY_SETTING_COUNT, /* a plain number */
        POLICY_SETTING_BOOL,  /* yes/no, kept as 1/0 */
        _POLICY_SETTING_TYPE_MAX,
} PolicySettingType;

/* The field of PolicyBounds a setting overrides. */
typedef enum PolicyBound {
        POLICY_BOUND_NONE,
        POLICY_BOUND_TMP_SIZE,
        POLICY_BOUND_SHM_SIZE,
        POLICY_BOUND_PTYS,
        _POLICY_BOUND_MAX,
} PolicyBound;

/* No limit: "infinity" (or "max") in a file, where max allows it. */
#define POLICY_INFINITY UINT64_MAX

typedef struct PolicySetting {
        const char *key; /* in sandbox.conf */
        PolicySettingType type;
        uint64_t value; /* the default */
        uint64_t min, max;
        /* Under systemd: the worker unit's directive (written at build time with the default). Unless
         * unit_only_at_build, the launcher sets it on a user's unit at each start (SetUnitProperties,
         * runtime) to what sandbox.conf says; otherwise a drop-in changes it. */
        const char *unit_property;
        bool unit_only_at_build;
        /* In embedded mode: a file of the worker's own cgroup and the controller it needs, an rlimit
         * (0: none; RLIMIT_CPU is never one of these), or a bound of the sandbox's mounts. */
        const char *cgroup_file;
        const char *controller;
        int rlimit;
        PolicyBound bound;
        const char *reason;
} PolicySetting;

extern const PolicySetting policy_settings[_POLICY_SETTING_MAX];

/* What one user's workspace gets. */
typedef struct PolicyValues {
        uint64_t v[_POLICY_SETTING_MAX];
} PolicyValues;

/* Where the settings files live unless told otherwise. */
#define POLICY_CONFIG_DIR "/etc/helios"

void policy_values_default(PolicyValues *ret);
/* The defaults, then dir/sandbox.conf, then dir/sandbox.d/USER.conf (user may be NULL). Missing files
 * change nothing; a file that is not root's alone, an unknown key or a bad value is an error (logged). */
int policy_values_load(const char *dir, const char *user, PolicyValues *ret);
/* policy_bounds with what values override. */
void policy_values_bounds(const PolicyValues *values, PolicyBounds *ret);
/* The value as a cgroup file takes it (cgroup: digits or "max") or as a unit file does (2G, infinity). */
int policy_value_format(PolicySettingId id, uint64_t v, bool cgroup, char *buf, size_t size);

/* ---- The workspace's own network and processes (workspace.c) ---- */

/* Debian's user-mode network stack (package passt), the workspace's way out. */
#define POLICY_PASTA "/usr/bin/pasta"

/* The worker's option for the setting POLICY_SETTING_OUTBOUND_NETWORK (settings.c), which the unit
 * passes from HELIOS_OUTBOUND_NETWORK= in its environment. */
#define POLICY_OUTBOUND_NETWORK_OPTION  "outbound-network"
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
int policy_workspace_enter(bool outbound_network, int *ret_answerer);

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

/* ---- A worker sandboxed by its own user (user-sandbox.c) ---- */

typedef struct PolicyUserSandbox PolicyUserSandbox;

/* Prepare, before fork, what policy_user_sandbox_enter() needs: the user's home (put back where the
 * policy covers homes), the namespaces' id maps, the mount options and the BPF program. 1 on success,
 * 0 when everything but the filter is ready (this process runs under a filter of its own that refuses
 * seccomp(), which the worker then inherits). */
int policy_user_sandbox_new(const char *home, PolicyUserSandbox **ret);
PolicyUserSandbox *policy_user_sandbox_free(PolicyUserSandbox *s);
/* Between fork and exec (async-signal-safe): the namespaces where the machine allows them (said in
 * *ret_namespaces), then no_new_privs and the seccomp filter. */
int policy_user_sandbox_enter(const PolicyUserSandbox *s, bool *ret_namespaces);
/* Whether a child could have the namespaces: 1 yes, 0 not as root, -errno why not. */
int policy_user_sandbox_probe(void);

/* ---- Unit directives (unit.c) ---- */

/* Write the sandbox directives of helios-worker@.service derived from the tables above. */
int policy_write_unit_directives(FILE *f);

/* The directory to hide with a read-only tmpfs for a home outside the policy's home directories
 * (/srv/students for /srv/students/alice), or NULL in *ret for a home below one of them (/home/alice).
 * -EINVAL for a home that would expose what the policy hides or covers (/, /tmp/x, /var/x holding
 * /var/tmp...), or a path a unit file cannot carry as it is. home must be canonical. */
int policy_home_root(const char *home, char **ret);
/* helios-worker-pts@.service, which mounts a workspace's devpts instance for its worker unit. */
int policy_write_pts_unit(FILE *f);
/* The runtime drop-in of helios-worker@USER.service that gives it the account's home. */
int policy_write_home_dropin(FILE *f, const char *home);

/* Copy a unit file, replacing the line POLICY_UNIT_PLACEHOLDER with the directives. -ENOENT when the
 * template has no such line. */
#define POLICY_UNIT_PLACEHOLDER "@SANDBOX_DIRECTIVES@"
int policy_render_unit_template(FILE *in, FILE *out);
