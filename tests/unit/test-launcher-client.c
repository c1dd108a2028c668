/* SPDX-License-Identifier: MIT */
/* The gateway's client of helios-launcher against a stand-in launcher played by the test on a real
 * SOCK_SEQPACKET socket: packets as the protocol says, answers out of order, every error reason, a
 * cancelled request, a malformed answer and a lost connection (pending requests fail with -EIO), and a
 * new connection afterwards. The loop must end with every handle closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "launcher.h"

typedef struct Result {
        int calls;
        int r;
        char path[128];
} Result;

static void on_auth(int r, void *userdata)
{
        Result *res = userdata;

        res->calls++;
        res->r = r;
}

static void on_worker(int r, const char *path, void *userdata)
{
        Result *res = userdata;

        res->calls++;
        res->r = r;
        snprintf(res->path, sizeof(res->path), "%s", path ? path : "");
}

static void on_sessions_lost(void *userdata)
{
        (*(int *)userdata)++;
}

static char dir[64], path[128];

static int listen_here(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        return fd;
}

static void run_until(uv_loop_t *loop, const int *counter, int want)
{
        for (int i = 0; i < 2000 && *counter < want; i++) {
                uv_run(loop, UV_RUN_NOWAIT);
                usleep(1000);
        }
        assert_int_equal(*counter, want);
}

static void expect_packet(int srv, const char *want, size_t len)
{
        char buf[4200];
        ssize_t n = recv(srv, buf, sizeof(buf), 0);

        assert_int_equal(n, (ssize_t)len);
        assert_memory_equal(buf, want, len);
}

#define EXPECT(srv, lit) expect_packet(srv, lit, sizeof(lit) - 1)
#define SEND(srv, lit)   assert_int_equal(send(srv, lit, sizeof(lit) - 1, 0), (ssize_t)(sizeof(lit) - 1))

static void test_client(void **state)
{
        uv_loop_t loop;
        Launcher *l;
        LauncherRequest *q1, *q2, *q3, *q4;
        Result a = {}, w = {}, c = {}, e = {};
        char *p = NULL;
        int lfd, srv;

        strcpy(dir, "/tmp/helios-test-lc-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/launcher.sock", dir);
        lfd = listen_here();

        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(launcher_new_remote(&loop, path, &l), 0);
        assert_null(launcher_single_user(l));
        assert_true(launcher_can_authenticate(l));
        assert_int_equal(launcher_start(l), 0);
        srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(srv >= 0);

        /* Two requests, answered the other way round. */
        assert_int_equal(launcher_authenticate(l, "alice", "secret", on_auth, &a, &q1), 0);
        assert_int_equal(launcher_find_worker(l, "bob", on_worker, &w, &p, &q2), 1);
        assert_null(p);
        EXPECT(srv, "1\0auth\0alice\0secret\0");
        EXPECT(srv, "2\0worker\0bob\0");
        SEND(srv, "2\0ok\0/run/helios/workers/bob.sock\0");
        SEND(srv, "1\0error\0denied\0");
        run_until(&loop, &w.calls, 1);
        run_until(&loop, &a.calls, 1);
        assert_int_equal(w.r, 0);
        assert_string_equal(w.path, "/run/helios/workers/bob.sock");
        assert_int_equal(a.r, -EACCES);

        /* Every reason has its errno. */
        static const struct {
                const char *reply;
                size_t len;
                int r;
        } reasons[] = {
            {"refused", 8, -EPERM},  {"busy", 5, -EAGAIN},    {"timeout", 8, -ETIMEDOUT},
            {"failed", 7, -EIO},     {"whatever", 9, -EIO},   {"locked", 7, -EKEYEXPIRED},
            {"no-home", 8, -ENOENT}, {"masked", 7, -ERFKILL}, {"full", 5, -EUSERS},
        };
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
                char pkt[64];
                int id = 3 + (int)i, n;
                Result r = {};

                assert_int_equal(launcher_authenticate(l, "alice", "x", on_auth, &r, &q3), 0);
                n = snprintf(pkt, sizeof(pkt), "%d", id);
                /* The request itself is not looked at again. */
                (void)recv(srv, pkt + 32, 32, 0);
                memcpy(pkt + n + 1, "error", 6);
                memcpy(pkt + n + 7, reasons[i].reply, reasons[i].len);
                assert_int_equal(send(srv, pkt, (size_t)n + 7 + reasons[i].len, 0), n + 7 + reasons[i].len);
                run_until(&loop, &r.calls, 1);
                assert_int_equal(r.r, reasons[i].r);
        }

        /* A cancelled request's answer is dropped, and the connection goes on. */
        assert_int_equal(launcher_authenticate(l, "alice", "x", on_auth, &c, &q3), 0);
        EXPECT(srv, "12\0auth\0alice\0x\0");
        launcher_request_cancel(q3);
        SEND(srv, "12\0ok\0");
        assert_int_equal(launcher_find_worker(l, "alice", on_worker, &w, &p, &q2), 1);
        EXPECT(srv, "13\0worker\0alice\0");
        SEND(srv, "13\0ok\0/run/helios/workers/alice.sock\0");
        run_until(&loop, &w.calls, 2);
        assert_int_equal(c.calls, 0);

        /* PAM sessions: session-open answers as auth does; session-close is sent and its answer dropped. */
        Result so = {}, sd = {};
        int lost = 0;
        launcher_on_sessions_lost(l, on_sessions_lost, &lost);
        assert_int_equal(launcher_open_session(l, "k1", "alice", "192.0.2.1", on_auth, &so, &q3), 0);
        EXPECT(srv, "14\0session-open\0k1\0alice\0"
                    "192.0.2.1\0");
        assert_int_equal(launcher_open_session(l, "k2", "bob", "", on_auth, &sd, &q3), 0);
        EXPECT(srv, "15\0session-open\0k2\0bob\0\0");
        SEND(srv, "15\0error\0denied\0");
        SEND(srv, "14\0ok\0");
        run_until(&loop, &so.calls, 1);
        run_until(&loop, &sd.calls, 1);
        assert_int_equal(so.r, 0);
        assert_int_equal(sd.r, -EACCES);
        launcher_close_session(l, "k1");
        EXPECT(srv, "16\0session-close\0k1\0");
        SEND(srv, "16\0ok\0");
        /* Over the protocol's limits: refused before anything is sent. */
        assert_int_equal(
            launcher_open_session(l, "k3", "alice",
                                  "1234567890123456789012345678901234567890123456789012345678901234",
                                  on_auth, &so, &q3),
            -EINVAL);
        assert_int_equal(lost, 0);

        /* A malformed answer ends the connection; what was pending fails with -ECONNRESET (not -EIO,
         * the launcher's own "failed"), and the sessions held for this connection are said to be gone. */
        assert_int_equal(launcher_authenticate(l, "alice", "x", on_auth, &e, &q4), 0);
        EXPECT(srv, "17\0auth\0alice\0x\0");
        SEND(srv, "17\0ok\0unexpected\0");
        run_until(&loop, &e.calls, 1);
        assert_int_equal(e.r, -ECONNRESET);
        assert_int_equal(lost, 1);
        close(srv);

        /* The next request connects again. */
        Result again = {};
        assert_int_equal(launcher_find_worker(l, "bob", on_worker, &again, &p, &q2), 1);
        srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(srv >= 0);
        EXPECT(srv, "18\0worker\0bob\0");
        /* The launcher goes away with the request pending: not a failed start of the worker. */
        close(srv);
        run_until(&loop, &again.calls, 1);
        assert_int_equal(again.r, -ECONNRESET);

        /* With nobody listening, a request fails at once. */
        close(lfd);
        unlink(path);
        assert_true(launcher_authenticate(l, "alice", "x", on_auth, &a, &q1) < 0);
        /* Names and passwords over the protocol's limits never leave. */
        assert_int_equal(
            launcher_find_worker(l, "a23456789012345678901234567890123", on_worker, &w, &p, &q2), -EINVAL);

        launcher_stop(l);
        uv_run(&loop, UV_RUN_DEFAULT);
        launcher_free(l);
        assert_int_equal(uv_loop_close(&loop), 0);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_client),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
