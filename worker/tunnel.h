/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "splice.h"

/* A byte stream between a client of the worker's socket and a TCP port on the workspace's own loopback
 * (preview:connect, docs/protocol.md). The worker connects first and answers the request; only then does
 * the client's connection become the tunnel, a splice (common/splice.h) of the two. */

typedef struct Tunnel Tunnel;

/* r: 0 connected; else -errno of the connection to 127.0.0.1 (::1 is tried after a refusal), and the
 * tunnel is freed after this returns. */
typedef void (*TunnelConnectedFn)(Tunnel *t, int r, void *userdata);
/* The spliced tunnel has closed both sides. */
typedef void (*TunnelClosedFn)(void *userdata);

int tunnel_connect(uv_loop_t *loop, uint16_t port, TunnelConnectedFn connected, void *userdata,
                   Tunnel **ret);
/* Splice client_fd (taken, whatever the outcome) with the connected port; pending are bytes the client
 * sent after its request, to go to the port first. The tunnel itself is gone after this. closed runs
 * once when both sides have closed; on failure it may have run already. */
int tunnel_splice(Tunnel *t, int client_fd, const char *pending, size_t n_pending, TunnelClosedFn closed,
                  void *userdata, Splice **ret);
/* Drop a tunnel that is still connecting or was never spliced: no callback runs after this. */
void tunnel_abort(Tunnel *t);
