/* SPDX-License-Identifier: MIT */
#include "pam-util.h"

#include <security/pam_appl.h>

bool pam_result_is_denial(int r)
{
        switch (r) {
        case PAM_AUTH_ERR:
        case PAM_USER_UNKNOWN:
        case PAM_MAXTRIES:
        case PAM_CRED_INSUFFICIENT:
        case PAM_ACCT_EXPIRED:
        case PAM_NEW_AUTHTOK_REQD:
        case PAM_PERM_DENIED:
                return true;
        default:
                return false;
        }
}
