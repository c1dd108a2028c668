/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Whether a PAM result says "this user may not log in" (wrong password, unknown user, expired or locked
 * account...), as opposed to "PAM could not tell" (a module that failed). */
bool pam_result_is_denial(int r);
