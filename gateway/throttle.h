/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Login throttling: failures are counted per key (an account, a client address); after a burst of them
 * each further failure doubles the wait before the key may try again, up to a ceiling. Keys are chosen
 * by clients, so the table is bounded: when it is full the entry idle longest is forgotten first, and
 * entries are forgotten anyway some time after their last failure. */

typedef struct Throttle Throttle;

typedef struct ThrottlePolicy {
        unsigned burst;        /* failures allowed before any wait */
        uint64_t max_delay_ms; /* longest wait */
        uint64_t forget_ms;    /* an entry with no failure for this long is dropped */
        size_t max_entries;
} ThrottlePolicy;

#define THROTTLE_KEY_MAX 128u

int throttle_new(const ThrottlePolicy *policy, Throttle **ret);
Throttle *throttle_free(Throttle *t);
/* Applies to later failures; entries keep what they have. */
void throttle_set_policy(Throttle *t, const ThrottlePolicy *policy);

/* Milliseconds until key may try again; 0 if it may now. */
uint64_t throttle_wait(Throttle *t, const char *key, uint64_t now_ms);
void throttle_failure(Throttle *t, const char *key, uint64_t now_ms);
/* Forget key's failures (a successful login to an account). */
void throttle_forget(Throttle *t, const char *key);
size_t throttle_size(const Throttle *t);
