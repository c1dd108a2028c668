/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* A byte stream between a client of the worker's socket and a TCP port on the workspace's own loopback
 * (preview:connect, docs/protocol.md). The worker connects first and answers the request; only then does
 * the client's connection become the tunnel. Each direction holds at most TUNNEL_HIGH_WATER bytes (plus
 * one read) before it stops reading its source; an end of stream is passed on as a shutdown of the
 * other side's writing, and the tunnel closes once both directions have ended or either side failed. */

typedef struct Tunnel Tunnel;

#define TUNNEL_HIGH_WATER (256u * 1024u)
#define TUNNEL_READ_SIZE  (64u * 1024u)

/* r: 0 connected; else -errno of the connection to 127.0.0.1 (::1 is tried after a refusal), and the
 * tunnel is freed after this returns. */
typedef void (*TunnelConnectedFn)(Tunnel *t, int r, void *userdata);
/* The spliced tunnel has closed both sides; it is freed after this returns. */
typedef void (*TunnelClosedFn)(void *userdata);

int tunnel_connect(uv_loop_t *loop, uint16_t port, TunnelConnectedFn connected, void *userdata,
                   Tunnel **ret);
/* Splice client_fd (taken, whatever the outcome) with the connected port; pending are bytes the client
 * sent after its request, to go to the port first. On failure everything is closed and closed is still
 * called, from the loop. */
int tunnel_splice(Tunnel *t, int client_fd, const char *pending, size_t n_pending, TunnelClosedFn closed,
                  void *userdata);
/* Drop a tunnel that is still connecting or was never spliced: no callback runs after this. */
void tunnel_abort(Tunnel *t);
