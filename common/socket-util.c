/* SPDX-License-Identifier: MIT */
#include "socket-util.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"

int unix_socket_remove_stale(const char *path, int type)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct stat st;
        _cleanup_close_ int fd = -1;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        /* Only a socket nobody answers on is stale: taking over a live one would cut off its owner. */
        fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                return -EADDRINUSE;
        if (errno != ECONNREFUSED)
                return negative_errno();
        if (unlink(path) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

int unix_socket_bind(int fd, const char *path, gid_t gid, mode_t mode)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        old = umask(0177);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return negative_errno();
        if (gid != (gid_t)-1 && (chown(path, geteuid(), gid) < 0 || chmod(path, mode) < 0)) {
                r = negative_errno();
                (void)unlink(path);
                return r;
        }
        return 0;
}

int peer_credentials_ask(int answerer, int fd, int timeout_ms, PeerCredentials *ret)
{
        char byte = 'c';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct msghdr msg = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        struct pollfd pfd = {.fd = answerer, .events = POLLIN};
        PeerCredentials answer;
        ssize_t n;
        int r;

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        if (sendmsg(answerer, &msg, MSG_NOSIGNAL) != 1)
                return negative_errno();
        do
                r = poll(&pfd, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return negative_errno();
        if (r == 0)
                return -ETIMEDOUT;
        n = recv(answerer, &answer, sizeof(answer), MSG_DONTWAIT);
        if (n < 0)
                return negative_errno();
        if (n != sizeof(answer))
                return -EBADMSG;
        if (answer.error != 0)
                return -answer.error;
        *ret = answer;
        return 0;
}

int peer_credentials_own_pid(int answerer, int timeout_ms, pid_t *ret)
{
        PeerCredentials c;
        int pair[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return negative_errno();
        r = peer_credentials_ask(answerer, pair[0], timeout_ms, &c);
        safe_close(pair[0]);
        safe_close(pair[1]);
        if (r < 0)
                return r;
        if (c.pid == 0)
                return -ESRCH;
        *ret = (pid_t)c.pid;
        return 0;
}
