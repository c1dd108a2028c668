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

/* Checks run at most AUTH_MAX_RUNNING at a time and AUTH_MAX_PER_SECOND started per second (a check of
 * an unknown name costs what a known one does, so a crowd of addresses trying a crowd of names would
 * otherwise keep the pool hashing). The others wait their turn in a bounded queue, each with a deadline,
 * and one client address has a bounded number of checks in progress or waiting: a crowd of failing
 * logins delays others' checks a little instead of turning them away.
 *
 * A name refused by policy (root, a system account, a name that cannot be an account) is answered
 * -EPERM no sooner than a wrong password typically is (the median of recent ones), so the time of the
 * answer does not tell such names from others. */
#define AUTH_MAX_RUNNING    8u
#define AUTH_MAX_PER_SECOND 20u
#define AUTH_SECRET_MAX     1024u
#define AUTH_TOKEN_BYTES    32u
/* Client addresses are compared up to this many bytes. */
#define AUTH_CLIENT_MAX 64u

typedef struct AuthLimits {
        size_t max_queued;         /* waiting for their turn */
        uint64_t queue_timeout_ms; /* longest wait for a turn */
        unsigned max_per_client;   /* in progress or waiting, per client address */
} AuthLimits;

/* Why a check was not taken (auth_verify's -EBUSY and -EUSERS, a callback's -ETIMEDOUT), as counted. */
typedef struct AuthStats {
        uint64_t refused_queue_full;
        uint64_t refused_per_client;
        uint64_t refused_timeout;
        uint64_t queued_now;
} AuthStats;

int auth_new(uv_loop_t *loop, AuthMethod method, Launcher *launcher, const AuthLimits *limits, Auth **ret);
void auth_set_limits(Auth *a, const AuthLimits *limits);
/* Answer every check still waiting with -ECANCELED, refuse new ones, and close the timer. */
void auth_stop(Auth *a);
/* Free only once the loop has run dry: checks on the thread pool hold on to it until they finish. */
Auth *auth_free(Auth *a);

/* token: use this token, or make one up when NULL. */
int auth_set_token(Auth *a, const char *token);
/* The token (token method), to be shown to whoever started Helios. */
const char *auth_token(const Auth *a);
/* file: (re)read the users file; on failure the previous contents stay in force. */
int auth_load_users(Auth *a, const char *path);

/* Check user's secret (the token method ignores user) for client (an address, as text). cb runs later
 * from the loop unless this returns an error: -EBUSY when the queue is full, -EUSERS when client has
 * too many checks already, -EINVAL for an oversized secret. cb gets -ETIMEDOUT when the check waited
 * past its deadline. *ret_request may be cancelled until cb runs. */
int auth_verify(Auth *a, const char *user, const char *secret, const char *client, AuthCallback cb,
                void *userdata, AuthRequest **ret_request);
/* cb will not be called. */
void auth_request_cancel(AuthRequest *r);
AuthMethod auth_method(const Auth *a);
void auth_get_stats(const Auth *a, AuthStats *ret);
