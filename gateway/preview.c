/* SPDX-License-Identifier: MIT */
#include "preview.h"
#include "preview-head.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto-util.h"
#include "gateway.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "macro.h"
#include "splice.h"

#define SECRET_BYTES 32u
/* Tickets and cookies held, in all and per user; over either the oldest goes. */
#define MAX_TICKETS          1024u
#define MAX_TICKETS_PER_USER 16u
#define MAX_COOKIES          4096u
#define MAX_COOKIES_PER_USER 64u
/* Time from a complete request head to the tunnel: the worker may have to start first. */
#define CONNECT_TIMEOUT_MS (30u * 1000u)
/* The worker's answer to preview:connect, and anything it sent before it. */
#define MAX_ANSWER (64u * 1024u)

/* A ticket or a cookie: what it grants, to whom, until when, and the IDE session it came from. */
typedef struct Grant {
        uint8_t secret[SECRET_BYTES];
        char user[SESSION_USER_MAX + 1];
        char session[SESSION_HANDLE_LEN + 1];
        uint16_t port;
        uint64_t expires_ms;
        struct Grant *prev, *next; /* oldest first */
} Grant;

typedef struct GrantList {
        Grant *first, *last;
        size_t n;
} GrantList;

typedef enum PConnState {
        PCONN_HEAD,       /* reading the request head */
        PCONN_LOCATING,   /* asking the launcher for the user's worker */
        PCONN_CONNECTING, /* to the worker's socket */
        PCONN_ANSWER,     /* waiting for preview:connect's answer */
        PCONN_RESPONDING, /* writing an answer of our own, then closing */
        PCONN_SPLICED,
        PCONN_CLOSING,
} PConnState;

typedef struct PConn PConn;

typedef struct PreviewUser {
        struct PreviewUser *next;
        unsigned conns;
        char name[];
} PreviewUser;

struct Preview {
        Gateway *gateway;
        uv_tcp_t listener;
        bool listening;
        uint16_t port;
        GrantList tickets, cookies;
        PConn *conns;
        unsigned n_conns;
        PreviewUser *users;
        bool stopping;
};

struct PConn {
        Preview *preview;
        PConnState state;
        union {
                uv_handle_t handle;
                uv_stream_t stream;
                uv_tcp_t tcp;   /* a plain-HTTP connection */
                uv_pipe_t pipe; /* the plaintext of a TLS one (preview-tls.c) */
        } client;
        uv_pipe_t worker;
        bool worker_init;
        uv_timer_t timer;
        uv_connect_t connect_req;
        uv_write_t write_req;
        unsigned handles;
        LauncherRequest *locate;
        Splice *splice;
        bool splice_alive; /* the record stays until the splice has closed */
        char *socket_path;
        PreviewUser *user;
        char session[SESSION_HANDLE_LEN + 1]; /* the IDE session the cookie came from */
        uint16_t port;

        char *in; /* what the client sent: the head, and perhaps the start of the body */
        size_t in_len, in_cap, head_len;
        char *out; /* the request for the app: its head rewritten, then in[head_len..] */
        size_t out_len;
        uint64_t limit; /* bytes of the client's that may reach the app (SPLICE_UNLIMITED: an upgrade) */
        char *answer;
        size_t answer_len;
        char *response; /* one of our own */
        PConn *prev, *next;
};

static const char *strempty(const char *s)
{
        return s ?: "";
}

/* ---- grants ---- */

static void grant_unlink(GrantList *l, Grant *g)
{
        if (g->prev)
                g->prev->next = g->next;
        else
                l->first = g->next;
        if (g->next)
                g->next->prev = g->prev;
        else
                l->last = g->prev;
        l->n--;
        explicit_bzero(g->secret, sizeof(g->secret));
        free(g);
}

static void grants_clear(GrantList *l)
{
        while (l->first)
                grant_unlink(l, l->first);
}

/* Make room for one more of user's: the user's oldest over per_user, the oldest of all over max. */
static void grants_make_room(GrantList *l, const char *user, size_t max, size_t per_user)
{
        size_t mine = 0;

        for (Grant *g = l->first; g; g = g->next)
                mine += streq(g->user, user);
        if (mine >= per_user)
                for (Grant *g = l->first; g; g = g->next)
                        if (streq(g->user, user)) {
                                grant_unlink(l, g);
                                break;
                        }
        if (l->n >= max)
                grant_unlink(l, l->first);
}

static int grant_add(GrantList *l, const char *user, const char *session, uint16_t port, uint64_t expires_ms,
                     size_t max, size_t per_user, char ret_secret[BASE64URL_LEN(SECRET_BYTES) + 1])
{
        Grant *g;

        if (strlen(user) > SESSION_USER_MAX || strlen(session) > SESSION_HANDLE_LEN)
                return -EINVAL;
        grants_make_room(l, user, max, per_user);
        g = calloc(1, sizeof(Grant));
        if (!g)
                return -ENOMEM;
        if (random_bytes(g->secret, sizeof(g->secret)) < 0) {
                free(g);
                return -EIO;
        }
        strcpy(g->user, user);
        strcpy(g->session, session);
        g->port = port;
        g->expires_ms = expires_ms;
        g->prev = l->last;
        if (l->last)
                l->last->next = g;
        else
                l->first = g;
        l->last = g;
        l->n++;
        base64url_encode(g->secret, sizeof(g->secret), ret_secret);
        return 0;
}

/* The live grant the text names (for port, unless 0); an expired one, or one whose IDE session has
 * ended, is dropped on the way. Every entry is compared, in constant time each. */
static Grant *grant_find(Preview *p, GrantList *l, const char *text, size_t len, uint16_t port)
{
        uint8_t secret[SECRET_BYTES];
        uint64_t now = uv_now(p->gateway->loop);
        Grant *found = NULL;

        if (len != BASE64URL_LEN(SECRET_BYTES) || base64url_decode(text, len, secret, sizeof(secret)) < 0)
                return NULL;
        for (Grant *g = l->first; g; g = g->next)
                if (secret_equal(secret, sizeof(secret), g->secret, sizeof(g->secret)))
                        found = g;
        explicit_bzero(secret, sizeof(secret));
        if (!found)
                return NULL;
        if (found->expires_ms <= now ||
            !session_find_by_handle(p->gateway->sessions, found->user, found->session)) {
                grant_unlink(l, found);
                return NULL;
        }
        return port == 0 || found->port == port ? found : NULL;
}

int preview_ticket_new(Preview *p, const Session *session, uint16_t port, char *ret_ticket)
{
        assert(p);
        assert(session);
        assert(port > 0);
        return grant_add(&p->tickets, session_user(session), session_handle(session), port,
                         uv_now(p->gateway->loop) + p->gateway->config->preview_ticket_lifetime_ms,
                         MAX_TICKETS, MAX_TICKETS_PER_USER, ret_ticket);
}

static void grants_expire(Preview *p, GrantList *l, uint64_t now)
{
        for (Grant *g = l->first, *next; g; g = next) {
                next = g->next;
                if (g->expires_ms <= now ||
                    !session_find_by_handle(p->gateway->sessions, g->user, g->session))
                        grant_unlink(l, g);
        }
}

/* ---- users ---- */

static PreviewUser *user_ref(Preview *p, const char *name)
{
        PreviewUser *u;

        for (u = p->users; u; u = u->next)
                if (streq(u->name, name))
                        break;
        if (!u) {
                u = calloc(1, sizeof(PreviewUser) + strlen(name) + 1);
                if (!u)
                        return NULL;
                strcpy(u->name, name);
                u->next = p->users;
                p->users = u;
        }
        u->conns++;
        return u;
}

static void user_unref(Preview *p, PreviewUser *u)
{
        if (!u || --u->conns > 0)
                return;
        for (PreviewUser **pp = &p->users; *pp; pp = &(*pp)->next)
                if (*pp == u) {
                        *pp = u->next;
                        break;
                }
        free(u);
}

/* ---- connections ---- */

static void pconn_free(PConn *c)
{
        Preview *p = c->preview;

        if (c->prev)
                c->prev->next = c->next;
        else
                p->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        p->n_conns--;
        user_unref(p, c->user);
        free(c->in);
        free(c->out);
        free(c->answer);
        free(c->response);
        free(c->socket_path);
        free(c);
}

static void on_pconn_handle_closed(uv_handle_t *h)
{
        PConn *c = h->data;

        assert(c->handles > 0);
        if (--c->handles == 0 && !c->splice_alive)
                pconn_free(c);
}

static void pconn_close_handles(PConn *c)
{
        if (c->locate) {
                launcher_request_cancel(c->locate);
                c->locate = NULL;
        }
        if (!uv_is_closing((uv_handle_t *)&c->timer))
                uv_close((uv_handle_t *)&c->timer, on_pconn_handle_closed);
        if (!uv_is_closing(&c->client.handle))
                uv_close(&c->client.handle, on_pconn_handle_closed);
        if (c->worker_init && !uv_is_closing((uv_handle_t *)&c->worker))
                uv_close((uv_handle_t *)&c->worker, on_pconn_handle_closed);
}

static void pconn_close(PConn *c)
{
        if (c->state == PCONN_CLOSING)
                return;
        if (c->state == PCONN_SPLICED) {
                c->state = PCONN_CLOSING;
                splice_close(c->splice);
                return;
        }
        c->state = PCONN_CLOSING;
        pconn_close_handles(c);
}

static void on_response_written(uv_write_t *req, int status)
{
        PConn *c = req->data;

        pconn_close(c);
}

/* Answer with status and a line of text (or a redirect to location, or with a cookie), then close. */
static void respond(PConn *c, int status, const char *reason, const char *text, const char *location,
                    const char *set_cookie)
{
        char head[1024];
        int n;
        uv_buf_t buf;

        if (c->state == PCONN_CLOSING || c->state == PCONN_RESPONDING)
                return;
        uv_read_stop(&c->client.stream);
        uv_timer_stop(&c->timer);
        if (c->worker_init && !uv_is_closing((uv_handle_t *)&c->worker))
                uv_close((uv_handle_t *)&c->worker, on_pconn_handle_closed);
        if (c->locate) {
                launcher_request_cancel(c->locate);
                c->locate = NULL;
        }
        c->state = PCONN_RESPONDING;
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "Referrer-Policy: no-referrer\r\n"
                     "%s%s%s%s%s%s"
                     "Connection: close\r\n\r\n",
                     status, reason, strlen(text), location ? "Location: " : "", strempty(location),
                     location ? "\r\n" : "", set_cookie ? "Set-Cookie: " : "", strempty(set_cookie),
                     set_cookie ? "\r\n" : "");
        if (n < 0 || (size_t)n >= sizeof(head) || asprintf(&c->response, "%s%s", head, text) < 0) {
                c->response = NULL;
                pconn_close(c);
                return;
        }
        buf = uv_buf_init(c->response, (unsigned)strlen(c->response));
        c->write_req.data = c;
        if (uv_write(&c->write_req, &c->client.stream, &buf, 1, on_response_written) < 0)
                pconn_close(c);
}

static void on_timeout(uv_timer_t *t)
{
        PConn *c = t->data;

        if (c->state == PCONN_HEAD)
                respond(c, 408, "Request Timeout", "Request Timeout\n", NULL, NULL);
        else
                respond(c, 504, "Gateway Timeout", "The workspace did not answer in time.\n", NULL, NULL);
}

static void on_splice_closed(void *userdata)
{
        PConn *c = userdata;

        c->splice = NULL;
        c->splice_alive = false;
        if (c->handles == 0)
                pconn_free(c);
}

/* The splice's filter of the app's answer (preview-head.c). */
static int response_filter(const char *data, size_t len, char **ret_out, size_t *ret_len, bool *ret_done,
                           void *userdata)
{
        return preview_response_filter(data, len, ret_out, ret_len, ret_done);
}

/* The worker said yes: hand both sockets to a splice, the request for the app first. */
static void pconn_splice(PConn *c)
{
        Preview *p = c->preview;
        uv_os_fd_t cfd, wfd;
        int client_fd = -1, worker_fd = -1, r;

        if (uv_fileno(&c->client.handle, &cfd) >= 0)
                client_fd = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
        if (uv_fileno((uv_handle_t *)&c->worker, &wfd) >= 0)
                worker_fd = fcntl(wfd, F_DUPFD_CLOEXEC, 3);
        if (client_fd < 0 || worker_fd < 0) {
                safe_close(client_fd);
                safe_close(worker_fd);
                respond(c, 502, "Bad Gateway", "Cannot reach the workspace.\n", NULL, NULL);
                return;
        }
        /* Our handles go; the splice holds its own descriptors, and this record until it closes. */
        uv_read_stop((uv_stream_t *)&c->worker);
        c->state = PCONN_SPLICED;
        c->splice_alive = true; /* on_splice_closed() runs, from the loop, even if this fails */
        r = splice_new(p->gateway->loop, client_fd, worker_fd, c->out, c->out_len, c->limit, response_filter,
                       on_splice_closed, c, &c->splice);
        pconn_close_handles(c);
        if (r < 0)
                log_debug("Cannot splice a preview connection: %s", strerror(-r));
}

/* Lines from the worker until the answer to our request (id 1). */
static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        PConn *c = h->data;

        if (!c->answer)
                c->answer = malloc(MAX_ANSWER);
        if (!c->answer || c->answer_len >= MAX_ANSWER) {
                *buf = uv_buf_init(NULL, 0);
                return;
        }
        *buf = uv_buf_init(c->answer + c->answer_len, (unsigned)(MAX_ANSWER - c->answer_len));
}

static void on_worker_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        PConn *c = s->data;
        char *line, *lf;

        if (c->state != PCONN_ANSWER || nread == 0)
                return;
        if (nread < 0) {
                respond(c, 502, "Bad Gateway", "The workspace closed the connection.\n", NULL, NULL);
                return;
        }
        c->answer_len += (size_t)nread;
        line = c->answer;
        while ((lf = memchr(line, '\n', c->answer_len - (size_t)(line - c->answer)))) {
                _cleanup_json_ cJSON *msg = (*lf = '\0', json_parse(line, (size_t)(lf - line)));
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
                const cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
                size_t after = c->answer_len - (size_t)(lf + 1 - c->answer);

                line = lf + 1;
                if (!cJSON_IsNumber(id) || id->valuedouble != 1)
                        continue; /* a notification sent before the request was read */
                if (error) {
                        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
                        char text[128];
                        if (cJSON_IsNumber(code) && code->valuedouble == RPC_NOT_FOUND) {
                                (void)snprintf(text, sizeof(text),
                                               "Nothing is listening on port %u in your workspace.\n",
                                               c->port);
                                respond(c, 502, "Bad Gateway", text, NULL, NULL);
                        } else
                                respond(c, 502, "Bad Gateway", "The workspace refused the connection.\n",
                                        NULL, NULL);
                        return;
                }
                /* An HTTP server says nothing before it has a request: bytes after the answer are no app's.
                 */
                if (after > 0 || !cJSON_GetObjectItemCaseSensitive(msg, "result")) {
                        respond(c, 502, "Bad Gateway", "The workspace answered wrongly.\n", NULL, NULL);
                        return;
                }
                pconn_splice(c);
                return;
        }
        if (c->answer_len >= MAX_ANSWER)
                respond(c, 502, "Bad Gateway", "The workspace answered wrongly.\n", NULL, NULL);
}

static void on_worker_connected(uv_connect_t *req, int status)
{
        PConn *c = req->data;
        char request[128];
        uv_buf_t buf;
        int n;

        if (c->state != PCONN_CONNECTING)
                return;
        if (status < 0) {
                launcher_worker_unreachable(c->preview->gateway->launcher, c->user->name);
                respond(c, 502, "Bad Gateway", "Cannot reach the workspace.\n", NULL, NULL);
                return;
        }
        c->state = PCONN_ANSWER;
        n = snprintf(
            request, sizeof(request),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"preview:connect\",\"params\":{\"port\":%u}}\n",
            c->port);
        buf = uv_buf_init(request, (unsigned)n);
        /* The request is short: it goes at once or not at all (the socket is fresh and empty). */
        if (uv_try_write((uv_stream_t *)&c->worker, &buf, 1) != n ||
            uv_read_start((uv_stream_t *)&c->worker, on_worker_alloc, on_worker_read) < 0) {
                respond(c, 502, "Bad Gateway", "Cannot reach the workspace.\n", NULL, NULL);
                return;
        }
}

static void pconn_connect(PConn *c, const char *path)
{
        Preview *p = c->preview;

        c->socket_path = strdup(path);
        if (!c->socket_path || uv_pipe_init(p->gateway->loop, &c->worker, false) < 0) {
                respond(c, 500, "Internal Server Error", "Out of memory.\n", NULL, NULL);
                return;
        }
        c->worker.data = c;
        c->worker_init = true;
        c->handles++;
        c->state = PCONN_CONNECTING;
        c->connect_req.data = c;
        uv_pipe_connect(&c->connect_req, &c->worker, c->socket_path, on_worker_connected);
}

static void on_located(int r, const char *socket_path, void *userdata)
{
        PConn *c = userdata;

        c->locate = NULL;
        if (r < 0) {
                respond(c, 502, "Bad Gateway", "The workspace cannot be started.\n", NULL, NULL);
                return;
        }
        pconn_connect(c, socket_path);
}

/* ---- the request head ---- */

typedef struct CookieSearch {
        Preview *preview;
        uint16_t port;
        Grant *found;
} CookieSearch;

static bool find_preview_cookie(void *userdata, const char *name, size_t nl, const char *value, size_t vl)
{
        CookieSearch *s = userdata;

        if (nl == strlen(PREVIEW_COOKIE_NAME) && strncmp(name, PREVIEW_COOKIE_NAME, nl) == 0)
                s->found = grant_find(s->preview, &s->preview->cookies, value, vl, s->port);
        return !s->found;
}

static void handle_login(PConn *c, const char *target, size_t len)
{
        Preview *p = c->preview;
        const char *t;
        char location[64], cookie[256], value[BASE64URL_LEN(SECRET_BYTES) + 1];
        size_t tl;
        Grant *ticket;
        bool secure;
        int r;

        ticket = preview_login_ticket(target, len, &t, &tl) ? grant_find(p, &p->tickets, t, tl, 0) : NULL;
        if (!ticket) {
                respond(c, 403, "Forbidden",
                        "This preview link is not valid (any more): open the preview from Helios again.\n",
                        NULL, NULL);
                return;
        }
        /* A ticket opens once. */
        Grant copy = *ticket;
        grant_unlink(&p->tickets, ticket);
        r = grant_add(&p->cookies, copy.user, copy.session, copy.port,
                      uv_now(p->gateway->loop) + PREVIEW_COOKIE_LIFETIME_MS, MAX_COOKIES,
                      MAX_COOKIES_PER_USER, value);
        if (r < 0) {
                respond(c, 500, "Internal Server Error", "Cannot make a preview session.\n", NULL, NULL);
                return;
        }
        /* SameSite=Lax: the preview is opened by a navigation from the IDE, which may be another site. */
        secure = p->gateway->tls || (p->gateway->config->preview_origin &&
                                     strncasecmp(p->gateway->config->preview_origin, "https://", 8) == 0);
        (void)snprintf(location, sizeof(location), "/preview/%u/", copy.port);
        (void)snprintf(cookie, sizeof(cookie),
                       "%s=%s; Path=/preview/%u/; Max-Age=%llu; HttpOnly; SameSite=Lax%s",
                       PREVIEW_COOKIE_NAME, value, copy.port,
                       (unsigned long long)(PREVIEW_COOKIE_LIFETIME_MS / 1000), secure ? "; Secure" : "");
        explicit_bzero(value, sizeof(value));
        respond(c, 303, "See Other", "", location, cookie);
        explicit_bzero(cookie, sizeof(cookie));
}

/* Parse the head in c->in[0..head_len) and act on it. */
static void handle_head(PConn *c)
{
        Preview *p = c->preview;
        _cleanup_free_ PreviewHead *h = NULL;
        CookieSearch search = {p, 0, NULL};
        size_t n;

        h = malloc(sizeof(*h));
        if (!h)
                return respond(c, 500, "Internal Server Error", "Out of memory.\n", NULL, NULL);
        preview_head_parse(c->in, c->head_len, h);
        switch (h->kind) {
        case PREVIEW_HEAD_ERROR:
                return respond(c, h->status, h->reason, h->text, NULL, NULL);
        case PREVIEW_HEAD_LOGIN:
                return handle_login(c, h->target, h->target_len);
        case PREVIEW_HEAD_REDIRECT: {
                /* The app's relative links need the slash. */
                char location[600];
                if (h->target_len - h->prefix_len >= 512)
                        return respond(c, 414, "URI Too Long", "URI Too Long\n", NULL, NULL);
                (void)snprintf(location, sizeof(location), "/preview/%u/%.*s", h->port,
                               (int)(h->target_len - h->prefix_len), h->target + h->prefix_len);
                return respond(c, 308, "Permanent Redirect", "", location, NULL);
        }
        case PREVIEW_HEAD_PROXY:
                break;
        }
        c->port = h->port;

        /* The credential: this port's preview cookie, from a live IDE session. */
        search.port = c->port;
        for (size_t i = 0; i < h->n_headers && !search.found; i++)
                if (h->headers[i].name_len == strlen("cookie") &&
                    strncasecmp(h->headers[i].name, "cookie", strlen("cookie")) == 0)
                        preview_cookies_foreach(h->headers[i].value, h->headers[i].value_len,
                                                find_preview_cookie, &search);
        if (!search.found)
                return respond(c, 401, "Unauthorized",
                               "No preview session for this port: open the preview from Helios.\n", NULL,
                               NULL);
        if (c->in_len - c->head_len > h->content_length && !h->upgrade)
                return respond(c, 400, "Bad Request", "One request per connection\n", NULL, NULL);

        strcpy(c->session, search.found->session);
        c->user = user_ref(p, search.found->user);
        if (!c->user)
                return respond(c, 500, "Internal Server Error", "Out of memory.\n", NULL, NULL);
        if (c->user->conns > p->gateway->config->preview_connections_per_user)
                return respond(c, 429, "Too Many Requests", "Too many preview connections.\n", NULL, NULL);

        /* The request for the app (preview-head.c), then what came of the body. */
        n = c->in_len - c->head_len;
        c->out = malloc(PREVIEW_REWRITE_MAX(c->head_len) + n);
        if (!c->out)
                return respond(c, 500, "Internal Server Error", "Out of memory.\n", NULL, NULL);
        c->out_len = preview_head_rewrite(h, c->out);
        memcpy(c->out + c->out_len, c->in + c->head_len, n);
        c->out_len += n;
        c->limit = h->upgrade ? SPLICE_UNLIMITED : c->out_len + (h->content_length - n);

        uv_timer_stop(&c->timer);
        (void)uv_timer_start(&c->timer, on_timeout, CONNECT_TIMEOUT_MS, 0);
        c->state = PCONN_LOCATING;
        {
                _cleanup_free_ char *path = NULL;
                int r = launcher_find_worker(p->gateway->launcher, c->user->name, on_located, c, &path,
                                             &c->locate);
                if (r == 0)
                        pconn_connect(c, path);
                else if (r < 0)
                        respond(c, 502, "Bad Gateway", "The workspace cannot be started.\n", NULL, NULL);
        }
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        PConn *c = h->data;

        *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_client_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
        PConn *c = stream->data;
        size_t from;
        char *end;

        if (c->state != PCONN_HEAD || nread == 0)
                return;
        if (nread < 0) {
                pconn_close(c);
                return;
        }
        from = c->in_len >= 3 ? c->in_len - 3 : 0;
        c->in_len += (size_t)nread;
        end = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
        if (!end) {
                if (c->in_len >= c->preview->gateway->config->max_header_size)
                        respond(c, 431, "Request Header Fields Too Large",
                                "Request Header Fields Too Large\n", NULL, NULL);
                return;
        }
        c->head_len = (size_t)(end + 4 - c->in);
        if (c->head_len > c->preview->gateway->config->max_header_size) {
                respond(c, 431, "Request Header Fields Too Large", "Request Header Fields Too Large\n", NULL,
                        NULL);
                return;
        }
        uv_read_stop(stream);
        handle_head(c);
}

/* A new client connection: fd, connected (a TCP socket, or the plaintext end of a TLS connection). */
int preview_adopt(Preview *p, int fd)
{
        const GatewayConfig *cfg = p->gateway->config;
        bool tcp = uv_guess_handle(fd) == UV_TCP;
        PConn *c;
        int r;

        c = calloc(1, sizeof(PConn));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->preview = p;
        c->in_cap = cfg->max_header_size + 4096;
        c->in = malloc(c->in_cap);
        r = !c->in ? -ENOMEM
            : tcp  ? uv_tcp_init(p->gateway->loop, &c->client.tcp)
                   : uv_pipe_init(p->gateway->loop, &c->client.pipe, false);
        if (r < 0) {
                safe_close(fd);
                free(c->in);
                free(c);
                return r;
        }
        c->client.handle.data = c;
        c->next = p->conns;
        if (p->conns)
                p->conns->prev = c;
        p->conns = c;
        p->n_conns++;
        c->handles = 1;
        (void)uv_timer_init(p->gateway->loop, &c->timer);
        c->timer.data = c;
        c->handles++;
        r = tcp ? uv_tcp_open(&c->client.tcp, fd) : uv_pipe_open(&c->client.pipe, fd);
        if (r < 0) {
                safe_close(fd);
                pconn_close(c);
                return r;
        }
        if (p->n_conns > cfg->preview_max_connections || p->stopping) {
                /* Over the cap: the newcomer is closed. */
                pconn_close(c);
                return -EBUSY;
        }
        if (tcp)
                (void)uv_tcp_nodelay(&c->client.tcp, 1);
        (void)uv_timer_start(&c->timer, on_timeout, cfg->header_timeout_ms, 0);
        r = uv_read_start(&c->client.stream, on_client_alloc, on_client_read);
        if (r < 0) {
                pconn_close(c);
                return r;
        }
        return 0;
}

static void on_accepted_closed(uv_handle_t *h)
{
        free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
        Preview *p = server->data;
        uv_tcp_t *t;
        uv_os_fd_t fd;
        int dup_fd = -1;

        if (status < 0)
                return;
        /* Accepted on a handle of its own, whose descriptor goes to a connection or to the TLS library. */
        t = malloc(sizeof(uv_tcp_t));
        if (!t || uv_tcp_init(p->gateway->loop, t) < 0) {
                free(t);
                return;
        }
        if (uv_accept(server, (uv_stream_t *)t) >= 0 && uv_fileno((uv_handle_t *)t, &fd) >= 0)
                dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        uv_close((uv_handle_t *)t, on_accepted_closed);
        if (dup_fd < 0)
                return;
        if (p->gateway->tls)
                (void)preview_tls_adopt(p->gateway, dup_fd);
        else
                (void)preview_adopt(p, dup_fd);
}

void preview_tick(Preview *p, uint64_t now_ms)
{
        if (!p)
                return;
        grants_expire(p, &p->tickets, now_ms);
        grants_expire(p, &p->cookies, now_ms);
        /* Connections of an IDE session that has ended (logout, revocation, a disabled account) end too. */
        for (PConn *c = p->conns, *next; c; c = next) {
                next = c->next;
                if (c->user && c->state != PCONN_CLOSING &&
                    !session_find_by_handle(p->gateway->sessions, c->user->name, c->session))
                        pconn_close(c);
        }
}

/* ---- the listener ---- */

int preview_new(Gateway *g, Preview **ret)
{
        Preview *p = calloc(1, sizeof(Preview));

        if (!p)
                return -ENOMEM;
        p->gateway = g;
        *ret = p;
        return 0;
}

int preview_listen(Preview *p, const char *spec)
{
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_storage ss;
        } addr;
        int len = sizeof(addr), r;
        const char *colon = strrchr(spec, ':');
        char host[64];
        unsigned long port;
        char *e;

        if (!colon || (size_t)(colon - spec) >= sizeof(host))
                return -EINVAL;
        port = strtoul(colon + 1, &e, 10);
        if (*e || port > 65535 || colon[1] == '\0')
                return -EINVAL;
        if (spec[0] == '[') {
                if (colon - spec < 3 || colon[-1] != ']')
                        return -EINVAL;
                memcpy(host, spec + 1, (size_t)(colon - spec - 2));
                host[colon - spec - 2] = '\0';
                r = uv_ip6_addr(host, (int)port, &addr.in6);
        } else {
                memcpy(host, spec, (size_t)(colon - spec));
                host[colon - spec] = '\0';
                r = uv_ip4_addr(host, (int)port, &addr.in);
        }
        if (r < 0)
                return -EINVAL;
        r = uv_tcp_init(p->gateway->loop, &p->listener);
        if (r < 0)
                return r;
        p->listener.data = p;
        p->listening = true;
        r = uv_tcp_bind(&p->listener, &addr.sa, 0);
        if (r >= 0)
                r = uv_listen((uv_stream_t *)&p->listener, 128, on_connection);
        if (r >= 0)
                r = uv_tcp_getsockname(&p->listener, &addr.sa, &len);
        if (r < 0)
                return r;
        p->port = ntohs(addr.sa.sa_family == AF_INET6 ? addr.in6.sin6_port : addr.in.sin_port);
        return 0;
}

uint16_t preview_port(const Preview *p)
{
        return p ? p->port : 0;
}

void preview_stop(Preview *p)
{
        if (!p || p->stopping)
                return;
        p->stopping = true;
        if (p->listening)
                uv_close((uv_handle_t *)&p->listener, NULL);
        for (PConn *c = p->conns, *next; c; c = next) {
                next = c->next;
                pconn_close(c);
        }
}

Preview *preview_free(Preview *p)
{
        if (!p)
                return NULL;
        assert(!p->conns);
        grants_clear(&p->tickets);
        grants_clear(&p->cookies);
        free(p);
        return NULL;
}
