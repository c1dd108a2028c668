/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* Make room to bind a Unix socket of type (SOCK_STREAM, SOCK_SEQPACKET) at path: remove a socket file
 * left by a process that is gone. 0 if the path is free now; -EADDRINUSE if something still accepts
 * connections there; -EEXIST if the path is not a socket (never removed). */
int unix_socket_remove_stale(const char *path, int type);

/* Bind fd at path so that nobody else can connect before it is meant to be open: the socket file is
 * created 0600; then, unless gid is (gid_t)-1, handed to that group (owner: this process's uid) with
 * mode. On failure the file is removed again. */
int unix_socket_bind(int fd, const char *path, gid_t gid, mode_t mode);
