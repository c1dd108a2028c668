/* SPDX-License-Identifier: MIT */
/* Skeleton: the workspace service is being written; it registers no topics yet. */
#include "service.h"

static int workspace_start(const ServiceContext *ctx, void **ret)
{
        *ret = NULL;
        return 0;
}

const ServiceType workspace_service_type = {
        .name = "workspace",
        .start = workspace_start,
        .stop = NULL,
};
