/* SPDX-License-Identifier: MIT */
#include "admin.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "gateway.h"
#include "log.h"
#include "macro.h"

#define ADMIN_LINE_MAX    256u
#define ADMIN_CLIENTS_MAX 8u
#define ADMIN_TIMEOUT_MS  5000u
#define ADMIN_GROUPS_MAX  256

typedef struct AdminClient AdminClient;

struct AdminServer {
        Gateway *gateway;
        uv_pipe_t pipe;
        char *path;
        gid_t group;
        AdminClient *clients;
        unsigned n_clients;
        bool closing;
};

struct AdminClient {
        AdminServer *server;
        AdminClient *prev, *next;
        uv_pipe_t pipe;
        uv_timer_t timer;
        uv_write_t write;
        char line[ADMIN_LINE_MAX + 1];
        size_t len;
        Buf out;
        uid_t uid;
        bool answered;
        int closing; /* handles still to close */
};

/* ---- access ---- */

static bool peer_allowed(const AdminServer *a, int fd, uid_t *ret_uid)
{
        struct ucred cred;
        socklen_t n = sizeof(cred);
        gid_t groups[ADMIN_GROUPS_MAX];

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) < 0)
                return false;
        *ret_uid = cred.uid;
        if (cred.uid == 0 || cred.uid == geteuid())
                return true;
        if (a->group == (gid_t)-1)
                return false;
        if (cred.gid == a->group)
                return true;
        n = sizeof(groups);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &n) < 0)
                return false;
        for (size_t i = 0; i < n / sizeof(gid_t); i++)
                if (groups[i] == a->group)
                        return true;
        return false;
}

/* ---- connections ---- */

static void client_closed(uv_handle_t *h)
{
        AdminClient *c = h->data;

        if (--c->closing > 0)
                return;
        buf_done(&c->out);
        free(c);
}

static void client_close(AdminClient *c)
{
        AdminServer *a = c->server;

        if (c->closing)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                a->clients = c->next;
        if (c->next)
                c->next->prev = c->prev;
        a->n_clients--;
        c->closing = 2;
        uv_close((uv_handle_t *)&c->pipe, client_closed);
        uv_close((uv_handle_t *)&c->timer, client_closed);
}

static void on_written(uv_write_t *w, int status)
{
        client_close(w->data);
}

static void client_answer(AdminClient *c)
{
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);

        c->answered = true;
        (void)uv_read_stop((uv_stream_t *)&c->pipe);
        c->write.data = c;
        if (uv_write(&c->write, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0)
                client_close(c);
}

static void format_time(uint64_t wall_ms, char out[32])
{
        time_t t = (time_t)(wall_ms / 1000);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                strcpy(out, "-");
}

typedef struct ListContext {
        AdminClient *client;
        const char *user;
        int error;
} ListContext;

static void list_one(Session *s, void *userdata)
{
        ListContext *lc = userdata;
        Gateway *g = lc->client->server->gateway;
        char since[32], used[32], line[256];

        if (lc->error < 0 || (lc->user && !streq(lc->user, session_user(s))))
                return;
        format_time(gateway_wall_ms(g, session_created_ms(s)), since);
        format_time(gateway_wall_ms(g, session_last_used_ms(s)), used);
        (void)snprintf(line, sizeof(line), "%s\t%s\t%s\t%s\t%s\t%zu\n", session_user(s), session_handle(s),
                       session_from(s), since, used, session_n_links(s));
        lc->error = buf_append_str(&lc->client->out, line);
}

static void run_command(AdminClient *c)
{
        Gateway *g = c->server->gateway;
        char *arg = strchr(c->line, ' ');
        const char *cmd = c->line;
        int r = 0;

        if (arg)
                *arg++ = '\0';
        if (streq(cmd, "sessions")) {
                ListContext lc = {c, arg && *arg ? arg : NULL, 0};
                r = buf_append_str(&c->out, "ok\n");
                if (r >= 0)
                        session_store_foreach(g->sessions, list_one, &lc);
                r = r < 0 ? r : lc.error;
        } else if (streq(cmd, "logout") && arg && *arg) {
                size_t n = session_store_end_user(g->sessions, arg, SESSION_END_REVOKED);
                char line[64];
                if (n > 0)
                        log_notice("The admin (uid %u) ended %zu session%s of %s.", (unsigned)c->uid, n,
                                   n == 1 ? "" : "s", arg);
                (void)snprintf(line, sizeof(line), "ok\nended %zu\n", n);
                r = n > 0 ? buf_append_str(&c->out, line) : buf_append_str(&c->out, "error: no sessions\n");
        } else if (streq(cmd, "logout-session") && arg && strlen(arg) == SESSION_HANDLE_LEN) {
                Session *s = session_find_by_handle(g->sessions, NULL, arg);
                if (s) {
                        log_notice("The admin (uid %u) ended session %s of %s.", (unsigned)c->uid, arg,
                                   session_user(s));
                        session_end(g->sessions, s, SESSION_END_REVOKED);
                        r = buf_append_str(&c->out, "ok\nended 1\n");
                } else
                        r = buf_append_str(&c->out, "error: no such session\n");
        } else
                r = buf_append_str(&c->out, "error: unknown request\n");
        if (r < 0) {
                c->out.len = 0;
                (void)buf_append_str(&c->out, "error: out of memory\n");
        }
        client_answer(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
        AdminClient *c = h->data;

        b->base = c->line + c->len;
        b->len = ADMIN_LINE_MAX - c->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
        AdminClient *c = s->data;
        char *nl;

        if (n < 0) {
                client_close(c);
                return;
        }
        c->len += (size_t)n;
        c->line[c->len] = '\0';
        nl = memchr(c->line, '\n', c->len);
        if (!nl) {
                if (c->len >= ADMIN_LINE_MAX) {
                        (void)buf_append_str(&c->out, "error: request too long\n");
                        client_answer(c);
                }
                return;
        }
        *nl = '\0';
        for (const char *p = c->line; p < nl; p++)
                if ((unsigned char)*p < ' ' || *p == 0x7f) {
                        (void)buf_append_str(&c->out, "error: bad request\n");
                        client_answer(c);
                        return;
                }
        run_command(c);
}

static void on_timeout(uv_timer_t *t)
{
        client_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
        AdminServer *a = server->data;
        AdminClient *c;
        uv_os_fd_t fd;

        if (status < 0)
                return;
        c = calloc(1, sizeof(AdminClient));
        if (!c)
                return;
        c->server = a;
        (void)uv_pipe_init(server->loop, &c->pipe, false);
        (void)uv_timer_init(server->loop, &c->timer);
        c->pipe.data = c->timer.data = c;
        c->next = a->clients;
        if (a->clients)
                a->clients->prev = c;
        a->clients = c;
        a->n_clients++;
        if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0) {
                client_close(c);
                return;
        }
        if (!peer_allowed(a, fd, &c->uid)) {
                log_notice("Refused an admin connection from uid %u.", (unsigned)c->uid);
                (void)buf_append_str(&c->out, "error: not allowed\n");
                client_answer(c);
                return;
        }
        if (a->n_clients > ADMIN_CLIENTS_MAX) {
                (void)buf_append_str(&c->out, "error: busy\n");
                client_answer(c);
                return;
        }
        (void)uv_timer_start(&c->timer, on_timeout, ADMIN_TIMEOUT_MS, 0);
        if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
                client_close(c);
}

/* ---- the socket ---- */

static void server_closed(uv_handle_t *h)
{
        AdminServer *a = h->data;

        free(a->path);
        free(a);
}

int admin_server_new(Gateway *g, const char *path, gid_t group, AdminServer **ret)
{
        AdminServer *a;
        mode_t old;
        int r;

        a = calloc(1, sizeof(AdminServer));
        if (!a || !(a->path = strdup(path))) {
                free(a);
                return -ENOMEM;
        }
        a->gateway = g;
        a->group = group;
        (void)uv_pipe_init(g->loop, &a->pipe, false);
        a->pipe.data = a;
        /* A socket left by an earlier run is ours to replace; made private, then opened to the group. */
        (void)unlink(path);
        old = umask(0177);
        r = uv_pipe_bind(&a->pipe, path);
        umask(old);
        if (r >= 0 && group != (gid_t)-1) {
                if (chown(path, (uid_t)-1, group) < 0 || chmod(path, 0660) < 0)
                        r = negative_errno();
        }
        if (r >= 0)
                r = uv_listen((uv_stream_t *)&a->pipe, 16, on_connection);
        if (r < 0) {
                a->closing = true;
                uv_close((uv_handle_t *)&a->pipe, server_closed);
                return r;
        }
        *ret = a;
        return 0;
}

void admin_server_free(AdminServer *a)
{
        if (!a || a->closing)
                return;
        a->closing = true;
        while (a->clients)
                client_close(a->clients);
        (void)unlink(a->path);
        uv_close((uv_handle_t *)&a->pipe, server_closed);
}

/* ---- the command line ---- */

static void client_help(void)
{
        printf(
            "Usage: helios-gateway sessions [--user USER] [--socket PATH]\n"
            "       helios-gateway logout [--socket PATH] USER\n"
            "       helios-gateway logout [--socket PATH] --session ID\n\n"
            "List the sessions of the running gateway, or end a user's sessions or one session, over its\n"
            "admin socket (root, the gateway's account and admin_group only).\n\n"
            "  -h --help            Show this help\n"
            "     --socket PATH     The gateway's admin socket (default %s)\n"
            "     --user USER       Only this user's sessions\n"
            "     --session ID      The session to end (an ID from `sessions`)\n",
            ADMIN_DEFAULT_SOCKET);
}

static int request(const char *path, const char *line, Buf *ret)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char chunk[4096];
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
                return -EIO;
        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
                if (buf_append(ret, chunk, (size_t)n) < 0)
                        return -ENOMEM;
        if (n < 0)
                return negative_errno();
        return ret->data ? 0 : -ECONNRESET;
}

int admin_client_run(int argc, char **argv)
{
        static const struct option opts[] = {
            {"help", no_argument, NULL, 'h'},
            {"socket", required_argument, NULL, 's'},
            {"user", required_argument, NULL, 'u'},
            {"session", required_argument, NULL, 'S'},
            {},
        };
        const char *path = ADMIN_DEFAULT_SOCKET, *user = NULL, *session = NULL;
        bool list = streq(argv[0], "sessions");
        _cleanup_(buf_done) Buf out = {};
        char line[ADMIN_LINE_MAX];
        char *body;
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (opt) {
                case 'h':
                        client_help();
                        return 0;
                case 's':
                        path = optarg;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'S':
                        session = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (list) {
                if (optind < argc || session) {
                        log_error("Usage: helios-gateway sessions [--user USER] [--socket PATH]");
                        return -EINVAL;
                }
                (void)snprintf(line, sizeof(line), "sessions%s%s\n", user ? " " : "", user ?: "");
        } else if (session && optind == argc && !user)
                (void)snprintf(line, sizeof(line), "logout-session %s\n", session);
        else if (!session && !user && optind + 1 == argc)
                (void)snprintf(line, sizeof(line), "logout %s\n", argv[optind]);
        else {
                log_error("Usage: helios-gateway logout USER | --session ID");
                return -EINVAL;
        }
        if (strpbrk(line, "\n") != line + strlen(line) - 1) {
                log_error("A name or ID cannot hold a newline.");
                return -EINVAL;
        }

        r = request(path, line, &out);
        if (r < 0)
                return log_error_errno(r, "Cannot reach the gateway's admin socket %s: %m", path);
        body = out.data;
        if (strncmp(body, "ok\n", 3) != 0) {
                log_error("%s", strncmp(body, "error: ", 7) == 0 ? body + 7 : "bad answer from the gateway");
                return -EIO;
        }
        body += 3;
        if (!list) {
                unsigned long n = strncmp(body, "ended ", 6) == 0 ? strtoul(body + 6, NULL, 10) : 0;
                printf("Ended %lu session%s.\n", n, n == 1 ? "" : "s");
                return 0;
        }
        printf("%-16s %-16s %-39s %-20s %-20s %s\n", "USER", "SESSION", "FROM", "SINCE", "LAST USED",
               "PAGES");
        for (char *p = body, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
                char *f[6] = {};
                size_t k = 0;
                *nl = '\0';
                for (char *q = p; q && k < 6; k++) {
                        f[k] = q;
                        q = strchr(q, '\t');
                        if (q)
                                *q++ = '\0';
                }
                if (k == 6)
                        printf("%-16s %-16s %-39s %-20s %-20s %s\n", f[0], f[1], f[2], f[3], f[4], f[5]);
        }
        return 0;
}
