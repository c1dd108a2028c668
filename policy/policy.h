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

/* ---- Settings an admin changes, server-wide and per user (settings.c) ---- */

typedef enum PolicySettingId {
        POLICY_SETTING_MEMORY_MAX,
        POLICY_SETTING_TASKS_MAX,
        POLICY_SETTING_CPU_WEIGHT,
        POLICY_SETTING_OPEN_FILES,
        _POLICY_SETTING_MAX,
        _POLICY_SETTING_INVALID = -1,
} PolicySettingId;

typedef enum PolicySettingType {
        POLICY_SETTING_SIZE,  /* bytes, with K, M, G suffixes */
        POLICY_SETTING_COUNT, /* a plain number */
        POLICY_SETTING_BOOL,  /* yes/no, kept as 1/0 */
        _POLICY_SETTING_TYPE_MAX,
} PolicySettingType;

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
        /* In embedded mode: a file of the worker's own cgroup and the controller it needs, or an
         * rlimit (0: none; RLIMIT_CPU is never one of these). */
        const char *cgroup_file;
        const char *controller;
        int rlimit;
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
/* The value as a cgroup file takes it (cgroup: digits or "max") or as a unit file does (2G, infinity). */
int policy_value_format(PolicySettingId id, uint64_t v, bool cgroup, char *buf, size_t size);

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
