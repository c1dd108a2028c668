/* SPDX-License-Identifier: MIT */
#include "sessions.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static const char *const session_end_table[_SESSION_END_MAX] = {
    [SESSION_END_LOGOUT] = "logout",
    [SESSION_END_REVOKED] = "revoked",
    [SESSION_END_EXPIRED] = "expired",
    [SESSION_END_EVICTED] = "evicted",
    [SESSION_END_SHUTDOWN] = "shutdown",
    [SESSION_END_ACCOUNT] = "account disabled",
    [SESSION_END_ACCOUNT_LOCKED] = "account locked or expired",
};

const char *session_end_to_string(SessionEnd e)
{
        return e >= 0 && e < _SESSION_END_MAX ? session_end_table[e] : NULL;
}

struct Session {
        Session *hnext;       /* hash chain, by the digest's first 8 bytes */
        Session *prev, *next; /* all sessions, oldest first */
        /* SHA-256 of the cookie's 256 random bits: only this is kept (and saved), so that neither a
         * memory dump nor a leaked state file gives a cookie that works. */
        uint8_t digest[SESSION_DIGEST_BYTES];
        char handle[SESSION_HANDLE_LEN + 1];
        char user[SESSION_USER_MAX + 1];
        char from[SESSION_FROM_MAX + 1];
        uint64_t created_ms, last_used_ms;
        SessionLink *links;
};

struct SessionStore {
        SessionLimits limits;
        Session **buckets;
        size_t n_buckets; /* a power of two */
        size_t n_sessions;
        Session *first, *last;
        void (*changed)(void *userdata);
        void *changed_userdata;
        void (*ended)(const Session *session, SessionEnd why, void *userdata);
        void *ended_userdata;
        bool used; /* a session was used since session_store_take_used() */
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

/* The digest of a random id: its first bytes are as good a hash as any, and learning them through
 * timing gives nothing towards the rest, which is compared in constant time. */
static Session **bucket_of(SessionStore *s, const uint8_t digest[SESSION_DIGEST_BYTES])
{
        uint64_t h;

        memcpy(&h, digest, sizeof(h));
        return &s->buckets[h & (s->n_buckets - 1)];
}

static int id_digest(const uint8_t id[SESSION_ID_BYTES], uint8_t ret[SESSION_DIGEST_BYTES])
{
        unsigned n = 0;

        if (!EVP_Digest(id, SESSION_ID_BYTES, ret, &n, EVP_sha256(), NULL) || n != SESSION_DIGEST_BYTES)
                return -EIO;
        return 0;
}

static void notify_changed(SessionStore *s)
{
        if (s->changed)
                s->changed(s->changed_userdata);
}

void session_store_on_end(SessionStore *s,
                          void (*fn)(const Session *session, SessionEnd why, void *userdata), void *userdata)
{
        s->ended = fn;
        s->ended_userdata = userdata;
}

void session_store_on_change(SessionStore *s, void (*fn)(void *userdata), void *userdata)
{
        s->changed = fn;
        s->changed_userdata = userdata;
}

bool session_store_take_used(SessionStore *s)
{
        bool u = s->used;

        s->used = false;
        return u;
}

static void insert(SessionStore *s, Session *x)
{
        Session **b = bucket_of(s, x->digest);

        x->hnext = *b;
        *b = x;
        x->prev = s->last;
        if (s->last)
                s->last->next = x;
        else
                s->first = x;
        s->last = x;
        s->n_sessions++;
}

/* Makes room for one more session of user: ends the user's oldest if the user is at the limit.
 * -EBUSY when the store is full of other users' sessions. */
static int make_room(SessionStore *s, const char *user)
{
        Session *oldest_of_user = NULL;
        size_t of_user = 0;

        for (Session *o = s->first; o; o = o->next)
                if (streq(o->user, user)) {
                        if (of_user++ == 0)
                                oldest_of_user = o;
                }
        if (of_user >= s->limits.max_per_user && oldest_of_user)
                session_end(s, oldest_of_user, SESSION_END_EVICTED);
        else if (s->n_sessions >= s->limits.max_sessions)
                return -EBUSY;
        return 0;
}

static bool expired(const SessionStore *s, const Session *x, uint64_t now_ms)
{
        return now_ms - x->last_used_ms >= s->limits.idle_ms ||
               now_ms - x->created_ms >= s->limits.lifetime_ms;
}

int session_create(SessionStore *s, const char *user, const char *from, uint64_t now_ms,
                   Session **ret_session, char ret_cookie[SESSION_COOKIE_LEN + 1])
{
        uint8_t id[SESSION_ID_BYTES], handle_bytes[SESSION_HANDLE_LEN / 2];
        Session *x;
        int r;

        assert(strlen(user) <= SESSION_USER_MAX);

        session_store_expire(s, now_ms);
        r = make_room(s, user);
        if (r < 0)
                return r;

        x = calloc(1, sizeof(Session));
        if (!x)
                return -ENOMEM;
        r = random_bytes(id, sizeof(id));
        if (r >= 0)
                r = id_digest(id, x->digest);
        if (r >= 0)
                r = random_bytes(handle_bytes, sizeof(handle_bytes));
        if (r < 0) {
                explicit_bzero(id, sizeof(id));
                free(x);
                return r;
        }
        for (size_t i = 0; i < sizeof(handle_bytes); i++) {
                static const char hex[] = "0123456789abcdef";
                x->handle[2 * i] = hex[handle_bytes[i] >> 4];
                x->handle[2 * i + 1] = hex[handle_bytes[i] & 15];
        }
        strcpy(x->user, user);
        (void)snprintf(x->from, sizeof(x->from), "%s",
                       from && from[0] && !strpbrk(from, " \t\n") ? from : "-");
        x->created_ms = x->last_used_ms = now_ms;
        insert(s, x);

        base64url_encode(id, sizeof(id), ret_cookie);
        explicit_bzero(id, sizeof(id));
        *ret_session = x;
        notify_changed(s);
        return 0;
}

Session *session_find(SessionStore *s, const char *cookie, size_t len, uint64_t now_ms)
{
        uint8_t id[SESSION_ID_BYTES], digest[SESSION_DIGEST_BYTES];
        Session *found = NULL;
        int r;

        if (base64url_decode(cookie, len, id, sizeof(id)) < 0)
                return NULL;
        r = id_digest(id, digest);
        explicit_bzero(id, sizeof(id));
        if (r < 0)
                return NULL;
        for (Session *x = *bucket_of(s, digest); x; x = x->hnext)
                if (secret_equal(digest, sizeof(digest), x->digest, sizeof(x->digest)))
                        found = x;
        if (!found)
                return NULL;
        if (expired(s, found, now_ms)) {
                session_end(s, found, SESSION_END_EXPIRED);
                return NULL;
        }
        found->last_used_ms = now_ms;
        s->used = true;
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
        Session **p = bucket_of(s, x->digest);

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
        if (s->ended)
                s->ended(x, why, s->ended_userdata);
        explicit_bzero(x->digest, sizeof(x->digest));
        free(x);
        if (why != SESSION_END_SHUTDOWN)
                notify_changed(s);
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

/* ---- the state file ---- */

#define STATE_MAGIC "helios-sessions 2"
/* digest, handle, two times, user, and separators: a longer line is not ours. */
#define STATE_LINE_MAX \
        (2 * SESSION_DIGEST_BYTES + SESSION_HANDLE_LEN + 2 * 20 + SESSION_FROM_MAX + SESSION_USER_MAX + 8)

int session_store_save(const SessionStore *s, FILE *f, uint64_t wall_offset_ms)
{
        fprintf(f, "%s\n", STATE_MAGIC);
        for (const Session *x = s->first; x; x = x->next) {
                for (size_t i = 0; i < SESSION_DIGEST_BYTES; i++)
                        fprintf(f, "%02x", x->digest[i]);
                fprintf(f, " %s %" PRIu64 " %" PRIu64 " %s %s\n", x->handle, x->created_ms + wall_offset_ms,
                        x->last_used_ms + wall_offset_ms, x->from, x->user);
        }
        return ferror(f) ? -EIO : 0;
}

static bool user_name_ok(const char *u)
{
        size_t n = strlen(u);

        if (n == 0 || n > SESSION_USER_MAX)
                return false;
        for (const char *p = u; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

static int parse_line(char *line, Session *x, uint64_t wall_offset_ms)
{
        char hex[2 * SESSION_DIGEST_BYTES + 1], handle[SESSION_HANDLE_LEN + 1], user[SESSION_USER_MAX + 1],
            from[SESSION_FROM_MAX + 1];
        uint64_t created, used;
        int end = 0;

        if (sscanf(line, "%64[0-9a-f] %16[0-9a-f] %" SCNu64 " %" SCNu64 " %63s %64s%n", hex, handle,
                   &created, &used, from, user, &end) != 6 ||
            strlen(hex) != 2 * SESSION_DIGEST_BYTES || strlen(handle) != SESSION_HANDLE_LEN ||
            line[end] != '\0' || !user_name_ok(user) || used < created)
                return -EINVAL;
        for (size_t i = 0; i < SESSION_DIGEST_BYTES; i++) {
                unsigned v;
                if (sscanf(hex + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                x->digest[i] = (uint8_t)v;
        }
        memcpy(x->handle, handle, sizeof(handle));
        strcpy(x->user, user);
        strcpy(x->from, from);
        /* Loop time is the wall time less the offset, modulo 2^64: only differences are ever taken. */
        x->created_ms = created - wall_offset_ms;
        x->last_used_ms = used - wall_offset_ms;
        return 0;
}

int session_store_load(SessionStore *s, FILE *f, uint64_t wall_offset_ms, uint64_t now_ms)
{
        char line[STATE_LINE_MAX + 2];
        void (*changed)(void *) = s->changed;
        int n = 0;

        if (!fgets(line, sizeof(line), f) || strcspn(line, "\n") != strlen(STATE_MAGIC) ||
            strncmp(line, STATE_MAGIC, strlen(STATE_MAGIC)) != 0)
                return -EBADMSG;
        s->changed = NULL;
        while (fgets(line, sizeof(line), f)) {
                size_t len = strlen(line);
                Session *x;

                if (len == 0 || line[len - 1] != '\n') {
                        /* Overlong or cut short: skip to the next line. */
                        int c;
                        while ((c = fgetc(f)) != EOF && c != '\n')
                                ;
                        continue;
                }
                line[len - 1] = '\0';
                x = calloc(1, sizeof(Session));
                if (!x)
                        break;
                if (parse_line(line, x, wall_offset_ms) < 0 || expired(s, x, now_ms) ||
                    now_ms - x->created_ms > s->limits.lifetime_ms ||
                    session_find_by_handle(s, NULL, x->handle) || make_room(s, x->user) < 0) {
                        free(x);
                        continue;
                }
                insert(s, x);
                n++;
        }
        s->changed = changed;
        return n;
}

const char *session_user(const Session *x)
{
        return x->user;
}

const char *session_handle(const Session *x)
{
        return x->handle;
}

const char *session_from(const Session *x)
{
        return x->from;
}

size_t session_n_links(const Session *x)
{
        size_t n = 0;

        for (const SessionLink *l = x->links; l; l = l->next)
                n++;
        return n;
}

void session_store_foreach(SessionStore *s, SessionForeachAllFn fn, void *userdata)
{
        for (Session *x = s->first, *next; x; x = next) {
                next = x->next;
                fn(x, userdata);
        }
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
