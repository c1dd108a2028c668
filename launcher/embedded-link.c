/* SPDX-License-Identifier: MIT */
#include "embedded-link.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "embedded-protocol.h"
#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"
#include "packet.h"

#define FIELDS_MAX 4
/* How long helios-embedded may take to exit once the link is closed before it is killed. */
#define STOP_TIMEOUT_MS 5000

struct EmbeddedJob {
        EmbeddedLink *link;
        EmbeddedJob *prev, *next;
        unsigned long id;
        EmbeddedJobCallback cb;
        void *userdata;
};

/* One run of helios-embedded: separately allocated, since a new one may be needed while the old one's
 * handles are still closing. */
typedef struct Child {
        EmbeddedLink *link; /* NULL once detached */
        uv_process_t process;
        uv_poll_t poll;
        uv_timer_t timer;
        int fd;
        unsigned open_handles;
        bool exited, ready, closed;
} Child;

struct EmbeddedLink {
        uv_loop_t *loop;
        char *path;
        char **argv;
        char **envp;
        void (*on_status)(unsigned users, unsigned running, void *userdata);
        void (*on_failed)(void *userdata);
        void *userdata;

        Child *child;
        EmbeddedJob *jobs;
        unsigned long next_id;
        unsigned children_open; /* runs whose handles are still closing */
        bool stopped, free_when_closed;
};

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

static char **strv_copy(char *const *v)
{
        size_t n = 0;
        char **c;

        while (v && v[n])
                n++;
        c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(v[i]))) {
                        strv_free(c);
                        return NULL;
                }
        return c;
}

static void link_free_now(EmbeddedLink *l)
{
        free(l->path);
        strv_free(l->argv);
        strv_free(l->envp);
        free(l);
}

int embedded_link_new(uv_loop_t *loop, const EmbeddedLinkParams *p, EmbeddedLink **ret)
{
        EmbeddedLink *l;

        assert(loop && p && p->path && p->argv && ret);

        l = calloc(1, sizeof(EmbeddedLink));
        if (!l)
                return -ENOMEM;
        l->loop = loop;
        l->on_status = p->on_status;
        l->on_failed = p->on_failed;
        l->userdata = p->userdata;
        l->next_id = 1;
        l->path = strdup(p->path);
        l->argv = strv_copy(p->argv);
        l->envp = strv_copy(p->envp);
        if (!l->path || !l->argv || !l->envp) {
                link_free_now(l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

static void job_finish(EmbeddedJob *j, const char *status, const char *arg)
{
        EmbeddedLink *l = j->link;
        EmbeddedJobCallback cb = j->cb;
        void *userdata = j->userdata;

        if (j->prev)
                j->prev->next = j->next;
        else
                l->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        free(j);
        if (cb)
                cb(status, arg, userdata);
}

/* ---- one run of helios-embedded ---- */

static void on_child_handle_closed(uv_handle_t *h)
{
        Child *c = h->data;

        if (--c->open_handles > 0)
                return;
        safe_close(c->fd);
        if (c->link) {
                EmbeddedLink *l = c->link;
                if (--l->children_open == 0 && l->free_when_closed)
                        link_free_now(l);
        }
        free(c);
}

static void child_close_handle(Child *c, uv_handle_t *h)
{
        if (h->data && !uv_is_closing(h))
                uv_close(h, on_child_handle_closed);
}

/* Stop talking to this run: requests in flight fail. The process handle stays until it has exited. */
static void child_detach(Child *c)
{
        EmbeddedLink *l = c->link;

        if (c->closed)
                return;
        c->closed = true;
        child_close_handle(c, (uv_handle_t *)&c->poll);
        if (l && l->child == c) {
                l->child = NULL;
                while (l->jobs)
                        job_finish(l->jobs, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
        }
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
        Child *c = container_of(p, Child, process);
        EmbeddedLink *l = c->link;
        bool was_ready = c->ready;

        c->exited = true;
        if (sig)
                log_error("helios-embedded (pid %d) was killed by signal %s.", (int)p->pid,
                          strna(sigabbrev_np(sig)));
        else if (status != 0 || (l && !l->stopped))
                log_full_errno(status == 0 ? LOG_WARNING : LOG_ERR, 0,
                               "helios-embedded (pid %d) exited with status %d.", (int)p->pid, (int)status);
        child_detach(c);
        child_close_handle(c, (uv_handle_t *)&c->process);
        child_close_handle(c, (uv_handle_t *)&c->timer);
        if (l && !l->stopped && !was_ready && l->on_failed)
                l->on_failed(l->userdata);
}

static void on_child_timer(uv_timer_t *t)
{
        Child *c = container_of(t, Child, timer);

        if (!c->exited) {
                log_warning("helios-embedded (pid %d) did not stop; killing it.", (int)c->process.pid);
                (void)kill(c->process.pid, SIGKILL);
        }
}

static void handle_packet(Child *c, char *buf, size_t n)
{
        EmbeddedLink *l = c->link;
        char *f[FIELDS_MAX];
        size_t len[FIELDS_MAX];
        int k;

        k = packet_split(buf, n, f, len, FIELDS_MAX);
        if (k == 4 && streq(f[0], EMBEDDED_EVENT_ID) && streq(f[1], EMBEDDED_OP_STATUS)) {
                c->ready = true;
                if (l->on_status)
                        l->on_status((unsigned)strtoul(f[2], NULL, 10), (unsigned)strtoul(f[3], NULL, 10),
                                     l->userdata);
                return;
        }
        if (k == 3 && packet_id_valid(f[0], len[0]) &&
            (streq(f[1], LAUNCHER_REPLY_OK) || streq(f[1], LAUNCHER_REPLY_ERROR))) {
                unsigned long id = strtoul(f[0], NULL, 10);
                for (EmbeddedJob *j = l->jobs; j; j = j->next)
                        if (j->id == id) {
                                job_finish(j, f[1], f[2]);
                                return;
                        }
                return; /* cancelled meanwhile */
        }
        log_error("Malformed packet from helios-embedded; ending the link.");
        child_detach(c);
}

static void on_child_event(uv_poll_t *p, int status, int events)
{
        Child *c = container_of(p, Child, poll);
        char buf[LAUNCHER_MESSAGE_MAX + 1];

        if (status < 0) {
                child_detach(c);
                return;
        }
        for (unsigned i = 0; i < 64 && !c->closed; i++) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0 || (size_t)n > LAUNCHER_MESSAGE_MAX) {
                        child_detach(c);
                        return;
                }
                handle_packet(c, buf, (size_t)n);
        }
}

int embedded_link_start(EmbeddedLink *l)
{
        int pair[2], r;
        uv_stdio_container_t stdio[4];
        uv_process_options_t po;
        Child *c;

        assert(!l->child && !l->stopped);

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return negative_errno();
        c = calloc(1, sizeof(Child));
        if (!c) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return -ENOMEM;
        }
        c->link = l;
        c->fd = pair[0];
        r = uv_timer_init(l->loop, &c->timer);
        if (r < 0) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                free(c);
                return r;
        }
        c->timer.data = c;
        c->open_handles++;
        l->children_open++;

        stdio[0] = (uv_stdio_container_t){.flags = UV_IGNORE};
        stdio[1] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO};
        stdio[2] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO};
        stdio[3] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = pair[1]};
        po = (uv_process_options_t){
            .exit_cb = on_child_exit,
            .file = l->path,
            .args = l->argv,
            .env = l->envp,
            .stdio_count = 4,
            .stdio = stdio,
        };
        c->process.data = c;
        c->open_handles++;
        r = uv_spawn(l->loop, &c->process, &po);
        safe_close(pair[1]);
        if (r < 0) {
                c->exited = c->closed = true;
                child_close_handle(c, (uv_handle_t *)&c->process);
                child_close_handle(c, (uv_handle_t *)&c->timer);
                return log_error_errno(r, "Cannot start %s: %s", l->path, uv_strerror(r));
        }
        r = uv_poll_init(l->loop, &c->poll, c->fd);
        if (r >= 0) {
                c->poll.data = c;
                c->open_handles++;
                r = uv_poll_start(&c->poll, UV_READABLE, on_child_event);
        }
        l->child = c;
        if (r < 0) {
                child_detach(c);
                (void)kill(c->process.pid, SIGTERM);
                return r;
        }
        log_debug("Started %s (pid %d).", l->path, (int)c->process.pid);
        return 0;
}

int embedded_link_worker(EmbeddedLink *l, const char *user, EmbeddedJobCallback cb, void *userdata,
                         EmbeddedJob **ret)
{
        char id[24];
        _cleanup_free_ char *packet = NULL;
        size_t len;
        EmbeddedJob *j;
        int r;

        assert(l && user && cb && ret);

        if (l->stopped)
                return -ESHUTDOWN;
        /* Ids wrap long before they could collide with one still in flight. */
        (void)snprintf(id, sizeof(id), "%lu", l->next_id);
        l->next_id = l->next_id >= 999999999ul ? 1 : l->next_id + 1;
        packet = packet_join((const char *const[]){id, LAUNCHER_OP_WORKER, user}, 3, &len);
        if (!packet)
                return -ENOMEM;
        j = calloc(1, sizeof(EmbeddedJob));
        if (!j)
                return -ENOMEM;
        /* A helios-embedded that died may not have been noticed yet: its end of the link is closed,
         * and one new start is worth a try. */
        for (unsigned attempt = 0;; attempt++) {
                if (!l->child) {
                        r = embedded_link_start(l);
                        if (r < 0) {
                                free(j);
                                return r;
                        }
                }
                /* A socket pair holds hundreds of small packets; full means helios-embedded is stuck. */
                if (send(l->child->fd, packet, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
                        break;
                r = negative_errno();
                if (attempt == 0 && (r == -EPIPE || r == -ECONNRESET || r == -ECONNREFUSED)) {
                        log_warning("helios-embedded (pid %d) is gone; starting another.",
                                    (int)l->child->process.pid);
                        child_detach(l->child);
                        continue;
                }
                free(j);
                return r == -EAGAIN ? -EBUSY : r;
        }
        j->link = l;
        j->id = strtoul(id, NULL, 10);
        j->cb = cb;
        j->userdata = userdata;
        j->next = l->jobs;
        if (l->jobs)
                l->jobs->prev = j;
        l->jobs = j;
        *ret = j;
        return 0;
}

void embedded_job_cancel(EmbeddedJob *j)
{
        if (!j)
                return;
        j->cb = NULL;
}

void embedded_link_stop(EmbeddedLink *l)
{
        Child *c;

        if (!l || l->stopped)
                return;
        l->stopped = true;
        c = l->child;
        if (!c)
                return;
        /* The end of the link tells helios-embedded to stop. */
        child_detach(c);
        c->fd = safe_close(c->fd);
        if (!c->exited)
                (void)uv_timer_start(&c->timer, on_child_timer, STOP_TIMEOUT_MS, 0);
}

EmbeddedLink *embedded_link_free(EmbeddedLink *l)
{
        if (!l)
                return NULL;
        assert(l->stopped || !l->child);
        while (l->jobs)
                job_finish(l->jobs, LAUNCHER_REPLY_ERROR, LAUNCHER_ERROR_FAILED);
        if (l->children_open > 0)
                l->free_when_closed = true;
        else
                link_free_now(l);
        return NULL;
}
