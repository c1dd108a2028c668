/* SPDX-License-Identifier: MIT */
#include "account.h"

#include <assert.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "macro.h"

/* The account nobody, whatever its name, is never anyone's workspace. */
#define NOBODY_UID ((uid_t)65534)

uid_t account_read_uid_min(void)
{
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned long v;
        uid_t uid_min = 1000;
        FILE *f;

        f = fopen("/etc/login.defs", "re");
        if (!f)
                return uid_min;
        while (getline(&line, &cap, f) > 0)
                if (sscanf(line, " UID_MIN %lu", &v) == 1 && v > 0 && v < NOBODY_UID)
                        uid_min = (uid_t)v;
        fclose(f);
        return uid_min;
}

int account_lookup(const char *name, struct passwd *ret_pw, char **ret_buf)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd *found = NULL;
        long size = sysconf(_SC_GETPW_R_SIZE_MAX);
        int r;

        assert(name && ret_pw && ret_buf);

        size = size > 0 ? size : 16384;
        buf = malloc((size_t)size);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(name, ret_pw, buf, (size_t)size, &found);
        if (r != 0)
                return -r;
        if (!found)
                return -ESRCH;
        *ret_buf = TAKE_PTR(buf);
        return 0;
}

int account_check(const AccountPolicy *p, const char *user)
{
        _cleanup_free_ char *buf = NULL;
        gid_t groups[256];
        int n = (int)ELEMENTSOF(groups);
        struct passwd pw;
        int r;

        assert(p && user);

        r = account_lookup(user, &pw, &buf);
        if (r < 0)
                return r;
        if (pw.pw_uid == 0 || pw.pw_uid < p->uid_min || pw.pw_uid == NOBODY_UID || pw.pw_gid == 0 ||
            pw.pw_uid == p->gateway_uid)
                return -EPERM;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
                return -E2BIG;
        for (int i = 0; i < n; i++)
                if (groups[i] == p->gateway_gid || groups[i] == 0)
                        return -EPERM;
        return 0;
}
