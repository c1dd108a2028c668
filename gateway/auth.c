/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto-util.h"
#include "log.h"
#include "macro.h"
#include "users-file.h"

struct Auth {
        uv_loop_t *loop;
        AuthMethod method;
        Launcher *launcher;
        char *token;
        UsersFile *users;
        /* Checked when a name is unknown, so that an unknown name costs what a known one does and
         * timing does not tell which names exist. */
        char *dummy_hash;
        unsigned pending;
        uint64_t window_start_ms; /* the second being counted */
        unsigned window_checks;
};

struct AuthRequest {
        uv_work_t work;
        Auth *auth;
        AuthCallback cb;
        void *userdata;
        char *user;
        char *secret;
        char *hash; /* file: a copy; the users file may be reloaded while the check runs */
        LauncherRequest *launcher_request;
        int result;
};

int auth_new(uv_loop_t *loop, AuthMethod method, Launcher *launcher, Auth **ret)
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
        *ret = a;
        return 0;
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
        assert(a->pending == 0);
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

/* Runs on the thread pool: touches only the request. */
static void do_check(uv_work_t *w)
{
        AuthRequest *r = container_of(w, AuthRequest, work);

        switch (r->auth->method) {
        case AUTH_METHOD_TOKEN:
                r->result =
                    secret_equal(r->secret, strlen(r->secret), r->hash, strlen(r->hash)) ? 0 : -EACCES;
                break;
        case AUTH_METHOD_FILE:
                /* r->user is NULL when the name is unknown: the dummy hash is checked all the same. */
                r->result = password_verify(r->secret, r->hash) && r->user ? 0 : -EACCES;
                break;
        default:
                r->result = -EOPNOTSUPP;
        }
}

static void after_check(uv_work_t *w, int status)
{
        AuthRequest *r = container_of(w, AuthRequest, work);

        r->auth->pending--;
        if (r->cb)
                r->cb(status < 0 ? status : r->result, r->user, r->userdata);
        request_free(r);
}

static void on_launcher_answer(int result, void *userdata)
{
        AuthRequest *r = userdata;

        r->auth->pending--;
        r->launcher_request = NULL;
        if (r->cb)
                r->cb(result, r->user, r->userdata);
        request_free(r);
}

int auth_verify(Auth *a, const char *user, const char *secret, AuthCallback cb, void *userdata,
                AuthRequest **ret_request)
{
        AuthRequest *r;
        const char *hash;
        int k;

        uint64_t now = uv_now(a->loop);

        if (now - a->window_start_ms >= 1000) {
                a->window_start_ms = now;
                a->window_checks = 0;
        }
        if (a->pending >= AUTH_MAX_PENDING || a->window_checks >= AUTH_MAX_PER_SECOND)
                return -EBUSY;
        if (strlen(secret) > AUTH_SECRET_MAX)
                return -EINVAL;
        if (a->method != AUTH_METHOD_TOKEN && (!user || !user_name_is_valid(user)))
                return -EINVAL;

        r = calloc(1, sizeof(AuthRequest));
        if (!r)
                return -ENOMEM;
        r->auth = a;
        r->cb = cb;
        r->userdata = userdata;
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
                r->user = strdup(user);
                if (!r->user)
                        goto oom;
                k = launcher_authenticate(a->launcher, user, secret, on_launcher_answer, r,
                                          &r->launcher_request);
                if (k < 0) {
                        request_free(r);
                        return k;
                }
                a->pending++;
                a->window_checks++;
                *ret_request = r;
                return 0;
        default:
                request_free(r);
                return -EOPNOTSUPP;
        }

        k = uv_queue_work(a->loop, &r->work, do_check, after_check);
        if (k < 0) {
                request_free(r);
                return k;
        }
        a->pending++;
        a->window_checks++;
        *ret_request = r;
        return 0;
oom:
        request_free(r);
        return -ENOMEM;
}

void auth_request_cancel(AuthRequest *r)
{
        if (!r)
                return;
        /* Work already on the pool finishes; only its answer is dropped. */
        r->cb = NULL;
        if (r->launcher_request) {
                launcher_request_cancel(r->launcher_request);
                r->launcher_request = NULL;
                r->auth->pending--;
                request_free(r);
        }
}
