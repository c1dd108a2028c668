/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Client addresses: what a connection came from, which proxies are believed about the client behind
 * them, and who counts as local. */

typedef struct NetAddr {
        int family; /* AF_INET, AF_INET6, or AF_UNIX (a local peer; no address) */
        uint8_t bytes[16];
} NetAddr;

typedef struct NetPrefix {
        NetAddr addr;
        unsigned bits;
} NetPrefix;

/* Long enough for any address netaddr_format() writes, "unix" included. */
#define NETADDR_STRLEN 48

/* IPv4-mapped IPv6 addresses become IPv4, so one client has one form. */
int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, NetAddr *ret);
int netaddr_parse(const char *s, size_t len, NetAddr *ret);
void netaddr_format(const NetAddr *a, char out[NETADDR_STRLEN]);
bool netaddr_is_loopback(const NetAddr *a);
bool netaddr_equal(const NetAddr *a, const NetAddr *b);

/* "ADDR", "ADDR/BITS", or "unix" (every Unix-socket peer). */
int netprefix_parse(const char *s, NetPrefix *ret);
bool netprefix_contains(const NetPrefix *p, const NetAddr *a);
bool netprefix_list_contains(const NetPrefix *list, size_t n, const NetAddr *a);

/* The client address for a request from peer carrying X-Forwarded-For value xff (NULL if none): peer
 * itself unless it is a trusted proxy; then the right-most address in the header that is not a trusted
 * proxy (earlier entries are whatever the client claimed). An unparsable entry ends the walk at the
 * proxy that added it. */
NetAddr netaddr_client_from_forwarded(const NetAddr *peer, const char *xff, const NetPrefix *trusted,
                                      size_t n_trusted);
