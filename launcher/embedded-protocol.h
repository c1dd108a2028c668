/* SPDX-License-Identifier: MIT */
#pragma once

/* helios-launcher ↔ helios-embedded, the spawner of embedded mode.
 *
 * In embedded mode helios-launcher starts helios-embedded (beside it in libexec) and hands it one end
 * of a SOCK_SEQPACKET socket pair as fd 3; nobody else holds either end. Packets are made of
 * NUL-terminated fields as in launcher-protocol.h, at most LAUNCHER_MESSAGE_MAX bytes.
 *
 *   launcher → embedded:  ID \0 "worker" \0 USER \0        USER passed the launcher's account check
 *   embedded → launcher:  ID \0 "ok" \0 PATH \0            the worker socket of USER listens
 *                         ID \0 "error" \0 REASON \0       "full" (no room for another user's
 *                                                          socket), "failed" (the socket could not be
 *                                                          made, or the worker keeps failing to start);
 *                                                          the launcher passes on no other
 *                         "0" \0 "status" \0 USERS \0 RUNNING \0
 *                                                          users with a socket, workers running (for
 *                                                          the launcher's status line), on each change
 *
 * The end of the connection stops helios-embedded: it closes its sockets and exits; workers keep
 * running, and a new helios-embedded finds them. */

#define EMBEDDED_OP_STATUS "status"
/* The id of packets that answer no request. */
#define EMBEDDED_EVENT_ID "0"
/* The descriptor helios-embedded is given its end on. */
#define EMBEDDED_LINK_FD 3
