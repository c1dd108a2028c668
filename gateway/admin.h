/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* The gateway's admin socket: a local Unix socket on which root, the gateway's own account and the
 * members of one configured group list the sessions and end them. One request line per connection:
 *   sessions [USER]          one line per session: user, id, client address, login and last use (UTC,
 *                            ISO 8601), open pages, tab-separated, after a line "ok"
 *   logout USER              end every session of USER
 *   logout-session ID        end one session
 * Answers start with "ok" or "error: why". */

typedef struct Gateway Gateway;
typedef struct AdminServer AdminServer;

/* group: (gid_t)-1 for none (root and the gateway's account only). The socket is made 0600, or 0660
 * owned by the group. */
int admin_server_new(Gateway *g, const char *path, gid_t group, AdminServer **ret);
/* Closes the socket and every connection; the memory goes once the loop has closed the handles. */
void admin_server_free(AdminServer *a);

/* The command-line side: `helios-gateway sessions|logout ...`. */
int admin_client_run(int argc, char **argv);

#define ADMIN_DEFAULT_SOCKET "/run/helios-gateway/admin.sock"
