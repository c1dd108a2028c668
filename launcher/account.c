/* SPDX-License-Identifier: MIT */
#include "account.h"

#include <assert.h>
#include <grp.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
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

bool account_password_locked(const char *user)
{
        struct spwd sp, *found = NULL;
        char buf[4096];

        if (getspnam_r(user, &sp, buf, sizeof(buf), &found) != 0 || !found || !found->sp_pwdp)
                return false;
        return found->sp_pwdp[0] == '!';
}

/* Expired as pam_unix has it: from the day sp_expire names on (days since 1970), -1 being never. */
static bool account_expired(const char *user)
{
        struct spwd sp, *found = NULL;
        char buf[4096];

        if (getspnam_r(user, &sp, buf, sizeof(buf), &found) != 0 || !found || found->sp_expire < 0)
                return false;
        return time(NULL) / (24 * 60 * 60) >= found->sp_expire;
}

int account_workspace_check(const char *user)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        struct stat st;
        int r;

        assert(user);

        if (account_password_locked(user) || account_expired(user))
                return -EKEYEXPIRED;
        r = account_lookup(user, &pw, &buf);
        if (r < 0)
                return r;
        /* Only a home that is certainly not there: another error (a network file system that root may
         * not search, say) is left to the worker's start. */
        if (!pw.pw_dir || pw.pw_dir[0] != '/')
                return -ENOENT;
        if (stat(pw.pw_dir, &st) < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENOENT : 0;
        return S_ISDIR(st.st_mode) ? 0 : -ENOENT;
}
