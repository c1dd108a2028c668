/* SPDX-License-Identifier: MIT */
#include "packet.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "launcher-protocol.h"

int packet_split(char *buf, size_t n, char **fields, size_t *lens, size_t max)
{
        char *p = buf, *end = buf + n;
        size_t k = 0;

        assert(buf && fields && lens);

        if (n == 0 || buf[n - 1] != '\0')
                return -EBADMSG;
        while (p < end) {
                char *z = memchr(p, '\0', (size_t)(end - p));
                if (k == max)
                        return -EBADMSG;
                fields[k] = p;
                lens[k++] = (size_t)(z - p);
                p = z + 1;
        }
        return (int)k;
}

bool packet_id_valid(const char *s, size_t len)
{
        if (len == 0 || len > LAUNCHER_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

char *packet_join(const char *const *fields, size_t n, size_t *ret_len)
{
        size_t total = 0, k = 0;
        char *p;

        for (size_t i = 0; i < n; i++)
                total += strlen(fields[i]) + 1;
        p = malloc(total ? total : 1);
        if (!p)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(fields[i]) + 1;
                memcpy(p + k, fields[i], l);
                k += l;
        }
        *ret_len = total;
        return p;
}
