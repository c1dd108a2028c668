/* SPDX-License-Identifier: MIT */
#include "sessions.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static const char *const session_end_table[_SESSION_END_MAX] = {
    [SESSION_END_LOGOUT] = "logout",     [SESSION_END_REVOKED] = "revoked",
    [SESSION_END_EXPIRED] = "expired",   [SESSION_END_EVICTED] = "evicted",
    [SESSION_END_SHUTDOWN] = "shutdown", [SESSION_END_ACCOUNT] = "account disabled",
};

const char *session_end_to_string(SessionEnd e)
{
        return e >= 0 && e < _SESSION_END_MAX ? session_end_table[e] : NULL;
}

struct Session {
        Session *hnext;       /* hash chain, by the id's first 8 bytes */
        Session *prev, *next; /* all sessions, oldest first */
        uint8_t id[SESSION_ID_BYTES];
        char handle[SESSION_HANDLE_LEN + 1];
        char user[SESSION_USER_MAX + 1];
        uint64_t created_ms, last_used_ms;
        SessionLink *links;
};

struct SessionStore {
        SessionLimits limits;
        Session **buckets;
        size_t n_buckets; /* a power of two */
        size_t n_sessions;
        Session *first, *last;
};

int session_store_new(const SessionLimits *limits, SessionStore **ret)
{
        SessionStore *s = calloc(1, sizeof(SessionStore));

        if (!s)
                return -ENOMEM;
        s->limits = *limits;
        s->n_buckets = 64;
        while (s->n_buckets < limits->max_sessions && s->n_buckets < ((size_t)1 << 20))
                s->n_buckets <<= 1;
        s->buckets = calloc(s->n_buckets, sizeof(Session *));
        if (!s->buckets) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

SessionStore *session_store_free(SessionStore *s)
{
        if (!s)
                return NULL;
        while (s->first)
                session_end(s, s->first, SESSION_END_SHUTDOWN);
        free(s->buckets);
        free(s);
        return NULL;
}

void session_store_set_limits(SessionStore *s, const SessionLimits *limits)
{
        s->limits = *limits;
}

/* The id is random: its first bytes are as good a hash as any, and learning them through timing gives
 * nothing towards the rest, which is compared in constant time. */
static Session **bucket_of(SessionStore *s, const uint8_t id[SESSION_ID_BYTES])
{
        uint64_t h;

        memcpy(&h, id, sizeof(h));
        return &s->buckets[h & (s->n_buckets - 1)];
}

static bool expired(const SessionStore *s, const Session *x, uint64_t now_ms)
{
        return now_ms - x->last_used_ms >= s->limits.idle_ms ||
               now_ms - x->created_ms >= s->limits.lifetime_ms;
}

int session_create(SessionStore *s, const char *user, uint64_t now_ms, Session **ret_session,
                   char ret_cookie[SESSION_COOKIE_LEN + 1])
{
        Session *x, *oldest_of_user = NULL;
        uint8_t handle_bytes[SESSION_HANDLE_LEN / 2];
        size_t of_user = 0;
        int r;

        assert(strlen(user) <= SESSION_USER_MAX);

        session_store_expire(s, now_ms);
        for (Session *o = s->first; o; o = o->next)
                if (streq(o->user, user)) {
                        if (of_user++ == 0)
                                oldest_of_user = o;
                }
        if (of_user >= s->limits.max_per_user && oldest_of_user)
                session_end(s, oldest_of_user, SESSION_END_EVICTED);
        else if (s->n_sessions >= s->limits.max_sessions)
                return -EBUSY;

        x = calloc(1, sizeof(Session));
        if (!x)
                return -ENOMEM;
        r = random_bytes(x->id, sizeof(x->id));
        if (r >= 0)
                r = random_bytes(handle_bytes, sizeof(handle_bytes));
        if (r < 0) {
                free(x);
                return r;
        }
        for (size_t i = 0; i < sizeof(handle_bytes); i++) {
                static const char hex[] = "0123456789abcdef";
                x->handle[2 * i] = hex[handle_bytes[i] >> 4];
                x->handle[2 * i + 1] = hex[handle_bytes[i] & 15];
        }
        strcpy(x->user, user);
        x->created_ms = x->last_used_ms = now_ms;

        Session **b = bucket_of(s, x->id);
        x->hnext = *b;
        *b = x;
        x->prev = s->last;
        if (s->last)
                s->last->next = x;
        else
                s->first = x;
        s->last = x;
        s->n_sessions++;

        base64url_encode(x->id, sizeof(x->id), ret_cookie);
        *ret_session = x;
        return 0;
}

Session *session_find(SessionStore *s, const char *cookie, size_t len, uint64_t now_ms)
{
        uint8_t id[SESSION_ID_BYTES];
        Session *found = NULL;

        if (base64url_decode(cookie, len, id, sizeof(id)) < 0)
                return NULL;
        for (Session *x = *bucket_of(s, id); x; x = x->hnext)
                if (secret_equal(id, sizeof(id), x->id, sizeof(x->id)))
                        found = x;
        explicit_bzero(id, sizeof(id));
        if (!found)
                return NULL;
        if (expired(s, found, now_ms)) {
                session_end(s, found, SESSION_END_EXPIRED);
                return NULL;
        }
        found->last_used_ms = now_ms;
        return found;
}

Session *session_find_by_handle(SessionStore *s, const char *user, const char *handle)
{
        for (Session *x = s->first; x; x = x->next)
                if (streq(x->handle, handle) && (!user || streq(x->user, user)))
                        return x;
        return NULL;
}

void session_end(SessionStore *s, Session *x, SessionEnd why)
{
        Session **p = bucket_of(s, x->id);

        while (*p != x)
                p = &(*p)->hnext;
        *p = x->hnext;
        if (x->prev)
                x->prev->next = x->next;
        else
                s->first = x->next;
        if (x->next)
                x->next->prev = x->prev;
        else
                s->last = x->prev;
        s->n_sessions--;

        /* Each link is off the session before it hears of the end, so it may do anything then. */
        while (x->links) {
                SessionLink *l = x->links;
                session_unlink(x, l);
                l->ended(l, why);
        }
        explicit_bzero(x->id, sizeof(x->id));
        free(x);
}

void session_store_expire(SessionStore *s, uint64_t now_ms)
{
        for (Session *x = s->first, *next; x; x = next) {
                next = x->next;
                if (expired(s, x, now_ms))
                        session_end(s, x, SESSION_END_EXPIRED);
        }
}

size_t session_store_count(const SessionStore *s)
{
        return s->n_sessions;
}

size_t session_store_end_user(SessionStore *s, const char *user, SessionEnd why)
{
        size_t n = 0;

        for (Session *x = s->first, *next; x; x = next) {
                next = x->next;
                if (streq(x->user, user)) {
                        session_end(s, x, why);
                        n++;
                }
        }
        return n;
}

bool session_store_has_user(const SessionStore *s, const char *user)
{
        for (const Session *x = s->first; x; x = x->next)
                if (streq(x->user, user))
                        return true;
        return false;
}

void session_store_foreach_of_user(SessionStore *s, const char *user, SessionForeachFn fn, void *userdata)
{
        for (Session *x = s->first; x; x = x->next)
                if (streq(x->user, user))
                        fn(x, userdata);
}

void session_touch(Session *x, uint64_t now_ms)
{
        x->last_used_ms = now_ms;
}

const char *session_user(const Session *x)
{
        return x->user;
}

const char *session_handle(const Session *x)
{
        return x->handle;
}

uint64_t session_created_ms(const Session *x)
{
        return x->created_ms;
}

uint64_t session_last_used_ms(const Session *x)
{
        return x->last_used_ms;
}

uint64_t session_expires_ms(const SessionStore *s, const Session *x)
{
        return MIN(x->last_used_ms + s->limits.idle_ms, x->created_ms + s->limits.lifetime_ms);
}

void session_link(Session *x, SessionLink *l)
{
        assert(l->ended);
        l->prev = NULL;
        l->next = x->links;
        if (x->links)
                x->links->prev = l;
        x->links = l;
}

void session_unlink(Session *x, SessionLink *l)
{
        if (l->prev)
                l->prev->next = l->next;
        else
                x->links = l->next;
        if (l->next)
                l->next->prev = l->prev;
        l->prev = l->next = NULL;
}
