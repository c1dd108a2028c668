/* SPDX-License-Identifier: MIT */
/* The preview service: which TCP ports listen on the workspace's loopback (preview:ports). Connecting to
 * one (preview:connect) changes what a connection is, so the connection layer (server.c) serves it as a
 * connection's first message; here it is only refused when it comes later. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "macro.h"
#include "service.h"

/* More listening ports than a workspace needs; the rest are left out (the answer says so). */
#define PREVIEW_MAX_PORTS 256u

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

typedef struct PortEntry {
        uint16_t port;
        bool v4, v6;
} PortEntry;

typedef struct PortList {
        PortEntry entries[PREVIEW_MAX_PORTS];
        size_t n;
        bool truncated;
} PortList;

static void port_list_add(PortList *l, uint16_t port, bool v6)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->entries[i].port == port) {
                        l->entries[i].v4 |= !v6;
                        l->entries[i].v6 |= v6;
                        return;
                }
        if (l->n >= PREVIEW_MAX_PORTS) {
                l->truncated = true;
                return;
        }
        l->entries[l->n++] = (PortEntry){.port = port, .v4 = !v6, .v6 = v6};
}

/* A listener that 127.0.0.1 or ::1 reaches: bound to loopback or to every address. */
static bool reachable_v4(uint32_t raw)
{
        struct in_addr a = {.s_addr = raw};

        return a.s_addr == htonl(INADDR_ANY) || (ntohl(a.s_addr) >> 24) == 127;
}

static bool reachable_v6(const struct in6_addr *a)
{
        if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a))
                return true;
        if (IN6_IS_ADDR_V4MAPPED(a))
                return reachable_v4(((const uint32_t *)a->s6_addr)[3]);
        return false;
}

/* Lines of /proc/net/tcp{,6}: "sl local_address rem_address st ...", addresses as the kernel's words in
 * hex (each word printed as a host-order integer), the state 0A for LISTEN. These files show the
 * network namespace of the process reading them: the workspace's own. */
static int read_listeners(const char *path, bool v6, PortList *l)
{
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        char line[512];

        if (!f)
                return errno == ENOENT ? 0 : -errno;
        if (!fgets(line, sizeof(line), f))
                return 0;
        while (fgets(line, sizeof(line), f)) {
                char local[64], remote[64];
                unsigned state, port;
                char *colon;

                if (sscanf(line, " %*u: %63s %63s %x", local, remote, &state) != 3 || state != 0x0A)
                        continue;
                colon = strchr(local, ':');
                if (!colon || sscanf(colon + 1, "%x", &port) != 1 || port == 0 || port > 65535)
                        continue;
                *colon = '\0';
                if (!v6) {
                        if (strlen(local) != 8 || !reachable_v4((uint32_t)strtoul(local, NULL, 16)))
                                continue;
                } else {
                        struct in6_addr a;
                        uint32_t words[4];
                        if (strlen(local) != 32)
                                continue;
                        for (int i = 0; i < 4; i++) {
                                char w[9];
                                memcpy(w, local + 8 * i, 8);
                                w[8] = '\0';
                                words[i] = (uint32_t)strtoul(w, NULL, 16);
                        }
                        memcpy(&a, words, sizeof(a));
                        if (!reachable_v6(&a))
                                continue;
                }
                port_list_add(l, (uint16_t)port, v6);
        }
        return 0;
}

static int compare_ports(const void *a, const void *b)
{
        const PortEntry *x = a, *y = b;

        return (int)x->port - (int)y->port;
}

/* preview:ports {} -> {ports:[{port, ipv4, ipv6}], truncated} */
static void on_preview_ports(BusCall *call, const cJSON *params, void *userdata)
{
        _cleanup_free_ PortList *l = calloc(1, sizeof(PortList));
        _cleanup_json_ cJSON *r = cJSON_CreateObject();
        cJSON *list;
        int k;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        if (!l || !r || !(list = cJSON_AddArrayToObject(r, "ports")))
                return (void)bus_call_error_oom(call);
        k = read_listeners("/proc/net/tcp", false, l);
        if (k >= 0)
                k = read_listeners("/proc/net/tcp6", true, l);
        if (k < 0)
                return bus_call_error_errno(call, k, "/proc/net/tcp");
        qsort(l->entries, l->n, sizeof(PortEntry), compare_ports);
        for (size_t i = 0; i < l->n; i++) {
                cJSON *o = cJSON_CreateObject();
                if (!o || !cJSON_AddItemToArray(list, o) ||
                    !cJSON_AddNumberToObject(o, "port", l->entries[i].port) ||
                    !cJSON_AddBoolToObject(o, "ipv4", l->entries[i].v4) ||
                    !cJSON_AddBoolToObject(o, "ipv6", l->entries[i].v6)) {
                        cJSON_Delete(o);
                        return (void)bus_call_error_oom(call);
                }
        }
        if (!cJSON_AddBoolToObject(r, "truncated", l->truncated))
                return (void)bus_call_error_oom(call);
        bus_call_reply(call, TAKE_PTR(r));
}

static void on_preview_connect_late(BusCall *call, const cJSON *params, void *userdata)
{
        bus_call_error(call, RPC_INVALID_REQUEST,
                       "preview:connect must be the first message on a connection of its own", NULL);
}

static int preview_start(const ServiceContext *ctx, void **ret)
{
        int r;

        *ret = NULL;
        r = bus_serve(ctx->bus, "preview:ports", on_preview_ports, NULL);
        if (r >= 0)
                r = bus_serve(ctx->bus, "preview:connect", on_preview_connect_late, NULL);
        return r;
}

const ServiceType preview_service_type = {
    .name = "preview",
    .start = preview_start,
};
