/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "policy.h"

/* A cgroup v2 of its own for each worker in embedded mode: its memory, task and CPU bounds from the
 * user's settings (policy/settings.c), and cgroup.kill when the workspace stops, so that nothing started
 * in it outlives it.
 *
 * Where: the cgroup2 hierarchy this process is in. At its root (a machine or container without a
 * service manager) the workers go to ROOT/helios/USER. In a cgroup of its own (a service with
 * Delegate=yes) the launcher and this process move to CGROUP/supervisor first, as the kernel wants
 * processes only in leaves, and the workers go to CGROUP/helios/USER. A cgroup shared with other
 * processes (an admin's login session) is not taken over. Each of memory, pids and cpu is enabled where
 * the hierarchy offers it; what it does not offer is not bounded. */

typedef struct CgroupTree CgroupTree;

/* Find and set up the tree. Without one, 0 with *ret NULL, and in *ret_why why not; with one whose
 * controllers are incomplete, *ret_why says which are missing. The caller logs *ret_why (one line)
 * and frees it. */
int cgroup_tree_open(CgroupTree **ret, char **ret_why);
CgroupTree *cgroup_tree_free(CgroupTree *t);
const char *cgroup_tree_path(const CgroupTree *t);

/* Make the cgroup of a worker of name (killing anything left in it from before) with the limits of
 * values; *ret_procs is the path of its cgroup.procs, which the child writes "0" to. */
int cgroup_worker_prepare(CgroupTree *t, const char *name, const PolicyValues *values, char **ret_procs);
/* Kill everything in the worker's cgroup and remove it. */
void cgroup_worker_kill(CgroupTree *t, const char *name);

/* In the child between fork and exec: join the cgroup. Async-signal-safe. */
int cgroup_join(const char *procs_path);
