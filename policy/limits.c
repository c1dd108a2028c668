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
#include <stdio.h>
#include <string.h>
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

/* A tmpfs without size= may grow to half of RAM, and each of the three of every workspace could: one
 * student could then push the OOM killer onto everyone else. Enough for builds, pip's unpacking and a
 * test suite's scratch files; under systemd the pages count against the unit's MemoryMax= too.
 *
 * Every devpts instance but the host's draws on one pool (kernel.pty.max - kernel.pty.reserve, 3072
 * by default): without max= one workspace can take all of them and nobody else opens a terminal. A
 * person with a few dozen terminals, tmux and a test suite that opens ptys stays far below 256. */
const PolicyBounds policy_bounds = {
    .tmp_size = POLICY_TMP_SIZE_DEFAULT,
    .tmp_inodes = 65536,
    .shm_size = POLICY_SHM_SIZE_DEFAULT,
    .shm_inodes = 4096,
    .ptys = POLICY_PTYS_DEFAULT,
};

char *policy_tmpfs_options(const PolicyBounds *b, const char *path)
{
        bool shm = streq(path, "/dev/shm");
        char *s;

        if (asprintf(&s, "%s,size=%llu,nr_inodes=%llu",
                     shm ? POLICY_TMPFS_SHM_OPTIONS : POLICY_TMPFS_TMP_OPTIONS,
                     (unsigned long long)(shm ? b->shm_size : b->tmp_size),
                     (unsigned long long)(shm ? b->shm_inodes : b->tmp_inodes)) < 0)
                return NULL;
        return s;
}

char *policy_devpts_options(const PolicyBounds *b, int tty_gid)
{
        char *s;
        int r;

        if (tty_gid >= 0)
                r = asprintf(&s, "%s,max=%u,gid=%d", POLICY_DEVPTS_OPTIONS, b->ptys, tty_gid);
        else
                r = asprintf(&s, "%s,max=%u", POLICY_DEVPTS_OPTIONS, b->ptys);
        return r < 0 ? NULL : s;
}
