/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "bus.h"

/* One client's JSON-RPC 2.0 endpoint: turns incoming messages into bus requests and their answers
 * into outgoing messages. It knows nothing of sockets; the connection layer feeds it lines. */
typedef struct RpcSession RpcSession;

/* Send one complete message (no LF). */
typedef int (*RpcSendFn)(void *userdata, const char *msg, size_t len);

int rpc_session_new(Bus *bus, ClientId client, size_t max_message, RpcSendFn send, void *userdata,
                    RpcSession **ret);
/* Big answers are printed on libuv's pool once this is set: reserve() keeps an answer's place among
 * the connection's output and returns it (NULL when it cannot: the answer is printed at once), fill()
 * puts the text there (msg is the callee's, NULL when printing failed). fill() is not called once the
 * session is freed: the places go with the connection. */
typedef struct RpcLaterOps {
        void *(*reserve)(void *userdata);
        void (*fill)(void *userdata, void *slot, char *msg, size_t len);
} RpcLaterOps;
void rpc_session_print_later(RpcSession *s, uv_loop_t *loop, const RpcLaterOps *ops);

/* Answers still pending for this session are dropped when they arrive. */
RpcSession *rpc_session_free(RpcSession *s);

/* Handle one message (the text of one NDJSON line, NUL-terminated at line[len]). */
void rpc_session_handle(RpcSession *s, const char *line, size_t len);
/* Handle one message as rpc_session_handle() does, reading its text on libuv's pool: for big messages,
 * whose reading would hold the loop. line lies inside buf, which the session takes and frees unless this
 * fails. Until resume(userdata) is called from the loop, after the
 * message was dispatched, rpc_session_parsing() is true and the caller hands no further message, so
 * that a connection's messages are dispatched in the order they came. resume is not called once the
 * session is freed. */
typedef void (*RpcResumeFn)(void *userdata);
int rpc_session_handle_async(RpcSession *s, uv_loop_t *loop, char *buf, const char *line, size_t len,
                             RpcResumeFn resume, void *userdata);
bool rpc_session_parsing(const RpcSession *s);

/* A message longer than the limit was skipped: answer with an error. */
void rpc_session_handle_oversize(RpcSession *s);

/* The deepest nesting accepted in a message. */
#define RPC_MAX_DEPTH 64
/* The most requests in one batch: each is parsed, dispatched and tracked until it is answered. */
#define RPC_MAX_BATCH 1024
/* The most JSON values in one message: cJSON spends ~80 bytes on each, so this bounds a message's
 * tree to some 20 MiB however its text is made. */
#define RPC_MAX_VALUES (256 * 1024)
