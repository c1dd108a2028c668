/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "launcher.h"
#include "sessions.h"

/* The PAM login session of each login (a cookie session) while it has pages open, so that loginctl,
 * who and last show web logins as they show other logins. helios-launcher holds the sessions
 * (session-open, session-close); this says when:
 *
 * - the first page of a login opens one, from the address the login came from;
 * - it ends once the login's last page has been closed for the grace period (a reload does not end it),
 *   and at once when the login ends (logout, helios-gateway logout, expiry, a locked account);
 * - when the connection to helios-launcher is lost the launcher has ended them all: they are opened
 *   again for the logins that still have pages, and a restarted gateway opens them as pages reconnect.
 *
 * A session PAM refuses (its account or session management says no) is not asked for again while the
 * login's pages stay open; one that fails, or finds the launcher busy or away, is asked for again after
 * 2 s, doubled after each failure up to 5 min. Either way the pages work as before, without a login
 * record. */

typedef struct PamSessions PamSessions;

int pam_sessions_new(Launcher *launcher, PamSessions **ret);
/* Forgets every session without closing it: at shutdown, the launcher ends them with the connection. */
PamSessions *pam_sessions_free(PamSessions *p);

void pam_sessions_page_opened(PamSessions *p, const Session *session, uint64_t now_ms);
void pam_sessions_page_closed(PamSessions *p, const Session *session, uint64_t now_ms);
void pam_sessions_login_ended(PamSessions *p, const Session *session, SessionEnd why);
/* Ends sessions idle past grace_ms and opens again those the launcher lost; once a second. */
void pam_sessions_tick(PamSessions *p, uint64_t now_ms, uint64_t grace_ms);
/* Logins with a PAM session open. */
unsigned pam_sessions_count(const PamSessions *p);
