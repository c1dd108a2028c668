/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdlib.h>

/* NULL-terminated arrays of owned strings (argv, envp). */
static inline void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static inline void strv_freep(char ***v)
{
        strv_free(*v);
}
