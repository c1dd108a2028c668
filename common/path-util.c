/* SPDX-License-Identifier: MIT */
#include "path-util.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "macro.h"

bool path_is_below_or_same(const char *a, const char *b)
{
        size_t n = strlen(b);

        if (streq(b, "/"))
                return a[0] == '/';
        return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

/* Append the components of p to out (which holds "" or "/x/y"), resolving "." and "..". */
static int normalize_append(Buf *out, const char *p)
{
        while (*p) {
                const char *c = p;
                size_t len;

                while (*c == '/')
                        c++;
                len = strcspn(c, "/");
                p = c + len;
                if (len == 0 || (len == 1 && c[0] == '.'))
                        continue;
                if (len == 2 && c[0] == '.' && c[1] == '.') {
                        char *slash;

                        if (out->len == 0)
                                return -EXDEV;
                        slash = strrchr(out->data, '/');
                        out->len = (size_t)(slash - out->data);
                        out->data[out->len] = '\0';
                        continue;
                }
                if (len > NAME_MAX)
                        return -ENAMETOOLONG;
                if (buf_append(out, "/", 1) < 0 || buf_append(out, c, len) < 0)
                        return -ENOMEM;
                /* Longer than the kernel would take: no later ".." may rescue it (its input is bounded
                 * by the caller anyway). */
                if (out->len >= PATH_MAX)
                        return -ENAMETOOLONG;
        }
        return 0;
}

int path_normalize(const char *base, const char *path, char **ret)
{
        _cleanup_(buf_done) Buf out = {};
        int r;

        assert(ret);
        if (!path || !*path)
                return -EINVAL;
        if (strlen(path) >= PATH_MAX)
                return -ENAMETOOLONG;
        if (path[0] != '/') {
                if (!base || base[0] != '/')
                        return -EINVAL;
                r = normalize_append(&out, base);
                if (r < 0)
                        return r;
        }
        r = normalize_append(&out, path);
        if (r < 0)
                return r;
        if (out.len == 0 && buf_append(&out, "/", 1) < 0)
                return -ENOMEM;
        *ret = buf_steal(&out, NULL);
        return 0;
}

char *path_join(const char *dir, const char *name)
{
        char *p;

        if (asprintf(&p, "%s%s%s", dir, streq(dir, "/") ? "" : "/", name) < 0)
                return NULL;
        return p;
}
