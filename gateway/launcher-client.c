/* SPDX-License-Identifier: MIT */
/* The gateway's side of common/launcher-protocol.h: requests to helios-launcher over one
 * SOCK_SEQPACKET connection, answered in any order and matched by id. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "launcher-internal.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"

/* Requests waiting for an answer; beyond, new ones are turned away (-EBUSY) rather than queued. */
#define REMOTE_PENDING_MAX 1024
/* The launcher bounds its own work (PAM and unit starts time out); this only catches a launcher that
 * stopped answering altogether. */
#define REMOTE_REQUEST_TIMEOUT_MS (120 * 1000)
#define REMOTE_TICK_MS            1000
#define REMOTE_ID_MAX             9999999999ULL

typedef struct RemoteRequest RemoteRequest;

struct RemoteRequest {
        LauncherRequest base;
        RemoteRequest *prev, *next;
        unsigned long long id;
        bool is_auth;
        bool sent;
        LauncherAuthCallback auth_cb;
        LauncherWorkerCallback worker_cb; /* both NULL: nobody waits for the answer */
        void *userdata;
        uint64_t started_ms;
        size_t len;
        char packet[]; /* until sent; it may hold a password */
};

/* The connection's poll handle, allocated per connection and freed once closed. */
typedef struct RemoteWatch {
        uv_poll_t poll;
        RemoteLauncher *remote;
        int fd;
} RemoteWatch;

struct RemoteLauncher {
        Launcher *launcher;
        char *path;
        RemoteWatch *watch; /* NULL while not connected */
        RemoteRequest *first, *last;
        unsigned n_pending;
        unsigned long long next_id;
        uv_timer_t tick;
        bool tick_open;
        bool stopped;
};

static void remote_disconnect(RemoteLauncher *rl, const char *why);

static void request_unlink(RemoteLauncher *rl, RemoteRequest *r)
{
        if (r->prev)
                r->prev->next = r->next;
        else
                rl->first = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else
                rl->last = r->prev;
        r->prev = r->next = NULL;
        rl->n_pending--;
}

static void request_free(RemoteRequest *r)
{
        explicit_bzero(r->packet, r->len);
        free(r);
}

static void request_complete(RemoteRequest *r, int result, const char *path)
{
        if (r->is_auth && r->auth_cb)
                r->auth_cb(result, r->userdata);
        else if (!r->is_auth && r->worker_cb)
                r->worker_cb(result, path, r->userdata);
        request_free(r);
}

/* Fail every request; callbacks may make new ones, which then find the connection gone. */
static void fail_all(RemoteLauncher *rl, int error)
{
        RemoteRequest *list = rl->first;

        rl->first = rl->last = NULL;
        rl->n_pending = 0;
        while (list) {
                RemoteRequest *r = list;
                list = r->next;
                request_complete(r, error, NULL);
        }
}

static void watch_update(RemoteLauncher *rl);

/* from_loop false: called by a request being made, whose caller has not heard of it yet; a failed send
 * then waits for the loop (the socket polls writable and fails again there), so that no request fails
 * and runs its callback inside the call that made it. */
static void send_queued(RemoteLauncher *rl, bool from_loop)
{
        for (RemoteRequest *r = rl->first; r && rl->watch; r = r->next) {
                ssize_t n;

                if (r->sent)
                        continue;
                n = send(rl->watch->fd, r->packet, r->len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && (errno == EAGAIN || errno == EINTR || !from_loop))
                        break;
                if (n < 0) {
                        remote_disconnect(rl, strerror(errno));
                        return;
                }
                r->sent = true;
                explicit_bzero(r->packet, r->len);
        }
        watch_update(rl);
}

static int error_from_reason(const char *reason)
{
        if (streq(reason, LAUNCHER_ERROR_DENIED))
                return -EACCES;
        if (streq(reason, LAUNCHER_ERROR_REFUSED))
                return -EPERM;
        if (streq(reason, LAUNCHER_ERROR_BUSY))
                return -EAGAIN;
        if (streq(reason, LAUNCHER_ERROR_TIMEOUT))
                return -ETIMEDOUT;
        if (streq(reason, LAUNCHER_ERROR_LOCKED))
                return -EKEYEXPIRED;
        if (streq(reason, LAUNCHER_ERROR_NO_HOME))
                return -ENOENT;
        if (streq(reason, LAUNCHER_ERROR_MASKED))
                return -ERFKILL;
        if (streq(reason, LAUNCHER_ERROR_FULL))
                return -EUSERS;
        return -EIO;
}

/* One reply: "ID\0ok\0[PATH\0]" or "ID\0error\0REASON\0". Returns -EBADMSG for anything else. */
static int handle_reply(RemoteLauncher *rl, char *buf, size_t n)
{
        char *f[3];
        size_t k = 0;
        unsigned long long id;
        char *end;
        RemoteRequest *r;

        if (n == 0 || buf[n - 1] != '\0')
                return -EBADMSG;
        for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
                if (k == ELEMENTSOF(f))
                        return -EBADMSG;
                f[k++] = p;
        }
        if (k < 2 || !*f[0] || strlen(f[0]) > LAUNCHER_ID_MAX || f[0][0] < '0' || f[0][0] > '9')
                return -EBADMSG;
        id = strtoull(f[0], &end, 10);
        if (*end)
                return -EBADMSG;
        for (r = rl->first; r; r = r->next)
                if (r->id == id && r->sent)
                        break;

        if (streq(f[1], LAUNCHER_REPLY_OK)) {
                if (r && (r->is_auth ? k != 2
                                     : k != 3 || f[2][0] != '/' ||
                                           strlen(f[2]) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)))
                        return -EBADMSG;
                if (!r)
                        return 0; /* cancelled */
                request_unlink(rl, r);
                request_complete(r, 0, r->is_auth ? NULL : f[2]);
                return 0;
        }
        if (streq(f[1], LAUNCHER_REPLY_ERROR) && k == 3) {
                if (!r)
                        return 0;
                request_unlink(rl, r);
                if (!r->is_auth || !streq(f[2], LAUNCHER_ERROR_DENIED))
                        log_debug("helios-launcher answered request %llu with %s.", id, f[2]);
                request_complete(r, error_from_reason(f[2]), NULL);
                return 0;
        }
        return -EBADMSG;
}

static void on_remote_event(uv_poll_t *p, int status, int events)
{
        RemoteWatch *w = container_of(p, RemoteWatch, poll);
        RemoteLauncher *rl = w->remote;
        char buf[LAUNCHER_MESSAGE_MAX + 1];

        if (!rl)
                return;
        if (status < 0) {
                remote_disconnect(rl, uv_strerror(status));
                return;
        }
        if (events & UV_WRITABLE)
                send_queued(rl, true);
        /* Callbacks may end the connection (or the launcher object's use of it): check each time. */
        for (unsigned i = 0; i < 64 && rl->watch == w && (events & UV_READABLE); i++) {
                ssize_t n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        remote_disconnect(rl, n == 0 ? "closed by helios-launcher" : strerror(errno));
                        return;
                }
                if ((size_t)n > LAUNCHER_MESSAGE_MAX || handle_reply(rl, buf, (size_t)n) < 0) {
                        remote_disconnect(rl, "malformed reply");
                        return;
                }
        }
        if (rl->watch == w)
                watch_update(rl);
}

static void watch_update(RemoteLauncher *rl)
{
        int events = UV_READABLE;

        if (!rl->watch)
                return;
        for (RemoteRequest *r = rl->first; r; r = r->next)
                if (!r->sent) {
                        events |= UV_WRITABLE;
                        break;
                }
        (void)uv_poll_start(&rl->watch->poll, events, on_remote_event);
}

static void on_watch_closed(uv_handle_t *h)
{
        RemoteWatch *w = container_of((uv_poll_t *)h, RemoteWatch, poll);

        safe_close(w->fd);
        free(w);
}

static void watch_close(RemoteLauncher *rl)
{
        if (!rl->watch)
                return;
        rl->watch->remote = NULL;
        uv_close((uv_handle_t *)&rl->watch->poll, on_watch_closed);
        rl->watch = NULL;
}

static void remote_disconnect(RemoteLauncher *rl, const char *why)
{
        if (!rl->watch)
                return;
        log_warning("Lost the connection to helios-launcher: %s.", why);
        watch_close(rl);
        /* Not -EIO, which is the launcher's "failed": the page would take its workspace for broken. */
        fail_all(rl, -ECONNRESET);
        /* helios-launcher ended the sessions of the connection with it. */
        if (rl->launcher->sessions_lost)
                rl->launcher->sessions_lost(rl->launcher->sessions_lost_userdata);
}

static int remote_connect(RemoteLauncher *rl)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        RemoteWatch *w;
        int r;

        if (rl->watch)
                return 0;
        strcpy(sa.sun_path, rl->path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        /* A Unix socket connects at once or not at all (EAGAIN: its backlog is full). */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = negative_errno();
                log_warning_errno(r, "Cannot connect to helios-launcher at %s: %m", rl->path);
                /* Not there, or not listening: to callers, one case. A full backlog: busy. */
                return r == -EAGAIN ? -EBUSY : -ECONNREFUSED;
        }
        w = calloc(1, sizeof(RemoteWatch));
        if (!w)
                return -ENOMEM;
        r = uv_poll_init(rl->launcher->loop, &w->poll, fd);
        if (r < 0) {
                free(w);
                return r;
        }
        w->remote = rl;
        w->fd = TAKE_FD(fd);
        rl->watch = w;
        log_info("Connected to helios-launcher at %s.", rl->path);
        watch_update(rl);
        return 0;
}

static void on_tick(uv_timer_t *t)
{
        RemoteLauncher *rl = t->data;
        uint64_t now = uv_now(rl->launcher->loop);

        /* The oldest are first. */
        if (rl->first && now - rl->first->started_ms > REMOTE_REQUEST_TIMEOUT_MS)
                remote_disconnect(rl, "no answer in time");
}

/* Queue a packet of op and its fields (n at most 3, each short enough: the caller checked) and send it
 * if the connection allows. */
static int remote_request(RemoteLauncher *rl, const char *op, const char *const *args, size_t n,
                          RemoteRequest **ret)
{
        char id[LAUNCHER_ID_MAX + 1];
        const char *fields[5];
        size_t n_fields = 0, len = 0, k = 0;
        RemoteRequest *r;
        int e;

        assert(n <= 3);
        if (rl->stopped)
                return -ECANCELED;
        if (rl->n_pending >= REMOTE_PENDING_MAX)
                return -EBUSY;
        e = remote_connect(rl);
        if (e < 0)
                return e;

        (void)snprintf(id, sizeof(id), "%llu", rl->next_id);
        fields[n_fields++] = id;
        fields[n_fields++] = op;
        for (size_t i = 0; i < n; i++)
                fields[n_fields++] = args[i];
        for (size_t i = 0; i < n_fields; i++)
                len += strlen(fields[i]) + 1;
        assert(len <= LAUNCHER_MESSAGE_MAX);
        r = calloc(1, sizeof(RemoteRequest) + len);
        if (!r)
                return -ENOMEM;
        for (size_t i = 0; i < n_fields; i++) {
                size_t fl = strlen(fields[i]) + 1;
                memcpy(r->packet + k, fields[i], fl);
                k += fl;
        }
        r->len = len;
        r->id = rl->next_id;
        rl->next_id = rl->next_id >= REMOTE_ID_MAX ? 1 : rl->next_id + 1;
        /* All but "worker" answer alike: ok, or an error. */
        r->is_auth = !streq(op, LAUNCHER_OP_WORKER);
        r->base.launcher = rl->launcher;
        r->started_ms = uv_now(rl->launcher->loop);
        r->prev = rl->last;
        if (rl->last)
                rl->last->next = r;
        else
                rl->first = r;
        rl->last = r;
        rl->n_pending++;
        *ret = r;
        send_queued(rl, false);
        return 0;
}

/* ---- the LauncherOps table ---- */

static int remote_start(Launcher *l)
{
        RemoteLauncher *rl = l->remote;
        int r;

        r = uv_timer_init(l->loop, &rl->tick);
        if (r < 0)
                return r;
        rl->tick.data = rl;
        rl->tick_open = true;
        (void)uv_timer_start(&rl->tick, on_tick, REMOTE_TICK_MS, REMOTE_TICK_MS);
        /* Not fatal: the launcher may start after the gateway. Each request tries again. */
        (void)remote_connect(rl);
        return 0;
}

static void remote_stop(Launcher *l)
{
        RemoteLauncher *rl = l->remote;

        if (rl->tick_open)
                uv_close((uv_handle_t *)&rl->tick, NULL);
        rl->tick_open = false;
        /* Callbacks of the failed requests must not open a new connection. */
        rl->stopped = true;
        watch_close(rl);
        fail_all(rl, -ECANCELED);
}

static void remote_free(Launcher *l)
{
        RemoteLauncher *rl = l->remote;

        assert(!rl->watch && !rl->first);
        free(rl->path);
        free(rl);
}

/* Sends op for user; the answer goes to auth_cb or worker_cb, whichever op answers with. */
static int remote_ask(Launcher *l, const char *op, const char *user, const char *password,
                      LauncherAuthCallback auth_cb, LauncherWorkerCallback worker_cb, void *userdata,
                      LauncherRequest **ret_request)
{
        const char *args[] = {user, password};
        RemoteRequest *r;
        int e;

        if (strlen(user) > LAUNCHER_USER_MAX || (password && strlen(password) > LAUNCHER_PASSWORD_MAX))
                return -EINVAL;
        e = remote_request(l->remote, op, args, password ? 2 : 1, &r);
        if (e < 0)
                return e;
        r->auth_cb = auth_cb;
        r->worker_cb = worker_cb;
        r->userdata = userdata;
        *ret_request = &r->base;
        return 0;
}

static int remote_authenticate(Launcher *l, const char *user, const char *password, LauncherAuthCallback cb,
                               void *userdata, LauncherRequest **ret_request)
{
        return remote_ask(l, LAUNCHER_OP_AUTH, user, password, cb, NULL, userdata, ret_request);
}

static int remote_find_worker(Launcher *l, const char *user, LauncherWorkerCallback cb, void *userdata,
                              char **ret_path, LauncherRequest **ret_request)
{
        int e = remote_ask(l, LAUNCHER_OP_WORKER, user, NULL, NULL, cb, userdata, ret_request);

        return e < 0 ? e : 1;
}

static int remote_check_account(Launcher *l, const char *user, LauncherAuthCallback cb, void *userdata,
                                LauncherRequest **ret_request)
{
        return remote_ask(l, LAUNCHER_OP_ACCOUNT, user, NULL, cb, NULL, userdata, ret_request);
}

static int remote_open_session(Launcher *l, const char *key, const char *user, const char *rhost,
                               LauncherAuthCallback cb, void *userdata, LauncherRequest **ret_request)
{
        const char *args[] = {key, user, rhost};
        RemoteRequest *r;
        int e;

        if (strlen(key) > LAUNCHER_KEY_MAX || strlen(user) > LAUNCHER_USER_MAX ||
            strlen(rhost) > LAUNCHER_RHOST_MAX)
                return -EINVAL;
        e = remote_request(l->remote, LAUNCHER_OP_SESSION_OPEN, args, ELEMENTSOF(args), &r);
        if (e < 0)
                return e;
        r->auth_cb = cb;
        r->userdata = userdata;
        *ret_request = &r->base;
        return 0;
}

static void remote_close_session(Launcher *l, const char *key)
{
        RemoteRequest *r;

        /* Not connected: the launcher closed the session when the connection went. */
        if (!l->remote->watch || strlen(key) > LAUNCHER_KEY_MAX)
                return;
        (void)remote_request(l->remote, LAUNCHER_OP_SESSION_CLOSE, &key, 1, &r);
}

static void remote_worker_unreachable(Launcher *l, const char *user)
{
        RemoteRequest *r;

        /* Asking for the worker again makes the launcher look at its socket again; nobody waits for the
         * answer. */
        if (strlen(user) <= LAUNCHER_USER_MAX)
                (void)remote_request(l->remote, LAUNCHER_OP_WORKER, &user, 1, &r);
}

static void remote_cancel(LauncherRequest *base)
{
        RemoteRequest *r = container_of(base, RemoteRequest, base);

        /* A sent request's answer is recognised by its id no longer being pending, and dropped. */
        request_unlink(base->launcher->remote, r);
        request_free(r);
}

static void remote_get_stats(const Launcher *l, LauncherStats *ret)
{
        /* helios-launcher counts the workers; the gateway does not see them. */
        *ret = (LauncherStats){};
}

static void remote_describe(const Launcher *l, char *buf, size_t size)
{
        const RemoteLauncher *rl = l->remote;

        (void)snprintf(buf, size, "helios-launcher %s, %u requests pending",
                       rl->watch ? "connected" : "not connected", rl->n_pending);
}

static const LauncherOps remote_ops = {
    .start = remote_start,
    .stop = remote_stop,
    .free = remote_free,
    .authenticate = remote_authenticate,
    .find_worker = remote_find_worker,
    .check_account = remote_check_account,
    .open_session = remote_open_session,
    .close_session = remote_close_session,
    .worker_unreachable = remote_worker_unreachable,
    .cancel = remote_cancel,
    .get_stats = remote_get_stats,
    .describe = remote_describe,
};

int launcher_new_remote(uv_loop_t *loop, const char *path, Launcher **ret)
{
        Launcher *l;
        RemoteLauncher *rl;

        if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
                return -ENAMETOOLONG;
        l = calloc(1, sizeof(Launcher));
        rl = calloc(1, sizeof(RemoteLauncher));
        if (!l || !rl || !(rl->path = strdup(path))) {
                free(l);
                free(rl);
                return -ENOMEM;
        }
        rl->launcher = l;
        rl->next_id = 1;
        l->ops = &remote_ops;
        l->loop = loop;
        l->remote = rl;
        *ret = l;
        return 0;
}
