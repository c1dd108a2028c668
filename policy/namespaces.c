/* SPDX-License-Identifier: MIT */
/* What each workspace has of its own besides its file system (filesystem.c): the kernel objects that
 * are otherwise one pool for the whole machine.
 *
 * System V IPC and POSIX message queues are such pools. Without a namespace of its own, one user's
 * processes could fill the machine's message-queue pool (every other user's mq_open() then fails
 * with ENOSPC), leave System V shared-memory segments resident after all their processes are gone,
 * and attach to another user's segment created with a careless mode. A private IPC namespace holds
 * only the workspace's own objects, and they are destroyed with the last process in it.
 *
 * Embedded mode unshares each flag with the mount namespace before the privilege drop; under systemd
 * each has its directive. */
#include <sched.h>

#include "macro.h"
#include "policy.h"

const PolicyNamespace policy_namespaces[] = {
    /* The file system of filesystem.c (ProtectSystem= and friends make one under systemd). */
    {CLONE_NEWNS, NULL},
    /* RemoveIPC= also removes what the user left in the host's pools, which a user who logs in
     * another way may still create. */
    {CLONE_NEWIPC, "PrivateIPC=yes\nRemoveIPC=yes"},
};

const size_t policy_n_namespaces = ELEMENTSOF(policy_namespaces);
