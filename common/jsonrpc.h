/* SPDX-License-Identifier: MIT */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

/* JSON-RPC 2.0 error codes: the standard ones and Helios' application range (DESIGN.md). */
typedef enum RpcError {
        RPC_PARSE_ERROR = -32700,
        RPC_INVALID_REQUEST = -32600,
        RPC_METHOD_NOT_FOUND = -32601,
        RPC_INVALID_PARAMS = -32602,
        RPC_INTERNAL_ERROR = -32603,
        RPC_SERVER_ERROR = -32000,
        RPC_NOT_FOUND = -32001,
        RPC_PERMISSION_DENIED = -32002,
        RPC_CONFLICT = -32003,
        RPC_TOO_LARGE = -32004,
        RPC_ALREADY_EXISTS = -32005,
        RPC_WRONG_TYPE = -32006,
        RPC_NO_SUCH_TERMINAL = -32010,
        RPC_UNSAVED_CHANGES = -32020,
} RpcError;

/* The application error code for a -errno value. */
RpcError rpc_error_from_errno(int error);
/* A short default message for an error code. */
const char *rpc_error_message(RpcError code);

typedef struct JsonRpcRequest {
        const char *method;
        const cJSON *params; /* NULL when absent */
        const cJSON *id;     /* NULL for a notification (no "id" member) */
} JsonRpcRequest;

/* Check that msg is a valid request or notification. On -EINVAL, *ret_reason says why, and ret->id
 * still holds the id if one of a valid type was present, so the error response can carry it. */
int jsonrpc_parse_request(const cJSON *msg, JsonRpcRequest *ret, const char **ret_reason);

/* cJSON keeps a number only as a double, which prints 8000000000000001 back as 8e+15. Replace the id of
 * msg (a request, or each request of a batch), parsed with json_parse() from text[0..n), by a raw item
 * holding the id's own text, so that answers echo it byte for byte. Ids that are not strings or numbers
 * as RFC 8259 writes them (or strings with a \u0000) stay as they are. -ENOMEM leaves msg partly
 * converted, still valid. */
int jsonrpc_keep_id_text(cJSON *msg, const char *text, size_t n);

/* {"jsonrpc":"2.0","id":…,"result":…}; takes ownership of result. id NULL means null. */
cJSON *jsonrpc_result_new(const cJSON *id, cJSON *result);
/* {"jsonrpc":"2.0","id":…,"error":{"code","message","data"?}}; takes ownership of data. */
cJSON *jsonrpc_error_new(const cJSON *id, int code, const char *message, cJSON *data);
/* {"jsonrpc":"2.0","method":…,"params":…}; takes ownership of params. */
cJSON *jsonrpc_notification_new(const char *method, cJSON *params);
