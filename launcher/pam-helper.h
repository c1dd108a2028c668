/* SPDX-License-Identifier: MIT */
#pragma once

/* One PAM conversation in a process of its own: the launcher re-executes itself with --pam-helper and
 * writes "USER\0PASSWORD\0" to its standard input, or "USER\0" alone for a check of the account without a
 * password (pam_acct_mgmt, then whether the password in the shadow database is locked with '!', which
 * PAM's account management does not look at) (never argv or the environment, which other
 * processes may read). A PAM module that hangs or crashes takes only this process with it, and the
 * launcher can kill it when it takes too long. The answer is the exit status. */

#define PAM_HELPER_EXIT_OK     0
#define PAM_HELPER_EXIT_DENIED 2 /* wrong password, unknown user, expired or locked account */
#define PAM_HELPER_EXIT_FAILED 3 /* PAM itself failed, or the input was malformed */

int pam_helper_main(const char *service);
