/* SPDX-License-Identifier: MIT */
/* The identity half of sandbox.h: the worker becomes its user, with that user's groups, no way back to
 * privilege and its home as working directory. The mount namespace, rlimits and the seccomp filter of
 * policy/ are the other half; the full implementation replaces this file behind the same interface. */
#include "sandbox.h"

#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "macro.h"

/* More groups than this and the account is refused rather than started with some missing. */
#define SANDBOX_GROUPS_MAX 256

struct SandboxPlan {
        uid_t uid;
        gid_t gid;
        gid_t groups[SANDBOX_GROUPS_MAX];
        int n_groups;
        char *home;
};

int sandbox_plan_new(const SandboxParams *p, SandboxPlan **ret)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *found = NULL;
        SandboxPlan *plan;
        long size;
        int r;

        assert(p && p->user && ret);

        size = sysconf(_SC_GETPW_R_SIZE_MAX);
        if (size <= 0)
                size = 16384;
        buf = malloc((size_t)size);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(p->user, &pw, buf, (size_t)size, &found);
        if (r != 0)
                return -r;
        if (!found)
                return -ESRCH;
        /* Never root: the launcher's policy already refuses it, this is the second check. */
        if (pw.pw_uid == 0 || pw.pw_gid == 0)
                return -EPERM;
        if (!pw.pw_dir || pw.pw_dir[0] != '/')
                return -EINVAL;

        plan = calloc(1, sizeof(SandboxPlan));
        if (!plan)
                return -ENOMEM;
        plan->uid = pw.pw_uid;
        plan->gid = pw.pw_gid;
        plan->n_groups = SANDBOX_GROUPS_MAX;
        if (getgrouplist(pw.pw_name, pw.pw_gid, plan->groups, &plan->n_groups) < 0) {
                free(plan);
                return -E2BIG;
        }
        for (int i = 0; i < plan->n_groups; i++)
                if (plan->groups[i] == 0) {
                        /* Membership of root's group is a privilege no worker gets. */
                        free(plan);
                        return -EPERM;
                }
        plan->home = strdup(pw.pw_dir);
        if (!plan->home) {
                free(plan);
                return -ENOMEM;
        }
        *ret = plan;
        return 0;
}

SandboxPlan *sandbox_plan_free(SandboxPlan *plan)
{
        if (!plan)
                return NULL;
        free(plan->home);
        free(plan);
        return NULL;
}

uid_t sandbox_plan_uid(const SandboxPlan *plan)
{
        return plan->uid;
}

gid_t sandbox_plan_gid(const SandboxPlan *plan)
{
        return plan->gid;
}

const char *sandbox_plan_home(const SandboxPlan *plan)
{
        return plan->home;
}

/* Between fork and exec: system calls only. */
int sandbox_enter(const SandboxPlan *plan)
{
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;

        /* Groups first and the uid last: each step needs the privilege the next one gives up. */
        if (setgroups((size_t)plan->n_groups, plan->groups) < 0)
                return negative_errno();
        if (setresgid(plan->gid, plan->gid, plan->gid) < 0)
                return negative_errno();
        if (setresuid(plan->uid, plan->uid, plan->uid) < 0)
                return negative_errno();

        /* A drop that silently did less than asked is the classic hole: check every id, and that root
         * cannot be regained. */
        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return negative_errno();
        if (ruid != plan->uid || euid != plan->uid || suid != plan->uid || rgid != plan->gid ||
            egid != plan->gid || sgid != plan->gid)
                return -EPERM;
        if (setresuid(0, 0, 0) == 0)
                return -EPERM;

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        if (chdir(plan->home) < 0)
                return negative_errno();
        return 0;
}
