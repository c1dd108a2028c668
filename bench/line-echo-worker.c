/* SPDX-License-Identifier: MIT */
/* A stand-in worker for gateway-bench: socket-activated like helios-worker (listening socket on fd 3),
 * it echoes every line back on the connection it came from and does nothing else, so that a run
 * through the gateway to it measures the gateway and the extra hop, not the worker's services. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct Conn {
        int fd;
        char *buf;
        size_t len, cap;
} Conn;

static void conn_free(int ep, Conn *c)
{
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c->buf);
        free(c);
}

/* Blocking writes: a benchmark client always reads its answers. */
static int write_all(int fd, const char *p, size_t n)
{
        int flags = fcntl(fd, F_GETFL);

        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -1;
                p += k;
                n -= (size_t)k;
        }
        fcntl(fd, F_SETFL, flags);
        return 0;
}

int main(void)
{
        struct epoll_event ev = {.events = EPOLLIN}, events[64];
        int ep = epoll_create1(EPOLL_CLOEXEC);

        if (!getenv("LISTEN_FDS") || ep < 0)
                return 1;
        fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK);
        ev.data.ptr = NULL;
        epoll_ctl(ep, EPOLL_CTL_ADD, 3, &ev);
        for (;;) {
                int n = epoll_wait(ep, events, 64, -1);
                for (int i = 0; i < n; i++) {
                        Conn *c = events[i].data.ptr;
                        if (!c) {
                                int fd = accept4(3, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                if (fd < 0)
                                        continue;
                                c = calloc(1, sizeof(Conn));
                                c->fd = fd;
                                ev.data.ptr = c;
                                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                                continue;
                        }
                        if (c->cap - c->len < 65536) {
                                c->cap = c->cap * 2 + 65536;
                                c->buf = realloc(c->buf, c->cap);
                        }
                        ssize_t k = read(c->fd, c->buf + c->len, c->cap - c->len);
                        if (k <= 0) {
                                if (k < 0 && errno == EAGAIN)
                                        continue;
                                conn_free(ep, c);
                                continue;
                        }
                        c->len += (size_t)k;
                        char *lf = memrchr(c->buf, '\n', c->len);
                        if (!lf)
                                continue;
                        size_t whole = (size_t)(lf - c->buf) + 1;
                        if (write_all(c->fd, c->buf, whole) < 0) {
                                conn_free(ep, c);
                                continue;
                        }
                        memmove(c->buf, c->buf + whole, c->len - whole);
                        c->len -= whole;
                }
        }
}
