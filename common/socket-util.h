/* SPDX-License-Identifier: MIT */
#pragma once

/* Make room to bind a Unix socket at path: remove a socket file left by a process that is gone.
 * 0 if the path is free now; -EADDRINUSE if something still accepts connections there; -EEXIST if
 * the path is not a socket (never removed). */
int unix_socket_remove_stale(const char *path);
