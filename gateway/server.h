/* SPDX-License-Identifier: MIT */
#pragma once

#include <uv.h>

#include "config.h"

typedef struct Gateway Gateway;

/* --check-config: check what the settings name (TLS files, the users and token files, the web root,
 * groups) and print which settings are ignored and why. 0 if all is well, else -EINVAL. */
int gateway_check_config(const GatewayConfig *c);

/* Takes ownership of config. argv is kept (not copied) to reload the configuration on SIGHUP. */
int gateway_new(uv_loop_t *loop, GatewayConfig *config, int argc, char **argv, Gateway **ret);
/* Listen, start the launcher, print the URL; then the loop serves until SIGTERM or SIGINT. */
int gateway_start(Gateway *g);
/* Begin shutdown: WebSockets are closed with 1001, then everything else. The loop ends by itself. */
void gateway_stop(Gateway *g);
/* After the loop has ended: the last of libwebsockets' teardown. */
void gateway_finish(Gateway *g);
Gateway *gateway_free(Gateway *g);
