/* SPDX-License-Identifier: MIT */
/* Skeleton: the terminal service is being written; it registers no topics yet. */
#include "service.h"

static int terminal_start(const ServiceContext *ctx, void **ret)
{
        *ret = NULL;
        return 0;
}

const ServiceType terminal_service_type = {
        .name = "terminal",
        .start = terminal_start,
        .stop = NULL,
};
