/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"

/* What the gateway asks of the launcher, the part of Helios that may act for users: check a password
 * (PAM needs privilege), and find a user's worker socket, making sure something listens on it.
 *
 * Two launchers answer these: the embedded one here (one user, this process's own; the worker is
 * socket-activated by common/activator.c in this process), and the privileged helios-launcher
 * reached over a local socket, for many users. The gateway's code is the same for both. */

typedef struct Launcher Launcher;
typedef struct LauncherRequest LauncherRequest;

/* r: 0 accepted, -EACCES wrong credentials, -EPERM refused by policy, other -errno: could not check. */
typedef void (*LauncherAuthCallback)(int r, void *userdata);
/* r < 0: no worker for this user; else socket_path is valid during the call. */
typedef void (*LauncherWorkerCallback)(int r, const char *socket_path, void *userdata);

typedef struct LauncherStats {
        unsigned long long worker_starts;
        unsigned workers_running;
} LauncherStats;

/* worker_nofile: the file limit workers start with (this process may have raised its own); NULL to
 * inherit. */
int launcher_new_embedded(uv_loop_t *loop, const GatewayConfig *config, const struct rlimit *worker_nofile,
                          Launcher **ret);
/* A client of helios-launcher on its SOCK_SEQPACKET socket at path (common/launcher-protocol.h): one
 * connection, made when first needed and again after a loss. A request made while the launcher cannot be
 * reached fails at once with -ECONNREFUSED (-EBUSY if its backlog is full); pending requests fail with
 * -ECONNRESET when the connection is lost. Answers map: denied -EACCES, refused -EPERM, busy -EAGAIN,
 * timeout -ETIMEDOUT, failed -EIO, locked -EKEYEXPIRED, no-home -ENOENT, masked -ERFKILL, full -EUSERS. */
int launcher_new_remote(uv_loop_t *loop, const char *path, Launcher **ret);
int launcher_start(Launcher *l);
/* Close handles; workers keep running. */
void launcher_stop(Launcher *l);
Launcher *launcher_free(Launcher *l);

/* The one user of an embedded launcher (the account running Helios); NULL for a multi-user one. */
const char *launcher_single_user(const Launcher *l);
bool launcher_can_authenticate(const Launcher *l);

/* Check user's password. Answers through cb from the loop; *ret_request may be cancelled until then. */
int launcher_authenticate(Launcher *l, const char *user, const char *password, LauncherAuthCallback cb,
                          void *userdata, LauncherRequest **ret_request);

/* Find user's worker socket. Returns 0 with *ret_path (the caller frees it) when the answer is at hand,
 * 1 when it comes later through cb (*ret_request may be cancelled until then), or -errno. Asked again
 * after a connection to the socket ended before the worker said anything, -EIO tells that the worker
 * keeps failing to start. */
int launcher_find_worker(Launcher *l, const char *user, LauncherWorkerCallback cb, void *userdata,
                         char **ret_path, LauncherRequest **ret_request);

/* May user still use Helios (launcher-protocol.h's "account")? Answers like launcher_authenticate():
 * 0, -EACCES (PAM or a locked password says no), -EPERM (refused by policy, or no such account).
 * -EOPNOTSUPP at once where accounts are not checked (embedded: one user, the gateway's own). */
int launcher_check_account(Launcher *l, const char *user, LauncherAuthCallback cb, void *userdata,
                           LauncherRequest **ret_request);

/* Open a PAM login session (launcher-protocol.h's session-open) for the login named key, of user, from
 * rhost ("" when unknown). Answers like launcher_authenticate(): 0 open, -EACCES PAM refused it, -EAGAIN
 * too many, other -errno. -EOPNOTSUPP at once where there are none (embedded: the gateway is not root
 * and has no launcher to hold them). */
int launcher_open_session(Launcher *l, const char *key, const char *user, const char *rhost,
                          LauncherAuthCallback cb, void *userdata, LauncherRequest **ret_request);
/* End the session of key; nobody waits for the answer. */
void launcher_close_session(Launcher *l, const char *key);
/* fn(userdata) runs when the connection to helios-launcher is lost: the sessions it held are closed. */
void launcher_on_sessions_lost(Launcher *l, void (*fn)(void *userdata), void *userdata);

/* A client could not connect to the socket it was given: the launcher may know better now. */
void launcher_worker_unreachable(Launcher *l, const char *user);

void launcher_request_cancel(LauncherRequest *r);
void launcher_get_stats(const Launcher *l, LauncherStats *ret);
/* A line for the service status, e.g. "worker pid 1234". */
void launcher_describe(const Launcher *l, char *buf, size_t size);
