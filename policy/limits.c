/* SPDX-License-Identifier: MIT */
/* Resource limits and privileges of a worker and everything it starts.
 *
 * Privileges: none, for good. The worker runs as the user with the user's groups and no
 * capabilities (the bounding set is emptied too), and no_new_privs is set before anything else is
 * loaded, so no set-user-ID or set-group-ID program (su, passwd, sudo) and no file capability can
 * give a process in a terminal more than the user has.
 *
 * Limits: under systemd the per-user slice bounds memory, tasks and CPU (units/helios.slice and the
 * worker unit's MemoryMax=, TasksMax=, CPUWeight=, which an admin tunes per user). These rlimits are
 * what both modes share; embedded mode has no cgroup, so the process-count limit is what stops a fork
 * bomb there. A limit above what the launcher itself may grant is lowered to the launcher's hard
 * limit, never raised. */
#include <sys/resource.h>

#include "macro.h"
#include "policy.h"

const PolicyLimit policy_limits[] = {
    /* Enough for an IDE with many watched files and a few language servers. */
    {RLIMIT_NOFILE, "LimitNOFILE", 8192},
    /* Per user across the machine: generous for builds, fatal to a fork bomb. */
    {RLIMIT_NPROC, "LimitNPROC", 4096},
    /* Locked memory is memory nobody else can get back; 8 MiB is what io_uring and gpg need. */
    {RLIMIT_MEMLOCK, "LimitMEMLOCK", 8 * 1024 * 1024},
    /* No real-time scheduling and no raised priority: the machine is shared. */
    {RLIMIT_RTPRIO, "LimitRTPRIO", 0},
    {RLIMIT_NICE, "LimitNICE", 0},
};

const size_t policy_n_limits = ELEMENTSOF(policy_limits);
