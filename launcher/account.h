/* SPDX-License-Identifier: MIT */
#pragma once

#include <pwd.h>
#include <stdbool.h>
#include <sys/types.h>

/* Which accounts may have a workspace: the launcher's account policy, asked before PAM sees a name and
 * before any worker is started for it. */

typedef struct AccountPolicy {
        uid_t uid_min;     /* UID_MIN of /etc/login.defs: below it are system accounts */
        uid_t gateway_uid; /* the gateway's own account */
        gid_t gateway_gid; /* its group, which may open every worker socket */
} AccountPolicy;

/* UID_MIN from /etc/login.defs, 1000 when it says nothing usable. */
uid_t account_read_uid_min(void);

/* getpwnam_r() with a buffer of its own, which the caller frees: -ESRCH when there is no such account. */
int account_lookup(const char *name, struct passwd *ret_pw, char **ret_buf);

/* The account behind a valid name: 0 if it may log in and have a worker; -ESRCH if there is none;
 * -EPERM for root, system accounts, nobody, the gateway's own, and members of the gateway's group (every
 * worker socket is open to that group: a member could reach everyone's workspace). */
int account_check(const AccountPolicy *p, const char *user);

/* A password locked the way usermod -L and passwd -l do: '!' before the hash in the shadow database.
 * Accounts without a shadow entry (kept elsewhere) are left to PAM. */
bool account_password_locked(const char *user);

/* Whether the account can have a workspace now: -EKEYEXPIRED when its password is locked or the account
 * has expired (chage -E), -ENOENT when its home directory does not exist (or is no directory), 0
 * otherwise. */
int account_workspace_check(const char *user);
