/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Counted arrays of owned strings (settings that repeat). */
static inline void strv_free_n(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* Append a copy of s[0..len) to the n-element array *v. */
static inline int strv_push(char ***v, size_t *n, const char *s, size_t len)
{
        char *d = strndup(s, len);
        char **p;

        if (!d)
                return -ENOMEM;
        p = realloc(*v, (*n + 1) * sizeof(char *));
        if (!p) {
                free(d);
                return -ENOMEM;
        }
        p[(*n)++] = d;
        *v = p;
        return 0;
}

/* Append "key=value" to the NULL-terminated, n-element environment *v, keeping it NULL-terminated. */
static inline int strv_env_push(char ***v, size_t *n, const char *key, const char *value)
{
        char *e, **p;

        if (asprintf(&e, "%s=%s", key, value) < 0)
                return -ENOMEM;
        p = realloc(*v, (*n + 2) * sizeof(char *));
        if (!p) {
                free(e);
                return -ENOMEM;
        }
        p[(*n)++] = e;
        p[*n] = NULL;
        *v = p;
        return 0;
}
