/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Previews of the web servers users run in their workspaces, served on an origin of their own.
 *
 * The IDE's origin hands a logged-in page a ticket: 256 random bits, good once, for
 * preview_ticket_lifetime (60 s), for one port
 * of that user's workspace (preview_ticket_new(), from POST /api/preview). The preview listener
 * (preview_listen) exchanges it at /preview-login for a cookie of its own, scoped to /preview/PORT/,
 * which holds for PREVIEW_COOKIE_LIFETIME_MS at most and only while the IDE session it came from
 * lives. Requests to /preview/PORT/... with that cookie are passed through the user's worker
 * (preview:connect) to 127.0.0.1:PORT of the workspace, without the /preview/PORT prefix and without
 * Helios' cookies; a WebSocket upgrade is then tunnelled as it is, every other request gets
 * Connection: close and only its own body passes.
 *
 * A previewed page is code its author controls: it never runs on the IDE's origin, so it can neither
 * open the IDE's /ws (the Origin check refuses it) nor read the IDE's answers (no CORS). */

typedef struct Gateway Gateway;
typedef struct Preview Preview;
typedef struct Session Session;

#define PREVIEW_TICKET_LEN         43u /* base64url of 32 bytes */
#define PREVIEW_COOKIE_NAME        "helios_preview"
#define PREVIEW_COOKIE_LIFETIME_MS (4ull * 3600u * 1000u)
#define PREVIEW_LOGIN_PATH         "/preview-login"

int preview_new(Gateway *g, Preview **ret);
/* Listen on "HOST:PORT" ("[V6]:PORT"); port 0 picks a free one. */
int preview_listen(Preview *p, const char *spec);
/* Serve a connected client socket (taken, whatever the outcome). */
int preview_adopt(Preview *p, int fd);
/* The port actually bound, 0 if none. */
uint16_t preview_port(const Preview *p);
/* Stop listening; close every preview connection. */
void preview_stop(Preview *p);
Preview *preview_free(Preview *p);

/* A ticket for session's user and port, as text (PREVIEW_TICKET_LEN + 1 bytes). -EBUSY never: the
 * oldest tickets make room. */
int preview_ticket_new(Preview *p, const Session *session, uint16_t port, char *ret_ticket);
/* Drop expired tickets and cookies, and close the connections of IDE sessions that have ended (once a
 * second). */
void preview_tick(Preview *p, uint64_t now_ms);
