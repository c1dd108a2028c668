/* SPDX-License-Identifier: MIT */
#include "tunnel.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>

#include "macro.h"
#include "splice.h"

struct Tunnel {
        uv_loop_t *loop;
        uv_tcp_t tcp[2]; /* to 127.0.0.1, then to ::1 after a refusal */
        bool tcp_open[2];
        int cur;
        unsigned handles; /* open handles: the tunnel is freed when the last closes */
        uv_connect_t connect;
        uint16_t port;
        bool aborted;
        TunnelConnectedFn connected;
        void *userdata;
};

static void on_handle_closed(uv_handle_t *h)
{
        Tunnel *t = h->data;

        assert(t->handles > 0);
        if (--t->handles == 0)
                free(t);
}

static void tcp_close(Tunnel *t, int i)
{
        if (!t->tcp_open[i])
                return;
        t->tcp_open[i] = false;
        uv_close((uv_handle_t *)&t->tcp[i], on_handle_closed);
}

void tunnel_abort(Tunnel *t)
{
        if (!t)
                return;
        t->aborted = true;
        tcp_close(t, 0);
        tcp_close(t, 1);
}

static int tcp_open(Tunnel *t, int i)
{
        int r = uv_tcp_init(t->loop, &t->tcp[i]);

        if (r < 0)
                return r;
        t->tcp[i].data = t;
        t->tcp_open[i] = true;
        t->handles++;
        t->cur = i;
        return 0;
}

static void on_connect(uv_connect_t *req, int status);

static int connect_to(Tunnel *t, bool v6)
{
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(t->port)};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(t->port)};
        int r;

        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a6.sin6_addr = in6addr_loopback;
        r = tcp_open(t, v6 ? 1 : 0);
        if (r < 0)
                return r;
        t->connect.data = t;
        return uv_tcp_connect(&t->connect, &t->tcp[t->cur],
                              v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4, on_connect);
}

static void on_connect(uv_connect_t *req, int status)
{
        Tunnel *t = req->data;

        if (t->aborted)
                return;
        /* Some servers listen on ::1 alone (those that bind "localhost" and resolve it so). */
        if (status == UV_ECONNREFUSED && t->cur == 0) {
                tcp_close(t, 0);
                if (connect_to(t, true) >= 0)
                        return;
        }
        if (status < 0) {
                t->connected(t, status, t->userdata);
                tunnel_abort(t);
                return;
        }
        (void)uv_tcp_nodelay(&t->tcp[t->cur], 1);
        t->connected(t, 0, t->userdata);
}

int tunnel_connect(uv_loop_t *loop, uint16_t port, TunnelConnectedFn connected, void *userdata, Tunnel **ret)
{
        Tunnel *t;
        int r;

        assert(loop);
        assert(connected);
        assert(port > 0);
        t = calloc(1, sizeof(Tunnel));
        if (!t)
                return -ENOMEM;
        t->loop = loop;
        t->port = port;
        t->connected = connected;
        t->userdata = userdata;
        r = connect_to(t, false);
        if (r < 0) {
                if (t->handles == 0)
                        free(t);
                else
                        tunnel_abort(t);
                return r;
        }
        *ret = t;
        return 0;
}

int tunnel_splice(Tunnel *t, int client_fd, const char *pending, size_t n_pending, TunnelClosedFn closed,
                  void *userdata, Splice **ret)
{
        uv_os_fd_t fd;
        int tcp_fd = -1;

        assert(t);
        /* The splice takes its own descriptor of the connection; this handle goes with the tunnel. */
        if (uv_fileno((uv_handle_t *)&t->tcp[t->cur], &fd) >= 0)
                tcp_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        tunnel_abort(t);
        if (tcp_fd < 0) {
                int r = -errno;
                safe_close(client_fd);
                closed(userdata);
                return r;
        }
        if (false) {
                closed(userdata);
                return -errno;
        }
        return splice_new(t->loop, client_fd, tcp_fd, pending, n_pending, SPLICE_UNLIMITED, NULL, closed,
                          userdata, ret);
}
