/* SPDX-License-Identifier: MIT */
#include "manager.h"

#include <assert.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "activator.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "pam-helper.h"
#include "policy.h"
#include "sandbox.h"
#include "socket-util.h"
#include "unit-starter.h"
#include "user-name.h"
#include "worker-home.h"

/* Replies waiting for the gateway to read; past this the connection is not read any more. */
#define CONN_OUT_MAX 64
/* Packets handled per wake-up of one connection, so that one busy peer cannot starve the loop. */
#define CONN_READ_BATCH 32
#define FIELDS_MAX      4
/* The account nobody, whatever its name, is never anyone's workspace. */
#define NOBODY_UID ((uid_t)65534)

typedef struct Conn Conn;
typedef struct Request Request;
typedef struct UserEntry UserEntry;

typedef struct Reply {
        struct Reply *next;
        size_t len;
        char data[];
} Reply;

struct Conn {
        Manager *manager;
        Conn *prev, *next;
        int fd;
        uv_poll_t poll;
        pid_t pid;
        unsigned in_flight;
        Reply *out_first, *out_last;
        unsigned n_out;
        bool closed;
};

typedef enum RequestType {
        REQUEST_AUTH,
        REQUEST_WORKER,
        _REQUEST_TYPE_MAX,
} RequestType;

/* A request answered later: a PAM check, or a unit start. */
struct Request {
        Manager *manager;
        Request *prev, *next;
        Conn *conn; /* NULL once the connection is gone: the answer is dropped */
        RequestType type;
        char id[LAUNCHER_ID_MAX + 1];
        char user[LAUNCHER_USER_MAX + 1];
        uint64_t started_ms;

        /* auth: the helper process, its standard input and its deadline */
        uv_process_t process;
        uv_pipe_t input;
        uv_timer_t timer;
        unsigned open_handles;
        bool exited, timed_out;

        /* worker, under systemd */
        UnitJob *job;
};

/* A user whose worker socket this launcher serves (embedded mode). */
struct UserEntry {
        Manager *manager;
        UserEntry *next;
        char name[LAUNCHER_USER_MAX + 1];
        SandboxPlan *plan;
        Activator *activator;
        char *socket_path;
};

struct Manager {
        uv_loop_t *loop;
        LauncherOptions options;
        bool systemd_mode;
        uid_t uid_min;

        uid_t gateway_uid;
        gid_t gateway_gid;

        int listen_fd;
        bool listen_owned; /* bound here (and removed at exit), not passed by systemd */
        uv_poll_t listen_poll;
        bool listen_poll_open;

        Conn *conns;
        unsigned n_conns;
        Request *requests;
        unsigned n_requests;
        unsigned n_helpers;

        UserEntry *users;
        unsigned n_users;
        char *workers_dir;
        char **worker_env; /* what every worker gets besides its own account's */
        size_t n_worker_env;

        UnitStarter *units;

        unsigned long long logins_checked;
        unsigned long long workers_started; /* systemd mode */
        bool stopped;
};

/* ---- helpers ---- */

/* A name from the gateway as it may appear in a log: printable ASCII, the rest escaped, and short. */
static void sanitize(const char *s, size_t len, char *out, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;

        assert(size >= 8);
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (k + 8 >= size) {
                        memcpy(out + k, "...", 3);
                        k += 3;
                        break;
                }
                if (ch >= 0x20 && ch < 0x7f && ch != '\\')
                        out[k++] = (char)ch;
                else {
                        out[k++] = '\\';
                        out[k++] = 'x';
                        out[k++] = hex[ch >> 4];
                        out[k++] = hex[ch & 15];
                }
        }
        out[k] = '\0';
}

static uid_t read_uid_min(void)
{
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned long v;
        uid_t uid_min = 1000;
        FILE *f;

        f = fopen("/etc/login.defs", "re");
        if (!f)
                return uid_min;
        while (getline(&line, &cap, f) > 0)
                if (sscanf(line, " UID_MIN %lu", &v) == 1 && v > 0 && v < NOBODY_UID)
                        uid_min = (uid_t)v;
        fclose(f);
        return uid_min;
}

/* getpwnam_r() with a buffer of its own, which the caller frees: -ESRCH when there is no such account. */
static int lookup_account(const char *name, struct passwd *ret_pw, char **ret_buf)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd *found = NULL;
        long size = sysconf(_SC_GETPW_R_SIZE_MAX);
        int r;

        size = size > 0 ? size : 16384;
        buf = malloc((size_t)size);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(name, ret_pw, buf, (size_t)size, &found);
        if (r != 0)
                return -r;
        if (!found)
                return -ESRCH;
        *ret_buf = TAKE_PTR(buf);
        return 0;
}

/* The account behind a valid name: 0 if it may log in and have a worker; -ESRCH if there is none;
 * -EPERM for root, system accounts, nobody, the gateway's own, and members of the gateway's group (every
 * worker socket is open to that group: a member could reach everyone's workspace). */
static int account_check(Manager *m, const char *user)
{
        _cleanup_free_ char *buf = NULL;
        gid_t groups[256];
        int n = (int)ELEMENTSOF(groups);
        struct passwd pw;
        int r;

        r = lookup_account(user, &pw, &buf);
        if (r < 0)
                return r;
        if (pw.pw_uid == 0 || pw.pw_uid < m->uid_min || pw.pw_uid == NOBODY_UID || pw.pw_gid == 0 ||
            pw.pw_uid == m->gateway_uid)
                return -EPERM;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
                return -E2BIG;
        for (int i = 0; i < n; i++)
                if (groups[i] == m->gateway_gid || groups[i] == 0)
                        return -EPERM;
        return 0;
}

/* One line per decision about a user, with the user and the event as journal fields. */
_printf_(4, 5) static void log_event(int level, const char *user, const char *event, const char *format, ...)
{
        char f_user[64], f_event[64], msg[256];
        const char *fields[] = {f_user, f_event, NULL};
        va_list ap;

        (void)snprintf(f_user, sizeof(f_user), "HELIOS_USER=%s", user);
        (void)snprintf(f_event, sizeof(f_event), "HELIOS_EVENT=%s", event);
        va_start(ap, format);
        (void)vsnprintf(msg, sizeof(msg), format, ap);
        va_end(ap);
        log_struct(level, fields, "%s", msg);
}

static void update_status(Manager *m)
{
        unsigned running = 0;

        if (m->stopped)
                return;
        for (UserEntry *u = m->users; u; u = u->next)
                running += activator_worker_pid(u->activator) > 0;
        if (m->systemd_mode)
                (void)sd_notifyf(false, "STATUS=%llu workers started, %llu logins checked",
                                 m->workers_started, m->logins_checked);
        else
                (void)sd_notifyf(false, "STATUS=%u users, %u workers running, %llu logins checked",
                                 m->n_users, running, m->logins_checked);
}

/* ---- connections ---- */

static void conn_close(Conn *c, const char *why);
static void on_conn_event(uv_poll_t *p, int status, int events);

static void conn_update_poll(Conn *c)
{
        int events = 0;

        if (c->closed)
                return;
        if (c->n_out < CONN_OUT_MAX)
                events |= UV_READABLE;
        if (c->out_first)
                events |= UV_WRITABLE;
        if (events)
                (void)uv_poll_start(&c->poll, events, on_conn_event);
        else
                (void)uv_poll_stop(&c->poll);
}

static void conn_flush(Conn *c)
{
        while (c->out_first) {
                Reply *r = c->out_first;
                ssize_t n = send(c->fd, r->data, r->len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (n < 0) {
                        conn_close(c, "cannot send");
                        return;
                }
                c->out_first = r->next;
                if (!c->out_first)
                        c->out_last = NULL;
                c->n_out--;
                free(r);
        }
}

/* One packet: "ID\0STATUS\0[ARG\0]". A packet is sent whole or not at all. */
static void conn_reply(Conn *c, const char *id, const char *status, const char *arg)
{
        size_t li = strlen(id) + 1, ls = strlen(status) + 1, la = arg ? strlen(arg) + 1 : 0;
        Reply *r;

        if (c->closed)
                return;
        r = malloc(sizeof(Reply) + li + ls + la);
        if (!r) {
                conn_close(c, "out of memory");
                return;
        }
        r->next = NULL;
        r->len = li + ls + la;
        memcpy(r->data, id, li);
        memcpy(r->data + li, status, ls);
        if (arg)
                memcpy(r->data + li + ls, arg, la);
        if (c->out_last)
                c->out_last->next = r;
        else
                c->out_first = r;
        c->out_last = r;
        c->n_out++;
        conn_flush(c);
        conn_update_poll(c);
}

static void conn_error(Conn *c, const char *id, const char *reason)
{
        conn_reply(c, id, LAUNCHER_REPLY_ERROR, reason);
}

/* ---- requests answered later ---- */

static Request *request_new(Conn *c, RequestType type, const char *id, const char *user)
{
        Manager *m = c->manager;
        Request *r = calloc(1, sizeof(Request));

        if (!r)
                return NULL;
        r->manager = m;
        r->conn = c;
        r->type = type;
        strcpy(r->id, id);
        strcpy(r->user, user);
        r->started_ms = uv_now(m->loop);
        r->next = m->requests;
        if (m->requests)
                m->requests->prev = r;
        m->requests = r;
        m->n_requests++;
        c->in_flight++;
        return r;
}

static void request_free(Request *r)
{
        Manager *m = r->manager;

        if (r->prev)
                r->prev->next = r->next;
        else
                m->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        m->n_requests--;
        if (r->conn)
                r->conn->in_flight--;
        unit_job_cancel(r->job);
        free(r);
}

static void request_answer(Request *r, const char *status, const char *arg)
{
        if (r->conn) {
                Conn *c = r->conn;
                conn_reply(c, r->id, status, arg);
                if (!c->closed)
                        conn_update_poll(c);
        }
}

/* ---- auth: a PAM helper per check ---- */

static void on_helper_handle_closed(uv_handle_t *h)
{
        Request *r = h->data;

        if (--r->open_handles == 0)
                request_free(r);
}

static void helper_close(Request *r)
{
        uv_handle_t *handles[] = {(uv_handle_t *)&r->process, (uv_handle_t *)&r->input,
                                  (uv_handle_t *)&r->timer};

        for (size_t i = 0; i < ELEMENTSOF(handles); i++)
                if (handles[i]->data && !uv_is_closing(handles[i]))
                        uv_close(handles[i], on_helper_handle_closed);
}

static void on_helper_exit(uv_process_t *p, int64_t status, int sig)
{
        Request *r = container_of(p, Request, process);
        Manager *m = r->manager;
        uint64_t ms = uv_now(m->loop) - r->started_ms;

        r->exited = true;
        m->n_helpers--;
        m->logins_checked++;
        if (r->timed_out) {
                log_event(LOG_ERR, r->user, "login-timeout", "PAM did not answer for %s within %llu ms.",
                          r->user, (unsigned long long)m->options.pam_timeout_ms);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_TIMEOUT);
        } else if (sig == 0 && status == PAM_HELPER_EXIT_OK) {
                log_event(LOG_INFO, r->user, "login-ok", "PAM accepted %s.", r->user);
                request_answer(r, LAUNCHER_REPLY_OK, NULL);
        } else if (sig == 0 && status == PAM_HELPER_EXIT_DENIED) {
                log_event(LOG_NOTICE, r->user, "login-denied", "PAM denied %s.", r->user);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_DENIED);
        } else {
                log_event(LOG_ERR, r->user, "login-failed", "Checking the password of %s failed%s.", r->user,
                          sig ? " (the helper was killed)" : "");
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
        }
        log_debug("PAM check of %s took %llu ms.", r->user, (unsigned long long)ms);
        helper_close(r);
        update_status(m);
}

static void on_helper_timeout(uv_timer_t *t)
{
        Request *r = container_of(t, Request, timer);

        if (r->exited)
                return;
        r->timed_out = true;
        /* The helper leads its own process group (it was started detached): whatever a PAM module
         * started goes with it. */
        (void)kill(-r->process.pid, SIGKILL);
}

static void handle_auth(Conn *c, const char *id, const char *user, const char *password, size_t password_len)
{
        Manager *m = c->manager;
        char self[] = "/proc/self/exe";
        char *args[] = {(char *)"helios-launcher", (char *)"--pam-helper", (char *)m->options.pam_service,
                        NULL};
        uv_stdio_container_t stdio[3];
        uv_process_options_t po = {};
        char input[LAUNCHER_USER_MAX + 1 + LAUNCHER_PASSWORD_MAX + 1];
        size_t ulen = strlen(user);
        Request *r;
        int k;

        k = account_check(m, user);
        if (k == -EPERM) {
                log_event(
                    LOG_WARNING, user, "login-refused",
                    "Refusing a login as %s: root, a system account, nobody or in the gateway's group.",
                    user);
                conn_error(c, id, LAUNCHER_ERROR_REFUSED);
                return;
        }
        if (k < 0 && k != -ESRCH) {
                log_error_errno(k, "Cannot look up the account %s: %m", user);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        /* An unknown name goes to PAM all the same: answering it sooner would tell which names exist. */
        if (c->in_flight >= m->options.max_requests_per_connection ||
            m->n_requests >= m->options.max_requests || m->n_helpers >= m->options.max_pam_helpers) {
                log_event(LOG_WARNING, user, "login-busy", "Too many logins in progress; turning away %s.",
                          user);
                conn_error(c, id, LAUNCHER_ERROR_BUSY);
                return;
        }

        r = request_new(c, REQUEST_AUTH, id, user);
        if (!r) {
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        k = uv_pipe_init(m->loop, &r->input, 0);
        if (k < 0)
                goto fail;
        r->input.data = r;
        r->open_handles++;
        k = uv_timer_init(m->loop, &r->timer);
        if (k < 0)
                goto fail;
        r->timer.data = r;
        r->open_handles++;

        stdio[0] = (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_READABLE_PIPE,
                                          .data.stream = (uv_stream_t *)&r->input};
        stdio[1] = (uv_stdio_container_t){.flags = UV_IGNORE};
        stdio[2] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO};
        po = (uv_process_options_t){
            .exit_cb = on_helper_exit,
            .file = self,
            .args = args,
            .env = m->worker_env, /* no secrets of ours, no LISTEN_* */
            .flags = UV_PROCESS_DETACHED,
            .stdio_count = 3,
            .stdio = stdio,
        };
        /* The handle joins the loop even when the start fails, and is closed either way. */
        r->process.data = r;
        r->open_handles++;
        k = uv_spawn(m->loop, &r->process, &po);
        if (k < 0) {
                log_error("Cannot start a PAM helper: %s", uv_strerror(k));
                r->exited = true;
                goto fail;
        }
        m->n_helpers++;

        /* A fresh pipe holds far more than one packet: the write is complete or the helper is gone. */
        memcpy(input, user, ulen + 1);
        memcpy(input + ulen + 1, password, password_len + 1);
        uv_buf_t buf = uv_buf_init(input, (unsigned)(ulen + 1 + password_len + 1));
        k = uv_try_write((uv_stream_t *)&r->input, &buf, 1);
        explicit_bzero(input, sizeof(input));
        if (k != (int)buf.len)
                log_error("Cannot hand the credentials to the PAM helper: %s",
                          k < 0 ? uv_strerror(k) : "short write");
        /* EOF tells the helper the input is complete (and a short write makes it fail). */
        uv_close((uv_handle_t *)&r->input, on_helper_handle_closed);
        (void)uv_timer_start(&r->timer, on_helper_timeout, m->options.pam_timeout_ms, 0);
        return;
fail:
        conn_error(c, id, LAUNCHER_ERROR_FAILED);
        r->conn->in_flight--;
        r->conn = NULL;
        if (r->open_handles == 0)
                request_free(r);
        else
                helper_close(r);
}

/* ---- worker: embedded mode ---- */

static void write_str(const char *s)
{
        ssize_t n = write(STDERR_FILENO, s, strlen(s));
        (void)n;
}

/* Between fork and exec: only async-signal-safe calls, so the failure is told without stdio. */
static int user_child_setup(void *userdata)
{
        UserEntry *u = userdata;
        int r = sandbox_enter(u->plan);

        if (r < 0) {
                const char *name = strerrorname_np(-r);
                write_str("helios-launcher: cannot enter the sandbox of ");
                write_str(u->name);
                write_str(": ");
                write_str(name ? name : "error");
                write_str("\n");
        }
        return r;
}

static void on_activator_change(void *userdata)
{
        UserEntry *u = userdata;

        update_status(u->manager);
}

static UserEntry *user_entry_free(UserEntry *u)
{
        if (!u)
                return NULL;
        activator_free(u->activator);
        sandbox_plan_free(u->plan);
        free(u->socket_path);
        free(u);
        return NULL;
}

static int push_env(char ***v, size_t *n, const char *key, const char *value)
{
        char *e, **p;

        if (asprintf(&e, "%s=%s", key, value) < 0)
                return -ENOMEM;
        p = realloc(*v, (*n + 2) * sizeof(char *));
        if (!p) {
                free(e);
                return -ENOMEM;
        }
        p[(*n)++] = e;
        p[*n] = NULL;
        *v = p;
        return 0;
}

static int user_entry_new(Manager *m, const char *user, UserEntry **ret)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        char allow[48];
        char **env = NULL;
        size_t n_env = 0;
        UserEntry *u;
        int r;

        u = calloc(1, sizeof(UserEntry));
        if (!u)
                return -ENOMEM;
        u->manager = m;
        strcpy(u->name, user);
        SandboxParams sp = {
            .user = user,
            .hide = (const char *const[]){m->options.runtime_dir},
            .n_hide = 1,
            .outbound_network = m->options.outbound_network,
            .pass_credentials = true,
        };
        r = sandbox_plan_new(&sp, &u->plan);
        if (r < 0) {
                log_error_errno(r, "Cannot prepare the sandbox of %s: %m", user);
                goto fail;
        }
        if (asprintf(&u->socket_path, "%s/%s.sock", m->workers_dir, user) < 0) {
                u->socket_path = NULL;
                r = -ENOMEM;
                goto fail;
        }

        /* The worker's environment: its account's, and the few settings of ours it should share. */
        r = lookup_account(user, &pw, &buf);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < m->n_worker_env && r >= 0; i++) {
                const char *eq = strchr(m->worker_env[i], '=');
                _cleanup_free_ char *key = strndup(m->worker_env[i], (size_t)(eq - m->worker_env[i]));
                r = key ? push_env(&env, &n_env, key, eq + 1) : -ENOMEM;
        }
        if (r >= 0)
                r = push_env(&env, &n_env, POLICY_CREDENTIALS_FD_ENV, POLICY_CREDENTIALS_FD_STR);
        if (r >= 0)
                r = push_env(&env, &n_env, "HOME", pw.pw_dir);
        if (r >= 0)
                r = push_env(&env, &n_env, "USER", pw.pw_name);
        if (r >= 0)
                r = push_env(&env, &n_env, "LOGNAME", pw.pw_name);
        if (r >= 0)
                r = push_env(&env, &n_env, "SHELL", pw.pw_shell && pw.pw_shell[0] ? pw.pw_shell : "/bin/sh");
        if (r < 0)
                goto fail;

        (void)snprintf(allow, sizeof(allow), "--allow-group=%u", (unsigned)m->gateway_gid);
        char *argv[] = {(char *)m->options.worker, allow, NULL};
        ActivatorParams ap = {
            .socket_path = u->socket_path,
            .worker_path = m->options.worker,
            .worker_argv = argv,
            .child_setup = user_child_setup,
            .on_change = on_activator_change,
            .userdata = u,
            .worker_envp = env,
            .shared = true,
            .worker_uid = sandbox_plan_uid(u->plan),
            .socket_gid = m->gateway_gid,
            .socket_mode = 0660,
            .output_tag = user,
        };
        r = activator_new(m->loop, &ap, &u->activator);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < n_env; i++)
                free(env[i]);
        free(env);
        *ret = u;
        return 0;
fail:
        for (size_t i = 0; env && i < n_env; i++)
                free(env[i]);
        free(env);
        user_entry_free(u);
        return r;
}

/* At the cap, a user whose socket has no worker behind it gives way: the socket goes, and the next
 * request for that user makes it again. */
static void evict_idle_user(Manager *m)
{
        for (UserEntry **p = &m->users; *p; p = &(*p)->next) {
                UserEntry *u = *p;
                if (activator_worker_pid(u->activator) > 0)
                        continue;
                log_info("Closing the idle worker socket of %s to make room.", u->name);
                *p = u->next;
                m->n_users--;
                activator_stop(u->activator);
                user_entry_free(u);
                return;
        }
}

static void handle_worker_embedded(Conn *c, const char *id, const char *user)
{
        Manager *m = c->manager;
        UserEntry *u;
        int r;

        for (u = m->users; u; u = u->next)
                if (streq(u->name, user)) {
                        /* A worker found running at start may have gone since: look again. */
                        activator_recheck(u->activator);
                        conn_reply(c, id, LAUNCHER_REPLY_OK, u->socket_path);
                        return;
                }
        if (m->n_users >= m->options.max_users)
                evict_idle_user(m);
        if (m->n_users >= m->options.max_users) {
                log_event(LOG_WARNING, user, "worker-busy",
                          "No room for the worker socket of %s: %u users have one.", user, m->n_users);
                conn_error(c, id, LAUNCHER_ERROR_BUSY);
                return;
        }
        r = user_entry_new(m, user, &u);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the worker socket of %s: %m", user);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        r = activator_start(u->activator);
        if (r < 0) {
                log_error_errno(r, "Cannot listen on %s for the worker of %s: %m", u->socket_path, user);
                activator_stop(u->activator);
                user_entry_free(u);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        u->next = m->users;
        m->users = u;
        m->n_users++;
        log_event(LOG_INFO, user, "worker-socket", "Worker socket of %s ready.", user);
        conn_reply(c, id, LAUNCHER_REPLY_OK, u->socket_path);
        update_status(m);
}

/* ---- worker: under systemd ---- */

static void on_unit_started(int r, void *userdata)
{
        Request *req = userdata;
        Manager *m = req->manager;
        _cleanup_free_ char *path = NULL;

        req->job = NULL;
        if (r >= 0 && asprintf(&path, "%s/%s.sock", m->workers_dir, req->user) < 0) {
                path = NULL;
                r = -ENOMEM;
        }
        if (r >= 0) {
                m->workers_started++;
                request_answer(req, LAUNCHER_REPLY_OK, path);
        } else
                request_answer(req, LAUNCHER_REPLY_ERROR,
                               r == -ETIMEDOUT ? LAUNCHER_ERROR_TIMEOUT : LAUNCHER_ERROR_FAILED);
        request_free(req);
        update_status(m);
}

static void handle_worker_systemd(Conn *c, const char *id, const char *user)
{
        Manager *m = c->manager;
        char escaped[UNIT_ESCAPED_USER_MAX], unit[UNIT_ESCAPED_USER_MAX + 32];
        Request *r;
        int k;

        if (c->in_flight >= m->options.max_requests_per_connection ||
            m->n_requests >= m->options.max_requests) {
                conn_error(c, id, LAUNCHER_ERROR_BUSY);
                return;
        }
        k = unit_name_escape(user, escaped, sizeof(escaped));
        assert(k >= 0);
        (void)snprintf(unit, sizeof(unit), "helios-worker@%s.socket", escaped);
        k = worker_home_dropin_write(m->options.unit_dropin_dir, escaped, user);
        if (k < 0) {
                log_event(LOG_ERR, user, "worker-failed", "Cannot give %s's worker its home: %s.", user,
                          strerror(-k));
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        if (k > 0)
                log_event(LOG_WARNING, user, "worker-home",
                          "The home of %s changed; a worker unit loaded already keeps the old one until "
                          "systemctl daemon-reload.",
                          user);
        r = request_new(c, REQUEST_WORKER, id, user);
        if (!r) {
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        k = unit_starter_start(m->units, unit, on_unit_started, r, &r->job);
        if (k < 0) {
                request_free(r);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
        }
}

static void handle_worker(Conn *c, const char *id, const char *user)
{
        Manager *m = c->manager;
        int k;

        k = account_check(m, user);
        if (k == -EPERM || k == -ESRCH) {
                log_event(LOG_WARNING, user, "worker-refused", "Refusing a worker for %s: %s.", user,
                          k == -ESRCH ? "no such account"
                                      : "root, a system account, nobody or in the gateway's group");
                conn_error(c, id, LAUNCHER_ERROR_REFUSED);
                return;
        }
        if (k < 0) {
                log_error_errno(k, "Cannot look up the account %s: %m", user);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        if (m->systemd_mode)
                handle_worker_systemd(c, id, user);
        else
                handle_worker_embedded(c, id, user);
}

/* ---- packets ---- */

/* Split a packet into its NUL-terminated fields; -EBADMSG unless it is exactly that. */
static int split_fields(char *buf, size_t n, char *fields[FIELDS_MAX], size_t lens[FIELDS_MAX])
{
        char *p = buf, *end = buf + n;
        int k = 0;

        if (n == 0 || buf[n - 1] != '\0')
                return -EBADMSG;
        while (p < end) {
                char *z = memchr(p, '\0', (size_t)(end - p));
                if (k == FIELDS_MAX)
                        return -EBADMSG;
                fields[k] = p;
                lens[k++] = (size_t)(z - p);
                p = z + 1;
        }
        return k;
}

static bool id_valid(const char *s, size_t len)
{
        if (len == 0 || len > LAUNCHER_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static void conn_handle_packet(Conn *c, char *buf, size_t n)
{
        char *f[FIELDS_MAX];
        size_t len[FIELDS_MAX];
        char shown[80];
        int k;

        k = split_fields(buf, n, f, len);
        if (k < 2 || !id_valid(f[0], len[0])) {
                conn_close(c, "malformed packet");
                return;
        }
        if (streq(f[1], LAUNCHER_OP_AUTH)) {
                if (k != 4 || len[2] > LAUNCHER_USER_MAX || len[3] > LAUNCHER_PASSWORD_MAX) {
                        conn_close(c, "malformed auth request");
                        return;
                }
        } else if (streq(f[1], LAUNCHER_OP_WORKER)) {
                if (k != 3 || len[2] > LAUNCHER_USER_MAX) {
                        conn_close(c, "malformed worker request");
                        return;
                }
        } else {
                conn_close(c, "unknown operation");
                return;
        }

        if (!user_name_valid(f[2], len[2])) {
                sanitize(f[2], len[2], shown, sizeof(shown));
                log_event(LOG_WARNING, "-", "name-refused", "Refusing an invalid user name '%s'.", shown);
                conn_error(c, f[0], LAUNCHER_ERROR_REFUSED);
                return;
        }
        if (streq(f[1], LAUNCHER_OP_AUTH))
                handle_auth(c, f[0], f[2], f[3], len[3]);
        else
                handle_worker(c, f[0], f[2]);
}

static void on_conn_closed(uv_handle_t *h)
{
        Conn *c = h->data;

        safe_close(c->fd);
        while (c->out_first) {
                Reply *r = c->out_first;
                c->out_first = r->next;
                free(r);
        }
        free(c);
}

static void conn_close(Conn *c, const char *why)
{
        Manager *m = c->manager;

        if (c->closed)
                return;
        c->closed = true;
        if (why)
                log_warning("Closing the connection of the gateway (pid %d): %s.", (int)c->pid, why);
        else
                log_debug("The gateway (pid %d) closed its connection.", (int)c->pid);
        /* Checks in progress run to their end (or their time limit); their answers go nowhere. Unit
         * starts are left to the service manager. */
        for (Request *r = m->requests, *next; r; r = next) {
                next = r->next;
                if (r->conn != c)
                        continue;
                r->conn = NULL;
                if (r->type == REQUEST_WORKER)
                        request_free(r);
        }
        c->in_flight = 0;
        if (c->prev)
                c->prev->next = c->next;
        else
                m->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        m->n_conns--;
        uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

static void on_conn_event(uv_poll_t *p, int status, int events)
{
        Conn *c = p->data;
        char buf[LAUNCHER_MESSAGE_MAX + 1];

        if (status < 0) {
                conn_close(c, uv_strerror(status));
                return;
        }
        if (events & UV_WRITABLE) {
                conn_flush(c);
                if (c->closed)
                        return;
        }
        if (events & UV_READABLE)
                for (unsigned i = 0; i < CONN_READ_BATCH && !c->closed && c->n_out < CONN_OUT_MAX; i++) {
                        /* MSG_TRUNC: the packet's real length, so that an oversized one is refused rather
                         * than read as its first 4 KiB. */
                        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                break;
                        if (n < 0) {
                                conn_close(c, "receive failed");
                                return;
                        }
                        if (n == 0) {
                                /* End of the connection, or an empty packet: either way it is over. */
                                conn_close(c, NULL);
                                return;
                        }
                        if ((size_t)n > LAUNCHER_MESSAGE_MAX) {
                                explicit_bzero(buf, sizeof(buf));
                                conn_close(c, "packet over the size limit");
                                return;
                        }
                        conn_handle_packet(c, buf, (size_t)n);
                        /* It may have held a password. */
                        explicit_bzero(buf, (size_t)n);
                }
        conn_update_poll(c);
}

static void on_listen_event(uv_poll_t *p, int status, int events)
{
        Manager *m = p->data;

        for (unsigned i = 0; i < 16; i++) {
                struct ucred cred;
                socklen_t len = sizeof(cred);
                int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                Conn *c;

                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "accept() failed, ignoring: %m");
                        return;
                }
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                        log_warning_errno(errno, "Cannot tell who connected, closing: %m");
                        safe_close(fd);
                        continue;
                }
                if (cred.uid != m->gateway_uid) {
                        char f_event[] = "HELIOS_EVENT=peer-refused";
                        const char *fields[] = {f_event, NULL};
                        log_struct(
                            LOG_WARNING, fields,
                            "Refusing a client with uid %u (pid %d): only the gateway (uid %u) is served.",
                            (unsigned)cred.uid, (int)cred.pid, (unsigned)m->gateway_uid);
                        safe_close(fd);
                        continue;
                }
                if (m->n_conns >= m->options.max_connections) {
                        log_warning("Too many connections from the gateway; closing a new one (pid %d).",
                                    (int)cred.pid);
                        safe_close(fd);
                        continue;
                }
                c = calloc(1, sizeof(Conn));
                if (!c || uv_poll_init(m->loop, &c->poll, fd) < 0) {
                        log_oom();
                        free(c);
                        safe_close(fd);
                        continue;
                }
                c->manager = m;
                c->fd = fd;
                c->pid = cred.pid;
                c->poll.data = c;
                c->next = m->conns;
                if (m->conns)
                        m->conns->prev = c;
                m->conns = c;
                m->n_conns++;
                (void)uv_poll_start(&c->poll, UV_READABLE, on_conn_event);
                log_info("The gateway (pid %d) connected.", (int)cred.pid);
        }
}

/* ---- set-up ---- */

/* --listen PATH: a socket only the gateway's group may open, the gateway's uid being checked on accept
 * all the same. */
static int listen_on_path(Manager *m, const char *path)
{
        _cleanup_close_ int fd = -1;
        int r;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        /* Another launcher still answering there keeps it. */
        r = unix_socket_remove_stale(path, SOCK_SEQPACKET);
        if (r < 0)
                return r;
        r = unix_socket_bind(fd, path, m->gateway_gid, 0660);
        if (r < 0)
                return r;
        if (listen(fd, 64) < 0) {
                r = negative_errno();
                (void)unlink(path);
                return r;
        }
        m->listen_owned = true;
        m->listen_fd = TAKE_FD(fd);
        return 0;
}

static int listen_from_systemd(Manager *m)
{
        int n = sd_listen_fds(true), flags;

        if (n < 0)
                return n;
        if (n == 0)
                return -ENOENT;
        if (n != 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
                log_error(
                    "Expected one listening SOCK_SEQPACKET Unix socket from systemd, got %d descriptors.",
                    n);
                return -EINVAL;
        }
        flags = fcntl(SD_LISTEN_FDS_START, F_GETFL);
        if (flags < 0 || fcntl(SD_LISTEN_FDS_START, F_SETFL, flags | O_NONBLOCK) < 0 ||
            fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC) < 0)
                return negative_errno();
        m->listen_fd = SD_LISTEN_FDS_START;
        return 0;
}

/* What the PAM helpers and workers inherit of our environment: a plain PATH, the locale, and the
 * settings of logging and of the sanitizers the tests run under. */
static int build_worker_env(Manager *m)
{
        static const char *const passed[] = {
            "LANG",         "LC_ALL",        "TZ",           "HELIOS_LOG_LEVEL",
            "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "JOURNAL_STREAM"};
        int r;

        r = push_env(&m->worker_env, &m->n_worker_env, "PATH", "/usr/local/bin:/usr/bin:/bin");
        for (size_t i = 0; i < ELEMENTSOF(passed) && r >= 0; i++) {
                const char *v = getenv(passed[i]);
                if (v)
                        r = push_env(&m->worker_env, &m->n_worker_env, passed[i], v);
        }
        return r;
}

int manager_new(uv_loop_t *loop, const LauncherOptions *o, Manager **ret)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        Manager *m;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return log_oom();
        m->loop = loop;
        m->options = *o;
        m->listen_fd = -1;
        m->uid_min = read_uid_min();

        r = lookup_account(o->gateway_user, &pw, &buf);
        if (r < 0) {
                free(m);
                return log_error_errno(r, "Cannot find the gateway's account %s: %m", o->gateway_user);
        }
        if (pw.pw_uid == 0 || pw.pw_gid == 0) {
                log_error("The gateway must not run as root or in root's group.");
                free(m);
                return -EPERM;
        }
        m->gateway_uid = pw.pw_uid;
        m->gateway_gid = pw.pw_gid;

        m->systemd_mode =
            o->mode == LAUNCHER_MODE_SYSTEMD || (o->mode == LAUNCHER_MODE_AUTO && sd_booted() > 0);
        if (asprintf(&m->workers_dir, "%s/workers", o->runtime_dir) < 0) {
                m->workers_dir = NULL;
                manager_free(m);
                return log_oom();
        }
        r = build_worker_env(m);
        if (r < 0) {
                manager_free(m);
                return log_oom();
        }
        *ret = m;
        return 0;
}

int manager_start(Manager *m)
{
        int r;

        if (m->systemd_mode) {
                r = unit_starter_new(m->loop, m->options.start_timeout_ms, &m->units);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up the service manager connection: %m");
        } else {
                /* The runtime directory may be crossed by all; workers/ only by the gateway's group, so a
                 * user cannot even see who else has a workspace. */
                r = activator_prepare_shared_directory(m->options.runtime_dir, 0755, getegid());
                if (r < 0)
                        return log_error_errno(r, "Cannot use %s as the runtime directory: %m",
                                               m->options.runtime_dir);
                r = activator_prepare_shared_directory(m->workers_dir, 0750, m->gateway_gid);
                if (r < 0)
                        return log_error_errno(r, "Cannot use %s for the worker sockets: %m",
                                               m->workers_dir);
        }

        r = listen_from_systemd(m);
        if (r == -ENOENT && m->options.listen_path) {
                r = listen_on_path(m, m->options.listen_path);
                if (r < 0)
                        return log_error_errno(r, "Cannot listen on %s: %m", m->options.listen_path);
        } else if (r == -ENOENT)
                return log_error_errno(r, "No socket from systemd and no --listen PATH.");
        else if (r < 0)
                return log_error_errno(r, "Cannot use the socket passed by systemd: %m");

        r = uv_poll_init(m->loop, &m->listen_poll, m->listen_fd);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the listening socket: %s", uv_strerror(r));
        m->listen_poll.data = m;
        m->listen_poll_open = true;
        r = uv_poll_start(&m->listen_poll, UV_READABLE, on_listen_event);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the listening socket: %s", uv_strerror(r));

        log_info("Serving the gateway (%s, uid %u) in %s mode; PAM service %s; worker sockets in %s.",
                 m->options.gateway_user, (unsigned)m->gateway_uid, m->systemd_mode ? "systemd" : "embedded",
                 m->options.pam_service, m->workers_dir);
        (void)sd_notify(false, "READY=1");
        update_status(m);
        return 0;
}

void manager_stop(Manager *m)
{
        if (!m || m->stopped)
                return;
        (void)sd_notify(false, "STOPPING=1");
        m->stopped = true;
        if (m->listen_poll_open) {
                uv_close((uv_handle_t *)&m->listen_poll, NULL);
                m->listen_poll_open = false;
        }
        if (m->listen_owned)
                (void)unlink(m->options.listen_path);
        m->listen_fd = safe_close(m->listen_fd);
        while (m->conns)
                conn_close(m->conns, NULL);
        /* Checks still running are abandoned, their helpers killed. */
        for (Request *r = m->requests; r; r = r->next)
                if (r->type == REQUEST_AUTH && !r->exited) {
                        (void)kill(-r->process.pid, SIGKILL);
                        r->exited = true;
                        m->n_helpers--;
                        helper_close(r);
                }
        for (UserEntry *u = m->users; u; u = u->next)
                activator_stop(u->activator);
        unit_starter_stop(m->units);
        log_info("Stopped; running workers keep running.");
}

Manager *manager_free(Manager *m)
{
        if (!m)
                return NULL;
        assert(!m->requests && !m->conns);
        while (m->users) {
                UserEntry *u = m->users;
                m->users = u->next;
                user_entry_free(u);
        }
        unit_starter_free(m->units);
        for (size_t i = 0; i < m->n_worker_env; i++)
                free(m->worker_env[i]);
        free(m->worker_env);
        free(m->workers_dir);
        free(m);
        return NULL;
}
