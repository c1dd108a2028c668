/* SPDX-License-Identifier: MIT */
/* Measures helios-worker beside its floors, in one run on one machine:
 *   - fs:read_file of a 1 KiB file: round trip p50/p99 over sequential requests, and requests/s with
 *     16 connections, beside a bare libuv line-echo server on the same kind of Unix socket;
 *   - MB/s reading a 10 MiB file with fs:read_file;
 *   - terminal output MB/s through the worker beside the raw PTY speed of the same command;
 *   - PSS of an idle worker;
 *   - with --fs and --fs-manifest: fs:read_file 1 KiB round trip and a 10 MiB read with the file
 *     system in the worker's process and in helios-fs (a second worker given the manifest that
 *     replaces its fs service), side by side, medians.
 * Only ratios mean much on shared virtual machines; every figure is printed next to its floor. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "macro.h"

static const char *worker_path = "build/worker/helios-worker";
static unsigned n_requests = 10000;
static unsigned n_connections = 16;
static double seconds = 3.0;
static uint64_t terminal_bytes = 100ULL * 1000 * 1000;
static const char *fs_path = NULL;     /* helios-fs */
static const char *fs_manifest = NULL; /* services/fs/fs.json.in */

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_noreturn_ static void die(const char *what)
{
        fprintf(stderr, "worker-bench: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

/* ---- the floor: a bare line-echo server on libuv, as plain as it gets ---- */

typedef struct EchoConn {
        uv_pipe_t pipe;
        char buf[65536];
} EchoConn;

static void echo_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        EchoConn *c = (EchoConn *)h;
        *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void echo_closed(uv_handle_t *h)
{
        free(h);
}

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        if (n < 0) {
                uv_close((uv_handle_t *)s, echo_closed);
                return;
        }
        if (n == 0)
                return;
        /* Clients send one line and wait for it: writing the bytes back as read is a line echo. */
        uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
        if (uv_try_write(s, &out, 1) != n)
                uv_close((uv_handle_t *)s, echo_closed);
}

static void echo_connection(uv_stream_t *server, int status)
{
        EchoConn *c = calloc(1, sizeof(EchoConn));
        if (!c)
                return;
        uv_pipe_init(server->loop, &c->pipe, 0);
        if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
                uv_close((uv_handle_t *)&c->pipe, echo_closed);
                return;
        }
        uv_read_start((uv_stream_t *)&c->pipe, echo_alloc, echo_read);
}

_noreturn_ static void echo_server(const char *path)
{
        uv_loop_t *loop = uv_default_loop();
        uv_pipe_t server;

        prctl(PR_SET_PDEATHSIG, SIGTERM);
        uv_pipe_init(loop, &server, 0);
        if (uv_pipe_bind(&server, path) < 0 || uv_listen((uv_stream_t *)&server, 128, echo_connection) < 0)
                _exit(1);
        uv_run(loop, UV_RUN_DEFAULT);
        _exit(0);
}

/* ---- a blocking JSON-RPC client ---- */

typedef struct Client {
        int fd;
        Buf in;
        size_t start; /* start of unread data in in */
} Client;

static int connect_unix(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        for (int i = 0; i < 500; i++) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        die("socket");
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return fd;
                close(fd);
                usleep(10000);
        }
        die(path);
}

static void client_open(Client *c, const char *path)
{
        *c = (Client){.fd = connect_unix(path)};
}

static void client_close(Client *c)
{
        close(c->fd);
        buf_done(&c->in);
}

static void send_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        die("write");
                }
                p += w;
                n -= (size_t)w;
        }
}

/* The next line (without LF, NUL-terminated), valid until the next call. */
static char *client_line(Client *c, size_t *ret_len)
{
        for (;;) {
                char *lf =
                    c->in.len > c->start ? memchr(c->in.data + c->start, '\n', c->in.len - c->start) : NULL;
                if (lf) {
                        char *line = c->in.data + c->start;
                        *lf = '\0';
                        *ret_len = (size_t)(lf - line);
                        c->start = (size_t)(lf - c->in.data) + 1;
                        return line;
                }
                if (c->start > 0) {
                        memmove(c->in.data, c->in.data + c->start, c->in.len - c->start);
                        c->in.len -= c->start;
                        c->start = 0;
                }
                if (buf_reserve(&c->in, 1 << 20) < 0)
                        die("memory");
                ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
                if (n == 0) {
                        errno = ECONNRESET;
                        die("connection closed");
                }
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        die("read");
                }
                c->in.len += (size_t)n;
        }
}

/* Send one line and wait for one line back. */
static size_t client_roundtrip(Client *c, const char *msg, size_t len)
{
        size_t n;
        send_all(c->fd, msg, len);
        (void)client_line(c, &n);
        return n;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

typedef struct Latency {
        double p50, p99;
        size_t reply_len;
} Latency;

static Latency measure_latency(const char *sock, const char *msg)
{
        double *t = calloc(n_requests, sizeof(double));
        size_t len = strlen(msg);
        Latency l = {};
        Client c;

        if (!t)
                die("memory");
        client_open(&c, sock);
        for (unsigned i = 0; i < 200; i++) /* warm up */
                l.reply_len = client_roundtrip(&c, msg, len);
        for (unsigned i = 0; i < n_requests; i++) {
                double a = now();
                client_roundtrip(&c, msg, len);
                t[i] = now() - a;
        }
        client_close(&c);
        qsort(t, n_requests, sizeof(double), cmp_double);
        l.p50 = t[n_requests / 2] * 1e6;
        l.p99 = t[(size_t)(n_requests * 0.99)] * 1e6;
        free(t);
        return l;
}

/* The one of three rounds with the median p50. */
static Latency median_latency(const Latency r[3])
{
        int lo = 0, hi = 0;

        for (int i = 1; i < 3; i++) {
                if (r[i].p50 < r[lo].p50)
                        lo = i;
                if (r[i].p50 > r[hi].p50)
                        hi = i;
        }
        return r[lo == hi ? 0 : 3 - lo - hi]; /* indices sum to 3 */
}

typedef struct LoadArgs {
        const char *sock;
        const char *msg;
        double until;
        uint64_t done;
} LoadArgs;

static void *load_thread(void *p)
{
        LoadArgs *a = p;
        size_t len = strlen(a->msg);
        Client c;

        client_open(&c, a->sock);
        while (now() < a->until) {
                client_roundtrip(&c, a->msg, len);
                a->done++;
        }
        client_close(&c);
        return NULL;
}

static double measure_throughput(const char *sock, const char *msg)
{
        pthread_t *th = calloc(n_connections, sizeof(pthread_t));
        LoadArgs *args = calloc(n_connections, sizeof(LoadArgs));
        double start = now(), until = start + seconds;
        uint64_t total = 0;

        if (!th || !args)
                die("memory");
        for (unsigned i = 0; i < n_connections; i++) {
                args[i] = (LoadArgs){sock, msg, until, 0};
                if (pthread_create(&th[i], NULL, load_thread, &args[i]) != 0)
                        die("pthread_create");
        }
        for (unsigned i = 0; i < n_connections; i++) {
                pthread_join(th[i], NULL);
                total += args[i].done;
        }
        free(th);
        free(args);
        return (double)total / (now() - start);
}

static void write_file(const char *path, size_t size)
{
        _cleanup_free_ char *data = malloc(size);
        int fd;

        if (!data)
                die("memory");
        for (size_t i = 0; i < size; i++)
                data[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                die(path);
        send_all(fd, data, size);
        close(fd);
}

/* The median time of five fs:read_file of the file, in seconds. */
static double measure_big_read_time(const char *sock, const char *path, size_t size)
{
        char msg[512];
        double best[5];
        Client c;

        snprintf(msg, sizeof(msg),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%s\"}}\n",
                 path);
        client_open(&c, sock);
        for (int i = 0; i < 5; i++) {
                double a = now();
                size_t n = client_roundtrip(&c, msg, strlen(msg));
                best[i] = now() - a;
                if (n < size) {
                        fprintf(stderr, "worker-bench: short fs:read_file answer (%zu bytes)\n", n);
                        exit(EXIT_FAILURE);
                }
        }
        client_close(&c);
        qsort(best, 5, sizeof(double), cmp_double);
        return best[2];
}

/* The time of one fs:read_file of the file on a new connection, in seconds. */
static double measure_big_read_once(const char *sock, const char *path, size_t size)
{
        char msg[512];
        double a, t;
        size_t n;
        Client c;

        snprintf(msg, sizeof(msg),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%s\"}}\n",
                 path);
        client_open(&c, sock);
        a = now();
        n = client_roundtrip(&c, msg, strlen(msg));
        t = now() - a;
        client_close(&c);
        if (n < size) {
                fprintf(stderr, "worker-bench: short fs:read_file answer (%zu bytes)\n", n);
                exit(EXIT_FAILURE);
        }
        return t;
}

static double measure_big_read(const char *sock, const char *path, size_t size)
{
        return (double)size / measure_big_read_time(sock, path, size) / 1e6;
}

/* The command both terminal measurements run: fast output with a fixed byte count. */
static void terminal_command(char *out, size_t n)
{
        snprintf(out, n, "yes 'helios terminal benchmark line of output' | head -c %llu",
                 (unsigned long long)terminal_bytes);
}

static double measure_raw_pty(uint64_t *ret_bytes)
{
        char cmd[256], buf[65536];
        struct winsize ws = {.ws_row = 50, .ws_col = 200};
        uint64_t total = 0;
        double start;
        int master;
        pid_t pid;

        terminal_command(cmd, sizeof(cmd));
        start = now();
        pid = forkpty(&master, NULL, NULL, &ws);
        if (pid < 0)
                die("forkpty");
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
                _exit(127);
        }
        for (;;) {
                ssize_t n = read(master, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* EIO once the child side is closed */
                total += (uint64_t)n;
        }
        double t = now() - start;
        close(master);
        waitpid(pid, NULL, 0);
        *ret_bytes = total;
        return (double)total / t / 1e6;
}

/* Bytes a JSON string body decodes to, counting each escape as what it stands for. */
static uint64_t json_string_bytes(const char *s, const char **ret_end)
{
        uint64_t n = 0;

        while (*s && *s != '"') {
                if (*s == '\\') {
                        s++;
                        if (*s == 'u') {
                                s += 5;
                                n += 1;
                                continue;
                        }
                }
                s++;
                n++;
        }
        *ret_end = s;
        return n;
}

static double measure_worker_terminal(const char *sock, uint64_t *ret_bytes)
{
        char cmd[256], msg[512];
        uint64_t total = 0;
        double start;
        Client c;

        terminal_command(cmd, sizeof(cmd));
        snprintf(msg, sizeof(msg),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"terminal:create\",\"params\":{\"cols\":200,"
                 "\"rows\":50,"
                 "\"command\":\"%s\"}}\n",
                 cmd);
        client_open(&c, sock);
        start = now();
        send_all(c.fd, msg, strlen(msg));
        for (;;) {
                size_t len;
                char *line = client_line(&c, &len);
                const char *d = strstr(line, "\"method\":\"terminal:data_out\"");
                if (d) {
                        const char *p = strstr(line, "\"data\":\"");
                        const char *end;
                        if (p)
                                total += json_string_bytes(p + 8, &end);
                        continue;
                }
                if (strstr(line, "\"method\":\"terminal:exit\""))
                        break;
                if (strstr(line, "\"error\"")) {
                        fprintf(stderr, "worker-bench: terminal:create failed: %s\n", line);
                        exit(EXIT_FAILURE);
                }
        }
        double t = now() - start;
        client_close(&c);
        *ret_bytes = total;
        return (double)total / t / 1e6;
}

/* ---- keystroke echo in a terminal, alone and while another connection saves 16 MiB files ---- */

#define SAVE_SIZE (16u * 1024u * 1024u)

typedef struct SaverArgs {
        const char *sock;
        const char *path;
        atomic_bool stop;
        atomic_uint saves;
} SaverArgs;

static void *saver_thread(void *p)
{
        SaverArgs *a = p;
        size_t head, len;
        char *msg;
        Client c;

        msg = malloc(SAVE_SIZE + 1024);
        if (!msg)
                die("memory");
        head = (size_t)snprintf(
            msg, 1024,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:write_file\",\"params\":{\"path\":\"%s\","
            "\"content\":\"",
            a->path);
        for (size_t i = 0; i < SAVE_SIZE; i++)
                msg[head + i] = (char)('a' + i % 26);
        len = head + SAVE_SIZE;
        memcpy(msg + len, "\"}}\n", 4);
        len += 4;
        client_open(&c, a->sock);
        while (!a->stop) {
                size_t n;
                send_all(c.fd, msg, len);
                char *line = client_line(&c, &n);
                if (strstr(line, "\"error\"")) {
                        fprintf(stderr, "worker-bench: fs:write_file failed: %s\n", line);
                        exit(EXIT_FAILURE);
                }
                a->saves++;
        }
        client_close(&c);
        free(msg);
        return NULL;
}

/* Median time from terminal:data_in of one character to its echo in terminal:data_out, over n keys;
 * the 90th percentile too, where the loop's stalls show first: saves come every few hundred keys. */
static double measure_keystrokes(Client *c, const char *terminal_id, unsigned n, double *ret_p90)
{
        double *t = calloc(n, sizeof(double)), median;
        char msg[256];

        if (!t)
                die("memory");
        for (unsigned i = 0; i < n; i++) {
                char key = (char)('a' + i % 26), want[32];
                double a = now();

                snprintf(msg, sizeof(msg),
                         "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"terminal:data_in\",\"params\":{"
                         "\"terminalId\":"
                         "\"%s\",\"data\":\"%c\"}}\n",
                         i + 10, terminal_id, key);
                snprintf(want, sizeof(want), "\"data\":\"%c\"", key);
                send_all(c->fd, msg, strlen(msg));
                for (;;) {
                        size_t len;
                        char *line = client_line(c, &len);
                        if (strstr(line, "terminal:data_out") && strstr(line, want))
                                break;
                }
                t[i] = now() - a;
                usleep(2000);
        }
        qsort(t, n, sizeof(double), cmp_double);
        median = t[n / 2] * 1e6;
        if (ret_p90)
                *ret_p90 = t[n * 9 / 10] * 1e6;
        free(t);
        return median;
}

/* Keystroke echo of a terminal of the worker at sock, alone and while another connection saves 16 MiB
 * files in a loop through saver_sock: the same worker, or another one, which leaves only what the
 * machine's load does to the echo. */
static void measure_echo_while_saving(const char *sock, const char *saver_sock, const char *path,
                                      double *ret_alone, double *ret_saving, unsigned *ret_saves,
                                      double *ret_saves_per_s, double ret_p90[2])
{
        const char *create =
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"terminal:create\",\"params\":{\"cols\":80,"
            "\"rows\":24,\"command\":\"stty -icanon; exec cat >/dev/null\"}}\n";
        char terminal_id[64] = "";
        SaverArgs saver = {saver_sock, path, false, 0};
        pthread_t th;
        Client c;

        client_open(&c, sock);
        send_all(c.fd, create, strlen(create));
        while (!terminal_id[0]) {
                size_t len;
                char *line = client_line(&c, &len);
                const char *p = strstr(line, "\"terminalId\":\"");
                if (strstr(line, "\"error\"")) {
                        fprintf(stderr, "worker-bench: terminal:create failed: %s\n", line);
                        exit(EXIT_FAILURE);
                }
                if (p && strstr(line, "\"id\":1,"))
                        snprintf(terminal_id, sizeof(terminal_id), "%.*s", (int)strcspn(p + 14, "\""),
                                 p + 14);
        }
        usleep(300000); /* the shell has run stty */
        *ret_alone = measure_keystrokes(&c, terminal_id, 300, ret_p90 ? &ret_p90[0] : NULL);
        if (pthread_create(&th, NULL, saver_thread, &saver) != 0)
                die("pthread_create");
        usleep(300000);
        unsigned before = saver.saves;
        double start = now();
        *ret_saving = measure_keystrokes(&c, terminal_id, 300, ret_p90 ? &ret_p90[1] : NULL);
        if (ret_saves_per_s)
                *ret_saves_per_s = (saver.saves - before) / (now() - start);
        saver.stop = true;
        pthread_join(th, NULL);
        *ret_saves = saver.saves;
        client_close(&c);
}

static long pss_kib(pid_t pid)
{
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pss: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* The shipped fs manifest with this build's helios-fs as its program, in dir/fs.json. */
static void write_fs_manifest(const char *dir)
{
        static const char placeholder[] = "@LIBEXECDIR@/helios/helios-fs";
        char path[400], text[4096];
        FILE *in, *out;
        size_t n;
        char *at;

        in = fopen(fs_manifest, "re");
        if (!in)
                die(fs_manifest);
        n = fread(text, 1, sizeof(text) - 1, in);
        fclose(in);
        text[n] = 0;
        at = strstr(text, placeholder);
        if (!at) {
                fprintf(stderr, "worker-bench: %s does not name %s\n", fs_manifest, placeholder);
                exit(EXIT_FAILURE);
        }
        if (mkdir(dir, 0700) < 0)
                die(dir);
        snprintf(path, sizeof(path), "%s/fs.json", dir);
        out = fopen(path, "we");
        if (!out)
                die(path);
        fprintf(out, "%.*s%s%s", (int)(at - text), text, fs_path, at + strlen(placeholder));
        if (fclose(out) != 0)
                die(path);
}

/* Whether bus:services lists a running service replacing fs. */
static bool fs_served_out_of_process(const char *sock)
{
        const char *ask = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"bus:services\"}\n";
        bool ok = false;
        Client c;
        size_t n;
        char *line, *fs;

        client_open(&c, sock);
        send_all(c.fd, ask, strlen(ask));
        line = client_line(&c, &n);
        fs = line ? strstr(line, "\"replaces\":\"fs\"") : NULL;
        /* The fs entry's members, up to the end of its object. */
        if (fs) {
                char *start = fs, *end = strchr(fs, '}');
                while (start > line && *start != '{')
                        start--;
                ok = end && memmem(start, (size_t)(end - start), "\"state\":\"running\"", 17) != NULL;
        }
        client_close(&c);
        return ok;
}

static pid_t start_worker(const char *home, const char *sock, const char *admin_services)
{
        pid_t pid = fork();

        if (pid < 0)
                die("fork");
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                setenv("HOME", home, 1);
                unsetenv("XDG_STATE_HOME");
                /* Room for a 16 MiB save in one message. */
                if (admin_services)
                        execl(worker_path, worker_path, "--listen", sock, "--idle-timeout", "0",
                              "--log-level", "warning", "--max-message-size", "33554432", "--admin-services",
                              admin_services, (char *)NULL);
                else
                        execl(worker_path, worker_path, "--listen", sock, "--idle-timeout", "0",
                              "--log-level", "warning", "--max-message-size", "33554432", (char *)NULL);
                _exit(127);
        }
        return pid;
}

/* ---- two workers side by side: the one built here and a baseline (another build of Helios) ---- */

typedef struct Subject {
        const char *name;
        const char *path;
        char dir[64], home[256], sock[300], small[300], big[300], saved[300];
        pid_t pid;
} Subject;

#define MAX_ROUNDS 25u

typedef struct Round {
        double rtt_p50, read_mbs, echo_alone, echo_saving, saves_per_s;
        double echo_p90[2]; /* alone, saving */
        double p90_ratio;
        double control_ratio, control_p90_ratio; /* the same, while the other worker saves */
        unsigned saves;
} Round;

static void subject_start(Subject *s)
{
        snprintf(s->dir, sizeof(s->dir), "/tmp/helios-bench-XXXXXX");
        if (!mkdtemp(s->dir))
                die("mkdtemp");
        snprintf(s->home, sizeof(s->home), "%s/home", s->dir);
        snprintf(s->sock, sizeof(s->sock), "%s/worker.sock", s->dir);
        snprintf(s->small, sizeof(s->small), "%s/small.txt", s->home);
        snprintf(s->big, sizeof(s->big), "%s/big.txt", s->home);
        snprintf(s->saved, sizeof(s->saved), "%s/saved.txt", s->home);
        if (mkdir(s->home, 0700) < 0)
                die("mkdir");
        write_file(s->small, 1024);
        write_file(s->big, 10 * 1024 * 1024);
        worker_path = s->path;
        s->pid = start_worker(s->home, s->sock, NULL);
}

static void subject_stop(Subject *s)
{
        char cmd[128];

        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
                fprintf(stderr, "worker-bench: could not remove %s\n", s->dir);
}

static void subject_round(Subject *s, const Subject *other, Round *ret)
{
        double alone, saving, p90[2];
        unsigned saves;

        char req[600];

        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%s\"}}\n",
                 s->small);
        ret->rtt_p50 = measure_latency(s->sock, req).p50;
        ret->read_mbs = measure_big_read(s->sock, s->big, 10 * 1024 * 1024);
        measure_echo_while_saving(s->sock, s->sock, s->saved, &ret->echo_alone, &ret->echo_saving,
                                  &ret->saves, &ret->saves_per_s, ret->echo_p90);
        /* The control: the other worker saves, this one only echoes. */
        measure_echo_while_saving(s->sock, other->sock, other->saved, &alone, &saving, &saves, NULL, p90);
        ret->control_ratio = saving / alone;
        ret->control_p90_ratio = p90[1] / p90[0];
}

static double median_of(const Round *rounds, unsigned n, size_t offset)
{
        double v[MAX_ROUNDS];

        for (unsigned i = 0; i < n; i++)
                v[i] = *(const double *)((const char *)&rounds[i] + offset);
        qsort(v, n, sizeof(double), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Rounds alternate between the two workers, so that both see the same load on a shared machine. */
static int compare(const char *path, const char *baseline, unsigned n_rounds)
{
        Subject subjects[2] = {{.name = "worker", .path = path}, {.name = "baseline", .path = baseline}};
        Round rounds[2][MAX_ROUNDS];
        double load[3];

        for (int k = 0; k < 2; k++)
                subject_start(&subjects[k]);
        for (unsigned i = 0; i < n_rounds; i++)
                for (int k = 0; k < 2; k++) {
                        /* Start each round with the other worker, so neither always goes first. */
                        int w = (int)(i + (unsigned)k) % 2;
                        subject_round(&subjects[w], &subjects[1 - w], &rounds[w][i]);
                }
        for (int k = 0; k < 2; k++)
                subject_stop(&subjects[k]);

        printf("helios-worker beside a baseline build, %u rounds taken in turn (%u requests per round trip "
               "figure)\n",
               n_rounds, n_requests);
        if (getloadavg(load, 3) == 3)
                printf("load average at the end: %.2f %.2f %.2f (%ld CPUs)\n", load[0], load[1], load[2],
                       sysconf(_SC_NPROCESSORS_ONLN));
        printf("%-9s %5s %12s %12s %14s %14s %8s %10s %8s %10s %10s\n", "", "round", "1 KiB p50",
               "10 MiB read", "echo alone", "echo saving", "ratio", "p90 ratio", "saves/s", "ctl ratio",
               "ctl p90");
        for (int k = 0; k < 2; k++)
                for (unsigned i = 0; i < n_rounds; i++) {
                        const Round *r = &rounds[k][i];
                        printf("%-9s %5u %9.1f µs %7.1f MB/s %11.1f µs %11.1f µs %7.2fx %9.2fx %8.1f %9.2fx "
                               "%9.2fx\n",
                               subjects[k].name, i + 1, r->rtt_p50, r->read_mbs, r->echo_alone,
                               r->echo_saving, r->echo_saving / r->echo_alone,
                               r->echo_p90[1] / r->echo_p90[0], r->saves_per_s, r->control_ratio,
                               r->control_p90_ratio);
                }
        printf("medians:\n");
        for (int k = 0; k < 2; k++) {
                Round ratios[MAX_ROUNDS];
                for (unsigned i = 0; i < n_rounds; i++) {
                        ratios[i].echo_saving = rounds[k][i].echo_saving / rounds[k][i].echo_alone;
                        ratios[i].p90_ratio = rounds[k][i].echo_p90[1] / rounds[k][i].echo_p90[0];
                }
                printf(
                    "%-9s %5s %9.1f µs %7.1f MB/s %11.1f µs %11.1f µs %7.2fx %9.2fx %8.1f %9.2fx %9.2fx\n",
                    subjects[k].name, "", median_of(rounds[k], n_rounds, offsetof(Round, rtt_p50)),
                    median_of(rounds[k], n_rounds, offsetof(Round, read_mbs)),
                    median_of(rounds[k], n_rounds, offsetof(Round, echo_alone)),
                    median_of(rounds[k], n_rounds, offsetof(Round, echo_saving)),
                    median_of(ratios, n_rounds, offsetof(Round, echo_saving)),
                    median_of(ratios, n_rounds, offsetof(Round, p90_ratio)),
                    median_of(rounds[k], n_rounds, offsetof(Round, saves_per_s)),
                    median_of(rounds[k], n_rounds, offsetof(Round, control_ratio)),
                    median_of(rounds[k], n_rounds, offsetof(Round, control_p90_ratio)));
        }
        return 0;
}

static void usage(void)
{
        printf("Usage: worker-bench [--worker PATH] [--requests N] [--connections N] [--seconds S]\n"
               "                    [--terminal-bytes N] [--baseline PATH [--rounds N]]\n"
               "                    [--fs HELIOS-FS --fs-manifest FS.JSON.IN]\n"
               "With --baseline, compares two worker binaries side by side: 1 KiB round trip, 10 MiB\n"
               "fs:read_file, and keystroke echo in a terminal alone and while another connection saves\n"
               "16 MiB files. With --fs, also the file system in the worker and in helios-fs.\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"worker", required_argument, NULL, 'w'},
            {"requests", required_argument, NULL, 'n'},
            {"connections", required_argument, NULL, 'c'},
            {"seconds", required_argument, NULL, 's'},
            {"terminal-bytes", required_argument, NULL, 't'},
            {"fs", required_argument, NULL, 'f'},
            {"fs-manifest", required_argument, NULL, 'm'},
            {"baseline", required_argument, NULL, 'b'},
            {"rounds", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        char dir[] = "/tmp/helios-bench-XXXXXX", home[256], echo_sock[300], worker_sock[300], small[300],
             big[300], req[600];
        const char *baseline = NULL;
        unsigned n_rounds = 5;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'w':
                        worker_path = optarg;
                        break;
                case 'n':
                        n_requests = (unsigned)MAX(strtoul(optarg, NULL, 10), 100UL);
                        break;
                case 'c':
                        n_connections = (unsigned)MAX(strtoul(optarg, NULL, 10), 1UL);
                        break;
                case 's':
                        seconds = strtod(optarg, NULL);
                        break;
                case 't':
                        terminal_bytes = strtoull(optarg, NULL, 10);
                        break;
                case 'f':
                        fs_path = realpath(optarg, NULL); /* a manifest names an absolute path */
                        if (!fs_path)
                                die(optarg);
                        break;
                case 'm':
                        fs_manifest = optarg;
                        break;
                case 'b':
                        baseline = optarg;
                        break;
                case 'r':
                        n_rounds = (unsigned)MAX(strtoul(optarg, NULL, 10), 1UL);
                        n_rounds = MIN(n_rounds, MAX_ROUNDS);
                        break;
                case 'h':
                        usage();
                        return 0;
                default:
                        usage();
                        return 2;
                }
        }
        signal(SIGPIPE, SIG_IGN);
        if (baseline)
                return compare(worker_path, baseline, n_rounds);

        if (!mkdtemp(dir))
                die("mkdtemp");
        snprintf(home, sizeof(home), "%s/home", dir);
        snprintf(echo_sock, sizeof(echo_sock), "%s/echo.sock", dir);
        snprintf(worker_sock, sizeof(worker_sock), "%s/worker.sock", dir);
        snprintf(small, sizeof(small), "%s/small.txt", home);
        snprintf(big, sizeof(big), "%s/big.txt", home);
        if (mkdir(home, 0700) < 0)
                die("mkdir");
        write_file(small, 1024);
        write_file(big, 10 * 1024 * 1024);

        pid_t echo = fork();
        if (echo < 0)
                die("fork");
        if (echo == 0)
                echo_server(echo_sock);
        pid_t worker = start_worker(home, worker_sock, NULL);

        /* Idle PSS first: a fresh worker that has answered one request. */
        {
                Client c;
                const char *info = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"worker:info\"}\n";
                client_open(&c, worker_sock);
                client_roundtrip(&c, info, strlen(info));
                client_close(&c);
                usleep(100000);
        }
        long pss_idle = pss_kib(worker);

        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%s\"}}\n",
                 small);

        /* Interleave the two so that both see the same machine load. */
        Latency echo_lat = measure_latency(echo_sock, req);
        Latency worker_lat = measure_latency(worker_sock, req);
        if (worker_lat.reply_len < 1024) {
                fprintf(stderr, "worker-bench: fs:read_file did not return the file\n");
                return 1;
        }
        double echo_rps = measure_throughput(echo_sock, req);
        double worker_rps = measure_throughput(worker_sock, req);
        double read_mbs = measure_big_read(worker_sock, big, 10 * 1024 * 1024);
        uint64_t raw_bytes, worker_bytes;
        double raw_mbs = measure_raw_pty(&raw_bytes);
        double term_mbs = measure_worker_terminal(worker_sock, &worker_bytes);
        long pss_after = pss_kib(worker);
        char saved[320];
        double echo_alone, echo_saving;
        unsigned saves;
        snprintf(saved, sizeof(saved), "%s/saved.txt", home);
        measure_echo_while_saving(worker_sock, worker_sock, saved, &echo_alone, &echo_saving, &saves, NULL,
                                  NULL);

        /* The same requests to a worker whose fs service is helios-fs, interleaved with the in-process
         * one so that both see the same machine load. */
        Latency in_lat = {}, out_lat = {};
        double in_big = 0, out_big = 0;
        pid_t worker_out = -1;
        char out_dir[300], out_home[320], out_sock[320], out_small[400], out_big_path[400], admin[320],
            out_req[700];
        if (fs_path && fs_manifest) {
                snprintf(out_dir, sizeof(out_dir), "%s/out", dir);
                snprintf(out_home, sizeof(out_home), "%s/home", out_dir);
                snprintf(out_sock, sizeof(out_sock), "%s/worker.sock", out_dir);
                snprintf(admin, sizeof(admin), "%s/admin-services", out_dir);
                snprintf(out_small, sizeof(out_small), "%s/small.txt", out_home);
                snprintf(out_big_path, sizeof(out_big_path), "%s/big.txt", out_home);
                if (mkdir(out_dir, 0700) < 0 || mkdir(out_home, 0700) < 0)
                        die("mkdir");
                write_fs_manifest(admin);
                write_file(out_small, 1024);
                write_file(out_big_path, 10 * 1024 * 1024);
                worker_out = start_worker(out_home, out_sock, admin);
                snprintf(out_req, sizeof(out_req),
                         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fs:read_file\",\"params\":{\"path\":\"%"
                         "s\"}}\n",
                         out_small);
                /* Three rounds, alternately; the median round of each. */
                Latency in_r[3], out_r[3];
                for (int i = 0; i < 3; i++) {
                        in_r[i] = measure_latency(worker_sock, req);
                        out_r[i] = measure_latency(out_sock, out_req);
                }
                in_lat = median_latency(in_r);
                out_lat = median_latency(out_r);
                if (out_lat.reply_len < 1024) {
                        fprintf(stderr, "worker-bench: helios-fs did not return the file\n");
                        return 1;
                }
                /* Read by read, alternately, so that a busy moment of the machine costs both alike. */
                double in_t[9], out_t[9];
                for (int i = 0; i < 9; i++) {
                        in_t[i] = measure_big_read_once(worker_sock, big, 10 * 1024 * 1024);
                        out_t[i] = measure_big_read_once(out_sock, out_big_path, 10 * 1024 * 1024);
                }
                qsort(in_t, 9, sizeof(double), cmp_double);
                qsort(out_t, 9, sizeof(double), cmp_double);
                in_big = in_t[4];
                out_big = out_t[4];
                if (!fs_served_out_of_process(out_sock)) {
                        fprintf(stderr, "worker-bench: the second worker did not run helios-fs\n");
                        return 1;
                }
        }

        printf("helios-worker benchmark (%u sequential requests, %u connections for %.1f s)\n", n_requests,
               n_connections, seconds);
        printf("%-44s %12s %12s %8s\n", "", "worker", "floor", "ratio");
        printf("%-44s %10.1f µs %10.1f µs %7.2fx\n", "fs:read_file 1 KiB round trip p50 (echo)",
               worker_lat.p50, echo_lat.p50, worker_lat.p50 / echo_lat.p50);
        printf("%-44s %10.1f µs %10.1f µs %7.2fx\n", "fs:read_file 1 KiB round trip p99 (echo)",
               worker_lat.p99, echo_lat.p99, worker_lat.p99 / echo_lat.p99);
        printf("%-44s %12.0f %12.0f %7.2fx\n", "requests/s, 16 connections (echo)", worker_rps, echo_rps,
               worker_rps / echo_rps);
        printf("%-44s %9.1f MB/s\n", "fs:read_file 10 MiB", read_mbs);
        printf("%-44s %10.1f µs %10.1f µs %7.2fx  (%u saves of 16 MiB)\n",
               "keystroke echo p50: saving / alone", echo_saving, echo_alone, echo_saving / echo_alone,
               saves);
        printf("%-44s %9.1f MB/s %7.1f MB/s %7.0f%%\n", "terminal output (raw PTY, same command)", term_mbs,
               raw_mbs, 100.0 * term_mbs / raw_mbs);
        printf("%-44s %9llu B  %10llu B\n", "terminal bytes received", (unsigned long long)worker_bytes,
               (unsigned long long)raw_bytes);
        printf("%-44s %8ld KiB\n", "PSS idle worker (after one request)", pss_idle);
        printf("%-44s %8ld KiB\n", "PSS worker after the benchmark", pss_after);
        if (worker_out > 0) {
                printf("\n%-44s %12s %12s %8s\n", "fs service (medians)", "in process", "helios-fs",
                       "ratio");
                printf("%-44s %10.1f µs %10.1f µs %7.2fx\n", "fs:read_file 1 KiB round trip p50 (3 rounds)",
                       in_lat.p50, out_lat.p50, out_lat.p50 / in_lat.p50);
                printf("%-44s %10.1f ms %10.1f ms %7.2fx\n", "fs:read_file 10 MiB (9 alternate reads)",
                       in_big * 1e3, out_big * 1e3, out_big / in_big);
                printf("%-44s %7.1f MB/s %7.1f MB/s\n", "fs:read_file 10 MiB throughput",
                       10.0 * 1024 * 1024 / in_big / 1e6, 10.0 * 1024 * 1024 / out_big / 1e6);
                kill(worker_out, SIGTERM);
                waitpid(worker_out, NULL, 0);
        }

        kill(worker, SIGTERM);
        kill(echo, SIGTERM);
        waitpid(worker, NULL, 0);
        waitpid(echo, NULL, 0);
        unlink(small);
        unlink(big);
        rmdir(home);
        unlink(echo_sock);
        unlink(worker_sock);
        /* The worker's state directory lives under the temporary home; leave nothing behind. */
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "worker-bench: could not remove %s\n", dir);
        return 0;
}
