/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What libwebsockets reads from a client, checked as it is read.
 *
 * libwebsockets 4.1 accepts WebSocket frames that RFC 6455 says must fail the connection (unmasked
 * frames from a client; a control frame with an extended length is dropped without a close frame), and
 * has no hook to look at a connection's bytes before it parses them. It reads a client with recv() (or
 * SSL_read() under TLS, asking SSL_pending() how much more there is), so the gateway defines these: for a
 * connection with a guard they pass the bytes read through the checks here first, for anything else
 * they are the library's own.
 *
 * HTTP/1 (plain): request headers after the first, which libwebsockets reads itself, are held to the
 * same size limit as the listener holds the first one to; over it the client is answered 431 and the
 * connection ends.
 *
 * WebSocket: each frame header is checked before any of it reaches the library (an incomplete header is
 * held back until the rest arrives). A frame that breaks the protocol is not delivered, nor anything
 * after it; the guard's owner is told, to close the connection with 1002. Frames read before the
 * handshake was answered break the protocol too (RFC 6455 §4.1).
 *
 * HTTP/2 connections are left to the library. */

typedef struct RxGuard RxGuard;

/* A protocol error on the WebSocket: close with close_code. Called while libwebsockets is reading the
 * connection, so the owner must not close it from here. */
typedef void (*RxGuardFailFn)(void *userdata, int close_code, const char *reason);

/* Watch fd (not owned). Under TLS only SSL_read() is checked: recv() on fd reads the TLS records. */
int rx_guard_new(int fd, bool tls, size_t max_header_size, RxGuard **ret);
RxGuard *rx_guard_free(RxGuard *g);
/* Counted up for each request refused with 431. */
void rx_guard_set_oversized_counter(RxGuard *g, uint64_t *counter);

/* Bytes the listener read from fd before the library took it over. */
void rx_guard_http_feed(RxGuard *g, const char *buf, size_t len);
/* The library has begun answering a request (busy), or finished with it. While busy, an oversized
 * next request closes the connection without an answer: the 431 would land inside the response. */
void rx_guard_http_request(RxGuard *g);
void rx_guard_http_done(RxGuard *g);

/* The connection is a WebSocket from now on; deflate: permessage-deflate was negotiated (RSV1 allowed
 * on a message's first frame). Returns -EPROTO if the client sent more than the upgrade request before
 * the answer; the connection should then be closed with 1002. */
int rx_guard_websocket(RxGuard *g, bool deflate, RxGuardFailFn fail, void *userdata);
/* The WebSocket's owner is gone: report nothing more. */
void rx_guard_websocket_detach(RxGuard *g);

/* The checks alone, for tests: a WebSocket guard on no descriptor takes buf as if just read into a buffer
 * of cap bytes, and rewrites it the way the library would see it. Returns the length delivered (0 for
 * nothing yet); *ret_failed says whether the stream has failed. */
size_t rx_guard_ws_filter(RxGuard *g, char *buf, size_t len, size_t cap, bool *ret_failed);
