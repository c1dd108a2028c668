/* SPDX-License-Identifier: MIT */
/* Resource limits and privileges of a worker and everything it starts.
 *
 * Privileges: none, for good. The worker runs as the user with the user's groups and no
 * capabilities (the bounding set is emptied too), and no_new_privs is set before anything else is
 * loaded, so no set-user-ID or set-group-ID program (su, passwd, sudo) and no file capability can
 * give a process in a terminal more than the user has.
 *
 * Limits: memory, tasks, CPU weight and open files are settings an admin changes per server and per
 * user (settings.c): a cgroup of the workspace's own bounds the first three (the worker unit under
 * systemd; in embedded mode where the machine delegates cgroup v2 controllers). The rlimits below are
 * fixed and shared by both modes; where embedded mode gets no pids controller, the process-count limit
 * is what stops a fork bomb. A limit above what the launcher itself may grant is lowered to the
 * launcher's hard limit, never raised. */
#include <sys/resource.h>

#include "macro.h"
#include "policy.h"

const PolicyLimit policy_limits[] = {
    /* Per user across the machine: generous for builds, fatal to a fork bomb. */
    {RLIMIT_NPROC, "LimitNPROC", 4096},
    /* Locked memory is memory nobody else can get back; 8 MiB is what io_uring and gpg need. */
    {RLIMIT_MEMLOCK, "LimitMEMLOCK", 8 * 1024 * 1024},
    /* No real-time scheduling and no raised priority: the machine is shared. */
    {RLIMIT_RTPRIO, "LimitRTPRIO", 0},
    {RLIMIT_NICE, "LimitNICE", 0},
};

const size_t policy_n_limits = ELEMENTSOF(policy_limits);
