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

#include "account.h"
#include "embedded-link.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "packet.h"
#include "pam-check.h"
#include "policy.h"
#include "session-holder.h"
#include "socket-util.h"
#include "strv.h"
#include "unit-starter.h"
#include "user-name.h"
#include "worker-home.h"

/* Replies waiting for the gateway to read, with those of requests still in flight; past this the
 * connection is not read until some are done. */
#define CONN_OUT_MAX 64
/* Packets handled per wake-up of one connection, so that one busy peer cannot starve the loop. */
#define CONN_READ_BATCH 32
#define FIELDS_MAX      5

typedef struct Conn Conn;
typedef struct Request Request;

struct Conn {
        Manager *manager;
        Conn *prev, *next;
        int fd;
        uv_poll_t poll;
        pid_t pid;
        unsigned in_flight;
        PacketQueue out;
        bool closed;
};

typedef enum RequestType {
        REQUEST_AUTH,
        REQUEST_ACCOUNT,
        REQUEST_WORKER,
        _REQUEST_TYPE_MAX,
} RequestType;

/* A request answered later: a PAM check, a unit start, or a worker socket from helios-embedded. */
struct Request {
        Manager *manager;
        Request *prev, *next;
        Conn *conn; /* NULL once the connection is gone: the answer is dropped */
        RequestType type;
        char id[LAUNCHER_ID_MAX + 1];
        char user[LAUNCHER_USER_MAX + 1];
        uint64_t started_ms;

        PamCheck *pam;                           /* auth */
        UnitJob *job;                            /* worker, under systemd: the check, then the start */
        UnitProperty props[UNIT_PROPERTIES_MAX]; /* worker, under systemd: set at the start */
        size_t n_props;
        EmbeddedJob *embedded; /* worker, embedded mode */
};

/* A PAM login session held by a helios-session process. It stays here, counted against the bounds and
 * holding its line, until the helper has exited. */
typedef struct HeldSession {
        Manager *manager;
        struct HeldSession *prev, *next;
        Conn *conn; /* NULL once ended (closed by the gateway, or its connection gone) */
        char key[LAUNCHER_KEY_MAX + 1];
        char user[LAUNCHER_USER_MAX + 1];
        char id[LAUNCHER_ID_MAX + 1]; /* of the session-open still to answer */
        bool pending;                 /* the answer to session-open is still to come */
        bool opening;                 /* counted in n_helpers until its PAM session is open */
        unsigned line;
        SessionHolder *holder;
} HeldSession;

struct Manager {
        uv_loop_t *loop;
        LauncherOptions options;
        bool systemd_mode;
        AccountPolicy accounts;

        int listen_fd;
        bool listen_owned; /* bound here (and removed at exit), not passed by systemd */
        uv_poll_t listen_poll;
        bool listen_poll_open;

        Conn *conns;
        unsigned n_conns;
        Request *requests;
        unsigned n_requests;
        unsigned n_helpers;

        HeldSession *sessions;
        unsigned n_sessions;
        bool lines[LAUNCHER_SESSIONS_MAX]; /* web/N in use */
        char *session_path;                /* helios-session */

        char *workers_dir;
        char **worker_env; /* what PAM helpers and workers get of ours */
        size_t n_worker_env;

        UnitStarter *units;     /* systemd mode */
        EmbeddedLink *embedded; /* embedded mode */
        unsigned embedded_users, embedded_running;
        bool embedded_ready, failed;
        void (*on_fatal)(void *userdata);
        void *fatal_userdata;

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
        if (m->stopped)
                return;
        if (m->systemd_mode)
                (void)sd_notifyf(false, "STATUS=%llu workers started, %llu logins checked, %u sessions",
                                 m->workers_started, m->logins_checked, m->n_sessions);
        else
                (void)sd_notifyf(false,
                                 "STATUS=%u users, %u workers running, %llu logins checked, %u sessions",
                                 m->embedded_users, m->embedded_running, m->logins_checked, m->n_sessions);
}

/* ---- connections ---- */

static void conn_close(Conn *c, const char *why);
static void on_conn_event(uv_poll_t *p, int status, int events);

/* Room for another request: every request in flight is an answer to come, and answers the gateway has
 * not read count against the same limit. A connection without room is not read until there is. */
static bool conn_has_room(const Conn *c)
{
        return c->out.n + c->in_flight < CONN_OUT_MAX;
}

static void conn_update_poll(Conn *c)
{
        int events = 0;

        if (c->closed)
                return;
        if (conn_has_room(c))
                events |= UV_READABLE;
        if (c->out.first)
                events |= UV_WRITABLE;
        if (events)
                (void)uv_poll_start(&c->poll, events, on_conn_event);
        else
                (void)uv_poll_stop(&c->poll);
}

static void conn_flush(Conn *c)
{
        if (packet_queue_flush(&c->out, c->fd) < 0)
                conn_close(c, "cannot send");
}

/* One packet: "ID\0STATUS\0[ARG\0]". A packet is sent whole or not at all. */
static void conn_reply(Conn *c, const char *id, const char *status, const char *arg)
{
        if (c->closed)
                return;
        if (packet_queue_push(&c->out, (const char *const[]){id, status, arg}, arg ? 3 : 2) < 0) {
                conn_close(c, "out of memory");
                return;
        }
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
        if (r->conn) {
                r->conn->in_flight--;
                conn_update_poll(r->conn);
        }
        unit_job_cancel(r->job);
        embedded_job_cancel(r->embedded);
        pam_check_abandon(r->pam);
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

static void on_account_checked(Request *r, PamCheckResult result)
{
        Manager *m = r->manager;

        switch (result) {
        case PAM_CHECK_OK:
                log_event(LOG_DEBUG, r->user, "account-ok", "The account %s may still log in.", r->user);
                request_answer(r, LAUNCHER_REPLY_OK, NULL);
                break;
        case PAM_CHECK_DENIED:
                /* A locked password or an expired account is told apart: the page says so. */
                if (account_workspace_check(r->user) == -EKEYEXPIRED) {
                        log_event(LOG_NOTICE, r->user, "account-locked",
                                  "The account %s may no longer log in: the password is locked or the "
                                  "account expired.",
                                  r->user);
                        request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_LOCKED);
                        break;
                }
                log_event(LOG_NOTICE, r->user, "account-denied",
                          "The account %s may no longer log in (refused by PAM).", r->user);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_DENIED);
                break;
        case PAM_CHECK_TIMEOUT:
                log_event(LOG_ERR, r->user, "account-timeout", "PAM did not answer for %s in time.",
                          r->user);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_TIMEOUT);
                break;
        default:
                log_event(LOG_ERR, r->user, "account-failed", "Checking the account %s failed.", r->user);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
                break;
        }
        request_free(r);
        update_status(m);
}

static void on_pam_checked(PamCheckResult result, void *userdata)
{
        Request *r = userdata;
        Manager *m = r->manager;
        uint64_t ms = uv_now(m->loop) - r->started_ms;

        r->pam = NULL;
        m->n_helpers--;
        if (r->type == REQUEST_ACCOUNT) {
                on_account_checked(r, result);
                return;
        }
        m->logins_checked++;
        switch (result) {
        case PAM_CHECK_TIMEOUT:
                log_event(LOG_ERR, r->user, "login-timeout", "PAM did not answer for %s within %llu ms.",
                          r->user, (unsigned long long)m->options.pam_timeout_ms);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_TIMEOUT);
                break;
        case PAM_CHECK_OK:
                log_event(LOG_INFO, r->user, "login-ok", "PAM accepted %s.", r->user);
                request_answer(r, LAUNCHER_REPLY_OK, NULL);
                break;
        case PAM_CHECK_DENIED:
                log_event(LOG_NOTICE, r->user, "login-denied", "PAM denied %s.", r->user);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_DENIED);
                break;
        default:
                log_event(LOG_ERR, r->user, "login-failed", "Checking the password of %s failed.", r->user);
                request_answer(r, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
                break;
        }
        log_debug("PAM check of %s took %llu ms.", r->user, (unsigned long long)ms);
        request_free(r);
        update_status(m);
}

/* password NULL: the "account" request, a check of the account without one. */
static void handle_auth(Conn *c, const char *id, const char *user, const char *password, size_t password_len)
{
        Manager *m = c->manager;
        PamCheckParams pp = {
            .service = m->options.pam_service,
            .timeout_ms = m->options.pam_timeout_ms,
            .envp = m->worker_env,
        };
        Request *r;
        int k;

        k = account_check(&m->accounts, user);
        if (!password && (k == -EPERM || k == -ESRCH)) {
                log_event(LOG_NOTICE, user, "account-refused", "The account %s %s.", user,
                          k == -ESRCH ? "no longer exists"
                                      : "is root, a system account, nobody or in the gateway's group");
                conn_error(c, id, LAUNCHER_ERROR_REFUSED);
                return;
        }
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

        r = request_new(c, password ? REQUEST_AUTH : REQUEST_ACCOUNT, id, user);
        if (!r) {
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        k = pam_check_start(m->loop, &pp, user, password, password_len, on_pam_checked, r, &r->pam);
        if (k < 0) {
                log_error_errno(k, "Cannot start a PAM helper: %m");
                request_free(r);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        m->n_helpers++;
}

/* ---- worker: embedded mode, through helios-embedded ---- */

static void on_embedded_answer(const char *status, const char *arg, void *userdata)
{
        Request *req = userdata;
        Manager *m = req->manager;

        req->embedded = NULL;
        /* Only the reasons helios-embedded may give go on to the gateway. */
        if (!streq(status, LAUNCHER_REPLY_OK) && !streq(arg, LAUNCHER_ERROR_BUSY) &&
            !streq(arg, LAUNCHER_ERROR_FULL))
                arg = LAUNCHER_ERROR_FAILED;
        if (streq(status, LAUNCHER_REPLY_OK))
                log_event(LOG_INFO, req->user, "worker-socket", "Worker socket of %s ready.", req->user);
        else
                log_event(LOG_WARNING, req->user, "worker-failed", "No workspace for %s: %s.", req->user,
                          arg);
        request_answer(req, status, arg);
        request_free(req);
        update_status(m);
}

/* Whether the connection or the launcher has all the requests in flight it may. */
static bool conn_refuse_busy_check(const Conn *c)
{
        const Manager *m = c->manager;

        return c->in_flight >= m->options.max_requests_per_connection ||
               m->n_requests >= m->options.max_requests;
}

/* Answers "busy" and returns true when the connection or the launcher has all the requests it may. */
static bool conn_refuse_busy(Conn *c, const char *id)
{
        if (!conn_refuse_busy_check(c))
                return false;
        conn_error(c, id, LAUNCHER_ERROR_BUSY);
        return true;
}

static void handle_worker_embedded(Conn *c, const char *id, const char *user)
{
        Manager *m = c->manager;
        Request *r;
        int k;

        if (conn_refuse_busy(c, id))
                return;
        r = request_new(c, REQUEST_WORKER, id, user);
        if (!r) {
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        k = embedded_link_worker(m->embedded, user, on_embedded_answer, r, &r->embedded);
        if (k < 0) {
                log_error_errno(k, "Cannot ask helios-embedded for the worker of %s: %m", user);
                request_free(r);
                conn_error(c, id, k == -EBUSY ? LAUNCHER_ERROR_BUSY : LAUNCHER_ERROR_FAILED);
        }
}

static void on_embedded_status(unsigned users, unsigned running, void *userdata)
{
        Manager *m = userdata;

        m->embedded_ready = true;
        m->embedded_users = users;
        m->embedded_running = running;
        update_status(m);
}

static void on_embedded_failed(void *userdata)
{
        Manager *m = userdata;

        /* Started with the launcher and gone before it was ready: the setting is wrong (the runtime
         * directory, say), and serving logins without workers would only hide it. */
        if (m->embedded_ready)
                return;
        log_error("helios-embedded could not start; stopping.");
        m->failed = true;
        if (m->on_fatal)
                m->on_fatal(m->fatal_userdata);
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
        } else {
                const char *reason = r == -ETIMEDOUT ? LAUNCHER_ERROR_TIMEOUT
                                     : r == -ERFKILL ? LAUNCHER_ERROR_MASKED
                                                     : LAUNCHER_ERROR_FAILED;
                log_event(LOG_WARNING, req->user, "worker-failed", "No workspace for %s: %s.", req->user,
                          r == -ERFKILL ? "its worker unit is masked" : reason);
                request_answer(req, LAUNCHER_REPLY_ERROR, reason);
        }
        request_free(req);
        update_status(m);
}

/* How long a worker socket that failed because systemd stopped starting its service is answered
 * "failed" without a start: a passing fault does not lock a student out for longer, and each later
 * try costs systemd's burst of starts again. The admin's reset-failed ends it at once. */
#define WORKER_FAILING_HOLD_USEC (30ULL * 1000000ULL)

static void worker_unit_start(Request *req)
{
        Manager *m = req->manager;
        char escaped[UNIT_ESCAPED_USER_MAX], unit[UNIT_ESCAPED_USER_MAX + 32],
            service[UNIT_ESCAPED_USER_MAX + 32];
        int k;

        k = unit_name_escape(req->user, escaped, sizeof(escaped));
        assert(k >= 0);
        (void)snprintf(unit, sizeof(unit), "helios-worker@%s.socket", escaped);
        (void)snprintf(service, sizeof(service), "helios-worker@%s.service", escaped);
        k = unit_starter_start(m->units, unit, service, req->props, req->n_props, on_unit_started, req,
                               &req->job);
        if (k < 0) {
                request_answer(req, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
                request_free(req);
                update_status(m);
        }
}

static void on_unit_checked(int r, void *userdata)
{
        Request *req = userdata;
        Manager *m = req->manager;

        req->job = NULL;
        /* Not failing, or the check could not tell: the start decides. */
        if (r <= 0) {
                worker_unit_start(req);
                return;
        }
        log_event(LOG_WARNING, req->user, "worker-failing",
                  "No workspace for %s: its worker service keeps failing to start.", req->user);
        request_answer(req, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
        request_free(req);
        update_status(m);
}

/* Masked by the admin (systemctl mask [--runtime]): the unit file is a link to /dev/null. Asked of the
 * service as well as of the socket, whose start would succeed with the service masked and leave every
 * connection to fail; a masked socket the manager refuses too (UnitMasked, see unit-starter.c). */
static bool worker_unit_masked(const char *escaped)
{
        static const char *const dirs[] = {"/etc/systemd/system", "/run/systemd/system"};
        static const char *const kinds[] = {"service", "socket"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                        char path[UNIT_ESCAPED_USER_MAX + 64], target[16];
                        ssize_t n;

                        (void)snprintf(path, sizeof(path), "%s/helios-worker@%s.%s", dirs[i], escaped,
                                       kinds[k]);
                        n = readlink(path, target, sizeof(target) - 1);
                        if (n < 0)
                                continue;
                        target[n] = '\0';
                        if (streq(target, "/dev/null"))
                                return true;
                }
        return false;
}

static void handle_worker_systemd(Conn *c, const char *id, const char *user)
{
        Manager *m = c->manager;
        char escaped[UNIT_ESCAPED_USER_MAX], unit[UNIT_ESCAPED_USER_MAX + 32],
            service[UNIT_ESCAPED_USER_MAX + 32];
        UnitProperty props[UNIT_PROPERTIES_MAX];
        PolicyValues values;
        size_t n = 0;
        Request *r;
        int k;

        if (conn_refuse_busy(c, id))
                return;
        /* The admin's settings for this user, set on the service before its socket starts: the unit's
         * own lines are only the defaults. A file in error fails the start rather than run the
         * workspace with other bounds. */
        k = policy_values_load(m->options.config_dir, user, &values);
        if (k < 0) {
                log_event(LOG_ERR, user, "worker-failed", "Cannot read the sandbox settings of %s.", user);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        for (size_t i = 0; i < _POLICY_SETTING_MAX && n < ELEMENTSOF(props); i++) {
                const PolicySetting *s = &policy_settings[i];
                if (s->unit_property && !s->unit_only_at_build)
                        props[n++] = (UnitProperty){s->unit_property, values.v[i]};
                else if (values.v[i] != s->value)
                        /* Only a unit file changes it: say so rather than seem to apply it. */
                        log_event(LOG_NOTICE, user, "setting-not-applied",
                                  "%s of %s is not applied under systemd: it takes a drop-in of "
                                  "helios-worker@.service.",
                                  s->key, user);
        }
        k = unit_name_escape(user, escaped, sizeof(escaped));
        assert(k >= 0);
        (void)snprintf(unit, sizeof(unit), "helios-worker@%s.socket", escaped);
        (void)snprintf(service, sizeof(service), "helios-worker@%s.service", escaped);
        if (worker_unit_masked(escaped)) {
                log_event(LOG_NOTICE, user, "worker-masked", "No workspace for %s: %s is masked.", user,
                          service);
                conn_error(c, id, LAUNCHER_ERROR_MASKED);
                return;
        }
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
        memcpy(r->props, props, n * sizeof(props[0]));
        r->n_props = n;
        /* A socket that systemd failed because its service keeps failing would start again, and leave
         * every connection to end unanswered: asked first, on the first ask as on the gateway's second
         * (after a connection that ended before the worker said anything). */
        k = unit_starter_check_failing(m->units, unit, WORKER_FAILING_HOLD_USEC, on_unit_checked, r,
                                       &r->job);
        if (k < 0)
                worker_unit_start(r);
}

/* account_check() for an operation on user's behalf: false when it refused, answered and logged. */
static bool account_allowed(Conn *c, const char *id, const char *user, const char *event, const char *what)
{
        int k = account_check(&c->manager->accounts, user);

        if (k == -EPERM || k == -ESRCH) {
                log_event(LOG_WARNING, user, event, "Refusing a %s for %s: %s.", what, user,
                          k == -ESRCH ? "no such account"
                                      : "root, a system account, nobody or in the gateway's group");
                conn_error(c, id, LAUNCHER_ERROR_REFUSED);
                return false;
        }
        if (k < 0) {
                log_error_errno(k, "Cannot look up the account %s: %m", user);
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return false;
        }
        return true;
}

static void handle_worker(Conn *c, const char *id, const char *user)
{
        Manager *m = c->manager;
        int k;

        if (!account_allowed(c, id, user, "worker-refused", "worker"))
                return;
        /* Said before any socket or unit is made for it: neither could give the user a workspace, and
         * the page tells them why. */
        k = account_workspace_check(user);
        if (k == -EKEYEXPIRED) {
                log_event(LOG_NOTICE, user, "worker-locked",
                          "No workspace for %s: the password is locked or the account expired.", user);
                conn_error(c, id, LAUNCHER_ERROR_LOCKED);
                return;
        }
        if (k == -ENOENT) {
                log_event(LOG_WARNING, user, "worker-no-home",
                          "No workspace for %s: the home directory does not exist.", user);
                conn_error(c, id, LAUNCHER_ERROR_NO_HOME);
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

/* ---- PAM login sessions, each held by a helios-session ---- */

/* The session no longer belongs to its connection: its helper is told to close it, and the entry goes
 * once the helper has exited. */
static void held_session_end(HeldSession *s)
{
        if (s->opening)
                s->manager->n_helpers--;
        s->opening = false;
        if (s->conn && s->pending) {
                s->conn->in_flight--;
                conn_update_poll(s->conn);
        }
        s->pending = false;
        s->conn = NULL;
        session_holder_end(s->holder);
}

static void on_session_opened(int r, void *userdata)
{
        HeldSession *s = userdata;
        Manager *m = s->manager;
        Conn *c = s->conn;

        if (s->opening)
                m->n_helpers--;
        s->opening = false;
        if (!c || !s->pending)
                return;
        s->pending = false;
        c->in_flight--;
        if (r >= 0) {
                log_event(LOG_INFO, s->user, "session-open", "Session of %s on web/%u open.", s->user,
                          s->line);
                conn_reply(c, s->id, LAUNCHER_REPLY_OK, NULL);
                return;
        }
        log_event(r == -EACCES ? LOG_NOTICE : LOG_ERR, s->user, "session-failed", "No session for %s: %s.",
                  s->user,
                  r == -EACCES      ? "PAM refused it"
                  : r == -ETIMEDOUT ? "PAM did not open it in time"
                                    : "PAM failed");
        /* No longer the connection's: its KEY may be opened again. */
        s->conn = NULL;
        conn_error(c, s->id,
                   r == -EACCES      ? LAUNCHER_ERROR_DENIED
                   : r == -ETIMEDOUT ? LAUNCHER_ERROR_TIMEOUT
                                     : LAUNCHER_ERROR_FAILED);
}

static void on_session_exited(void *userdata)
{
        HeldSession *s = userdata;
        Manager *m = s->manager;

        /* A helper gone by itself (killed, or PAM failed) ends the session for the gateway too; it
         * learns of it by opening the KEY again when a page next comes. */
        if (s->conn) {
                log_event(LOG_WARNING, s->user, "session-lost",
                          "The session of %s on web/%u ended by itself.", s->user, s->line);
                held_session_end(s);
        }
        if (s->prev)
                s->prev->next = s->next;
        else
                m->sessions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        m->n_sessions--;
        m->lines[s->line] = false;
        free(s);
        update_status(m);
}

static void handle_session_open(Conn *c, const char *id, const char *key, const char *user,
                                const char *rhost)
{
        Manager *m = c->manager;
        SessionHolderParams p = {
            .path = m->session_path,
            .service = m->options.pam_service,
            .utmp = m->options.utmp_path,
            .wtmp = m->options.wtmp_path,
            .timeout_ms = m->options.pam_timeout_ms,
            .envp = m->worker_env,
        };
        char line[16];
        unsigned of_user = 0, n;
        HeldSession *s;
        int k;

        if (!account_allowed(c, id, user, "session-refused", "session"))
                return;
        for (s = m->sessions; s; s = s->next) {
                if (s->conn == c && streq(s->key, key)) {
                        conn_error(c, id, LAUNCHER_ERROR_REFUSED);
                        return;
                }
                if (streq(s->user, user))
                        of_user++;
        }
        if (of_user >= LAUNCHER_SESSIONS_PER_USER || m->n_sessions >= LAUNCHER_SESSIONS_MAX ||
            m->n_helpers >= m->options.max_pam_helpers || conn_refuse_busy_check(c)) {
                log_event(LOG_WARNING, user, "session-busy", "Too many sessions; none for %s.", user);
                conn_error(c, id, LAUNCHER_ERROR_BUSY);
                return;
        }
        for (n = 0; m->lines[n]; n++)
                ;
        assert(n < LAUNCHER_SESSIONS_MAX);
        s = calloc(1, sizeof(HeldSession));
        if (!s) {
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        (void)snprintf(line, sizeof(line), "web/%u", n);
        k = session_holder_start(m->loop, &p, user, line, rhost, on_session_opened, on_session_exited, s,
                                 &s->holder);
        if (k < 0) {
                free(s);
                log_error_errno(k, "Cannot start %s: %s", m->session_path, uv_strerror(k));
                conn_error(c, id, LAUNCHER_ERROR_FAILED);
                return;
        }
        s->manager = m;
        s->conn = c;
        s->line = n;
        s->pending = true;
        s->opening = true;
        strcpy(s->key, key);
        strcpy(s->user, user);
        strcpy(s->id, id);
        s->next = m->sessions;
        if (m->sessions)
                m->sessions->prev = s;
        m->sessions = s;
        m->n_sessions++;
        m->lines[n] = true;
        m->n_helpers++;
        c->in_flight++;
        update_status(m);
}

static void handle_session_close(Conn *c, const char *id, const char *key)
{
        for (HeldSession *s = c->manager->sessions; s; s = s->next)
                if (s->conn == c && streq(s->key, key)) {
                        if (s->pending)
                                /* Never opened, as far as the gateway knows. */
                                conn_error(c, s->id, LAUNCHER_ERROR_FAILED);
                        log_event(LOG_INFO, s->user, "session-close", "Closing the session of %s on web/%u.",
                                  s->user, s->line);
                        held_session_end(s);
                        break;
                }
        conn_reply(c, id, LAUNCHER_REPLY_OK, NULL);
}

static void conn_handle_session(Conn *c, char **f, size_t *len, size_t k)
{
        char shown[80];

        if (streq(f[1], LAUNCHER_OP_SESSION_CLOSE)) {
                if (k != 3 || !launcher_key_valid(f[2], len[2])) {
                        conn_close(c, "malformed session-close request");
                        return;
                }
                handle_session_close(c, f[0], f[2]);
                return;
        }
        if (k != 5 || !launcher_key_valid(f[2], len[2]) || len[3] > LAUNCHER_USER_MAX ||
            !launcher_rhost_valid(f[4], len[4])) {
                conn_close(c, "malformed session-open request");
                return;
        }
        if (!user_name_valid(f[3], len[3])) {
                sanitize(f[3], len[3], shown, sizeof(shown));
                log_event(LOG_WARNING, "-", "name-refused", "Refusing an invalid user name '%s'.", shown);
                conn_error(c, f[0], LAUNCHER_ERROR_REFUSED);
                return;
        }
        handle_session_open(c, f[0], f[2], f[3], f[4]);
}

/* ---- packets ---- */

static void conn_handle_packet(Conn *c, char *buf, size_t n)
{
        char *f[FIELDS_MAX];
        size_t len[FIELDS_MAX];
        char shown[80];
        int k;

        k = packet_split(buf, n, f, len, FIELDS_MAX);
        if (k < 2 || !packet_id_valid(f[0], len[0])) {
                conn_close(c, "malformed packet");
                return;
        }
        if (streq(f[1], LAUNCHER_OP_SESSION_OPEN) || streq(f[1], LAUNCHER_OP_SESSION_CLOSE)) {
                conn_handle_session(c, f, len, (size_t)k);
                return;
        }
        if (streq(f[1], LAUNCHER_OP_AUTH)) {
                if (k != 4 || len[2] > LAUNCHER_USER_MAX || len[3] > LAUNCHER_PASSWORD_MAX) {
                        conn_close(c, "malformed auth request");
                        return;
                }
        } else if (streq(f[1], LAUNCHER_OP_WORKER) || streq(f[1], LAUNCHER_OP_ACCOUNT)) {
                if (k != 3 || len[2] > LAUNCHER_USER_MAX) {
                        conn_close(c, "malformed request");
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
        else if (streq(f[1], LAUNCHER_OP_ACCOUNT))
                handle_auth(c, f[0], f[2], NULL, 0);
        else
                handle_worker(c, f[0], f[2]);
}

static void on_conn_closed(uv_handle_t *h)
{
        Conn *c = h->data;

        safe_close(c->fd);
        packet_queue_clear(&c->out);
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
        /* Its sessions end with it: a gateway gone leaves no session open behind it. */
        for (HeldSession *s = m->sessions; s; s = s->next)
                if (s->conn == c)
                        held_session_end(s);
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
                for (unsigned i = 0; i < CONN_READ_BATCH && !c->closed && conn_has_room(c); i++) {
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
                if (cred.uid != m->accounts.gateway_uid) {
                        char f_event[] = "HELIOS_EVENT=peer-refused";
                        const char *fields[] = {f_event, NULL};
                        log_struct(
                            LOG_WARNING, fields,
                            "Refusing a client with uid %u (pid %d): only the gateway (uid %u) is served.",
                            (unsigned)cred.uid, (int)cred.pid, (unsigned)m->accounts.gateway_uid);
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
        r = unix_socket_bind(fd, path, m->accounts.gateway_gid, 0660);
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

        r = strv_env_push(&m->worker_env, &m->n_worker_env, "PATH", "/usr/local/bin:/usr/bin:/bin");
        for (size_t i = 0; i < ELEMENTSOF(passed) && r >= 0; i++) {
                const char *v = getenv(passed[i]);
                if (v)
                        r = strv_env_push(&m->worker_env, &m->n_worker_env, passed[i], v);
        }
        return r;
}

/* helios-embedded and helios-session live beside helios-launcher (in libexec, or in the build tree). */
static int sibling_path(const char *name, char **ret)
{
        _cleanup_free_ char *self = realpath("/proc/self/exe", NULL);
        char *slash, *p;

        if (!self)
                return negative_errno();
        slash = strrchr(self, '/');
        assert(slash);
        *slash = '\0';
        if (asprintf(&p, "%s/%s", self, name) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int embedded_link_setup(Manager *m)
{
        _cleanup_free_ char *path = NULL;
        char gid[16], max_users[16], level[4];
        int r;

        r = sibling_path("helios-embedded", &path);
        if (r < 0)
                return log_error_errno(r, "Cannot tell where helios-embedded is: %m");
        if (access(path, X_OK) < 0)
                return log_error_errno(errno, "Cannot run %s, which embedded mode needs: %m", path);
        (void)snprintf(gid, sizeof(gid), "%u", (unsigned)m->accounts.gateway_gid);
        (void)snprintf(max_users, sizeof(max_users), "%u", m->options.max_users);
        (void)snprintf(level, sizeof(level), "%d", log_get_max_level());
        char *argv[] = {(char *)"helios-embedded",
                        (char *)"--runtime-dir",
                        (char *)m->options.runtime_dir,
                        (char *)"--worker",
                        (char *)m->options.worker,
                        (char *)"--gateway-gid",
                        gid,
                        (char *)"--max-users",
                        max_users,
                        (char *)"--config-dir",
                        (char *)m->options.config_dir,
                        (char *)"--log-level",
                        level,
                        NULL};
        EmbeddedLinkParams p = {
            .path = path,
            .argv = argv,
            .envp = m->worker_env,
            .on_status = on_embedded_status,
            .on_failed = on_embedded_failed,
            .userdata = m,
        };
        r = embedded_link_new(m->loop, &p, &m->embedded);
        if (r >= 0)
                r = embedded_link_start(m->embedded);
        if (r < 0)
                return log_error_errno(r, "Cannot start helios-embedded: %m");
        return 0;
}

int manager_new(uv_loop_t *loop, const LauncherOptions *o, void (*on_fatal)(void *userdata), void *userdata,
                Manager **ret)
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
        m->on_fatal = on_fatal;
        m->fatal_userdata = userdata;
        m->listen_fd = -1;
        m->accounts.uid_min = account_read_uid_min();

        r = account_lookup(o->gateway_user, &pw, &buf);
        if (r < 0) {
                free(m);
                return log_error_errno(r, "Cannot find the gateway's account %s: %m", o->gateway_user);
        }
        if (pw.pw_uid == 0 || pw.pw_gid == 0) {
                log_error("The gateway must not run as root or in root's group.");
                free(m);
                return -EPERM;
        }
        m->accounts.gateway_uid = pw.pw_uid;
        m->accounts.gateway_gid = pw.pw_gid;

        m->systemd_mode =
            o->mode == LAUNCHER_MODE_SYSTEMD || (o->mode == LAUNCHER_MODE_AUTO && sd_booted() > 0);
        if (asprintf(&m->workers_dir, "%s/workers", o->runtime_dir) < 0) {
                m->workers_dir = NULL;
                manager_free(m);
                return log_oom();
        }
        r = build_worker_env(m);
        if (r >= 0)
                r = sibling_path("helios-session", &m->session_path);
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
                r = embedded_link_setup(m);
                if (r < 0)
                        return r;
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
                 m->options.gateway_user, (unsigned)m->accounts.gateway_uid,
                 m->systemd_mode ? "systemd" : "embedded", m->options.pam_service, m->workers_dir);
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
        while (m->requests) {
                Request *r = m->requests;
                if (r->pam)
                        m->n_helpers--;
                request_free(r);
        }
        embedded_link_stop(m->embedded);
        unit_starter_stop(m->units);
        log_info("Stopped; running workers keep running.");
}

bool manager_failed(const Manager *m)
{
        return m->failed;
}

Manager *manager_free(Manager *m)
{
        if (!m)
                return NULL;
        assert(!m->requests && !m->conns && !m->sessions);
        embedded_link_free(m->embedded);
        unit_starter_free(m->units);
        for (size_t i = 0; i < m->n_worker_env; i++)
                free(m->worker_env[i]);
        free(m->worker_env);
        free(m->workers_dir);
        free(m->session_path);
        free(m);
        return NULL;
}
