/* SPDX-License-Identifier: MIT */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "parse-util.h"

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void normalize(NetAddr *a)
{
        if (a->family == AF_INET6 && memcmp(a->bytes, v4mapped_prefix, 12) == 0) {
                memmove(a->bytes, a->bytes + 12, 4);
                memset(a->bytes + 4, 0, 12);
                a->family = AF_INET;
        }
}

int netaddr_from_sockaddr(const struct sockaddr *sa, socklen_t len, NetAddr *ret)
{
        NetAddr a = {};

        switch (sa->sa_family) {
        case AF_INET:
                if (len < (socklen_t)sizeof(struct sockaddr_in))
                        return -EINVAL;
                a.family = AF_INET;
                memcpy(a.bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
                break;
        case AF_INET6:
                if (len < (socklen_t)sizeof(struct sockaddr_in6))
                        return -EINVAL;
                a.family = AF_INET6;
                memcpy(a.bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
                normalize(&a);
                break;
        case AF_UNIX:
                a.family = AF_UNIX;
                break;
        default:
                return -EAFNOSUPPORT;
        }
        *ret = a;
        return 0;
}

int netaddr_parse(const char *s, size_t len, NetAddr *ret)
{
        char buf[INET6_ADDRSTRLEN + 2];
        NetAddr a = {};

        /* Accept a bracketed IPv6 address as X-Forwarded-For writers sometimes do. */
        if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
                s++;
                len -= 2;
        }
        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = '\0';
        if (inet_pton(AF_INET, buf, a.bytes) == 1)
                a.family = AF_INET;
        else if (inet_pton(AF_INET6, buf, a.bytes) == 1) {
                a.family = AF_INET6;
                normalize(&a);
        } else
                return -EINVAL;
        *ret = a;
        return 0;
}

void netaddr_format(const NetAddr *a, char out[NETADDR_STRLEN])
{
        if (a->family == AF_UNIX || !inet_ntop(a->family, a->bytes, out, NETADDR_STRLEN))
                strcpy(out, a->family == AF_UNIX ? "unix" : "?");
}

bool netaddr_is_loopback(const NetAddr *a)
{
        static const uint8_t v6_loopback[16] = {[15] = 1};

        switch (a->family) {
        case AF_INET:
                return a->bytes[0] == 127;
        case AF_INET6:
                return memcmp(a->bytes, v6_loopback, 16) == 0;
        case AF_UNIX:
                /* A process on this machine, but most likely a reverse proxy for someone elsewhere. */
                return false;
        default:
                return false;
        }
}

bool netaddr_equal(const NetAddr *a, const NetAddr *b)
{
        return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

int netprefix_parse(const char *s, NetPrefix *ret)
{
        const char *slash = strchr(s, '/');
        NetPrefix p = {};
        uint64_t bits;
        int r;

        if (streq(s, "unix")) {
                p.addr.family = AF_UNIX;
                *ret = p;
                return 0;
        }
        r = netaddr_parse(s, slash ? (size_t)(slash - s) : strlen(s), &p.addr);
        if (r < 0)
                return r;
        bits = p.addr.family == AF_INET ? 32 : 128;
        if (slash) {
                r = parse_uint(slash + 1, 0, bits, &bits);
                if (r < 0)
                        return r;
        }
        p.bits = (unsigned)bits;
        *ret = p;
        return 0;
}

bool netprefix_contains(const NetPrefix *p, const NetAddr *a)
{
        unsigned full, rest;

        if (p->addr.family != a->family)
                return false;
        if (a->family == AF_UNIX)
                return true;
        full = p->bits / 8;
        rest = p->bits % 8;
        if (memcmp(p->addr.bytes, a->bytes, full) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        return (p->addr.bytes[full] & mask) == (a->bytes[full] & mask);
}

bool netprefix_list_contains(const NetPrefix *list, size_t n, const NetAddr *a)
{
        for (size_t i = 0; i < n; i++)
                if (netprefix_contains(&list[i], a))
                        return true;
        return false;
}

NetAddr netaddr_client_from_forwarded(const NetAddr *peer, const char *xff, const NetPrefix *trusted,
                                      size_t n_trusted)
{
        NetAddr client = *peer;
        const char *end;

        if (!xff || !netprefix_list_contains(trusted, n_trusted, peer))
                return client;

        /* Walk from the right: each trusted hop vouches for the entry before it. */
        end = xff + strlen(xff);
        while (end > xff) {
                const char *start = end;
                NetAddr a;

                while (start > xff && start[-1] != ',')
                        start--;
                const char *s = start, *e = end;
                while (s < e && (*s == ' ' || *s == '\t'))
                        s++;
                while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if (netaddr_parse(s, (size_t)(e - s), &a) < 0)
                        break;
                client = a;
                if (!netprefix_list_contains(trusted, n_trusted, &a))
                        break;
                end = start > xff ? start - 1 : xff;
        }
        return client;
}
