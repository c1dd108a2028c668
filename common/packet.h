/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Packets of NUL-terminated fields, one packet per message of a SOCK_SEQPACKET socket, as the launcher
 * protocol (launcher-protocol.h) speaks them. */

/* Split buf (n bytes) into at most max fields, pointing into buf; the number of fields, or -EBADMSG
 * unless the packet is exactly that: fields each ending in NUL, nothing after the last. */
int packet_split(char *buf, size_t n, char **fields, size_t *lens, size_t max);

/* The ids of requests: 1 to LAUNCHER_ID_MAX decimal digits. */
bool packet_id_valid(const char *s, size_t len);

/* Join n fields, each with its NUL, into a newly allocated packet; its length in *ret_len. NULL on
 * allocation failure. */
char *packet_join(const char *const *fields, size_t n, size_t *ret_len);

/* Packets waiting to be sent on a non-blocking SOCK_SEQPACKET socket, in order; each goes whole or not
 * at all. */
typedef struct PacketQueueItem {
        struct PacketQueueItem *next;
        size_t len;
        char data[];
} PacketQueueItem;

typedef struct PacketQueue {
        PacketQueueItem *first, *last;
        unsigned n;
} PacketQueue;

/* Append the packet of n fields (packet_join's); -ENOMEM. */
int packet_queue_push(PacketQueue *q, const char *const *fields, size_t n);
/* Send what the socket takes now: 0 when it is sent or the socket is full (q->first then says what is
 * left), -errno when the socket failed. */
int packet_queue_flush(PacketQueue *q, int fd);
void packet_queue_clear(PacketQueue *q);
