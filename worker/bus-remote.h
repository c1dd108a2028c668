/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <uv.h>

#include "bus.h"

/* The bus API of bus.h for a service in a process of its own: the same calls, spoken over one
 * connection to the worker (docs/services.md). bus_serve() and bus_subscribe() are announced with
 * bus:serve and bus:subscribe (bus_remote_announce()), requests for the served topics arrive as
 * JSON-RPC requests and their answers go back as responses, bus_publish() sends a notification, and
 * bus_call() a request of this side's own. Requests that arrive before bus_remote_ready() wait (the
 * service is not set up yet). */

/* Called once when the connection has ended (the worker closed it, or it failed). */
typedef void (*BusRemoteClosedFn)(void *userdata);

/* Join over in_fd (read) and out_fd (written; may be the same socket), which are taken. max_message:
 * the largest message this side reads until bus_remote_set_max_message(). */
int bus_remote_new(uv_loop_t *loop, int in_fd, int out_fd, size_t max_message, BusRemoteClosedFn closed,
                   void *userdata, Bus **ret);
/* The worker's message size limit, learnt from worker:info. */
void bus_remote_set_max_message(Bus *b, size_t max_message);
/* Send bus:serve for every topic served and bus:subscribe for every topic subscribed so far. A refusal
 * ends the connection. */
int bus_remote_announce(Bus *b);
/* Hand an event to this side's subscribers alone, as if the worker had sent it. */
void bus_remote_deliver(Bus *b, const char *topic, const cJSON *params);
/* Handle the requests that waited, and every request from now on. */
void bus_remote_ready(Bus *b);
/* Stop reading and close the handles; requests still unanswered are dropped when answered, and
 * bus_call()s not answered yet get an error. The memory goes with bus_free() once the loop is done. */
void bus_remote_close(Bus *b);
