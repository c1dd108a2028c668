/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* One password check: a PAM helper process (pam-helper.h) started, fed the credentials on its standard
 * input, and given a deadline, from the launcher's loop. */

typedef enum PamCheckResult {
        PAM_CHECK_OK,
        PAM_CHECK_DENIED,  /* wrong password, unknown user, expired or locked account */
        PAM_CHECK_TIMEOUT, /* the helper (a PAM module) did not answer in time, and was killed */
        PAM_CHECK_FAILED,  /* PAM failed, or the helper died */
        _PAM_CHECK_RESULT_MAX,
} PamCheckResult;

typedef void (*PamCheckCallback)(PamCheckResult result, void *userdata);

typedef struct PamCheckParams {
        const char *service;
        uint64_t timeout_ms;
        char *const *envp; /* the helper's whole environment */
} PamCheckParams;

typedef struct PamCheck PamCheck;

/* Start a check: of user's password, or with password NULL of the account alone (pam_acct_mgmt and a
 * locked password, see pam-helper.h). The callback runs exactly once, from the loop, unless the check is
 * abandoned first; the PamCheck goes away by itself once it has run. */
int pam_check_start(uv_loop_t *loop, const PamCheckParams *p, const char *user, const char *password,
                    size_t password_len, PamCheckCallback cb, void *userdata, PamCheck **ret);
/* Kill the helper (and whatever a PAM module started); the callback will not run. */
void pam_check_abandon(PamCheck *c);
