/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "policy.h"

/* Entering the sandbox of policy/ for one user, in embedded mode (under systemd the worker unit's
 * directives carry the same rules). Two halves:
 *
 *   sandbox_plan_new() runs in the launcher before fork: it resolves the account (uid, gid,
 *   supplementary groups, home), compiles the seccomp filter to BPF and lays out every mount, so
 *   that nothing after fork needs to allocate or look anything up.
 *
 *   sandbox_enter() runs in the child between fork and exec and uses only async-signal-safe calls:
 *   new mount namespace and the file system of policy/filesystem.c, then setgroups → setresgid →
 *   setresuid → verify → no_new_privs → rlimits → the workspace's own namespaces
 *   (policy/workspace.c) → seccomp, each step checked. Returns -errno on the first failure (the
 *   caller _exit()s); on success the process is the user, sandboxed, PID 2 of the workspace's PID
 *   namespace, with cwd at the home directory, ready to exec. The process that called it stays outside
 *   as the workspace's supervisor and exits with the workspace's status: it never returns. */

typedef struct SandboxPlan SandboxPlan;

typedef struct SandboxParams {
        const char *user;
        /* Directories hidden inside the sandbox besides the policy's own (the launcher's runtime
         * directory when it is not /run/helios). May be NULL. */
        const char *const *hide;
        size_t n_hide;
        /* Workspace roots outside the home that stay writable (the worker's --root). Each must be a
         * directory the user owns, outside everything the policy covers (other homes, /tmp, /dev,
         * /proc, hidden directories); one inside the home is already writable. May be NULL. */
        const char *const *writable;
        size_t n_writable;
        /* The user's settings (policy/settings.c) the sandbox applies itself: the rlimits among them.
         * NULL: the defaults. */
        const PolicyValues *values;
        /* The workspace reaches the network through pasta (the setting POLICY_SETTING_OUTBOUND_NETWORK);
         * without it, it has its loopback only. */
        bool outbound_network;
        /* Leave the socket that answers for peers' credentials (policy_workspace_enter()) at
         * POLICY_CREDENTIALS_FD across exec, for the worker; otherwise it is closed. */
        bool pass_credentials;
} SandboxParams;

int sandbox_plan_new(const SandboxParams *p, SandboxPlan **ret);
SandboxPlan *sandbox_plan_free(SandboxPlan *plan);

uid_t sandbox_plan_uid(const SandboxPlan *plan);
gid_t sandbox_plan_gid(const SandboxPlan *plan);
const char *sandbox_plan_home(const SandboxPlan *plan);

int sandbox_enter(const SandboxPlan *plan);
