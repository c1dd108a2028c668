/* SPDX-License-Identifier: MIT */
/* The embedded socket activation, with this very binary as the worker ("test-activator worker MODE"):
 * a worker is started on the first connection with the systemd protocol, reaped and replaced when it
 * exits, held back when it keeps failing, and left alone (then taken over from) when it outlives its
 * activator. The loop must end with every handle closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "activator.h"
#include "macro.h"
#include "worker-output.h"

static char self[4096];
/* Every worker seen, so that a failing test leaves none running. */
static pid_t seen[32];
static size_t n_seen;
static char dir[64], sock_path[128];

/* ---- the worker side ---- */

/* What its standard descriptors are, then output without end: a line with an escape sequence and a
 * line break forged into it, a line of 5000 bytes, then lines as fast as the pipe takes them. */
static int worker_flood(void)
{
        char in[64] = "", out[64] = "", err[64] = "", line[5002];
        int c = accept(3, NULL, NULL);
        ssize_t n;

        if (c < 0)
                return 2;
        n = readlink("/proc/self/fd/0", in, sizeof(in) - 1);
        n = readlink("/proc/self/fd/1", out, sizeof(out) - 1);
        n = readlink("/proc/self/fd/2", err, sizeof(err) - 1);
        (void)n;
        dprintf(c, "stdin=%s same_out=%d pipe=%d\n", in, strcmp(out, err) == 0,
                strncmp(out, "pipe:", 5) == 0);
        close(c);
        dprintf(STDERR_FILENO, "evil \033[2J\rforged: root logged in\n");
        memset(line, 'x', 5000);
        line[5000] = '\n';
        line[5001] = '\0';
        dprintf(STDERR_FILENO, "%s", line);
        for (unsigned long i = 0;; i++)
                if (dprintf(STDERR_FILENO, "flood line %lu\n", i) < 0)
                        return 0;
}

static int worker_main(const char *mode)
{
        char reply[512];
        const char *e = getenv("LISTEN_PID");
        int n = 0, fds_ok = 1;
        DIR *d;
        struct dirent *de;

        if (strcmp(mode, "fail") == 0)
                return 1;
        if (strcmp(mode, "flood") == 0)
                return worker_flood();
        /* Only 0, 1, 2 and the listener on 3 may be open (plus the directory being read). */
        d = opendir("/proc/self/fd");
        while (d && (de = readdir(d)))
                if (de->d_name[0] != '.' && atoi(de->d_name) > 3 && atoi(de->d_name) != dirfd(d))
                        fds_ok = 0;
        if (d)
                closedir(d);
        do {
                int c = accept(3, NULL, NULL);
                if (c < 0)
                        return 2;
                n = snprintf(reply, sizeof(reply), "pid=%d listen_pid_ok=%d fds=%s fds_ok=%d notify=%d\n",
                             (int)getpid(), e && atoi(e) == getpid(),
                             getenv("LISTEN_FDS") ? getenv("LISTEN_FDS") : "-", fds_ok,
                             getenv("NOTIFY_SOCKET") != NULL);
                /* A client may be gone already (an activator's probe is): not a reason to die. */
                (void)send(c, reply, (size_t)n, MSG_NOSIGNAL);
                close(c);
        } while (strcmp(mode, "serve") == 0); /* "serve": until killed; "once": one client */
        return 0;
}

/* ---- the test side ---- */

static int client_connect(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        strcpy(sa.sun_path, sock_path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

/* Run the loop until fd has something to read (or is closed); the answer, or "" at EOF. */
static char *await_reply(uv_loop_t *loop, int fd, char *buf, size_t size)
{
        for (int i = 0; i < 1000; i++) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                uv_run(loop, UV_RUN_NOWAIT);
                if (poll(&p, 1, 10) > 0) {
                        ssize_t n = read(fd, buf, size - 1);
                        buf[n > 0 ? n : 0] = '\0';
                        return buf;
                }
        }
        fail_msg("no answer from the worker");
        return NULL;
}

static void spin(uv_loop_t *loop, int ms)
{
        for (int i = 0; i < ms / 5; i++) {
                uv_run(loop, UV_RUN_NOWAIT);
                usleep(5000);
        }
}

static pid_t ask(uv_loop_t *loop, char *reply, size_t size)
{
        int fd = client_connect();
        assert_true(fd >= 0);
        await_reply(loop, fd, reply, size);
        close(fd);
        if (strncmp(reply, "pid=", 4) != 0)
                return 0;
        if (n_seen < sizeof(seen) / sizeof(seen[0]))
                seen[n_seen++] = (pid_t)atoi(reply + 4);
        return (pid_t)atoi(reply + 4);
}

static Activator *make(uv_loop_t *loop, const char *mode)
{
        char *argv[] = {self, (char *)"worker", (char *)mode, NULL};
        ActivatorParams p = {.socket_path = sock_path, .worker_path = self, .worker_argv = argv};
        Activator *a;

        assert_int_equal(activator_new(loop, &p, &a), 0);
        assert_int_equal(activator_start(a), 0);
        return a;
}

static void finish(uv_loop_t *loop, Activator *a)
{
        activator_stop(a);
        uv_run(loop, UV_RUN_DEFAULT);
        activator_free(a);
}

static int setup(void **state)
{
        strcpy(dir, "/tmp/helios-test-activator-XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        snprintf(sock_path, sizeof(sock_path), "%s/run/worker.sock", dir);
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];

        for (size_t i = 0; i < n_seen; i++)
                (void)kill(seen[i], SIGKILL);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_directory(void **state)
{
        char path[128], link[128];
        struct stat st;

        snprintf(path, sizeof(path), "%s/run", dir);
        assert_int_equal(activator_prepare_directory(path), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(activator_prepare_directory(path), 0); /* again: fine */
        snprintf(path, sizeof(path), "%s/open", dir);
        mkdir(path, 0755);
        assert_int_equal(activator_prepare_directory(path), -EPERM);
        snprintf(link, sizeof(link), "%s/link", dir);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(activator_prepare_directory(link), -ENOTDIR);
}

/* The launcher's kind: a directory of this user and a group, with exactly the mode asked for. */
static void test_shared_directory(void **state)
{
        char path[128], link[128];
        struct stat st;

        snprintf(path, sizeof(path), "%s/shared", dir);
        assert_int_equal(activator_prepare_shared_directory(path, 0750, getegid()), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0750);
        assert_int_equal(st.st_gid, getegid());
        /* An existing one is brought to the mode, whatever it had. */
        assert_int_equal(chmod(path, 0777), 0);
        assert_int_equal(activator_prepare_shared_directory(path, 0755, getegid()), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        snprintf(link, sizeof(link), "%s/shared-link", dir);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(activator_prepare_shared_directory(link, 0750, getegid()), -ENOTDIR);
        snprintf(link, sizeof(link), "%s/shared-file", dir);
        close(open(link, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
        assert_int_equal(activator_prepare_shared_directory(link, 0750, getegid()), -ENOTDIR);
}

static void test_activation_and_rearm(void **state)
{
        uv_loop_t loop;
        char reply[512];
        struct stat st;
        Activator *a;
        pid_t first, second;

        assert_int_equal(uv_loop_init(&loop), 0);
        a = make(&loop, "once");
        assert_int_equal(stat(sock_path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(activator_worker_pid(a), 0);

        first = ask(&loop, reply, sizeof(reply));
        assert_true(first > 0);
        assert_non_null(strstr(reply, "listen_pid_ok=1 fds=1 fds_ok=1 notify=0"));
        assert_int_equal(activator_worker_starts(a), 1);

        /* The worker served one client and exited: reaped, and the socket is watched again. */
        spin(&loop, 300);
        assert_int_equal(activator_worker_pid(a), 0);
        assert_int_equal(kill(first, 0), -1); /* gone, not a zombie: waitpid() had it */
        second = ask(&loop, reply, sizeof(reply));
        assert_true(second > 0 && second != first);
        assert_int_equal(activator_worker_starts(a), 2);
        spin(&loop, 300);
        finish(&loop, a);
        /* No worker left behind it: the socket file goes with the activator. */
        assert_int_equal(stat(sock_path, &st), -1);
        assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_failing_worker_backs_off(void **state)
{
        uv_loop_t loop;
        char reply[512];
        Activator *a;

        assert_int_equal(uv_loop_init(&loop), 0);
        a = make(&loop, "fail");
        /* Each start fails at once; after five the queued client is turned away, not left hanging. */
        int fd = client_connect();
        assert_true(fd >= 0);
        assert_string_equal(await_reply(&loop, fd, reply, sizeof(reply)), "");
        close(fd);
        assert_int_equal(activator_worker_starts(a), 5);
        /* Meanwhile no more starts. */
        fd = client_connect();
        assert_true(fd >= 0);
        assert_string_equal(await_reply(&loop, fd, reply, sizeof(reply)), "");
        close(fd);
        assert_int_equal(activator_worker_starts(a), 5);
        finish(&loop, a);
        assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_worker_outlives_its_activator(void **state)
{
        uv_loop_t loop;
        char reply[512];
        Activator *a, *b;
        pid_t worker, next;
        int status;

        assert_int_equal(uv_loop_init(&loop), 0);
        a = make(&loop, "serve");
        worker = ask(&loop, reply, sizeof(reply));
        assert_true(worker > 0);
        finish(&loop, a); /* the worker keeps serving */
        assert_int_equal(ask(&loop, reply, sizeof(reply)), worker);

        b = make(&loop, "serve");
        assert_int_equal(activator_worker_pid(b), worker);
        assert_int_equal(ask(&loop, reply, sizeof(reply)), worker);
        /* It ends: the new activator takes the socket over and starts the next worker. */
        assert_int_equal(kill(worker, SIGTERM), 0);
        assert_int_equal(waitpid(worker, &status, 0), worker); /* our child still: forked here */
        spin(&loop, 200);
        assert_int_equal(activator_worker_pid(b), 0);
        next = ask(&loop, reply, sizeof(reply));
        assert_true(next > 0 && next != worker);
        assert_int_equal(activator_worker_pid(b), next);
        kill(next, SIGTERM);
        spin(&loop, 300);
        assert_int_equal(activator_worker_pid(b), 0);
        finish(&loop, b);
        assert_int_equal(uv_loop_close(&loop), 0);
}

/* The worker's output reaches this process's log (stderr here) line by line, cut, with control
 * characters replaced, and at most WORKER_OUTPUT_LINES a second: a worker writing without end costs
 * the loop nothing it notices. */
static void test_worker_output_is_relayed_and_bounded(void **state)
{
        char log_path[128], reply[256], *text = NULL;
        uv_loop_t loop;
        size_t size = 0;
        int saved, log_fd, lines = 0;
        FILE *f;

        snprintf(log_path, sizeof(log_path), "%s/log", dir);
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(log_fd >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        assert_true(dup2(log_fd, STDERR_FILENO) == STDERR_FILENO);

        assert_int_equal(uv_loop_init(&loop), 0);
        char *argv[] = {self, (char *)"worker", (char *)"flood", NULL};
        ActivatorParams p = {
            .socket_path = sock_path, .worker_path = self, .worker_argv = argv, .output_tag = "alice"};
        Activator *a;
        assert_int_equal(activator_new(&loop, &p, &a), 0);
        assert_int_equal(activator_start(a), 0);

        int fd = client_connect();
        assert_true(fd >= 0);
        await_reply(&loop, fd, reply, sizeof(reply));
        close(fd);
        pid_t worker = activator_worker_pid(a);
        seen[n_seen++] = worker;

        uint64_t start = uv_hrtime(), worst = 0;
        while (uv_hrtime() - start < 2500 * 1000000ULL) {
                uint64_t t = uv_hrtime();
                uv_run(&loop, UV_RUN_NOWAIT);
                worst = MAX(worst, uv_hrtime() - t);
                usleep(2000);
        }
        kill(worker, SIGKILL);
        spin(&loop, 300);
        finish(&loop, a);
        assert_int_equal(uv_loop_close(&loop), 0);
        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        close(saved);
        close(log_fd);

        f = fopen(log_path, "re");
        assert_non_null(f);
        char *line = NULL;
        size_t cap = 0;
        bool forged = false, cut = false, escape = false, tagged = false;
        while (getline(&line, &cap, f) > 0) {
                /* The forged text may only show inside the worker's own, tagged line. */
                forged = forged ||
                         (strstr(line, "forged: root") && !strstr(line, "worker alice: evil ?[2J?forged"));
                escape = escape || strchr(line, '\033');
                tagged = tagged || strstr(line, "worker alice: evil ?[2J?forged: root logged in");
                if (!strstr(line, "worker alice: "))
                        continue;
                lines++;
                if (strstr(line, "xxxxxxxx")) {
                        cut = strlen(line) < 1200;
                        assert_true(cut);
                }
        }
        free(line);
        fclose(f);
        free(text);
        (void)size;

        assert_string_equal(reply, "stdin=/dev/null same_out=1 pipe=1\n");
        assert_true(tagged);
        assert_false(forged);
        assert_false(escape);
        assert_true(cut);
        /* 2.5 s of windows of WORKER_OUTPUT_LINES, give or take one window. */
        fprintf(stderr, "relayed %d lines in 2.5 s; longest loop turn %llu us\n", lines,
                (unsigned long long)(worst / 1000));
        assert_true(lines >= WORKER_OUTPUT_LINES && lines <= 4 * WORKER_OUTPUT_LINES);
        assert_true(worst < 100 * 1000000ULL);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_directory),
            cmocka_unit_test(test_shared_directory),
            cmocka_unit_test(test_activation_and_rearm),
            cmocka_unit_test(test_failing_worker_backs_off),
            cmocka_unit_test(test_worker_outlives_its_activator),
            cmocka_unit_test(test_worker_output_is_relayed_and_bounded),
        };

        if (argc == 3 && strcmp(argv[1], "worker") == 0)
                return worker_main(argv[2]);
        if (!realpath("/proc/self/exe", self))
                return 1;
        return cmocka_run_group_tests(tests, setup, teardown);
}
