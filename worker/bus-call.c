/* SPDX-License-Identifier: MIT */
/* The answers of bus.h that are made of bus_call_error(): one copy for every implementation of the bus
 * API (the worker's bus.c, and bus-remote.c of a service in a process of its own). */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"

void bus_call_error_errno(BusCall *call, int r, const char *path)
{
        cJSON *data = cJSON_CreateObject();
        const char *name = errno_name(r);
        char msg[256];
        RpcError code = rpc_error_from_errno(r);

        if (data) {
                if (name)
                        (void)cJSON_AddStringToObject(data, "errno", name);
                if (path)
                        (void)cJSON_AddStringToObject(data, "path", path);
        }
        /* The message names the cause in words: strerror's, which users recognise from the shell. */
        (void)snprintf(msg, sizeof(msg), "%s", strerror(abs(r)));
        bus_call_error(call, code, msg, data);
}

int bus_serve_all(Bus *b, const BusMethod *methods, size_t n, void *userdata)
{
        for (size_t i = 0; i < n; i++) {
                int r = bus_serve(b, methods[i].topic, methods[i].fn, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

void bus_call_error_outside(BusCall *call, const char *path)
{
        cJSON *data = cJSON_CreateObject();

        if (data && (!cJSON_AddStringToObject(data, "errno", "EXDEV") ||
                     (path && !cJSON_AddStringToObject(data, "path", path)))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_PERMISSION_DENIED, "Outside the workspace", data);
}

int bus_call_error_oom(BusCall *call)
{
        log_oom();
        bus_call_error(call, RPC_INTERNAL_ERROR, "Out of memory", NULL);
        return -ENOMEM;
}

int bus_call_error_invalid(BusCall *call, const char *reason, const char *path)
{
        cJSON *data = cJSON_CreateObject();
        char msg[256];

        assert(reason);
        if (data && (!cJSON_AddStringToObject(data, "reason", reason) ||
                     (path && !cJSON_AddStringToObject(data, "path", path)))) {
                cJSON_Delete(data);
                data = NULL;
        }
        (void)snprintf(msg, sizeof(msg), "Invalid params: %s", reason);
        bus_call_error(call, RPC_INVALID_PARAMS, msg, data);
        return -EINVAL;
}

void bus_call_error_forward(BusCall *call, const cJSON *error)
{
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(error, "data");
        cJSON *copy = NULL;

        if (!cJSON_IsNumber(code) || !(code->valuedouble >= INT_MIN && code->valuedouble <= INT_MAX) ||
            code->valuedouble != (double)(int)code->valuedouble) {
                bus_call_error(call, RPC_INTERNAL_ERROR, "Malformed error from a service", NULL);
                return;
        }
        if (data) {
                copy = cJSON_Duplicate(data, true);
                if (!copy) {
                        (void)bus_call_error_oom(call);
                        return;
                }
        }
        bus_call_error(call, (int)code->valuedouble, cJSON_IsString(message) ? message->valuestring : NULL,
                       copy);
}

int bus_call_params(BusCall *call, const cJSON *params, const JsonField *fields, size_t n_fields)
{
        const char *reason = NULL;
        cJSON empty = {.type = cJSON_Object};
        int r;

        /* Absent params mean an empty object: every method takes named params. */
        r = json_dispatch(params ? params : &empty, fields, n_fields, &reason);
        if (r < 0)
                (void)bus_call_error_invalid(call, reason, NULL);
        return r;
}
