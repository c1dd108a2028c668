/* SPDX-License-Identifier: MIT */
#include "throttle.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto-util.h"
#include "macro.h"

typedef struct Entry Entry;
struct Entry {
        Entry *hnext;         /* hash chain */
        Entry *older, *newer; /* by last failure: the oldest is evicted first */
        uint64_t last_failure_ms;
        uint64_t blocked_until_ms;
        unsigned failures;
        char key[];
};

struct Throttle {
        ThrottlePolicy policy;
        Entry **buckets;
        size_t n_buckets; /* a power of two */
        size_t n_entries;
        Entry *oldest, *newest;
        uint8_t hash_key[16];
};

int throttle_new(const ThrottlePolicy *policy, Throttle **ret)
{
        Throttle *t;
        int r;

        assert(policy && policy->max_entries > 0);
        t = calloc(1, sizeof(Throttle));
        if (!t)
                return -ENOMEM;
        t->policy = *policy;
        t->n_buckets = 16;
        while (t->n_buckets < policy->max_entries && t->n_buckets < ((size_t)1 << 24))
                t->n_buckets <<= 1;
        t->buckets = calloc(t->n_buckets, sizeof(Entry *));
        if (!t->buckets) {
                free(t);
                return -ENOMEM;
        }
        r = random_bytes(t->hash_key, sizeof(t->hash_key));
        if (r < 0) {
                throttle_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

Throttle *throttle_free(Throttle *t)
{
        if (!t)
                return NULL;
        for (Entry *e = t->oldest, *next; e; e = next) {
                next = e->newer;
                free(e);
        }
        free(t->buckets);
        free(t);
        return NULL;
}

void throttle_set_policy(Throttle *t, const ThrottlePolicy *policy)
{
        /* The table keeps its size; a smaller maximum takes effect through eviction. */
        t->policy = *policy;
}

static Entry **bucket_of(Throttle *t, const char *key)
{
        return &t->buckets[siphash24(key, strlen(key), t->hash_key) & (t->n_buckets - 1)];
}

static void lru_unlink(Throttle *t, Entry *e)
{
        if (e->older)
                e->older->newer = e->newer;
        else
                t->oldest = e->newer;
        if (e->newer)
                e->newer->older = e->older;
        else
                t->newest = e->older;
        e->older = e->newer = NULL;
}

static void lru_append(Throttle *t, Entry *e)
{
        e->older = t->newest;
        e->newer = NULL;
        if (t->newest)
                t->newest->newer = e;
        else
                t->oldest = e;
        t->newest = e;
}

static void entry_remove(Throttle *t, Entry *e)
{
        Entry **p = bucket_of(t, e->key);

        while (*p != e)
                p = &(*p)->hnext;
        *p = e->hnext;
        lru_unlink(t, e);
        t->n_entries--;
        free(e);
}

/* Entries are in order of last failure, so the stale ones are all at the old end. */
static void expire(Throttle *t, uint64_t now_ms)
{
        while (t->oldest && now_ms - t->oldest->last_failure_ms >= t->policy.forget_ms)
                entry_remove(t, t->oldest);
}

static Entry *lookup(Throttle *t, const char *key)
{
        for (Entry *e = *bucket_of(t, key); e; e = e->hnext)
                if (streq(e->key, key))
                        return e;
        return NULL;
}

/* The key of a kind: "a ADDR", "u ACCOUNT" or "p ADDR ACCOUNT", each part cut at THROTTLE_KEY_MAX. A
 * space appears in neither an address nor a valid account name. */
typedef enum KeyKind {
        KEY_ADDRESS,
        KEY_ACCOUNT,
        KEY_PAIR,
        _KEY_KIND_MAX,
} KeyKind;

#define KEY_BUF (2 * THROTTLE_KEY_MAX + 8)

static void make_key(char buf[KEY_BUF], KeyKind kind, const char *address, const char *account)
{
        static const char prefix[_KEY_KIND_MAX] = {
            [KEY_ADDRESS] = 'a', [KEY_ACCOUNT] = 'u', [KEY_PAIR] = 'p'};
        int a = (int)strnlen(address ?: "", THROTTLE_KEY_MAX),
            u = (int)strnlen(account ?: "", THROTTLE_KEY_MAX);

        if (kind == KEY_ADDRESS)
                (void)snprintf(buf, KEY_BUF, "%c %.*s", prefix[kind], a, address);
        else if (kind == KEY_ACCOUNT)
                (void)snprintf(buf, KEY_BUF, "%c %.*s", prefix[kind], u, account);
        else
                (void)snprintf(buf, KEY_BUF, "%c %.*s %.*s", prefix[kind], a, address, u, account);
}

static unsigned burst_of(const Throttle *t, KeyKind kind)
{
        switch (kind) {
        case KEY_ADDRESS:
                return t->policy.address_burst;
        case KEY_ACCOUNT:
                return t->policy.account_burst;
        default:
                return t->policy.pair_burst;
        }
}

static uint64_t key_wait(Throttle *t, KeyKind kind, const char *address, const char *account,
                         uint64_t now_ms, bool *ret_known)
{
        char key[KEY_BUF];
        Entry *e;

        make_key(key, kind, address, account);
        e = lookup(t, key);
        if (ret_known)
                *ret_known = e != NULL;
        if (!e || e->blocked_until_ms <= now_ms)
                return 0;
        return e->blocked_until_ms - now_ms;
}

uint64_t throttle_login_wait(Throttle *t, const char *address, const char *account, uint64_t now_ms)
{
        uint64_t wait;
        bool address_failed;

        expire(t, now_ms);
        wait = key_wait(t, KEY_ADDRESS, address, NULL, now_ms, &address_failed);
        if (!account)
                return wait;
        wait = MAX(wait, key_wait(t, KEY_PAIR, address, account, now_ms, NULL));
        /* An account under attack from many places slows down only the places that have failed: its owner,
         * from an address with a clean record, is not held back. */
        if (address_failed)
                wait = MAX(wait, key_wait(t, KEY_ACCOUNT, address, account, now_ms, NULL));
        return wait;
}

static void key_failed(Throttle *t, KeyKind kind, const char *address, const char *account, uint64_t now_ms)
{
        char key[KEY_BUF];
        unsigned burst = burst_of(t, kind);
        Entry *e;

        make_key(key, kind, address, account);
        e = lookup(t, key);
        if (!e) {
                size_t len = strlen(key);

                while (t->n_entries >= t->policy.max_entries && t->oldest)
                        entry_remove(t, t->oldest);
                e = calloc(1, sizeof(Entry) + len + 1);
                if (!e)
                        return; /* Throttling is best effort under memory pressure; the login still failed.
                                 */
                memcpy(e->key, key, len);
                Entry **b = bucket_of(t, e->key);
                e->hnext = *b;
                *b = e;
                t->n_entries++;
        } else
                lru_unlink(t, e);
        lru_append(t, e);

        e->last_failure_ms = now_ms;
        if (e->failures < UINT32_MAX)
                e->failures++;
        if (e->failures >= burst) {
                unsigned doublings = MIN(e->failures - burst, 30u);
                uint64_t delay = MIN((uint64_t)1000 << doublings, t->policy.max_delay_ms);
                e->blocked_until_ms = now_ms + delay;
        }
}

void throttle_login_failed(Throttle *t, const char *address, const char *account, uint64_t now_ms)
{
        expire(t, now_ms);
        key_failed(t, KEY_ADDRESS, address, NULL, now_ms);
        if (!account)
                return;
        key_failed(t, KEY_PAIR, address, account, now_ms);
        key_failed(t, KEY_ACCOUNT, address, account, now_ms);
}

static void key_forget(Throttle *t, KeyKind kind, const char *address, const char *account)
{
        char key[KEY_BUF];
        Entry *e;

        make_key(key, kind, address, account);
        e = lookup(t, key);
        if (e)
                entry_remove(t, e);
}

void throttle_login_succeeded(Throttle *t, const char *address, const char *account)
{
        key_forget(t, KEY_PAIR, address, account);
        key_forget(t, KEY_ACCOUNT, address, account);
}

size_t throttle_size(const Throttle *t)
{
        return t->n_entries;
}
