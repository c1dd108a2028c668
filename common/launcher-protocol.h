/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The gateway ↔ helios-launcher protocol: the whole of what the network-facing process may ask of the
 * privileged one.
 *
 * Transport: a SOCK_SEQPACKET Unix socket (/run/helios/launcher.sock). The launcher serves only the
 * gateway's uid (SO_PEERCRED). Every message is one packet of at most LAUNCHER_MESSAGE_MAX bytes made
 * of NUL-terminated fields; nothing follows the last NUL.
 *
 * Requests (the first field is an id chosen by the gateway, decimal, 1..10 digits, echoed in the reply
 * so requests may be answered out of order):
 *   ID \0 "auth"   \0 USER \0 PASSWORD \0    check a password with PAM (service "helios")
 *   ID \0 "worker" \0 USER \0                make sure USER's worker socket listens; answer its path.
 *                                           Refused first, whatever the mode: an account whose password
 *                                           is locked or that has expired ("locked"), one whose home
 *                                           directory is missing ("no-home"). Asked again after the
 *                                           gateway's connection to the socket ended before the worker
 *                                           said anything, "failed" tells that the worker keeps failing
 *                                           to start (embedded mode; under systemd: its socket failed
 *                                           because systemd stopped starting the service, asked before
 *                                           each start, for 30 s or until reset-failed)
 *   ID \0 "account" \0 USER \0               may USER still use Helios? The launcher's own policy (below),
 *                                           then PAM's account management (pam_acct_mgmt: expiry, access
 *                                           rules), then whether the password is locked (usermod -L),
 *                                           without a password; "ok", "locked" (the password is locked or
 *                                           the account expired), "denied" (PAM says no otherwise) or
 *                                           "refused" (the policy, or no such account)
 *   ID \0 "session-open" \0 KEY \0 USER \0 RHOST \0
 *                                           open a PAM login session for USER (service "helios", the
 *                                           session stack) held by a helios-session process of its own,
 *                                           with a utmp/wtmp record on line "web/N"; RHOST is the client's
 *                                           address ("" when unknown). "ok" once the session is open;
 *                                           "denied" when PAM's account or session management says no
 *                                           or the password is locked (as for account), "busy" past
 *                                           the bounds below, "refused" as for worker, or when KEY is
 *                                           already open on this connection
 *   ID \0 "session-close" \0 KEY \0           end the session KEY of this connection: "ok" at once (also
 *                                           for a KEY that is not open); the helper closes the PAM
 *                                           session and the utmp record and exits
 *
 * Sessions belong to the connection that opened them: when it closes (the gateway stopped, crashed or
 * restarted) the launcher ends every one of them, and when the launcher stops each helper sees its end
 * and ends its session too. A gateway therefore opens sessions again for the pages it serves after
 * either restarts. KEY is the gateway's name for the login (^[A-Za-z0-9_-]{1,32}$), unique on one
 * connection. At most LAUNCHER_SESSIONS_PER_USER sessions per user and LAUNCHER_SESSIONS_MAX in all
 * (helpers still closing included) are open at once.
 *
 * Replies:
 *   ID \0 "ok" \0 [PATH \0]                  PATH for "worker" only
 *   ID \0 "error" \0 REASON \0               REASON is one of the LAUNCHER_ERROR_* strings
 *
 * Anything else — an unknown operation, a missing or extra field, a field that is too long, a packet
 * over the limit, a truncated packet — ends the connection without a reply.
 *
 * USER must match ^[a-z_][a-z0-9_-]{0,31}$; another name is answered "refused", and so are root,
 * system accounts (uid below UID_MIN), nobody, the gateway's own account and members of the gateway's
 * group (which may open every worker socket). An unknown account is
 * "denied" by auth (as a wrong password is: the answer does not tell which names exist) and "refused" by
 * worker. Under systemd the PATH of worker is /run/helios/workers/USER.sock, the socket of the unit
 * helios-worker@USER.socket (USER escaped as systemd escapes it). */

#define LAUNCHER_MESSAGE_MAX  4096
#define LAUNCHER_USER_MAX     32 /* bytes of a user name, as useradd's default limit */
#define LAUNCHER_PASSWORD_MAX 1024
#define LAUNCHER_ID_MAX       10 /* digits */
#define LAUNCHER_KEY_MAX      32 /* bytes of a session KEY */
#define LAUNCHER_RHOST_MAX    63 /* bytes of an address: printable, no space */

#define LAUNCHER_SESSIONS_PER_USER 32
#define LAUNCHER_SESSIONS_MAX      512

#define LAUNCHER_OP_AUTH          "auth"
#define LAUNCHER_OP_WORKER        "worker"
#define LAUNCHER_OP_ACCOUNT       "account"
#define LAUNCHER_OP_SESSION_OPEN  "session-open"
#define LAUNCHER_OP_SESSION_CLOSE "session-close"

#define LAUNCHER_REPLY_OK    "ok"
#define LAUNCHER_REPLY_ERROR "error"

/* Reasons, and the errno the gateway maps each to. The last four answer "worker" only: why a workspace
 * cannot start, which the page shows its user (docs/protocol.md has the WebSocket close code of each).
 * "failed" is also what a worker that keeps failing to start is answered; "full" leaves room again once
 * another user's workspace goes idle. A gateway that meets a reason it does not know treats it as
 * "failed". */
#define LAUNCHER_ERROR_DENIED  "denied"  /* wrong user name or password                  -EACCES */
#define LAUNCHER_ERROR_REFUSED "refused" /* root, a system account, an invalid name       -EPERM */
#define LAUNCHER_ERROR_BUSY    "busy"    /* too many requests in flight; try later         -EAGAIN */
#define LAUNCHER_ERROR_TIMEOUT "timeout" /* PAM or the service manager did not answer      -ETIMEDOUT */
#define LAUNCHER_ERROR_FAILED  "failed"  /* anything else; the launcher logged why         -EIO */
#define LAUNCHER_ERROR_LOCKED  "locked"  /* the password is locked or the account expired  -EKEYEXPIRED */
#define LAUNCHER_ERROR_NO_HOME "no-home" /* the account's home directory does not exist    -ENOENT */
#define LAUNCHER_ERROR_MASKED  "masked"  /* helios-worker@USER is masked (systemd)         -ERFKILL */
#define LAUNCHER_ERROR_FULL    "full"    /* as many users have a workspace as allowed      -EUSERS */

/* A session-open's KEY: 1 to LAUNCHER_KEY_MAX of [A-Za-z0-9_-]. */
static inline bool launcher_key_valid(const char *s, size_t len)
{
        if (len == 0 || len > LAUNCHER_KEY_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!s[i] ||
                    !strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-", s[i]))
                        return false;
        return true;
}

/* A session-open's RHOST: an address or host name as the gateway reports it (letters, digits and
 * ".:%_-[]"), at most LAUNCHER_RHOST_MAX bytes, or empty when unknown. */
static inline bool launcher_rhost_valid(const char *s, size_t len)
{
        if (len > LAUNCHER_RHOST_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!s[i] ||
                    !strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.:%_-[]", s[i]))
                        return false;
        return true;
}
