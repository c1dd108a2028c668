/* SPDX-License-Identifier: MIT */
#include "packet.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

/* The bytes of n fields with their NULs; with dst, copied there too. */
static size_t fields_join(const char *const *fields, size_t n, char *dst)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(fields[i]) + 1;
                if (dst)
                        memcpy(dst + k, fields[i], l);
                k += l;
        }
        return k;
}

char *packet_join(const char *const *fields, size_t n, size_t *ret_len)
{
        size_t total = fields_join(fields, n, NULL);
        char *p = malloc(total ? total : 1);

        if (!p)
                return NULL;
        *ret_len = fields_join(fields, n, p);
        return p;
}

int packet_queue_push(PacketQueue *q, const char *const *fields, size_t n)
{
        size_t total = fields_join(fields, n, NULL);
        PacketQueueItem *p = malloc(sizeof(PacketQueueItem) + total);

        if (!p)
                return -ENOMEM;
        p->next = NULL;
        p->len = fields_join(fields, n, p->data);
        if (q->last)
                q->last->next = p;
        else
                q->first = p;
        q->last = p;
        q->n++;
        return 0;
}

int packet_queue_flush(PacketQueue *q, int fd)
{
        while (q->first) {
                PacketQueueItem *p = q->first;
                ssize_t n = send(fd, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (n < 0)
                        return -errno;
                q->first = p->next;
                if (!q->first)
                        q->last = NULL;
                q->n--;
                free(p);
        }
        return 0;
}

void packet_queue_clear(PacketQueue *q)
{
        while (q->first) {
                PacketQueueItem *p = q->first;
                q->first = p->next;
                free(p);
        }
        q->last = NULL;
        q->n = 0;
}
