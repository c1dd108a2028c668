/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "launcher.h"

/* Checking credentials, one method per gateway:
 *   token: one user (the launcher's), one secret made up at start and printed in the URL;
 *   file:  names and crypt(3) hashes from the users file, reloadable;
 *   pam:   the launcher checks them against the system's accounts.
 * Checks run off the loop (a yescrypt hash takes tens of milliseconds on purpose), a bounded number at
 * a time. */

typedef struct Auth Auth;
typedef struct AuthRequest AuthRequest;

/* r: 0 accepted (user is the account to log in), -EACCES refused, other -errno: could not check. */
typedef void (*AuthCallback)(int r, const char *user, void *userdata);

/* Concurrent checks, and checks started per second; more are refused with -EBUSY. A check of an unknown
 * name costs what a known one does, so without the second bound a crowd of addresses trying a crowd of
 * names (each within its own throttling allowance) would keep the pool hashing. */
#define AUTH_MAX_PENDING    8u
#define AUTH_MAX_PER_SECOND 20u
#define AUTH_SECRET_MAX     1024u
#define AUTH_TOKEN_BYTES    32u

int auth_new(uv_loop_t *loop, AuthMethod method, Launcher *launcher, Auth **ret);
/* Free only once the loop has run dry: pending checks hold on to it until they finish. */
Auth *auth_free(Auth *a);

/* token: use this token, or make one up when NULL. */
int auth_set_token(Auth *a, const char *token);
/* The token (token method), to be shown to whoever started Helios. */
const char *auth_token(const Auth *a);
/* file: (re)read the users file; on failure the previous contents stay in force. */
int auth_load_users(Auth *a, const char *path);

/* Check user's secret (the token method ignores user). cb runs later from the loop unless this returns
 * an error; *ret_request may be cancelled until then. */
int auth_verify(Auth *a, const char *user, const char *secret, AuthCallback cb, void *userdata,
                AuthRequest **ret_request);
/* cb will not be called. */
void auth_request_cancel(AuthRequest *r);
AuthMethod auth_method(const Auth *a);
