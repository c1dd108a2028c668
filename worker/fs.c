/* SPDX-License-Identifier: MIT */
/* Skeleton: the fs service is being written; it registers no topics yet. */
#include "service.h"

static int fs_start(const ServiceContext *ctx, void **ret)
{
        *ret = NULL;
        return 0;
}

const ServiceType fs_service_type = {
        .name = "fs",
        .start = fs_start,
        .stop = NULL,
};
