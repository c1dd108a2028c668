/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Make room to bind a Unix socket of type (SOCK_STREAM, SOCK_SEQPACKET) at path: remove a socket file
 * left by a process that is gone. 0 if the path is free now; -EADDRINUSE if something still accepts
 * connections there; -EEXIST if the path is not a socket (never removed). */
int unix_socket_remove_stale(const char *path, int type);

/* Bind fd at path so that nobody else can connect before it is meant to be open: the socket file is
 * created 0600; then, unless gid is (gid_t)-1, handed to that group (owner: this process's uid) with
 * mode. On failure the file is removed again. */
int unix_socket_bind(int fd, const char *path, gid_t gid, mode_t mode);

/* Peer credentials across a user namespace. A process in a user namespace of its own reads every peer
 * that namespace does not map (the gateway, other users) as the overflow uid; the process that made the
 * namespace, outside it, answers for it: it is sent the connected socket and replies with SO_PEERCRED as
 * the machine sees it. The exchange, on a SOCK_SEQPACKET pair: one byte with the socket (SCM_RIGHTS),
 * then one PeerCredentials back. */
typedef struct PeerCredentials {
        int32_t error; /* 0, or the errno of SO_PEERCRED */
        uint32_t uid;
        uint32_t gid;
        uint32_t pid; /* in the answerer's PID namespace; 0 when outside it */
} PeerCredentials;

/* Ask the process at the other end of `answerer` for fd's peer, waiting at most timeout_ms. */
int peer_credentials_ask(int answerer, int fd, int timeout_ms, PeerCredentials *ret);

/* This process's pid as the process at the other end of `answerer` sees it: the peer of a socket pair
 * is the process that made it. */
int peer_credentials_own_pid(int answerer, int timeout_ms, pid_t *ret);
