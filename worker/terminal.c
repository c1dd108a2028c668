/* SPDX-License-Identifier: MIT */
/* The terminal service: PTYs that belong to the worker, not to a connection.
 *
 * Output flows PTY master → UTF-8 sanitizer → scrollback ring → terminal:data_out to every attached
 * connection. Nothing on that path is unbounded: the master is not read while any attached
 * connection is congested or has paused the terminal, so a program that writes faster than a
 * browser reads simply blocks in write(), as it would on a slow serial line. With nobody attached
 * the master is read into the ring only, which keeps the newest output for the next attach. */
#include <assert.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "buf.h"
#include "events.h"
#include "log.h"
#include "path-util.h"
#include "pty.h"
#include "service.h"
#include "strv.h"
#include "terminal-scrollback.h"
#include "terminal-title.h"
#include "utf8.h"

/* Bytes per read() of a master, and reads per readiness event: one busy terminal must not starve the
 * rest of the loop. */
#define READ_MAX        (64u * 1024u)
#define READS_PER_EVENT 4u
/* An incomplete UTF-8 sequence carried from one read to the next is at most 3 bytes. */
#define CARRY_MAX 4u
/* Input per terminal that the kernel has not taken yet. */
#define INPUT_MAX (1024u * 1024u)
/* From SIGHUP to SIGKILL when a terminal is closed. */
#define CLOSE_GRACE_MS 2000u
/* Exited terminals kept listed, so that a page can still show how they ended. */
#define MAX_EXITED 8u
/* Largest cols and rows. */
#define SIZE_LIMIT 1000u
/* A program can set its title in a loop: changes are published at most this often. */
#define TITLE_PUBLISH_MS 500u
/* How often terminals are looked at for terminal_idle_timeout: a quarter of it, within these bounds. */
#define IDLE_CHECK_MIN_MS 250u
#define IDLE_CHECK_MAX_MS 60000u
/* What a terminal:data_out message or an attach answer holds besides the escaped text. */
#define MESSAGE_OVERHEAD 512u
/* The most one byte of sanitized output grows by in JSON: a control character becomes \u00XX. */
#define ESCAPE_FACTOR 6u

#define DATA_OUT_PREFIX "{\"jsonrpc\":\"2.0\",\"method\":\"terminal:data_out\",\"params\":{\"terminalId\":\""

typedef struct TerminalService TerminalService;

typedef struct Attachment {
        ClientId client; /* 0: detached while output was being delivered; swept afterwards */
        bool paused;
} Attachment;

typedef struct Terminal {
        TerminalService *svc;
        char id[24];
        unsigned cols, rows;
        pid_t pid; /* session leader; also its session and process group id */

        int master;      /* -1 once released */
        uv_poll_t poll;  /* open exactly while master >= 0 */
        int poll_events; /* what poll is started for; 0 when stopped */
        uv_timer_t kill_timer;
        unsigned n_handles; /* open handles; memory goes when this reaches 0 after destroy */

        bool eof;       /* the master read EIO: no slave fd is open any more */
        bool reaped;    /* waitpid() returned the leader's status */
        int status;     /* its wait status; -1 if unknown */
        bool exited;    /* eof and reaped: listed as alive:false */
        bool closing;   /* terminal:close'd: unlisted, waiting for the leader to die */
        bool destroyed; /* unlinked; handles closing */
        uint64_t exit_serial;
        uint64_t active_ms; /* last input, output, or attach or detach of a client */

        Scrollback scrollback;
        TitleTracker title;
        char carry[CARRY_MAX]; /* incomplete UTF-8 sequence at the end of the last read */
        size_t n_carry;

        Buf input; /* data_in the kernel did not take yet, from input_off */
        size_t input_off;

        Attachment *att;
        size_t n_att;
        unsigned delivering;

        struct Terminal *prev, *next;
} Terminal;

/* terminal:create waiting for fs:stat. */
typedef struct CreateRequest {
        TerminalService *svc; /* NULL once the service stopped and answered the call */
        BusCall *call;
        ClientId origin;
        unsigned cols, rows;
        char *file;
        char **argv;
        char *cwd;
        struct CreateRequest *prev, *next;
} CreateRequest;

struct TerminalService {
        uv_loop_t *loop;
        Bus *bus;
        const WorkerConfig *config;
        char *shell;
        char *home; /* canonical */
        char *project_root;

        Terminal *head, *tail; /* every terminal not yet destroyed, in creation order */
        unsigned n_live, n_exited;
        uint64_t next_number, next_exit_serial;
        CreateRequest *pending;
        unsigned n_pending;

        uv_signal_t sigchld;
        uv_timer_t publish_timer;
        uv_timer_t idle_timer; /* runs while terminals live and terminal_idle_timeout is set */
        unsigned n_refs;       /* own open handles plus terminals not yet freed */
        bool stopping;

        size_t read_size;
        char *rbuf;
        Buf text, msg; /* scratch for the output path */
};

static void terminal_update_poll(Terminal *t);
static void terminal_maybe_finish(Terminal *t);
static void publish_changed(TerminalService *s);

static void idle_timer_update(TerminalService *s);

static void terminal_touch(Terminal *t)
{
        t->active_ms = uv_now(t->svc->loop);
}

/* The scrollback as a JSON string, already escaped (the output may hold NUL, which cJSON strings
 * cannot), cut at the front to fit in budget bytes. */
static cJSON *scrollback_json(const Terminal *t, size_t budget)
{
        _cleanup_(buf_done) Buf out = {};

        if (buf_append(&out, "\"", 1) < 0 ||
            scrollback_escape_append(&t->scrollback, budget > 2 ? budget - 2 : 0, &out) < 0 ||
            buf_append(&out, "\"", 1) < 0)
                return NULL;
        return cJSON_CreateRaw(out.data);
}

/* ---- attachments ---- */

static Attachment *attachment_find(Terminal *t, ClientId client)
{
        for (size_t i = 0; i < t->n_att; i++)
                if (t->att[i].client == client)
                        return &t->att[i];
        return NULL;
}

static int attachment_add(Terminal *t, ClientId client)
{
        Attachment *a = attachment_find(t, client);

        if (a) {
                a->paused = false;
                return 0;
        }
        a = realloc(t->att, (t->n_att + 1) * sizeof(Attachment));
        if (!a)
                return -ENOMEM;
        t->att = a;
        t->att[t->n_att++] = (Attachment){client, false};
        return 0;
}

static void attachments_sweep(Terminal *t)
{
        size_t j = 0;

        if (t->delivering > 0)
                return;
        for (size_t i = 0; i < t->n_att; i++)
                if (t->att[i].client != 0)
                        t->att[j++] = t->att[i];
        t->n_att = j;
}

static void attachment_remove(Terminal *t, ClientId client)
{
        Attachment *a = attachment_find(t, client);

        if (!a)
                return;
        a->client = 0;
        attachments_sweep(t);
}

/* ---- lifetime ---- */

static void service_free(TerminalService *s)
{
        assert(!s->head && !s->pending);
        free(s->shell);
        free(s->home);
        free(s->project_root);
        free(s->rbuf);
        buf_done(&s->text);
        buf_done(&s->msg);
        free(s);
}

static void service_unref(TerminalService *s)
{
        assert(s->n_refs > 0);
        if (--s->n_refs == 0 && s->stopping)
                service_free(s);
}

static void on_service_handle_closed(uv_handle_t *h)
{
        service_unref(h->data);
}

static void terminal_free(Terminal *t)
{
        TerminalService *s = t->svc;

        scrollback_done(&t->scrollback);
        buf_done(&t->input);
        free(t->att);
        free(t);
        service_unref(s);
}

static void on_terminal_handle_closed(uv_handle_t *h)
{
        Terminal *t = h->data;

        assert(t->n_handles > 0);
        if (--t->n_handles == 0 && t->destroyed)
                terminal_free(t);
}

/* Close the master. The poll handle goes first: libuv takes the fd out of epoll when the handle
 * closes, which must happen while the number still means this PTY and not a reused fd. */
static void terminal_release_io(Terminal *t)
{
        if (t->master < 0)
                return;
        uv_close((uv_handle_t *)&t->poll, on_terminal_handle_closed);
        t->master = safe_close(t->master);
        t->poll_events = 0;
        buf_done(&t->input);
        t->input_off = 0;
}

static bool terminal_listed(const Terminal *t)
{
        return !t->closing && !t->destroyed;
}

/* Unlink the terminal and close its handles; the memory goes in the last close callback. */
static void terminal_destroy(Terminal *t)
{
        TerminalService *s = t->svc;

        if (t->destroyed)
                return;
        if (terminal_listed(t)) {
                if (t->exited)
                        s->n_exited--;
                else
                        s->n_live--;
        }
        t->destroyed = true;
        if (t->prev)
                t->prev->next = t->next;
        else
                s->head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        else
                s->tail = t->prev;
        t->prev = t->next = NULL;

        terminal_release_io(t);
        uv_close((uv_handle_t *)&t->kill_timer, on_terminal_handle_closed);
}

static void terminal_signal(Terminal *t, int sig)
{
        /* The leader called setsid(), so its pid is also its process group's id; a session leader
         * cannot move to another group. */
        if (!t->reaped && kill(-t->pid, sig) < 0 && errno != ESRCH)
                log_debug_errno(errno, "Failed to send signal %d to terminal %s: %m", sig, t->id);
}

/* ---- JSON ---- */

static cJSON *terminal_to_json(const Terminal *t)
{
        cJSON *o = cJSON_CreateObject();
        char name[32];

        if (!o || !cJSON_AddStringToObject(o, "terminalId", t->id) ||
            !cJSON_AddNumberToObject(o, "cols", t->cols) || !cJSON_AddNumberToObject(o, "rows", t->rows) ||
            !cJSON_AddNumberToObject(o, "pid", t->pid) || !cJSON_AddBoolToObject(o, "alive", !t->exited))
                goto fail;
        if (t->exited && t->status >= 0) {
                if (WIFEXITED(t->status) && !cJSON_AddNumberToObject(o, "exitCode", WEXITSTATUS(t->status)))
                        goto fail;
                if (WIFSIGNALED(t->status) &&
                    !cJSON_AddStringToObject(o, "signal",
                                             pty_signal_name(WTERMSIG(t->status), name, sizeof(name))))
                        goto fail;
        }
        if (t->title.has_title && !cJSON_AddStringToObject(o, "title", t->title.title))
                goto fail;
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

static cJSON *terminals_to_json(const TerminalService *s)
{
        cJSON *a = cJSON_CreateArray();

        if (!a)
                return NULL;
        for (const Terminal *t = s->head; t; t = t->next) {
                cJSON *o;
                if (!terminal_listed(t))
                        continue;
                o = terminal_to_json(t);
                if (!o || !cJSON_AddItemToArray(a, o)) {
                        cJSON_Delete(o);
                        cJSON_Delete(a);
                        return NULL;
                }
        }
        return a;
}

static void publish_changed(TerminalService *s)
{
        cJSON *p, *list;

        if (s->stopping)
                return;
        uv_timer_stop(&s->publish_timer);
        p = cJSON_CreateObject();
        list = terminals_to_json(s);
        if (!p || !list || !cJSON_AddItemToObject(p, "terminals", list)) {
                cJSON_Delete(p);
                cJSON_Delete(list);
                log_oom();
                return;
        }
        bus_publish(s->bus, EVENT_TERMINALS_CHANGED, p, BUS_INTERNAL, 0);
}

static void on_publish_timer(uv_timer_t *h)
{
        publish_changed(h->data);
}

static void publish_exit(Terminal *t)
{
        cJSON *p = cJSON_CreateObject();
        bool exited = t->status >= 0 && WIFEXITED(t->status),
             signaled = t->status >= 0 && WIFSIGNALED(t->status);
        char name[32];

        if (!p || !cJSON_AddStringToObject(p, "terminalId", t->id) ||
            !(exited ? cJSON_AddNumberToObject(p, "exitCode", WEXITSTATUS(t->status))
                     : cJSON_AddNullToObject(p, "exitCode")) ||
            !(signaled ? cJSON_AddStringToObject(p, "signal",
                                                 pty_signal_name(WTERMSIG(t->status), name, sizeof(name)))
                       : cJSON_AddNullToObject(p, "signal"))) {
                cJSON_Delete(p);
                log_oom();
                return;
        }
        bus_publish(t->svc->bus, "terminal:exit", p, BUS_ALL_CLIENTS, 0);
}

/* ---- output ---- */

static void terminal_deliver(Terminal *t, const char *text, size_t len)
{
        TerminalService *s = t->svc;
        Buf *m = &s->msg;

        m->len = 0;
        if (buf_append_str(m, DATA_OUT_PREFIX) < 0 || buf_append_str(m, t->id) < 0 ||
            buf_append_str(m, "\",\"data\":\"") < 0 || json_escape_append(m, text, len) < 0 ||
            buf_append_str(m, "\"}}") < 0) {
                log_oom();
                return;
        }
        /* Sending may disconnect a client (write error, hard limit), which detaches it from here:
         * the array must not shrink under the loop. */
        t->delivering++;
        for (size_t i = 0; i < t->n_att; i++)
                if (t->att[i].client != 0)
                        (void)bus_send_raw(s->bus, t->att[i].client, m->data, m->len);
        t->delivering--;
        attachments_sweep(t);
}

/* Bytes read from the master (a carried incomplete sequence first); final: nothing follows. */
static void terminal_output(Terminal *t, const char *p, size_t n, bool final)
{
        TerminalService *s = t->svc;
        size_t used;

        s->text.len = 0;
        if (utf8_sanitize_append(&s->text, p, n, final, &used) < 0) {
                t->n_carry = 0;
                log_oom();
                return;
        }
        assert(n - used < sizeof(t->carry));
        t->n_carry = n - used;
        memcpy(t->carry, p + used, t->n_carry);
        if (s->text.len == 0)
                return;

        terminal_touch(t);
        if (scrollback_append(&t->scrollback, s->text.data, s->text.len) < 0)
                log_oom();
        if (title_feed(&t->title, s->text.data, s->text.len) &&
            !uv_is_active((uv_handle_t *)&s->publish_timer))
                (void)uv_timer_start(&s->publish_timer, on_publish_timer, TITLE_PUBLISH_MS, 0);
        if (t->n_att > 0)
                terminal_deliver(t, s->text.data, s->text.len);
}

static void terminal_eof(Terminal *t)
{
        if (t->eof)
                return;
        if (t->n_carry > 0) {
                char tail[sizeof(t->carry)];
                size_t n = t->n_carry;

                memcpy(tail, t->carry, n);
                terminal_output(t, tail, n, true);
        }
        t->eof = true;
        /* Nobody reads the input any more. */
        buf_done(&t->input);
        t->input_off = 0;
        terminal_update_poll(t);
        terminal_maybe_finish(t);
}

static bool terminal_may_read(Terminal *t)
{
        if (t->master < 0 || t->eof)
                return false;
        for (size_t i = 0; i < t->n_att; i++) {
                const Attachment *a = &t->att[i];
                if (a->client != 0 && (a->paused || bus_client_congested(t->svc->bus, a->client)))
                        return false;
        }
        return true;
}

static void terminal_read(Terminal *t)
{
        TerminalService *s = t->svc;

        for (unsigned i = 0; i < READS_PER_EVENT && terminal_may_read(t); i++) {
                ssize_t n;

                memcpy(s->rbuf, t->carry, t->n_carry);
                n = read(t->master, s->rbuf + t->n_carry, s->read_size);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        /* EIO once the last slave fd is closed (not 0, as a pipe would say). */
                        if (n < 0 && errno != EIO)
                                log_debug_errno(
                                    errno, "Reading terminal %s failed, treating it as hung up: %m", t->id);
                        terminal_eof(t);
                        return;
                }
                terminal_output(t, s->rbuf, t->n_carry + (size_t)n, false);
        }
}

/* ---- input ---- */

static size_t terminal_input_pending(const Terminal *t)
{
        return t->input.len - t->input_off;
}

static void terminal_flush_input(Terminal *t)
{
        while (terminal_input_pending(t) > 0) {
                ssize_t n = write(t->master, t->input.data + t->input_off, terminal_input_pending(t));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0) {
                        log_debug_errno(errno, "Writing to terminal %s failed, dropping its input: %m",
                                        t->id);
                        t->input_off = t->input.len;
                        break;
                }
                t->input_off += (size_t)n;
        }
        if (terminal_input_pending(t) == 0) {
                /* Give back what a large paste took. */
                if (t->input.cap > 64u * 1024u)
                        buf_done(&t->input);
                t->input.len = 0;
                t->input_off = 0;
        } else if (t->input_off > t->input.len / 2) {
                memmove(t->input.data, t->input.data + t->input_off, terminal_input_pending(t));
                t->input.len -= t->input_off;
                t->input_off = 0;
        }
}

static int terminal_write(Terminal *t, const char *p, size_t n)
{
        int r;

        if (terminal_input_pending(t) + n > INPUT_MAX)
                return -ENOBUFS;
        terminal_touch(t);
        if (terminal_input_pending(t) == 0) {
                ssize_t k;
                do
                        k = write(t->master, p, n);
                while (k < 0 && errno == EINTR);
                if (k < 0 && errno != EAGAIN)
                        return negative_errno();
                if (k > 0) {
                        p += k;
                        n -= (size_t)k;
                }
        }
        if (n > 0) {
                r = buf_append(&t->input, p, n);
                if (r < 0)
                        return r;
                terminal_update_poll(t);
        }
        return 0;
}

/* ---- polling and process state ---- */

static void on_poll(uv_poll_t *h, int status, int events)
{
        Terminal *t = container_of(h, Terminal, poll);

        if (status < 0) {
                /* libuv stopped the handle (POLLERR). Take what is left; the master is done. */
                t->poll_events = 0;
                terminal_read(t);
                terminal_eof(t);
                return;
        }
        if (events & UV_READABLE)
                terminal_read(t);
        if ((events & UV_WRITABLE) && t->master >= 0 && !t->eof)
                terminal_flush_input(t);
        terminal_update_poll(t);
}

static void terminal_update_poll(Terminal *t)
{
        int events = 0, r;

        if (t->master < 0)
                return;
        if (terminal_may_read(t))
                events |= UV_READABLE;
        if (!t->eof && terminal_input_pending(t) > 0)
                events |= UV_WRITABLE;
        if (events == t->poll_events)
                return;
        r = events ? uv_poll_start(&t->poll, events, on_poll) : uv_poll_stop(&t->poll);
        if (r < 0) {
                log_warning("Failed to watch terminal %s: %s", t->id, uv_strerror(r));
                return;
        }
        t->poll_events = events;
}

static void prune_exited(TerminalService *s)
{
        while (s->n_exited > MAX_EXITED) {
                Terminal *oldest = NULL;

                for (Terminal *t = s->head; t; t = t->next)
                        if (terminal_listed(t) && t->exited &&
                            (!oldest || t->exit_serial < oldest->exit_serial))
                                oldest = t;
                assert(oldest);
                terminal_destroy(oldest);
        }
}

/* A terminal has ended once its leader was reaped and its output read to the end, in either order:
 * the status alone would cut off output still in the PTY, EIO alone says nothing of the exit code. */
static void terminal_maybe_finish(Terminal *t)
{
        TerminalService *s = t->svc;

        if (t->exited || !terminal_listed(t) || !t->eof || !t->reaped)
                return;
        t->exited = true;
        t->exit_serial = s->next_exit_serial++;
        s->n_live--;
        s->n_exited++;
        terminal_release_io(t);
        log_debug("Terminal %s (pid %d) ended.", t->id, (int)t->pid);
        publish_exit(t);
        prune_exited(s);
        publish_changed(s);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
        TerminalService *s = h->data;
        bool again;

        /* Only our own leaders, each by pid: waitpid(-1) would steal children that are not ours.
         * Handling one may destroy others (pruning), so the walk starts over after each. */
        do {
                again = false;
                for (Terminal *t = s->head; t; t = t->next) {
                        int status;
                        pid_t r;

                        if (t->reaped)
                                continue;
                        r = waitpid(t->pid, &status, WNOHANG);
                        if (r == 0 || (r < 0 && errno == EINTR))
                                continue;
                        if (r < 0) {
                                log_warning_errno(
                                    errno,
                                    "Failed to wait for terminal %s (pid %d), treating it as gone: %m",
                                    t->id, (int)t->pid);
                                status = -1;
                        }
                        t->reaped = true;
                        t->status = status;
                        if (t->closing) {
                                /* Every connection learns that a closed terminal ended, and how. */
                                publish_exit(t);
                                terminal_destroy(t);
                        } else
                                terminal_maybe_finish(t);
                        again = true;
                        break;
                }
        } while (again);
}

static void on_kill_timer(uv_timer_t *h)
{
        Terminal *t = h->data;

        log_debug("Terminal %s did not end on SIGHUP, sending SIGKILL.", t->id);
        terminal_signal(t, SIGKILL);
}

/* ---- method helpers ---- */

static void reply_empty(BusCall *call)
{
        cJSON *r = cJSON_CreateObject();

        if (r)
                bus_call_reply(call, r);
        else
                (void)bus_call_error_oom(call);
}

static void reply_error_data(BusCall *call, int code, const char *message, const char *key, double number,
                             const Terminal *t, const char *errno_str)
{
        cJSON *data = cJSON_CreateObject();

        if (data && ((key && !cJSON_AddNumberToObject(data, key, number)) ||
                     (t && !cJSON_AddStringToObject(data, "terminalId", t->id)) ||
                     (errno_str && !cJSON_AddStringToObject(data, "errno", errno_str)))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, code, message, data);
}

static Terminal *terminal_find(TerminalService *s, const char *id)
{
        for (Terminal *t = s->head; t; t = t->next)
                if (terminal_listed(t) && streq(t->id, id))
                        return t;
        return NULL;
}

/* The terminal a call names, or NULL after answering the call: -32602 without a terminalId, -32010
 * for one that names no terminal, whatever its JSON type. */
static Terminal *call_terminal(TerminalService *s, BusCall *call, const cJSON *params)
{
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(params, "terminalId");
        Terminal *t;
        cJSON *data;

        /* Callers have checked that params is an object (or absent). */
        if (!id) {
                (void)bus_call_error_invalid(call, "missing parameter 'terminalId'", NULL);
                return NULL;
        }
        t = cJSON_IsString(id) ? terminal_find(s, id->valuestring) : NULL;
        if (t)
                return t;
        data = cJSON_CreateObject();
        if (data && !cJSON_AddItemToObject(data, "terminalId", cJSON_Duplicate(id, true))) {
                cJSON_Delete(data);
                data = NULL;
        }
        bus_call_error(call, RPC_NO_SUCH_TERMINAL, "No such terminal", data);
        return NULL;
}

static void reply_exited(BusCall *call, const Terminal *t)
{
        reply_error_data(call, RPC_SERVER_ERROR, "The terminal has exited", NULL, 0, t, "EIO");
}

static void reply_too_many(TerminalService *s, BusCall *call)
{
        char msg[96];

        (void)snprintf(msg, sizeof(msg), "Too many terminals (the limit is %u)", s->config->max_terminals);
        reply_error_data(call, RPC_TOO_LARGE, msg, "limit", s->config->max_terminals, NULL, NULL);
}

/* ---- terminal:create ---- */

static CreateRequest *create_request_free(CreateRequest *req)
{
        if (!req)
                return NULL;
        free(req->file);
        strv_free(req->argv);
        free(req->cwd);
        free(req);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CreateRequest *, create_request_free);

static void pending_remove(TerminalService *s, CreateRequest *req)
{
        if (req->prev)
                req->prev->next = req->next;
        else
                s->pending = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->prev = req->next = NULL;
        s->n_pending--;
}

/* What to exec for the command param. -EINVAL with *ret_reason for a bad one. */
static int command_argv(const TerminalService *s, const cJSON *command, CreateRequest *req,
                        const char **ret_reason)
{
        _cleanup_(strv_freep) char **argv = NULL;
        size_t n;

        if (!command) {
                /* A login shell, as login(1) starts one: argv[0] is "-" and the shell's name. */
                const char *base = strrchr(s->shell, '/');
                argv = calloc(2, sizeof(char *));
                if (!argv || asprintf(&argv[0], "-%s", base ? base + 1 : s->shell) < 0)
                        return -ENOMEM;
        } else if (cJSON_IsString(command)) {
                argv = calloc(4, sizeof(char *));
                if (!argv || !(argv[0] = strdup(s->shell)) || !(argv[1] = strdup("-c")) ||
                    !(argv[2] = strdup(command->valuestring)))
                        return -ENOMEM;
        } else if (cJSON_IsArray(command)) {
                const cJSON *c;
                size_t i = 0;

                n = (size_t)cJSON_GetArraySize(command);
                if (n == 0) {
                        *ret_reason = "parameter 'command' must not be an empty array";
                        return -EINVAL;
                }
                argv = calloc(n + 1, sizeof(char *));
                if (!argv)
                        return -ENOMEM;
                cJSON_ArrayForEach(c, command)
                {
                        if (!cJSON_IsString(c)) {
                                *ret_reason = "parameter 'command' must be a string or an array of strings";
                                return -EINVAL;
                        }
                        argv[i] = strdup(c->valuestring);
                        if (!argv[i++])
                                return -ENOMEM;
                }
        } else {
                *ret_reason = "parameter 'command' must be a string or an array of strings";
                return -EINVAL;
        }
        req->file = strdup(cJSON_IsArray(command) ? argv[0] : s->shell);
        if (!req->file)
                return -ENOMEM;
        req->argv = TAKE_PTR(argv);
        return 0;
}

static void create_spawn(TerminalService *s, CreateRequest *req, const char *cwd, bool cwd_optional)
{
        BusCall *call = TAKE_PTR(req->call);
        PtyOptions o = {
            .file = req->file,
            .argv = req->argv,
            .cwd = cwd,
            .cwd_optional = cwd_optional,
            .cols = req->cols,
            .rows = req->rows,
        };
        Terminal *t;
        PtyStep step;
        cJSON *result;
        int master, r;
        pid_t pid;

        /* Checked again: other creates may have finished while this one waited for fs:stat. */
        if (s->n_live >= s->config->max_terminals) {
                reply_too_many(s, call);
                return;
        }
        t = calloc(1, sizeof(Terminal));
        result = cJSON_CreateObject();
        if (!t || !result) {
                free(t);
                cJSON_Delete(result);
                (void)bus_call_error_oom(call);
                return;
        }
        (void)snprintf(t->id, sizeof(t->id), "%" PRIu64, ++s->next_number);
        /* The creator may have gone while fs:stat was answering. */
        if (!cJSON_AddStringToObject(result, "terminalId", t->id) ||
            (bus_client_exists(s->bus, req->origin) && attachment_add(t, req->origin) < 0)) {
                free(t->att);
                free(t);
                cJSON_Delete(result);
                (void)bus_call_error_oom(call);
                return;
        }

        r = pty_spawn(&o, &master, &pid, &step);
        if (r < 0) {
                free(t->att);
                free(t);
                cJSON_Delete(result);
                log_debug_errno(r, "Failed to start %s: %m", req->file);
                bus_call_error_errno(call, r,
                                     step == PTY_STEP_CHDIR  ? cwd
                                     : step == PTY_STEP_EXEC ? req->file
                                                             : NULL);
                return;
        }

        r = uv_poll_init(s->loop, &t->poll, master);
        if (r < 0) {
                /* Not expected for a PTY; do not leave a process nobody can reach. */
                (void)kill(-pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                safe_close(master);
                free(t->att);
                free(t);
                cJSON_Delete(result);
                bus_call_error_errno(call, r, NULL);
                return;
        }
        (void)uv_timer_init(s->loop, &t->kill_timer);
        t->poll.data = t->kill_timer.data = t;
        t->n_handles = 2;
        t->svc = s;
        t->master = master;
        t->pid = pid;
        t->cols = req->cols;
        t->rows = req->rows;
        t->status = -1;
        scrollback_init(&t->scrollback, s->config->scrollback);
        s->n_refs++;

        t->prev = s->tail;
        if (s->tail)
                s->tail->next = t;
        else
                s->head = t;
        s->tail = t;
        s->n_live++;
        terminal_touch(t);
        idle_timer_update(s);
        log_debug("Terminal %s: started %s (pid %d) in %s.", t->id, req->file, (int)pid, strna(cwd));

        /* The answer goes out before any output can: nothing is read until the loop runs again. */
        bus_call_reply(call, result);
        terminal_update_poll(t);
        publish_changed(s);
}

static void on_stat_reply(cJSON *result_owned, cJSON *error_owned, void *userdata)
{
        _cleanup_json_ cJSON *result = result_owned, *error = error_owned;
        _cleanup_(create_request_freep) CreateRequest *req = userdata;
        TerminalService *s = req->svc;
        const cJSON *path, *type;

        if (!s)
                return; /* answered when the service stopped */
        pending_remove(s, req);

        if (!result && !error) {
                (void)bus_call_error_oom(TAKE_PTR(req->call));
                return;
        }
        if (error) {
                /* The fs service's verdict (not found, outside the workspace, …) goes out as it is. */
                bus_call_error_forward(TAKE_PTR(req->call), error);
                return;
        }
        path = cJSON_GetObjectItemCaseSensitive(result, "path");
        type = cJSON_GetObjectItemCaseSensitive(result, "type");
        if (!cJSON_IsString(path) || path->valuestring[0] != '/') {
                bus_call_error(TAKE_PTR(req->call), RPC_INTERNAL_ERROR, "fs:stat gave no absolute path",
                               NULL);
                return;
        }
        if (!cJSON_IsString(type) || !streq(type->valuestring, "dir")) {
                bus_call_error_errno(TAKE_PTR(req->call), -ENOTDIR, path->valuestring);
                return;
        }
        create_spawn(s, req, path->valuestring, false);
}

static void on_create(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        _cleanup_(create_request_freep) CreateRequest *req = NULL;
        _cleanup_free_ char *cwd_abs = NULL;
        const char *cwd = NULL, *reason = NULL;
        const cJSON *command = NULL;
        uint64_t cols = 0, rows = 0;
        const JsonField fields[] = {
            {"cols", JSON_FIELD_UINT, true, &cols, SIZE_LIMIT},
            {"rows", JSON_FIELD_UINT, true, &rows, SIZE_LIMIT},
            {"cwd", JSON_FIELD_STRING, false, &cwd, 0},
            {"command", JSON_FIELD_ANY, false, &command, 0},
        };
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (cols == 0 || rows == 0) {
                (void)bus_call_error_invalid(call, "parameters 'cols' and 'rows' must be from 1 to 1000",
                                             NULL);
                return;
        }
        if (cwd && !*cwd) {
                (void)bus_call_error_invalid(call, "parameter 'cwd' must not be empty", NULL);
                return;
        }
        req = calloc(1, sizeof(CreateRequest));
        if (!req) {
                (void)bus_call_error_oom(call);
                return;
        }
        r = command_argv(s, command, req, &reason);
        if (r < 0) {
                if (r == -EINVAL)
                        (void)bus_call_error_invalid(call, reason, NULL);
                else
                        (void)bus_call_error_oom(call);
                return;
        }
        if (s->stopping) {
                bus_call_error(call, RPC_SERVER_ERROR, "The worker is shutting down", NULL);
                return;
        }
        if (s->n_live + s->n_pending >= s->config->max_terminals) {
                reply_too_many(s, call);
                return;
        }
        req->call = call;
        req->origin = bus_call_origin(call);
        req->cols = (unsigned)cols;
        req->rows = (unsigned)rows;

        if (!cwd) {
                /* Our own choice, not the client's: if it is gone, start in "/" rather than fail. */
                create_spawn(s, req, s->project_root ? s->project_root : s->home, true);
                return;
        }

        /* Relative to the project, or to the home directory before a project is loaded. */
        if (cwd[0] == '/')
                req->cwd = strdup(cwd);
        else if (asprintf(&req->cwd, "%s/%s", s->project_root ? s->project_root : s->home, cwd) < 0)
                req->cwd = NULL;
        if (!req->cwd) {
                (void)bus_call_error_oom(TAKE_PTR(req->call));
                return;
        }

        /* The fs service decides what is inside the workspace, symlinks included. */
        cJSON *p = cJSON_CreateObject();
        if (!p || !cJSON_AddStringToObject(p, "path", req->cwd)) {
                cJSON_Delete(p);
                (void)bus_call_error_oom(TAKE_PTR(req->call));
                return;
        }
        req->svc = s;
        req->next = s->pending;
        if (s->pending)
                s->pending->prev = req;
        s->pending = req;
        s->n_pending++;
        r = bus_call(s->bus, "fs:stat", p, on_stat_reply, req);
        if (r >= 0) {
                req = NULL; /* on_stat_reply owns it */
                return;
        }
        pending_remove(s, req);
        if (r != -ENOENT) {
                bus_call_error_errno(TAKE_PTR(req->call), r, NULL);
                return;
        }

        /* No fs service: check by name that the directory is inside a workspace root; the child's
         * chdir() then checks that it exists. */
        r = path_normalize(NULL, req->cwd, &cwd_abs);
        if (r < 0 && r != -EXDEV) {
                bus_call_error_errno(TAKE_PTR(req->call), r, req->cwd);
                return;
        }
        bool inside = false;
        for (size_t i = 0; r >= 0 && i < s->config->n_roots && !inside; i++)
                inside = path_is_below_or_same(cwd_abs, s->config->roots[i]);
        if (!inside) {
                bus_call_error_outside(TAKE_PTR(req->call), cwd_abs ? cwd_abs : req->cwd);
                return;
        }
        create_spawn(s, req, cwd_abs, false);
}

/* ---- the other methods ---- */

static void on_data_in(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        const char *data = NULL;
        const JsonField fields[] = {
            {"data", JSON_FIELD_STRING, true, &data, 0},
        };
        Terminal *t;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        t = call_terminal(s, call, params);
        if (!t)
                return;
        if (t->exited || t->eof) {
                reply_exited(call, t);
                return;
        }
        r = terminal_write(t, data, strlen(data));
        if (r == -ENOBUFS)
                reply_error_data(call, RPC_TOO_LARGE, "Too much input queued for the terminal", "limit",
                                 INPUT_MAX, t, NULL);
        else if (r == -EIO)
                reply_exited(call, t);
        else if (r < 0)
                bus_call_error_errno(call, r, NULL);
        else
                reply_empty(call);
}

static void on_resize(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        uint64_t cols = 0, rows = 0;
        const JsonField fields[] = {
            {"cols", JSON_FIELD_UINT, true, &cols, SIZE_LIMIT},
            {"rows", JSON_FIELD_UINT, true, &rows, SIZE_LIMIT},
        };
        Terminal *t;
        int r;

        if (bus_call_params(call, params, fields, ELEMENTSOF(fields)) < 0)
                return;
        if (cols == 0 || rows == 0) {
                (void)bus_call_error_invalid(call, "parameters 'cols' and 'rows' must be from 1 to 1000",
                                             NULL);
                return;
        }
        t = call_terminal(s, call, params);
        if (!t)
                return;
        if (t->master < 0) {
                reply_exited(call, t);
                return;
        }
        r = pty_resize(t->master, (unsigned)cols, (unsigned)rows);
        if (r < 0) {
                bus_call_error_errno(call, r, NULL);
                return;
        }
        reply_empty(call);
        if (t->cols != cols || t->rows != rows) {
                t->cols = (unsigned)cols;
                t->rows = (unsigned)rows;
                publish_changed(s);
        }
}

/* Hang up as a closed terminal window would: SIGHUP (and SIGCONT, so a stopped job sees it) to the
 * session's process group; closing the master makes the kernel hang up the foreground job too. Whatever
 * ignores that gets SIGKILL after a grace period; the memory goes, and terminal:exit with how the leader
 * ended goes out, once it is reaped. */
static void terminal_hang_up(Terminal *t)
{
        TerminalService *s = t->svc;

        s->n_live--;
        t->closing = true;
        terminal_signal(t, SIGHUP);
        terminal_signal(t, SIGCONT);
        terminal_release_io(t);
        free(t->att);
        t->att = NULL;
        t->n_att = 0;
        (void)uv_timer_start(&t->kill_timer, on_kill_timer, CLOSE_GRACE_MS, 0);
}

static bool terminal_attached(const Terminal *t)
{
        for (size_t i = 0; i < t->n_att; i++)
                if (t->att[i].client != 0)
                        return true;
        return false;
}

/* terminal_idle_timeout: a terminal forgotten (nothing typed, nothing printed, no page attached) ends,
 * so that a workspace nobody uses can go idle and its worker exit. */
static void on_idle_timer(uv_timer_t *h)
{
        TerminalService *s = h->data;
        uint64_t now = uv_now(s->loop), limit = s->config->terminal_idle_timeout_ms;
        bool changed = false;

        for (Terminal *t = s->head; t; t = t->next) {
                if (t->closing || t->eof || t->reaped || terminal_attached(t) || now - t->active_ms < limit)
                        continue;
                log_info("Ending terminal %s (pid %d): no input, output or page for %llu s.", t->id,
                         (int)t->pid, (unsigned long long)((now - t->active_ms) / 1000));
                terminal_hang_up(t);
                changed = true;
        }
        if (changed)
                publish_changed(s);
        idle_timer_update(s);
}

static void idle_timer_update(TerminalService *s)
{
        uint64_t limit = s->config->terminal_idle_timeout_ms, every;

        if (s->stopping || limit == 0 || s->n_live == 0) {
                (void)uv_timer_stop(&s->idle_timer);
                return;
        }
        if (uv_is_active((uv_handle_t *)&s->idle_timer))
                return;
        every = MAX((uint64_t)IDLE_CHECK_MIN_MS, MIN(limit / 4, (uint64_t)IDLE_CHECK_MAX_MS));
        (void)uv_timer_start(&s->idle_timer, on_idle_timer, every, every);
}

static void on_close(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        Terminal *t;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        t = call_terminal(s, call, params);
        if (!t)
                return;
        if (t->reaped) {
                /* Reaped but its output not read to the end: it had not ended for the clients yet. An
                 * exited terminal had its terminal:exit already. */
                if (!t->exited)
                        publish_exit(t);
                terminal_destroy(t);
        } else
                terminal_hang_up(t);
        reply_empty(call);
        publish_changed(s);
}

static void on_list(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        cJSON *r, *list;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        r = cJSON_CreateObject();
        list = terminals_to_json(s);
        if (!r || !list || !cJSON_AddItemToObject(r, "terminals", list)) {
                cJSON_Delete(r);
                cJSON_Delete(list);
                (void)bus_call_error_oom(call);
                return;
        }
        bus_call_reply(call, r);
}

static void on_attach(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        ClientId origin = bus_call_origin(call);
        size_t budget;
        Terminal *t;
        cJSON *r, *scrollback;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        t = call_terminal(s, call, params);
        if (!t)
                return;

        /* The snapshot must fit in one message with its envelope. */
        budget = s->config->max_message > MESSAGE_OVERHEAD ? s->config->max_message - MESSAGE_OVERHEAD : 0;
        r = terminal_to_json(t);
        scrollback = scrollback_json(t, budget);
        if (!r || !scrollback || !cJSON_AddItemToObject(r, "scrollback", scrollback)) {
                /* Not added, so still ours. */
                cJSON_Delete(scrollback);
                cJSON_Delete(r);
                (void)bus_call_error_oom(call);
                return;
        }
        if (origin != 0 && attachment_add(t, origin) < 0) {
                cJSON_Delete(r);
                (void)bus_call_error_oom(call);
                return;
        }
        /* Everything read so far is in the snapshot, everything read later goes to the stream: the
         * answer is queued on the connection now, before the loop can read the master again. */
        bus_call_reply(call, r);
        terminal_touch(t);
        terminal_update_poll(t);
}

static void on_detach(BusCall *call, const cJSON *params, void *userdata)
{
        TerminalService *s = userdata;
        Terminal *t;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        t = call_terminal(s, call, params);
        if (!t)
                return;
        attachment_remove(t, bus_call_origin(call));
        terminal_touch(t);
        reply_empty(call);
        terminal_update_poll(t);
}

static void set_paused(BusCall *call, const cJSON *params, TerminalService *s, bool paused)
{
        Attachment *a;
        Terminal *t;

        if (bus_call_params(call, params, NULL, 0) < 0)
                return;
        t = call_terminal(s, call, params);
        if (!t)
                return;
        /* Flow control is per attached connection; for any other caller there is nothing to pause. */
        a = bus_call_origin(call) != 0 ? attachment_find(t, bus_call_origin(call)) : NULL;
        if (a)
                a->paused = paused;
        reply_empty(call);
        terminal_update_poll(t);
}

static void on_pause(BusCall *call, const cJSON *params, void *userdata)
{
        set_paused(call, params, userdata, true);
}

static void on_resume(BusCall *call, const cJSON *params, void *userdata)
{
        set_paused(call, params, userdata, false);
}

/* ---- events ---- */

static void on_client_disconnected(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        TerminalService *s = userdata;

        for (Terminal *t = s->head; t; t = t->next)
                if (attachment_find(t, origin)) {
                        attachment_remove(t, origin);
                        terminal_touch(t);
                        terminal_update_poll(t);
                }
}

static void on_client_drained(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        TerminalService *s = userdata;

        for (Terminal *t = s->head; t; t = t->next)
                if (attachment_find(t, origin))
                        terminal_update_poll(t);
}

static void on_project_loaded(const char *topic, const cJSON *params, ClientId origin, void *userdata)
{
        TerminalService *s = userdata;
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(params, "root");
        char *copy;

        if (!cJSON_IsString(root) || root->valuestring[0] != '/')
                return;
        copy = strdup(root->valuestring);
        if (!copy) {
                log_oom();
                return;
        }
        free(s->project_root);
        s->project_root = copy;
}

/* ---- service ---- */

static const BusMethod methods[] = {
    {"terminal:attach", on_attach},   {"terminal:close", on_close},   {"terminal:create", on_create},
    {"terminal:data_in", on_data_in}, {"terminal:detach", on_detach}, {"terminal:list", on_list},
    {"terminal:pause", on_pause},     {"terminal:resize", on_resize}, {"terminal:resume", on_resume},
};

static const struct {
        const char *topic;
        BusEventFn fn;
} events[] = {
    {BUS_EVENT_CLIENT_DISCONNECTED, on_client_disconnected},
    {BUS_EVENT_CLIENT_DRAINED, on_client_drained},
    {EVENT_PROJECT_LOADED, on_project_loaded},
};

static int terminal_start(const ServiceContext *ctx, void **ret)
{
        TerminalService *s = calloc(1, sizeof(TerminalService));
        size_t budget;
        int r;

        if (!s)
                return -ENOMEM;
        s->loop = ctx->loop;
        s->bus = ctx->bus;
        s->config = ctx->config;
        /* A single message must hold the largest read after escaping (and a carried sequence). */
        budget = s->config->max_message > MESSAGE_OVERHEAD ? s->config->max_message - MESSAGE_OVERHEAD : 0;
        s->read_size = MIN((size_t)READ_MAX, budget / ESCAPE_FACTOR);
        s->read_size = s->read_size > CARRY_MAX ? s->read_size - CARRY_MAX : 1;
        s->rbuf = malloc(READ_MAX + CARRY_MAX);
        s->home = realpath(s->config->home, NULL);
        if (!s->home)
                s->home = strdup(s->config->home);
        r = pty_user_shell(&s->shell);
        if (r < 0 || !s->rbuf || !s->home) {
                s->n_refs = 1; /* service_free() via unref */
                s->stopping = true;
                service_unref(s);
                return -ENOMEM;
        }

        r = bus_serve_all(s->bus, methods, ELEMENTSOF(methods), s);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(events); i++) {
                r = bus_subscribe(s->bus, events[i].topic, events[i].fn, s);
                if (r < 0)
                        goto fail;
        }

        (void)uv_timer_init(s->loop, &s->publish_timer);
        (void)uv_timer_init(s->loop, &s->idle_timer);
        (void)uv_signal_init(s->loop, &s->sigchld);
        s->publish_timer.data = s->idle_timer.data = s->sigchld.data = s;
        s->n_refs = 3;
        r = uv_signal_start(&s->sigchld, on_sigchld, SIGCHLD);
        if (r < 0) {
                s->stopping = true;
                uv_close((uv_handle_t *)&s->publish_timer, on_service_handle_closed);
                uv_close((uv_handle_t *)&s->idle_timer, on_service_handle_closed);
                uv_close((uv_handle_t *)&s->sigchld, on_service_handle_closed);
                return r;
        }
        *ret = s;
        return 0;

fail:
        /* Nothing was started; the worker is about to exit without serving anyone. */
        for (size_t i = 0; i < ELEMENTSOF(events); i++)
                bus_unsubscribe(s->bus, events[i].topic, events[i].fn, s);
        s->n_refs = 1;
        s->stopping = true;
        service_unref(s);
        return r;
}

static void terminal_stop(void *userdata)
{
        TerminalService *s = userdata;

        if (!s || s->stopping)
                return;
        s->stopping = true;
        for (size_t i = 0; i < ELEMENTSOF(events); i++)
                bus_unsubscribe(s->bus, events[i].topic, events[i].fn, s);

        /* fs:stat will still answer these; the request then only frees itself. */
        while (s->pending) {
                CreateRequest *req = s->pending;
                pending_remove(s, req);
                req->svc = NULL;
                bus_call_error(TAKE_PTR(req->call), RPC_SERVER_ERROR, "The worker is shutting down", NULL);
        }

        /* Hang up every session; those already closing had their SIGHUP and get no more grace. */
        while (s->head) {
                Terminal *t = s->head;
                terminal_signal(t, t->closing ? SIGKILL : SIGHUP);
                terminal_signal(t, SIGCONT);
                terminal_destroy(t);
        }
        uv_close((uv_handle_t *)&s->publish_timer, on_service_handle_closed);
        uv_close((uv_handle_t *)&s->idle_timer, on_service_handle_closed);
        uv_close((uv_handle_t *)&s->sigchld, on_service_handle_closed);
}

const ServiceType terminal_service_type = {
    .name = "terminal",
    .start = terminal_start,
    .stop = terminal_stop,
};
