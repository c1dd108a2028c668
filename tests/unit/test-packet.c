/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "packet.h"

static void test_split_and_join(void **state)
{
        size_t len;
        char *p = packet_join((const char *const[]){"7", "worker", "alice"}, 3, &len);
        char *fields[4];
        size_t lens[4];

        (void)state;
        assert_non_null(p);
        assert_int_equal(len, 15);
        assert_int_equal(packet_split(p, len, fields, lens, 4), 3);
        assert_string_equal(fields[2], "alice");
        /* Something after the last NUL is no packet. */
        assert_int_equal(packet_split(p, len - 1, fields, lens, 4), -EBADMSG);
        free(p);
}

/* Packets go whole and in order; those the socket cannot take now stay queued, and a later flush sends
 * them. */
static void test_queue_keeps_order_when_the_socket_is_full(void **state)
{
        PacketQueue q = {};
        int sv[2], sndbuf = 4096;
        unsigned sent = 0, received = 0;
        char name[16], buf[8192];
        int r;

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
        for (; sent < 2000; sent++) {
                snprintf(name, sizeof(name), "%u", sent);
                assert_int_equal(packet_queue_push(&q, (const char *const[]){name, "ok", "/run/x.sock"}, 3),
                                 0);
        }
        assert_int_equal(q.n, 2000);
        assert_int_equal(packet_queue_flush(&q, sv[0]), 0);
        assert_true(q.n > 0 && q.n < 2000); /* the socket filled up */
        while (q.n > 0) {
                ssize_t n;
                while ((n = recv(sv[1], buf, sizeof(buf), 0)) > 0) {
                        char *fields[4];
                        size_t lens[4];
                        assert_int_equal(packet_split(buf, (size_t)n, fields, lens, 4), 3);
                        snprintf(name, sizeof(name), "%u", received++);
                        assert_string_equal(fields[0], name);
                }
                assert_int_equal(packet_queue_flush(&q, sv[0]), 0);
        }
        assert_null(q.first);
        assert_null(q.last);
        close(sv[1]);
        /* A peer gone: the flush says so. */
        assert_int_equal(packet_queue_push(&q, (const char *const[]){"1", "error", "busy"}, 3), 0);
        r = packet_queue_flush(&q, sv[0]);
        assert_true(r == -EPIPE || r == -ECONNRESET);
        assert_int_equal(q.n, 1);
        packet_queue_clear(&q);
        assert_int_equal(q.n, 0);
        assert_null(q.first);
        close(sv[0]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_split_and_join),
            cmocka_unit_test(test_queue_keeps_order_when_the_socket_is_full),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
