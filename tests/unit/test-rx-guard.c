/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rx-guard.h"

typedef struct Failure {
        int calls;
        int code;
        char reason[64];
} Failure;

static void on_fail(void *userdata, int close_code, const char *reason)
{
        Failure *f = userdata;

        f->calls++;
        f->code = close_code;
        snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

/* A client frame: masked unless mask is false, with the length field as short as it goes. */
static size_t frame(unsigned char *out, unsigned b0, const char *payload, size_t n, bool mask)
{
        static const unsigned char key[4] = {0x11, 0x22, 0x33, 0x44};
        size_t h = 0;

        out[h++] = (unsigned char)b0;
        if (n < 126)
                out[h++] = (unsigned char)((mask ? 0x80 : 0) | n);
        else {
                out[h++] = (unsigned char)((mask ? 0x80 : 0) | 126);
                out[h++] = (unsigned char)(n >> 8);
                out[h++] = (unsigned char)n;
        }
        if (mask) {
                memcpy(out + h, key, 4);
                h += 4;
        }
        for (size_t i = 0; i < n; i++)
                out[h + i] = (unsigned char)(payload[i] ^ (mask ? key[i % 4] : 0));
        return h + n;
}

static RxGuard *ws_guard(bool deflate, Failure *f)
{
        RxGuard *g;

        assert_int_equal(rx_guard_new(-1, false, 8192, &g), 0);
        assert_int_equal(rx_guard_websocket(g, deflate, on_fail, f), 0);
        return g;
}

/* Feed data in pieces of step bytes, as reads; return everything delivered. */
static size_t feed(RxGuard *g, const unsigned char *data, size_t len, size_t step, unsigned char *out,
                   bool *ret_failed)
{
        char buf[4096];
        size_t total = 0;

        *ret_failed = false;
        for (size_t off = 0; off < len && !*ret_failed; off += step) {
                size_t n = len - off < step ? len - off : step;
                memcpy(buf, data + off, n);
                size_t k = rx_guard_ws_filter(g, buf, n, sizeof(buf), ret_failed);
                memcpy(out + total, buf, k);
                total += k;
        }
        return total;
}

static void test_good_frames_pass_whole_in_any_pieces(void **state)
{
        unsigned char data[2048], out[2048];
        size_t len = 0;
        char big[300];

        memset(big, 'b', sizeof(big));
        len += frame(data + len, 0x81, "hello", 5, true);
        len += frame(data + len, 0x01, "frag", 4, true);        /* text, not final */
        len += frame(data + len, 0x89, "ping", 4, true);        /* a ping between fragments */
        len += frame(data + len, 0x00, big, sizeof(big), true); /* continuation, 16-bit length */
        len += frame(data + len, 0x80, "end", 3, true);         /* final continuation */
        len += frame(data + len, 0x88, "\x03\xe8", 2, true);    /* close */

        for (size_t step = 1; step <= len; step = step < 8 ? step + 1 : step * 3) {
                Failure f = {};
                RxGuard *g = ws_guard(false, &f);
                bool failed;
                size_t n = feed(g, data, len, step, out, &failed);

                assert_false(failed);
                assert_int_equal(f.calls, 0);
                assert_int_equal(n, len);
                assert_memory_equal(out, data, len);
                rx_guard_free(g);
        }
}

typedef struct BadCase {
        const char *name;
        unsigned b0;
        size_t len; /* payload length */
        bool mask;
        bool deflate;
        unsigned len_code; /* nonzero: this length code in place of the real one, with extension */
} BadCase;

static void test_bad_frames_stop_before_the_frame(void **state)
{
        static const BadCase cases[] = {
            {"reserved opcode", 0x83, 3, true, false, 0},
            {"reserved opcode", 0x8b, 3, true, false, 0},
            {"reserved bits set", 0xc1, 3, true, false, 0}, /* RSV1 without deflate */
            {"reserved bits set", 0xa1, 3, true, true, 0},  /* RSV2 */
            {"reserved bits set", 0x91, 3, true, true, 0},  /* RSV3 */
            {"reserved bits set", 0xc9, 3, true, true, 0},  /* RSV1 on a control frame */
            {"fragmented control frame", 0x09, 3, true, false, 0},
            {"continuation without a message", 0x80, 3, true, false, 0},
            {"unmasked frame", 0x81, 3, false, false, 0},
            {"control frame too long", 0x89, 0, true, false, 126},
            {"frame length out of range", 0x81, 0, true, false, 127},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const BadCase *c = &cases[i];
                unsigned char data[256], out[256];
                size_t good = frame(data, 0x81, "ok", 2, true), len = good;
                Failure f = {};
                RxGuard *g = ws_guard(c->deflate, &f);
                bool failed;

                if (c->len_code) {
                        data[len++] = (unsigned char)c->b0;
                        data[len++] = (unsigned char)(0x80 | c->len_code);
                        if (c->len_code == 126) {
                                data[len++] = 0;
                                data[len++] = 5;
                        } else {
                                data[len++] = 0x80; /* the top bit of a 64-bit length */
                                memset(data + len, 0, 7);
                                len += 7;
                        }
                        memset(data + len, 0, 4);
                        len += 4;
                } else
                        len += frame(data + len, c->b0, "bad", c->len, c->mask);
                /* And a good frame after it, which must not get through either. */
                len += frame(data + len, 0x81, "after", 5, true);

                size_t n = feed(g, data, len, len, out, &failed);
                assert_true(failed);
                assert_int_equal(n, good);
                assert_int_equal(f.calls, 1);
                assert_int_equal(f.code, 1002);
                assert_string_equal(f.reason, c->name);
                /* Nothing more, ever. */
                n = feed(g, data, good, good, out, &failed);
                assert_int_equal(n, 0);
                assert_true(failed);
                assert_int_equal(f.calls, 1);
                rx_guard_free(g);
        }
}

static void test_deflate_allows_rsv1_on_a_first_frame_only(void **state)
{
        unsigned char data[256], out[256];
        Failure f = {};
        RxGuard *g = ws_guard(true, &f);
        bool failed;
        size_t len = 0;

        len += frame(data + len, 0x41, "compressed", 10, true); /* RSV1, text, not final */
        len += frame(data + len, 0x80, "rest", 4, true);
        assert_int_equal(feed(g, data, len, len, out, &failed), len);
        assert_false(failed);
        len = frame(data, 0x01, "x", 1, true);
        len += frame(data + len, 0xc0, "y", 1, true); /* RSV1 on a continuation */
        assert_int_equal(feed(g, data, len, len, out, &failed), frame(out, 0x01, "x", 1, true));
        assert_true(failed);
        assert_string_equal(f.reason, "reserved bits set");
        rx_guard_free(g);
}

static void test_new_message_inside_a_fragmented_one(void **state)
{
        unsigned char data[256], out[256];
        Failure f = {};
        RxGuard *g = ws_guard(false, &f);
        bool failed;
        size_t len = frame(data, 0x01, "one", 3, true), first = len;

        len += frame(data + len, 0x81, "two", 3, true);
        assert_int_equal(feed(g, data, len, 1, out, &failed), first);
        assert_true(failed);
        assert_string_equal(f.reason, "message inside a fragmented message");
        rx_guard_free(g);
}

static void test_bytes_after_the_upgrade_request_fail(void **state)
{
        static const char req[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
        Failure f = {};
        RxGuard *g;

        /* The request alone: fine, also with an earlier request on the connection. */
        assert_int_equal(rx_guard_new(-1, false, 8192, &g), 0);
        rx_guard_http_feed(g, "GET / HTTP/1.1\n\n", 16);
        rx_guard_http_request(g);
        rx_guard_http_feed(g, req, strlen(req));
        rx_guard_http_request(g);
        assert_int_equal(rx_guard_websocket(g, false, on_fail, &f), 0);
        rx_guard_free(g);

        /* Anything behind it was read as frames before the answer. */
        assert_int_equal(rx_guard_new(-1, false, 8192, &g), 0);
        rx_guard_http_feed(g, req, strlen(req));
        rx_guard_http_feed(g, "\x81\x80", 2);
        rx_guard_http_request(g);
        assert_int_equal(rx_guard_websocket(g, false, on_fail, &f), -EPROTO);
        rx_guard_free(g);

        /* Even a whole second "request" of frame bytes. */
        assert_int_equal(rx_guard_new(-1, false, 8192, &g), 0);
        rx_guard_http_feed(g, req, strlen(req));
        rx_guard_http_feed(g, "x\r\n\r\n", 5);
        rx_guard_http_request(g);
        assert_int_equal(rx_guard_websocket(g, false, on_fail, &f), -EPROTO);
        rx_guard_free(g);
}

/* The library's own read, recv(), goes through the guard for a guarded descriptor. */
static void test_recv_on_a_guarded_socket(void **state)
{
        unsigned char data[256];
        char buf[4096];
        Failure f = {};
        RxGuard *g;
        int sv[2];
        size_t len;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(rx_guard_new(sv[0], false, 8192, &g), 0);
        assert_int_equal(rx_guard_websocket(g, false, on_fail, &f), 0);

        /* Half a header: held back, and the read says "nothing yet". */
        len = frame(data, 0x81, "hi", 2, true);
        assert_int_equal(write(sv[1], data, 3), 3);
        errno = 0;
        assert_int_equal(recv(sv[0], buf, sizeof(buf), 0), -1);
        assert_int_equal(errno, EAGAIN);
        assert_int_equal(write(sv[1], data + 3, len - 3), (ssize_t)(len - 3));
        assert_int_equal(recv(sv[0], buf, sizeof(buf), 0), (ssize_t)len);
        assert_memory_equal(buf, data, len);

        /* An unmasked frame is never delivered. */
        len = frame(data, 0x81, "bad", 3, false);
        assert_int_equal(write(sv[1], data, len), (ssize_t)len);
        assert_int_equal(recv(sv[0], buf, sizeof(buf), 0), -1);
        assert_int_equal(f.calls, 1);
        assert_string_equal(f.reason, "unmasked frame");

        /* A socket without a guard reads as ever. */
        rx_guard_free(g);
        assert_int_equal(write(sv[1], "plain", 5), 5);
        assert_int_equal(recv(sv[0], buf, sizeof(buf), 0), 5);
        close(sv[0]);
        close(sv[1]);
}

/* Reads of a few bytes (under TLS the library asks for what SSL_pending() says) are checked the same. */
static void test_small_reads(void **state)
{
        unsigned char data[256], got[256];
        char big[100];
        Failure f = {};
        RxGuard *g;
        size_t len, total = 0;
        int sv[2];

        memset(big, 'x', sizeof(big));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(rx_guard_new(sv[0], false, 8192, &g), 0);
        assert_int_equal(rx_guard_websocket(g, false, on_fail, &f), 0);
        len = frame(data, 0x81, big, sizeof(big), true);
        size_t good = len;
        len += frame(data + len, 0x81, "no", 2, false);
        assert_int_equal(write(sv[1], data, len), (ssize_t)len);
        /* "Nothing yet" while a header is incomplete; the socket stays readable meanwhile. */
        for (int i = 0; i < 200; i++) {
                char buf[5];
                ssize_t n = recv(sv[0], buf, sizeof(buf), 0);
                if (n < 0) {
                        assert_int_equal(errno, EAGAIN);
                        continue;
                }
                assert_true(total + (size_t)n <= good);
                memcpy(got + total, buf, (size_t)n);
                total += (size_t)n;
        }
        assert_int_equal(total, good);
        assert_memory_equal(got, data, good);
        assert_int_equal(f.calls, 1);
        assert_string_equal(f.reason, "unmasked frame");
        rx_guard_free(g);
        close(sv[0]);
        close(sv[1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good_frames_pass_whole_in_any_pieces),
            cmocka_unit_test(test_bad_frames_stop_before_the_frame),
            cmocka_unit_test(test_deflate_allows_rsv1_on_a_first_frame_only),
            cmocka_unit_test(test_new_message_inside_a_fragmented_one),
            cmocka_unit_test(test_bytes_after_the_upgrade_request_fail),
            cmocka_unit_test(test_recv_on_a_guarded_socket),
            cmocka_unit_test(test_small_reads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
