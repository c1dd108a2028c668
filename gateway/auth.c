/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto-util.h"
#include "log.h"
#include "macro.h"
#include "users-file.h"

/* Recent wrong-password answers, for how long a policy refusal is held. */
#define AUTH_SAMPLES 15u
/* How long a refusal is held before any wrong password has been timed. */
#define AUTH_REFUSAL_DEFAULT_MS 500u

typedef enum AuthState {
        AUTH_QUEUED,  /* waiting for a turn */
        AUTH_RUNNING, /* on the thread pool or with the launcher */
        AUTH_HOLDING, /* answered -EPERM, held until a wrong password would have been */
} AuthState;

struct Auth {
        uv_loop_t *loop;
        AuthMethod method;
        Launcher *launcher;
        AuthLimits limits;
        char *token;
        UsersFile *users;
        /* Checked when a name is unknown, so that an unknown name costs what a known one does and
         * timing does not tell which names exist. */
        char *dummy_hash;
        AuthRequest *first, *last; /* every check not answered yet, in order of arrival */
        unsigned n_requests;       /* in the list */
        unsigned n_running;
        unsigned n_queued;
        unsigned n_on_pool;       /* answered or not: thread pool work not yet finished */
        uint64_t window_start_ms; /* the second being counted */
        unsigned window_checks;
        uint32_t samples[AUTH_SAMPLES];
        unsigned n_samples, next_sample;
        uv_timer_t timer;
        bool timer_open;
        bool stopped;
        AuthStats stats;
};

struct AuthRequest {
        uv_work_t work;
        Auth *auth;
        AuthRequest *prev, *next; /* in auth's list while unanswered */
        AuthState state;
        bool in_list;
        bool refuse; /* a name refused without a check */
        AuthCallback cb;
        void *userdata;
        char client[AUTH_CLIENT_MAX];
        char *user;
        char *secret;
        char *hash; /* file: a copy; the users file may be reloaded while the check runs */
        LauncherRequest *launcher_request;
        uint64_t deadline_ms; /* queued: give up waiting; holding: answer */
        uint64_t started_ms;
        int result;
};

static void on_timer(uv_timer_t *t);

int auth_new(uv_loop_t *loop, AuthMethod method, Launcher *launcher, const AuthLimits *limits, Auth **ret)
{
        Auth *a;

        assert(method >= 0 && method < _AUTH_METHOD_MAX);
        if (method == AUTH_METHOD_PAM && !launcher_can_authenticate(launcher))
                return -EOPNOTSUPP;
        /* A token logs in the one user of an embedded launcher; a multi-user one has none. */
        if (method == AUTH_METHOD_TOKEN && !launcher_single_user(launcher))
                return -EOPNOTSUPP;
        a = calloc(1, sizeof(Auth));
        if (!a)
                return -ENOMEM;
        a->loop = loop;
        a->method = method;
        a->launcher = launcher;
        a->limits = *limits;
        if (uv_timer_init(loop, &a->timer) < 0) {
                free(a);
                return -ENOMEM;
        }
        a->timer.data = a;
        a->timer_open = true;
        *ret = a;
        return 0;
}

void auth_set_limits(Auth *a, const AuthLimits *limits)
{
        a->limits = *limits;
}

static void free_secret(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

Auth *auth_free(Auth *a)
{
        if (!a)
                return NULL;
        assert(!a->first && a->n_on_pool == 0 && !a->timer_open);
        free_secret(a->token);
        free(a->dummy_hash);
        users_file_free(a->users);
        free(a);
        return NULL;
}

int auth_set_token(Auth *a, const char *token)
{
        uint8_t raw[AUTH_TOKEN_BYTES];
        char *t;
        int r;

        if (token) {
                if (strlen(token) < 16 || strlen(token) > AUTH_SECRET_MAX)
                        return -EINVAL;
                t = strdup(token);
        } else {
                r = random_bytes(raw, sizeof(raw));
                if (r < 0)
                        return r;
                t = malloc(BASE64URL_LEN(sizeof(raw)) + 1);
                if (t)
                        base64url_encode(raw, sizeof(raw), t);
                explicit_bzero(raw, sizeof(raw));
        }
        if (!t)
                return -ENOMEM;
        free_secret(a->token);
        a->token = t;
        return 0;
}

const char *auth_token(const Auth *a)
{
        return a->token;
}

int auth_load_users(Auth *a, const char *path)
{
        UsersFile *u;
        int r;

        r = users_file_load(path, &u);
        if (r < 0)
                return r;
        if (!a->dummy_hash) {
                uint8_t raw[16];
                char pw[BASE64URL_LEN(sizeof(raw)) + 1];
                r = random_bytes(raw, sizeof(raw));
                if (r >= 0) {
                        base64url_encode(raw, sizeof(raw), pw);
                        r = password_hash(pw, &a->dummy_hash);
                }
                if (r < 0) {
                        users_file_free(u);
                        return r;
                }
        }
        users_file_free(a->users);
        a->users = u;
        return 0;
}

AuthMethod auth_method(const Auth *a)
{
        return a->method;
}

static void request_free(AuthRequest *r)
{
        free(r->user);
        free_secret(r->secret);
        free_secret(r->hash);
        free(r);
}

static void list_remove(Auth *a, AuthRequest *r)
{
        if (!r->in_list)
                return;
        if (r->prev)
                r->prev->next = r->next;
        else
                a->first = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else
                a->last = r->prev;
        r->prev = r->next = NULL;
        r->in_list = false;
        a->n_requests--;
        if (r->state == AUTH_QUEUED)
                a->n_queued--;
        else if (r->state == AUTH_RUNNING)
                a->n_running--;
}

static uint64_t typical_failure_ms(const Auth *a)
{
        uint32_t v[AUTH_SAMPLES];
        unsigned n = a->n_samples;

        if (n == 0)
                return AUTH_REFUSAL_DEFAULT_MS;
        memcpy(v, a->samples, n * sizeof(uint32_t));
        for (unsigned i = 1; i < n; i++)
                for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
                        uint32_t t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
        return v[n / 2];
}

static void dispatch(Auth *a);

/* The answer goes out now: off the list, to the caller, freed (unless the pool still has it). */
static void deliver(Auth *a, AuthRequest *r, int result)
{
        AuthCallback cb = r->cb;
        void *userdata = r->userdata;

        list_remove(a, r);
        r->cb = NULL;
        if (cb)
                cb(result, r->user, userdata);
        request_free(r);
}

/* A check has its result: a refusal by policy is held until a wrong password would have been answered.
 * The caller runs dispatch() afterwards. */
static void finished(Auth *a, AuthRequest *r, int result)
{
        uint64_t now = uv_now(a->loop);

        if (result == -EACCES && !r->refuse) {
                a->samples[a->next_sample] = (uint32_t)MIN(now - r->started_ms, (uint64_t)UINT32_MAX);
                a->next_sample = (a->next_sample + 1) % AUTH_SAMPLES;
                a->n_samples = MIN(a->n_samples + 1, AUTH_SAMPLES);
        }
        /* Once stopped nothing would answer a held one later: it goes at once. */
        if (result == -EPERM && r->cb && !a->stopped) {
                a->n_running -= r->state == AUTH_RUNNING;
                r->state = AUTH_HOLDING;
                r->result = result;
                r->deadline_ms = r->started_ms + typical_failure_ms(a);
                if (r->deadline_ms > now)
                        return;
        }
        deliver(a, r, result);
}

/* Runs on the thread pool: touches only the request. */
static void do_check(uv_work_t *w)
{
        AuthRequest *r = container_of(w, AuthRequest, work);
        int result;

        switch (r->auth->method) {
        case AUTH_METHOD_TOKEN:
                result = secret_equal(r->secret, strlen(r->secret), r->hash, strlen(r->hash)) ? 0 : -EACCES;
                break;
        case AUTH_METHOD_FILE:
                /* r->user is NULL when the name is unknown: the dummy hash is checked all the same. */
                result = password_verify(r->secret, r->hash) && r->user ? 0 : -EACCES;
                break;
        default:
                result = -EOPNOTSUPP;
        }
        r->result = result;
}

static void after_check(uv_work_t *w, int status)
{
        AuthRequest *r = container_of(w, AuthRequest, work);
        Auth *a = r->auth;

        a->n_on_pool--;
        if (!r->in_list) {
                /* Cancelled while on the pool. */
                request_free(r);
                dispatch(a);
                return;
        }
        finished(a, r, status < 0 ? status : r->result);
        dispatch(a);
}

static void on_launcher_answer(int result, void *userdata)
{
        AuthRequest *r = userdata;
        Auth *a = r->auth; /* finished() may free r */

        r->launcher_request = NULL;
        finished(a, r, result);
        dispatch(a);
}

/* Start r's check. Returns -errno if it could not be, after which r is still queued. */
static int start_check(Auth *a, AuthRequest *r)
{
        int k;

        r->started_ms = uv_now(a->loop);
        if (r->refuse) {
                /* Nothing to check: only the wait. */
                a->n_queued--;
                r->state = AUTH_RUNNING;
                a->n_running++;
                finished(a, r, -EPERM);
                return 0;
        }
        if (a->method == AUTH_METHOD_PAM) {
                k = launcher_authenticate(a->launcher, r->user, r->secret, on_launcher_answer, r,
                                          &r->launcher_request);
                explicit_bzero(r->secret, strlen(r->secret));
                if (k < 0)
                        return k;
        } else {
                r->result = INT_MIN;
                k = uv_queue_work(a->loop, &r->work, do_check, after_check);
                if (k < 0)
                        return k;
                a->n_on_pool++;
        }
        a->n_queued--;
        r->state = AUTH_RUNNING;
        a->n_running++;
        return 0;
}

static void rearm(Auth *a)
{
        uint64_t now = uv_now(a->loop), due = UINT64_MAX;

        if (!a->timer_open)
                return;
        for (AuthRequest *r = a->first; r; r = r->next)
                if (r->state != AUTH_RUNNING)
                        due = MIN(due, r->deadline_ms);
        if (a->n_queued > 0 && a->n_running < AUTH_MAX_RUNNING && a->window_checks >= AUTH_MAX_PER_SECOND)
                due = MIN(due, a->window_start_ms + 1000);
        if (due == UINT64_MAX)
                (void)uv_timer_stop(&a->timer);
        else
                (void)uv_timer_start(&a->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Start waiting checks while there is room, oldest first. */
static void dispatch(Auth *a)
{
        uint64_t now = uv_now(a->loop);
        AuthRequest *r, *next;

        if (now - a->window_start_ms >= 1000) {
                a->window_start_ms = now;
                a->window_checks = 0;
        }
        for (r = a->first;
             r && !a->stopped && a->n_running < AUTH_MAX_RUNNING && a->window_checks < AUTH_MAX_PER_SECOND;
             r = next) {
                int k;

                next = r->next;
                if (r->state != AUTH_QUEUED)
                        continue;
                a->window_checks++;
                /* finished() may answer r (and others) at once: continue from what is still listed. */
                k = start_check(a, r);
                if (k < 0)
                        deliver(a, r, k);
                next = a->first;
        }
        rearm(a);
}

static void on_timer(uv_timer_t *t)
{
        Auth *a = t->data;
        uint64_t now = uv_now(a->loop);
        AuthRequest *r, *next;

        for (r = a->first; r; r = next) {
                next = r->next;
                if (r->state == AUTH_HOLDING && r->deadline_ms <= now) {
                        deliver(a, r, r->result);
                        next = a->first;
                } else if (r->state == AUTH_QUEUED && r->deadline_ms <= now) {
                        a->stats.refused_timeout++;
                        deliver(a, r, -ETIMEDOUT);
                        next = a->first;
                }
        }
        dispatch(a);
}

int auth_verify(Auth *a, const char *user, const char *secret, const char *client, AuthCallback cb,
                void *userdata, AuthRequest **ret_request)
{
        AuthRequest *r;
        const char *hash;
        unsigned of_client = 0;

        if (a->stopped)
                return -ECANCELED;
        if (strlen(secret) > AUTH_SECRET_MAX)
                return -EINVAL;
        if (a->n_requests >= a->limits.max_queued + AUTH_MAX_RUNNING) {
                a->stats.refused_queue_full++;
                return -EBUSY;
        }
        for (AuthRequest *o = a->first; o; o = o->next)
                if (strncmp(o->client, client, sizeof(o->client) - 1) == 0)
                        of_client++;
        if (of_client >= a->limits.max_per_client) {
                a->stats.refused_per_client++;
                return -EUSERS;
        }

        r = calloc(1, sizeof(AuthRequest));
        if (!r)
                return -ENOMEM;
        r->auth = a;
        r->cb = cb;
        r->userdata = userdata;
        (void)snprintf(r->client, sizeof(r->client), "%s", client);
        r->secret = strdup(secret);
        if (!r->secret)
                goto oom;

        switch (a->method) {
        case AUTH_METHOD_TOKEN:
                r->user = strdup(launcher_single_user(a->launcher));
                r->hash = strdup(a->token);
                if (!r->user || !r->hash)
                        goto oom;
                break;
        case AUTH_METHOD_FILE:
                if (!user || !user_name_is_valid(user)) {
                        r->refuse = true;
                        break;
                }
                hash = a->users ? users_file_lookup(a->users, user) : NULL;
                if (hash) {
                        r->user = strdup(user);
                        if (!r->user)
                                goto oom;
                }
                r->hash = strdup(hash ? hash : a->dummy_hash);
                if (!r->hash)
                        goto oom;
                break;
        case AUTH_METHOD_PAM:
                if (!user || !user_name_is_valid(user)) {
                        r->refuse = true;
                        break;
                }
                r->user = strdup(user);
                if (!r->user)
                        goto oom;
                break;
        default:
                request_free(r);
                return -EOPNOTSUPP;
        }

        r->state = AUTH_QUEUED;
        r->deadline_ms = uv_now(a->loop) + a->limits.queue_timeout_ms;
        r->in_list = true;
        r->prev = a->last;
        if (a->last)
                a->last->next = r;
        else
                a->first = r;
        a->last = r;
        a->n_requests++;
        a->n_queued++;
        *ret_request = r;
        /* The answer comes later even when the check can start at once. */
        dispatch(a);
        return 0;
oom:
        request_free(r);
        return -ENOMEM;
}

void auth_request_cancel(AuthRequest *r)
{
        Auth *a;

        if (!r || !r->in_list)
                return;
        a = r->auth;
        r->cb = NULL;
        if (r->state == AUTH_RUNNING && r->launcher_request) {
                launcher_request_cancel(r->launcher_request);
                r->launcher_request = NULL;
        } else if (r->state == AUTH_RUNNING && a->method != AUTH_METHOD_PAM && !r->refuse) {
                /* Work already on the pool finishes; after_check() frees it. */
                list_remove(a, r);
                dispatch(a);
                return;
        }
        list_remove(a, r);
        request_free(r);
        dispatch(a);
}

void auth_stop(Auth *a)
{
        if (!a || a->stopped)
                return;
        a->stopped = true;
        for (AuthRequest *r = a->first, *next; r; r = next) {
                next = r->next;
                if (r->state != AUTH_RUNNING) {
                        deliver(a, r, -ECANCELED);
                        next = a->first;
                }
        }
        if (a->timer_open) {
                uv_close((uv_handle_t *)&a->timer, NULL);
                a->timer_open = false;
        }
}

void auth_get_stats(const Auth *a, AuthStats *ret)
{
        *ret = a->stats;
        ret->queued_now = a->n_queued;
}
