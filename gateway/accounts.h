/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "launcher.h"
#include "sessions.h"

/* Whether the accounts of users with sessions may still use Helios, asked of the launcher (its policy,
 * pam_acct_mgmt, a locked password) when a page connects and again every interval while they have
 * sessions. A refused account loses every session, and with them its open pages.
 *
 * Bounded so that a storm of pages is no storm of PAM checks: one check per user at a time, a result
 * kept for the interval, a few periodic checks started per tick, entries only for users with sessions.
 * With the embedded launcher (one user, the gateway's own) nothing is checked. */

typedef struct AccountChecks AccountChecks;

int account_checks_new(Launcher *launcher, SessionStore *sessions, AccountChecks **ret);
/* Every check still waiting has been answered (launcher_stop() answers them) or is dropped here. */
AccountChecks *account_checks_free(AccountChecks *a);
void account_checks_set_interval(AccountChecks *a, uint64_t interval_ms);

/* May a page of user connect now? Starts a check unless one was made in the last few seconds. 0: yes
 * (known good lately; a refusal on this check ends the sessions); -EPERM: the account is refused;
 * -EAGAIN: not known lately, a check has started (ask again shortly). */
int account_checks_admit(AccountChecks *a, const char *user, uint64_t now_ms);
/* The account has just passed PAM's account management (a password login). */
void account_checks_passed(AccountChecks *a, const char *user, uint64_t now_ms);
/* Check user now (a login that did not go through PAM); coalesced with one in flight. */
void account_checks_start(AccountChecks *a, const char *user, uint64_t now_ms);
/* Periodic: check again the users with sessions whose result is older than the interval; forget users
 * without sessions. */
void account_checks_tick(AccountChecks *a, uint64_t now_ms);
