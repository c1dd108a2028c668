/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

#include "config.h"

/* The worker process: its listening socket, its client connections, the bus and the services on it,
 * idle exit and service-manager notifications. */
typedef struct Server Server;

int server_new(uv_loop_t *loop, const WorkerConfig *config, Server **ret);
/* Take the listening socket (systemd's fd 3 or --listen), start the services, notify READY=1. */
int server_start(Server *s);
/* Begin an orderly shutdown; the loop ends once everything has closed. */
void server_stop(Server *s);
/* Call after the loop has ended. */
Server *server_free(Server *s);
