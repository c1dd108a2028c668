/* SPDX-License-Identifier: MIT */
#include "throttle.h"

#include <assert.h>
#include <errno.h>
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

uint64_t throttle_wait(Throttle *t, const char *key, uint64_t now_ms)
{
        Entry *e;

        expire(t, now_ms);
        e = lookup(t, key);
        if (!e || e->blocked_until_ms <= now_ms)
                return 0;
        return e->blocked_until_ms - now_ms;
}

void throttle_failure(Throttle *t, const char *key, uint64_t now_ms)
{
        size_t len = strnlen(key, THROTTLE_KEY_MAX);
        Entry *e;

        expire(t, now_ms);
        e = lookup(t, key);
        if (!e) {
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
        if (e->failures >= t->policy.burst) {
                unsigned doublings = MIN(e->failures - t->policy.burst, 30u);
                uint64_t delay = MIN((uint64_t)1000 << doublings, t->policy.max_delay_ms);
                e->blocked_until_ms = now_ms + delay;
        }
}

void throttle_forget(Throttle *t, const char *key)
{
        Entry *e = lookup(t, key);

        if (e)
                entry_remove(t, e);
}

size_t throttle_size(const Throttle *t)
{
        return t->n_entries;
}
