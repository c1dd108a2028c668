/* SPDX-License-Identifier: MIT */
/* Measures helios-gateway beside its floor, in one run on one machine:
 *   - a JSON-RPC round trip through gateway and worker (fs:read_file of a 1 KiB file, or worker:info
 *     when the worker has no fs service yet): p50/p99 over sequential requests on one WebSocket, and
 *     requests/s with 64 WebSockets; the same against a bare libwebsockets echo server (lws-echo);
 *   - terminal output MB/s end to end, when the worker has a terminal service;
 *   - the gateway's memory (PSS) per idle WebSocket, fresh and after one round trip;
 *   - big messages: fs:read_file of a 10 MiB file through /ws (with and without compression) beside the
 *     same read from the worker's own socket; gateway + worker memory before and after that load, and
 *     with pages that stop reading; the gateway's CPU for a compressed message that inflates past the
 *     message limit, beside a plain message just under it.
 * The client speaks plain WebSocket without compression, the same way to both servers. Only ratios
 * mean much on shared virtual machines; every figure is printed next to its floor. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "macro.h"

static const char *gateway_path = "build/gateway/helios-gateway";
static const char *baseline_path; /* another helios-gateway to compare with, e.g. the last release */
static const char *worker_path = "build/worker/helios-worker";
static const char *web_root = "build/web/dist";
static const char *echo_path = "build/bench/lws-echo";
static const char *line_echo_worker_path = "build/bench/line-echo-worker";
static unsigned n_requests = 5000;
static unsigned n_connections = 64;
static unsigned n_idle = 1000;
static double seconds = 3.0;
static bool terminal_only;
static bool big_only;

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_noreturn_ static void die(const char *what)
{
        fprintf(stderr, "gateway-bench: %s: %s\n", what, errno ? strerror(errno) : "failed");
        exit(EXIT_FAILURE);
}

/* ---- processes ---- */

typedef struct Child {
        pid_t pid;
        int out; /* its stdout */
} Child;

static Child spawn(char *const argv[], char *const env_home, const char *env_state)
{
        int p[2];
        Child c;

        if (pipe2(p, O_CLOEXEC) < 0)
                die("pipe");
        c.pid = fork();
        if (c.pid < 0)
                die("fork");
        if (c.pid == 0) {
                dup2(p[1], STDOUT_FILENO);
                if (env_home)
                        setenv("HOME", env_home, 1);
                if (env_state)
                        setenv("XDG_STATE_HOME", env_state, 1);
                setenv("HELIOS_LOG_LEVEL", "warning", 1);
                execv(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        c.out = p[0];
        return c;
}

static void read_line(int fd, char *buf, size_t size)
{
        size_t n = 0;
        while (n + 1 < size) {
                ssize_t k = read(fd, buf + n, 1);
                if (k <= 0)
                        die("no line from the child");
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = '\0';
}

static void stop(Child *c)
{
        int status;
        kill(c->pid, SIGTERM);
        waitpid(c->pid, &status, 0);
        close(c->out);
}

/* ---- a small WebSocket client ---- */

typedef struct Ws {
        int fd;
        char *buf;
        size_t len, cap;
        bool deflate; /* permessage-deflate negotiated */
        z_stream inflater;
        char *msg; /* a whole (inflated) message, for ws_recv_message() */
        size_t msg_len, msg_cap;
} Ws;

static int tcp_connect(int port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
        const char *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        die("write");
                }
                c += k;
                n -= (size_t)k;
        }
}

static void fill(Ws *w, size_t want)
{
        while (w->len < want) {
                ssize_t k;
                if (w->cap < want + 65536) {
                        w->cap = (want + 65536) * 2;
                        w->buf = realloc(w->buf, w->cap);
                        if (!w->buf)
                                die("realloc");
                }
                k = read(w->fd, w->buf + w->len, w->cap - w->len);
                if (k <= 0)
                        die("read (connection closed)");
                w->len += (size_t)k;
        }
}

static void consume(Ws *w, size_t n)
{
        memmove(w->buf, w->buf + n, w->len - n);
        w->len -= n;
}

/* Connect and upgrade, offering permessage-deflate the way browsers do when deflate is set; returns -1
 * if the server refused (status in *ret_status). */
static int ws_open_ext(Ws *w, int port, const char *cookie, bool deflate, int *ret_status)
{
        char req[1024];
        char *end;
        int n;

        *w = (Ws){.fd = tcp_connect(port)};
        n = snprintf(
            req, sizeof(req),
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Origin: http://127.0.0.1:%d\r\n%s%s%s%s\r\n",
            port, port, cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "",
            deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
        write_all(w->fd, req, (size_t)n);
        for (;;) {
                fill(w, w->len + 1);
                w->buf[w->len] = '\0';
                end = strstr(w->buf, "\r\n\r\n");
                if (end)
                        break;
        }
        *ret_status = atoi(w->buf + 9);
        *end = '\0';
        w->deflate = deflate && strcasestr(w->buf, "permessage-deflate");
        if (w->deflate && inflateInit2(&w->inflater, -15) != Z_OK)
                die("inflateInit2");
        consume(w, (size_t)(end + 4 - w->buf));
        return *ret_status == 101 ? 0 : -1;
}

static int ws_open(Ws *w, int port, const char *cookie, int *ret_status)
{
        return ws_open_ext(w, port, cookie, false, ret_status);
}

static void msg_append(Ws *w, const char *p, size_t n)
{
        if (w->msg_len + n > w->msg_cap) {
                w->msg_cap = (w->msg_len + n) * 2;
                w->msg = realloc(w->msg, w->msg_cap);
                if (!w->msg)
                        die("realloc");
        }
        memcpy(w->msg + w->msg_len, p, n);
        w->msg_len += n;
}

/* Waits for the next data frame whole in w->buf, skipping pings and pongs; its header length in *ret_h,
 * first byte in *ret_b0; returns its payload length. */
static size_t ws_next_frame(Ws *w, size_t *ret_h, unsigned *ret_b0)
{
        for (;;) {
                size_t n, h = 2;
                fill(w, 2);
                unsigned b0 = (unsigned char)w->buf[0], op = b0 & 0x0f;
                n = (unsigned char)w->buf[1] & 0x7f;
                if (n == 126) {
                        fill(w, 4);
                        n = (size_t)(unsigned char)w->buf[2] << 8 | (unsigned char)w->buf[3];
                        h = 4;
                } else if (n == 127) {
                        fill(w, 10);
                        n = 0;
                        for (int i = 0; i < 8; i++)
                                n = n << 8 | (unsigned char)w->buf[2 + i];
                        h = 10;
                }
                fill(w, h + n);
                if (op == 0x9 || op == 0xA) { /* pings are answered by nobody here: runs are short */
                        consume(w, h + n);
                        continue;
                }
                if (op == 0x8)
                        die("server closed the WebSocket");
                *ret_h = h;
                *ret_b0 = b0;
                return n;
        }
}

/* The next whole text message, fragments joined and inflated as a browser would (in w->msg). */
static size_t ws_recv_message(Ws *w)
{
        bool compressed = false, first = true;
        char *raw = NULL;
        size_t raw_len = 0;

        w->msg_len = 0;
        for (;;) {
                size_t h;
                unsigned b0;
                size_t n = ws_next_frame(w, &h, &b0);
                if (first)
                        compressed = b0 & 0x40;
                first = false;
                raw = realloc(raw, raw_len + n + 4);
                if (!raw)
                        die("realloc");
                memcpy(raw + raw_len, w->buf + h, n);
                raw_len += n;
                consume(w, h + n);
                if (b0 & 0x80)
                        break;
        }
        if (!compressed) {
                msg_append(w, raw, raw_len);
                free(raw);
                return w->msg_len;
        }
        memcpy(raw + raw_len, "\x00\x00\xff\xff", 4);
        w->inflater.next_in = (unsigned char *)raw;
        w->inflater.avail_in = (unsigned)(raw_len + 4);
        do {
                char out[65536];
                w->inflater.next_out = (unsigned char *)out;
                w->inflater.avail_out = sizeof(out);
                int r = inflate(&w->inflater, Z_SYNC_FLUSH);
                if (r != Z_OK && r != Z_BUF_ERROR)
                        die("inflate");
                msg_append(w, out, sizeof(out) - w->inflater.avail_out);
        } while (w->inflater.avail_in > 0 || w->inflater.avail_out == 0);
        free(raw);
        return w->msg_len;
}

/* One masked frame; b0 is its first byte (FIN, RSV1 for a compressed message, opcode). */
static void ws_send_frame(Ws *w, unsigned b0, const char *text, size_t n)
{
        unsigned char head[14];
        size_t h = 0;
        static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
        char *frame = malloc(n + 14);

        if (!frame)
                die("malloc");
        head[h++] = (unsigned char)b0;
        if (n < 126)
                head[h++] = (unsigned char)(0x80 | n);
        else if (n < 65536) {
                head[h++] = 0x80 | 126;
                head[h++] = (unsigned char)(n >> 8);
                head[h++] = (unsigned char)n;
        } else {
                head[h++] = 0x80 | 127;
                for (int i = 7; i >= 0; i--)
                        head[h++] = (unsigned char)(n >> (8 * i));
        }
        memcpy(head + h, mask, 4);
        h += 4;
        memcpy(frame, head, h);
        for (size_t i = 0; i < n; i++)
                frame[h + i] = (char)(text[i] ^ mask[i % 4]);
        write_all(w->fd, frame, h + n);
        free(frame);
}

static void ws_send(Ws *w, const char *text, size_t n)
{
        ws_send_frame(w, 0x81, text, n);
}

/* The next text message (its length; the text is in w->buf until the next call). */
static size_t ws_recv(Ws *w, char **ret)
{
        size_t h;
        unsigned b0;
        size_t n = ws_next_frame(w, &h, &b0);

        memmove(w->buf, w->buf + h, w->len - h);
        w->len -= h;
        /* The text stays at the front of the buffer until the caller drops it. */
        *ret = w->buf;
        return n;
}

static void ws_drop(Ws *w, size_t n)
{
        consume(w, n);
}

static void ws_close(Ws *w)
{
        close(w->fd);
        free(w->buf);
        free(w->msg);
        if (w->deflate)
                inflateEnd(&w->inflater);
}

/* ---- measurements ---- */

static char request_text[1024];

static void round_trip(Ws *w)
{
        char *msg;
        size_t n;

        ws_send(w, request_text, strlen(request_text));
        n = ws_recv(w, &msg);
        ws_drop(w, n);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

typedef struct Latency {
        double p50, p99, mean;
} Latency;

static Latency latency(int port, const char *cookie)
{
        double *t = calloc(n_requests, sizeof(double)), sum = 0;
        Latency l;
        Ws w;
        int status;

        if (ws_open(&w, port, cookie, &status) < 0)
                die("WebSocket refused");
        for (unsigned i = 0; i < 200; i++)
                round_trip(&w);
        for (unsigned i = 0; i < n_requests; i++) {
                double t0 = now();
                round_trip(&w);
                t[i] = (now() - t0) * 1e3;
                sum += t[i];
        }
        qsort(t, n_requests, sizeof(double), cmp_double);
        l = (Latency){t[n_requests / 2], t[n_requests * 99 / 100], sum / n_requests};
        ws_close(&w);
        free(t);
        return l;
}

static int cmp_latency(const void *a, const void *b)
{
        return cmp_double(&((const Latency *)a)->p50, &((const Latency *)b)->p50);
}

/* Rounds interleaved across the targets, so that a noisy neighbour hits them alike; the round with the
 * median p50 is reported for each. */
#define ROUNDS 5
static void latencies(const char *const names[], const int ports[], const char *const cookies[], size_t n,
                      Latency ret[])
{
        Latency all[8][ROUNDS];

        assert(n <= 8);

        for (unsigned r = 0; r < ROUNDS; r++)
                for (size_t i = 0; i < n; i++)
                        all[i][r] = latency(ports[i], cookies[i]);
        for (size_t i = 0; i < n; i++) {
                qsort(all[i], ROUNDS, sizeof(Latency), cmp_latency);
                ret[i] = all[i][ROUNDS / 2];
                printf("  %-22s p50 %7.3f ms   p99 %7.3f ms   mean %7.3f ms\n", names[i], ret[i].p50,
                       ret[i].p99, ret[i].mean);
        }
}

typedef struct Load {
        int port;
        const char *cookie;
        atomic_ulong *count;
        atomic_bool *go, *done;
} Load;

static void *load_thread(void *arg)
{
        Load *l = arg;
        Ws w;
        int status;
        unsigned long n = 0;

        if (ws_open(&w, l->port, l->cookie, &status) < 0)
                die("WebSocket refused");
        while (!atomic_load(l->go))
                usleep(1000);
        while (!atomic_load(l->done)) {
                round_trip(&w);
                n++;
        }
        atomic_fetch_add(l->count, n);
        ws_close(&w);
        return NULL;
}

static double throughput(const char *name, int port, const char *cookie)
{
        pthread_t *th = calloc(n_connections, sizeof(pthread_t));
        Load l;
        atomic_ulong count = 0;
        atomic_bool go = false, done = false;
        double t0, rate;

        l = (Load){port, cookie, &count, &go, &done};
        for (unsigned i = 0; i < n_connections; i++)
                pthread_create(&th[i], NULL, load_thread, &l);
        usleep(300000);
        atomic_store(&go, true);
        t0 = now();
        usleep((useconds_t)(seconds * 1e6));
        atomic_store(&done, true);
        for (unsigned i = 0; i < n_connections; i++)
                pthread_join(th[i], NULL);
        rate = (double)atomic_load(&count) / (now() - t0);
        printf("  %-22s %9.0f requests/s with %u connections\n", name, rate, n_connections);
        free(th);
        return rate;
}

static long pss_kib(pid_t pid)
{
        char path[64], line[256];
        long v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pss: %ld kB", &v) == 1)
                        break;
        fclose(f);
        return v;
}

static void memory(pid_t gateway, int port, const char *cookie)
{
        Ws *w = calloc(n_idle, sizeof(Ws));
        long base, fresh, used;
        int status;

        usleep(200000);
        base = pss_kib(gateway);
        for (unsigned i = 0; i < n_idle; i++)
                if (ws_open(&w[i], port, cookie, &status) < 0)
                        die("WebSocket refused");
        usleep(500000);
        fresh = pss_kib(gateway);
        for (unsigned i = 0; i < n_idle; i++)
                round_trip(&w[i]);
        usleep(500000);
        used = pss_kib(gateway);
        printf("  %u idle WebSockets: %.1f KiB each just opened, %.1f KiB each after one round trip "
               "(gateway PSS %ld -> %ld -> %ld KiB)\n",
               n_idle, (double)(fresh - base) / n_idle, (double)(used - base) / n_idle, base, fresh, used);
        for (unsigned i = 0; i < n_idle; i++)
                ws_close(&w[i]);
        free(w);
}

/* The same command as worker-bench's, so the figures compare: cheap to produce, a fixed byte count. */
#define TERMINAL_CREATE                                                                               \
        "{\"jsonrpc\":\"2.0\",\"id\":\"t\",\"method\":\"terminal:create\",\"params\":{\"cols\":200,"  \
        "\"rows\":50,"                                                                                \
        "\"command\":[\"/bin/sh\",\"-c\",\"yes 'helios terminal benchmark line of output' | head -c " \
        "50000000; "                                                                                  \
        "exit 0\"]}}"

/* Terminal output straight from the worker's socket, no gateway: MB/s of data_out lines. */
static double terminal_direct(const char *socket_path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        Ws w = {.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        size_t bytes = 0;
        double t0;

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                die("worker socket path too long");
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
        if (w.fd < 0 || connect(w.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect to the worker");
        write_all(w.fd, TERMINAL_CREATE "\n", strlen(TERMINAL_CREATE) + 1);
        t0 = now();
        for (;;) {
                char *lf;
                fill(&w, 1);
                while ((lf = memchr(w.buf, '\n', w.len)) == NULL)
                        fill(&w, w.len + 1);
                size_t n = (size_t)(lf - w.buf);
                if (memmem(w.buf, n, "terminal:data_out", 17))
                        bytes += n;
                bool exited = memmem(w.buf, n, "terminal:exit", 13) != NULL;
                bool error = memmem(w.buf, MIN(n, (size_t)200), "\"error\"", 7) != NULL;
                consume(&w, n + 1);
                if (error) {
                        printf("  terminal output: not measured: terminal:create failed\n");
                        ws_close(&w);
                        return 0;
                }
                if (exited || now() - t0 > 60)
                        break;
        }
        ws_close(&w);
        return (double)bytes / 1e6 / (now() - t0);
}

static double terminal(int port, const char *cookie, bool deflate)
{
        static const char create[] = TERMINAL_CREATE;
        Ws w;
        int status;
        char *msg;
        size_t n, bytes = 0;
        double t0;

        if (ws_open_ext(&w, port, cookie, deflate, &status) < 0)
                die("WebSocket refused");
        if (deflate && !w.deflate)
                die("permessage-deflate not negotiated");
        ws_send(&w, create, strlen(create));
        n = ws_recv_message(&w);
        msg = w.msg;
        if (memmem(msg, n, "-32601", 6)) {
                printf("  terminal output: not measured: the worker has no terminal service yet\n");
                ws_close(&w);
                return 0;
        }
        if (memmem(msg, n, "\"error\"", 7)) {
                printf("  terminal output: not measured: terminal:create said %.*s\n",
                       (int)MIN(n, (size_t)200), msg);
                ws_close(&w);
                return 0;
        }
        t0 = now();
        for (;;) {
                n = ws_recv_message(&w);
                msg = w.msg;
                if (memmem(msg, n, "terminal:data_out", 17))
                        bytes += n;
                bool exited = memmem(msg, n, "terminal:exit", 13) != NULL;
                if (exited || now() - t0 > 60)
                        break;
        }
        ws_close(&w);
        return (double)bytes / 1e6 / (now() - t0);
}

/* Through the gateway with and without compression, and straight from the worker, interleaved; the
 * median of three each. */
static void terminals(int port, const char *cookie, const char *run_dir)
{
        double plain[3], deflated[3], direct[3];
        char sock[300];

        snprintf(sock, sizeof(sock), "%s/worker.sock", run_dir);
        for (int i = 0; i < 3; i++) {
                plain[i] = terminal(port, cookie, false);
                if (plain[i] == 0)
                        return;
                deflated[i] = terminal(port, cookie, true);
                direct[i] = terminal_direct(sock);
        }
        qsort(plain, 3, sizeof(double), cmp_double);
        qsort(deflated, 3, sizeof(double), cmp_double);
        qsort(direct, 3, sizeof(double), cmp_double);
        printf("  terminal output, 50 MB of data_out (median of 3):\n"
               "    %7.1f MB/s from the worker's socket\n"
               "    %7.1f MB/s through the gateway (ratio %.2f)\n"
               "    %7.1f MB/s through the gateway with permessage-deflate, as browsers ask (ratio %.2f)\n",
               direct[1], plain[1], plain[1] / direct[1], deflated[1], deflated[1] / direct[1]);
}

/* ---- big messages: a 10 MiB file, memory after load, a compressed message that inflates too far ---- */

#define BIG_FILE_SIZE (10u * 1024u * 1024u)
#define BIG_ROUNDS    7

static char big_request[512];

static int unix_connect(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (strlen(path) >= sizeof(sa.sun_path))
                die("worker socket path too long");
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect to the worker");
        return fd;
}

/* Seconds for one fs:read_file of the big file straight from the worker's socket. */
static double big_direct(const char *socket_path)
{
        Ws w = {.fd = unix_connect(socket_path)};
        char *lf;
        double t0 = now();

        size_t scanned = 0;

        write_all(w.fd, big_request, strlen(big_request));
        write_all(w.fd, "\n", 1);
        fill(&w, 1);
        /* Each byte looked at once, as the gateway's own reader does. */
        while ((lf = memchr(w.buf + scanned, '\n', w.len - scanned)) == NULL) {
                scanned = w.len;
                fill(&w, w.len + 1);
        }
        double t = now() - t0;
        if ((size_t)(lf - w.buf) < BIG_FILE_SIZE)
                die("short fs:read_file answer from the worker");
        ws_close(&w);
        return t;
}

/* The same through the gateway's /ws, whole message received (and inflated, with deflate). */
static double big_ws(int port, const char *cookie, bool deflate)
{
        Ws w;
        int status;
        double t0;

        if (ws_open_ext(&w, port, cookie, deflate, &status) < 0)
                die("WebSocket refused");
        t0 = now();
        ws_send(&w, big_request, strlen(big_request));
        size_t n = ws_recv_message(&w);
        double t = now() - t0;
        if (n < BIG_FILE_SIZE)
                die("short fs:read_file answer through the gateway");
        ws_close(&w);
        return t;
}

static double cpu_seconds(pid_t pid)
{
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                die("read /proc/PID/stat");
        fclose(f);
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                die("parse /proc/PID/stat");
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t worker_of(const char *run)
{
        char path[300];
        int pid = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/worker.sock.pid", run);
        f = fopen(path, "re");
        if (f) {
                if (fscanf(f, "%d", &pid) != 1)
                        pid = 0;
                fclose(f);
        }
        return pid;
}

/* Read until the server ends the connection (after its close frame). */
static void drain_until_closed(Ws *w)
{
        char buf[65536];
        while (read(w->fd, buf, sizeof(buf)) > 0)
                ;
}

/* Gateway CPU for a compressed message that inflates past the limit, beside the CPU for a plain message
 * just under it: the first should cost no more than the second. */
static void inflate_bomb(pid_t gateway, int port, const char *cookie)
{
        const size_t bomb_len = 40u * 1000u * 1000u, plain_len = 15u * 1024u * 1024u;
        char *zeros = calloc(1, bomb_len), *out = malloc(bomb_len / 100 + 65536);
        z_stream z = {0};
        Ws w;
        int status;
        double c0, bomb, plain;

        if (!zeros || !out)
                die("malloc");
        memset(zeros, '0', bomb_len);
        if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                die("deflateInit2");
        z.next_in = (unsigned char *)zeros;
        z.avail_in = (unsigned)bomb_len;
        z.next_out = (unsigned char *)out;
        z.avail_out = (unsigned)(bomb_len / 100 + 65536);
        if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0)
                die("deflate");
        size_t clen = (size_t)((char *)z.next_out - out) - 4; /* without the 00 00 ff ff tail */
        deflateEnd(&z);

        if (ws_open_ext(&w, port, cookie, true, &status) < 0 || !w.deflate)
                die("WebSocket with permessage-deflate refused");
        c0 = cpu_seconds(gateway);
        ws_send_frame(&w, 0xC1, out, clen);
        drain_until_closed(&w);
        bomb = cpu_seconds(gateway) - c0;
        ws_close(&w);

        /* Plain text just under the limit; the worker answers it with a parse error. */
        if (ws_open(&w, port, cookie, &status) < 0)
                die("WebSocket refused");
        c0 = cpu_seconds(gateway);
        ws_send(&w, zeros, plain_len);
        (void)ws_recv_message(&w);
        plain = cpu_seconds(gateway) - c0;
        ws_close(&w);
        printf("  compressed message of %zu bytes inflating to %zu MB (past the 16 MiB limit): gateway CPU "
               "%.0f ms; a plain %zu MiB message: %.0f ms (ratio %.2f)\n",
               clen, bomb_len / 1000000, bomb * 1e3, plain_len >> 20, plain * 1e3,
               plain > 0 ? bomb / plain : 0.0);
        free(zeros);
        free(out);
}

static void big_messages(pid_t gateway, int port, const char *cookie, const char *run, const char *file)
{
        double direct[BIG_ROUNDS], plain[BIG_ROUNDS], deflated[BIG_ROUNDS];
        char sock[300];
        pid_t worker;
        long idle, loaded, after, pinned, base, idle_g, after_g;

        snprintf(sock, sizeof(sock), "%s/worker.sock", run);
        snprintf(big_request, sizeof(big_request),
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%s\"}}",
                 file);
        /* One request first, so the worker is up (and counted in the idle figure). */
        {
                Ws w;
                int status;
                if (ws_open(&w, port, cookie, &status) < 0)
                        die("WebSocket refused");
                round_trip(&w);
                ws_close(&w);
        }
        worker = worker_of(run);
        if (worker <= 0)
                die("no worker pid");
        usleep(300000);
        idle_g = pss_kib(gateway);
        idle = idle_g + pss_kib(worker);
        for (int i = 0; i < BIG_ROUNDS; i++) {
                direct[i] = big_direct(sock);
                plain[i] = big_ws(port, cookie, false);
                deflated[i] = big_ws(port, cookie, true);
        }
        loaded = pss_kib(gateway) + pss_kib(worker);
        qsort(direct, BIG_ROUNDS, sizeof(double), cmp_double);
        qsort(plain, BIG_ROUNDS, sizeof(double), cmp_double);
        qsort(deflated, BIG_ROUNDS, sizeof(double), cmp_double);
        double mb = BIG_FILE_SIZE / 1e6;
        printf("  fs:read_file of 10 MiB (median of %d, interleaved):\n"
               "    %7.1f MB/s from the worker's socket\n"
               "    %7.1f MB/s through the gateway (ratio %.2f, goal >= 0.8)\n"
               "    %7.1f MB/s through the gateway with permessage-deflate, as browsers ask (ratio %.2f)\n",
               BIG_ROUNDS, mb / direct[BIG_ROUNDS / 2], mb / plain[BIG_ROUNDS / 2],
               direct[BIG_ROUNDS / 2] / plain[BIG_ROUNDS / 2], mb / deflated[BIG_ROUNDS / 2],
               direct[BIG_ROUNDS / 2] / deflated[BIG_ROUNDS / 2]);

        /* Eight pages ask for the file and read nothing. */
        Ws stalled[8];
        base = pss_kib(gateway);
        for (int i = 0; i < 8; i++) {
                int status;
                if (ws_open(&stalled[i], port, cookie, &status) < 0)
                        die("WebSocket refused");
                ws_send(&stalled[i], big_request, strlen(big_request));
        }
        sleep(2);
        pinned = pss_kib(gateway) - base;
        for (int i = 0; i < 8; i++)
                ws_close(&stalled[i]);
        sleep(2);
        after_g = pss_kib(gateway);
        after = after_g + pss_kib(worker);
        printf(
            "  8 pages that asked for 10 MiB and read nothing: gateway PSS +%ld KiB while they wait\n"
            "  gateway + worker PSS: idle %ld KiB, right after the reads %ld KiB, after the load phase %ld "
            "KiB (ratio to idle %.2f, goal <= 1.5); the gateway alone %ld -> %ld KiB\n",
            pinned, idle, loaded, after, (double)after / (double)idle, idle_g, after_g);
        inflate_bomb(gateway, port, cookie);
}

typedef struct Gateway {
        Child child;
        int port;
        char cookie[128];
        char run[256];
} Gateway;

/* A gateway in embedded mode for worker, its runtime directory dir/run_name, its worker allowed as many
 * connections as the runs open; logged in. */
static Gateway start_gateway_binary(const char *binary, const char *worker, const char *dir,
                                    const char *run_name, char *home)
{
        char line[512], worker_args[64], req[512], resp[2048], *c;
        Gateway g = {0};
        int fd, n;
        ssize_t k;

        snprintf(g.run, sizeof(g.run), "%s/%s", dir, run_name);
        snprintf(worker_args, sizeof(worker_args), "--worker-args=--max-connections=%u",
                 n_idle + n_connections + 64);
        char *argv[] = {(char *)binary,
                        "--config",
                        "/dev/null",
                        "--listen",
                        "127.0.0.1:0",
                        "--web-root",
                        (char *)web_root,
                        "--worker",
                        (char *)worker,
                        "--runtime-dir",
                        g.run,
                        worker_args,
                        "--max-unauthenticated",
                        "4096",
                        "--max-connections",
                        "8192",
                        NULL};
        /* Each worker keeps its own state: two of them refuse to share it. */
        char state[300];
        snprintf(state, sizeof(state), "%s/state-%s", dir, run_name);
        g.child = spawn(argv, home, state);
        read_line(g.child.out, line, sizeof(line));
        char *url = strstr(line, "http://127.0.0.1:"), *token = strstr(line, "#token=");
        if (!url || !token)
                die("no URL from the gateway");
        g.port = atoi(url + 17);
        token += 7;

        fd = tcp_connect(g.port);
        n = snprintf(
            req, sizeof(req),
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n",
            token);
        write_all(fd, req, (size_t)n);
        k = read(fd, resp, sizeof(resp) - 1);
        resp[k > 0 ? k : 0] = '\0';
        close(fd);
        c = strstr(resp, "set-cookie: ");
        if (!c)
                die("login failed");
        c += 12;
        snprintf(g.cookie, sizeof(g.cookie), "%.*s", (int)strcspn(c, ";\r"), c);
        return g;
}

static Gateway start_gateway(const char *worker, const char *dir, const char *run_name, char *home)
{
        return start_gateway_binary(gateway_path, worker, dir, run_name, home);
}

/* The worker outlives the gateway by design: end it by the pid its activator recorded. */
static void stop_gateway(Gateway *g)
{
        char path[300];
        int worker = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/worker.sock.pid", g->run);
        f = fopen(path, "re");
        if (f) {
                if (fscanf(f, "%d", &worker) != 1)
                        worker = 0;
                fclose(f);
        }
        stop(&g->child);
        if (worker > 0)
                kill(worker, SIGTERM);
}

static void help(void)
{
        printf(
            "Usage: gateway-bench [--gateway PATH] [--worker PATH] [--web-root DIR] [--echo PATH]\n"
            "                     [--line-echo-worker PATH] [--requests N] [--connections N] [--seconds S]\n"
            "                     [--idle N] [--terminal-only] [--big-only] [--baseline-gateway PATH]\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"help", no_argument, NULL, 'h'},
            {"gateway", required_argument, NULL, 'g'},
            {"worker", required_argument, NULL, 'w'},
            {"web-root", required_argument, NULL, 'r'},
            {"echo", required_argument, NULL, 'e'},
            {"requests", required_argument, NULL, 'n'},
            {"connections", required_argument, NULL, 'c'},
            {"seconds", required_argument, NULL, 's'},
            {"idle", required_argument, NULL, 'i'},
            {"line-echo-worker", required_argument, NULL, 'l'},
            {"terminal-only", no_argument, NULL, 't'},
            {"baseline-gateway", required_argument, NULL, 'b'},
            {"big-only", no_argument, NULL, 'B'},
            {},
        };
        char dir[] = "/tmp/helios-gateway-bench-XXXXXX", home[128], file[160], line[512], cookie[128];
        struct rlimit rl;
        int opt, gw_port, echo_port;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'g':
                        gateway_path = optarg;
                        break;
                case 'w':
                        worker_path = optarg;
                        break;
                case 'r':
                        web_root = optarg;
                        break;
                case 'e':
                        echo_path = optarg;
                        break;
                case 'n':
                        n_requests = (unsigned)atoi(optarg);
                        break;
                case 'c':
                        n_connections = (unsigned)atoi(optarg);
                        break;
                case 's':
                        seconds = atof(optarg);
                        break;
                case 'i':
                        n_idle = (unsigned)atoi(optarg);
                        break;
                case 'l':
                        line_echo_worker_path = optarg;
                        break;
                case 't':
                        terminal_only = true;
                        break;
                case 'b':
                        baseline_path = optarg;
                        break;
                case 'B':
                        big_only = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 1;
                }
        }
        signal(SIGPIPE, SIG_IGN);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (geteuid() == 0) {
                /* helios-gateway refuses to run as root; the whole bench runs as nobody instead. */
                struct passwd *pw = getpwnam("nobody");
                if (!pw || setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
                        die("cannot drop root for nobody");
        }
        if (!mkdtemp(dir))
                die("mkdtemp");
        snprintf(home, sizeof(home), "%s/home", dir);
        snprintf(file, sizeof(file), "%s/file-1k.txt", home);
        mkdir(home, 0700);
        FILE *f = fopen(file, "we");
        for (int i = 0; i < 1024; i++)
                fputc('a' + i % 26, f);
        fclose(f);
        char big_file[160];
        snprintf(big_file, sizeof(big_file), "%s/file-10m.txt", home);
        f = fopen(big_file, "we");
        for (unsigned i = 0; i < BIG_FILE_SIZE; i++)
                fputc(i % 64 == 63 ? '\n' : 'a' + (int)((i * 7u + i / 64u) % 26u), f);
        fclose(f);

        Gateway gw = start_gateway(worker_path, dir, "run", home),
                gw_echo = start_gateway(line_echo_worker_path, dir, "run-echo", home);
        gw_port = gw.port;
        Gateway base = {0}, base_echo = {0};
        if (baseline_path) {
                base = start_gateway_binary(baseline_path, worker_path, dir, "run-base", home);
                base_echo =
                    start_gateway_binary(baseline_path, line_echo_worker_path, dir, "run-base-echo", home);
        }

        char *echo_argv[] = {(char *)echo_path, NULL};
        Child echo = spawn(echo_argv, NULL, NULL);
        read_line(echo.out, line, sizeof(line));
        echo_port = atoi(line);
        memcpy(cookie, gw.cookie, sizeof(cookie));

        /* fs:read_file if the worker has it. */
        snprintf(request_text, sizeof(request_text),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%s\"}}",
                 file);
        {
                Ws w;
                int status;
                char *msg;
                size_t n;
                if (ws_open(&w, gw_port, cookie, &status) < 0)
                        die("WebSocket refused");
                ws_send(&w, request_text, strlen(request_text));
                n = ws_recv(&w, &msg);
                bool no_fs = memmem(msg, n, "-32601", 6) != NULL;
                ws_close(&w);
                if (no_fs)
                        snprintf(request_text, sizeof(request_text),
                                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"worker:info\"}");
        }
        printf(
            "gateway-bench: %s through helios-gateway + helios-worker, beside a bare libwebsockets echo\n",
            strstr(request_text, "fs:read_file") ? "fs:read_file of 1 KiB"
                                                 : "worker:info (no fs service yet)");

        if (baseline_path)
                printf("Baseline: %s\n", baseline_path);
        if (big_only) {
                printf("Big messages (gateway pid %d):\n", (int)gw.child.pid);
                fflush(stdout);
                big_messages(gw.child.pid, gw_port, cookie, gw.run, big_file);
                if (baseline_path) {
                        printf("Big messages, baseline gateway:\n");
                        big_messages(base.child.pid, base.port, base.cookie, base.run, big_file);
                }
                goto done;
        }
        if (terminal_only) {
                printf("Terminal (gateway pid %d):\n", (int)gw.child.pid);
                fflush(stdout);
                terminals(gw_port, cookie, gw.run);
                if (baseline_path) {
                        printf("Terminal, baseline gateway:\n");
                        terminals(base.port, base.cookie, base.run);
                }
                goto done;
        }

        const char *names[] = {"gateway + worker", "gateway + line echo", "bare lws echo (floor)",
                               "baseline + worker", "baseline + line echo"};
        int ports[] = {gw_port, gw_echo.port, echo_port, base.port, base_echo.port};
        const char *cookies[] = {cookie, gw_echo.cookie, NULL, base.cookie, base_echo.cookie};
        size_t n_targets = baseline_path ? 5 : 3;
        Latency lat[5];
        printf("Round trip, one connection, %u requests, median of %d interleaved rounds:\n", n_requests,
               ROUNDS);
        latencies(names, ports, cookies, n_targets, lat);
        printf("  p50 ratio to the floor: gateway + worker %.2f, gateway + line echo %.2f\n",
               lat[0].p50 / lat[2].p50, lat[1].p50 / lat[2].p50);
        if (baseline_path)
                printf("  p50 ratio to the floor, baseline: + worker %.2f, + line echo %.2f\n",
                       lat[3].p50 / lat[2].p50, lat[4].p50 / lat[2].p50);

        printf("Throughput, %.0f s each:\n", seconds);
        double r_gw = throughput("gateway + worker", gw_port, cookie);
        double r_line = throughput("gateway + line echo", gw_echo.port, gw_echo.cookie);
        double r_echo = throughput("bare lws echo (floor)", echo_port, NULL);
        printf("  ratio to the floor: gateway + worker %.2f, gateway + line echo %.2f\n", r_gw / r_echo,
               r_line / r_echo);
        if (baseline_path) {
                double b_gw = throughput("baseline + worker", base.port, base.cookie);
                double b_line = throughput("baseline + line echo", base_echo.port, base_echo.cookie);
                printf("  ratio to the floor, baseline: + worker %.2f, + line echo %.2f\n", b_gw / r_echo,
                       b_line / r_echo);
        }

        printf("Terminal:\n");
        terminals(gw_port, cookie, gw.run);
        if (baseline_path) {
                printf("Terminal, baseline gateway:\n");
                terminals(base.port, base.cookie, base.run);
        }
        printf("Memory:\n");
        memory(gw.child.pid, gw_port, cookie);
        printf("Big messages:\n");
        big_messages(gw.child.pid, gw_port, cookie, gw.run, big_file);

done:
        stop(&echo);
        stop_gateway(&gw);
        stop_gateway(&gw_echo);
        if (baseline_path) {
                stop_gateway(&base);
                stop_gateway(&base_echo);
        }
        {
                char cmd[256];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                (void)!system(cmd);
        }
        return 0;
}
