/* SPDX-License-Identifier: MIT */
/* Feeds arbitrary bytes through the worker's framing and JSON-RPC layers exactly as a connection
 * does (line reader → RPC session → bus), in chunks whose sizes the input chooses, and checks every
 * message that comes out: valid UTF-8, valid JSON, no raw LF, within the size limit. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "json.h"
#include "line-reader.h"
#include "rpc.h"
#include "utf8.h"

#define MAX_MESSAGE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static BusCall *held;

static int check_output(void *userdata, const char *msg, size_t len)
{
        assert(len <= MAX_MESSAGE);
        assert(!memchr(msg, '\n', len));
        assert(utf8_is_valid(msg, len));
        char *copy = strndup(msg, len);
        cJSON *j = json_parse(copy, len);
        assert(j);
        cJSON_Delete(j);
        free(copy);
        return 0;
}

static bool never_congested(void *userdata)
{
        return false;
}

static const BusClientOps ops = {check_output, never_congested};

static void echo(BusCall *call, const cJSON *params, void *userdata)
{
        bus_call_reply(call, params ? cJSON_Duplicate(params, true) : NULL);
}

/* Answers the previous held call and holds this one: exercises answers that arrive later. */
static void later(BusCall *call, const cJSON *params, void *userdata)
{
        if (held)
                bus_call_error(held, RPC_CONFLICT, "later", cJSON_CreateObject());
        held = call;
}

static void strict(BusCall *call, const cJSON *params, void *userdata)
{
        const char *path = NULL;
        uint64_t n = 0;
        bool force = false;
        const JsonField fields[] = {
            {"path", JSON_FIELD_STRING, true, &path},
            {"n", JSON_FIELD_UINT, false, &n, 1000},
            {"force", JSON_FIELD_BOOL, false, &force},
        };

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        bus_call_error_errno(call, -ENOENT, path);
}

static void resume(void *userdata)
{
        *(bool *)userdata = true;
}

/* json_print() writes what cJSON writes, for whatever cJSON parsed. */
static void check_print(const char *line, size_t len)
{
        cJSON *j = json_parse(line, len);
        char *mine, *theirs;

        if (!j)
                return;
        mine = json_print(j, NULL);
        theirs = cJSON_PrintUnformatted(j);
        assert(!mine == !theirs);
        assert(!mine || strcmp(mine, theirs) == 0);
        free(mine);
        free(theirs);
        cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uv_loop_t loop;
        Bus *bus;
        RpcSession *rpc;
        ClientId client;
        LineReader reader;
        size_t pos = 0;
        /* The first byte chooses the chunk size, so splits at every offset get explored. */
        size_t chunk = size > 0 ? (size_t)data[0] % 97 + 1 : 1;
        /* and whether lines are read as big ones are, on libuv's pool. */
        bool async = size > 1 && data[1] & 1;

        if (uv_loop_init(&loop) < 0)
                return 0;
        if (bus_new(&loop, &bus) < 0) {
                (void)uv_loop_close(&loop);
                return 0;
        }
        (void)bus_serve(bus, "t:echo", echo, NULL);
        (void)bus_serve(bus, "t:later", later, NULL);
        (void)bus_serve(bus, "fs:stat", strict, NULL);
        if (bus_client_add(bus, &ops, NULL, &client) < 0 ||
            rpc_session_new(bus, client, MAX_MESSAGE, check_output, NULL, &rpc) < 0) {
                bus_free(bus);
                (void)uv_loop_close(&loop);
                return 0;
        }
        line_reader_init(&reader, MAX_MESSAGE);

        while (pos < size) {
                size_t n = MIN(chunk, size - pos), len;
                char *buf, *line;
                LineReaderEvent ev;

                if (line_reader_space(&reader, n, &buf, &len) < 0)
                        break;
                memcpy(buf, data + pos, n);
                line_reader_commit(&reader, n);
                pos += n;
                while ((ev = line_reader_next(&reader, &line, &len)) != LINE_READER_NONE) {
                        char *owned;
                        if (ev == LINE_READER_OVERSIZE)
                                rpc_session_handle_oversize(rpc);
                        else if (async && line_reader_detach(&reader, &owned) >= 0) {
                                /* As the worker reads a big message: off the loop, the next after it. */
                                bool resumed = false;
                                check_print(line, len);
                                if (rpc_session_handle_async(rpc, &loop, owned, line, len, resume,
                                                             &resumed) < 0) {
                                        free(owned);
                                        break;
                                }
                                while (!resumed)
                                        (void)uv_run(&loop, UV_RUN_ONCE);
                        } else
                                rpc_session_handle(rpc, line, len);
                        /* Answers come from the loop. */
                        while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
                                ;
                }
        }

        /* The connection closes with a call outstanding; its answer must be dropped safely. */
        rpc = rpc_session_free(rpc);
        if (held) {
                bus_call_reply(held, cJSON_CreateTrue());
                held = NULL;
        }
        line_reader_done(&reader);
        bus_client_remove(bus, client);
        while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
                ;
        (void)uv_loop_close(&loop);
        bus_free(bus);
        return 0;
}
