/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Login throttling. Failures are counted for three kinds of key, each with its own burst (failures
 * allowed before any wait) after which each further failure doubles the wait, up to a ceiling:
 *   the pair (client address, account): the tight bound, so guessing one account from one place is slow;
 *   the address: a looser bound, so one student's typos do not throttle a whole NAT, but one address
 *     trying many accounts is still slowed;
 *   the account: failures from anywhere. It slows that account only for addresses that have failed
 *     themselves (any account); an address with no failure on record is never held back by it, so
 *     nobody can lock an account out for its owner by failing against it.
 * Keys are chosen by clients, so the table is bounded: when it is full the entry idle longest is
 * forgotten first, and entries are forgotten anyway some time after their last failure. */

typedef struct Throttle Throttle;

typedef struct ThrottlePolicy {
        unsigned pair_burst;    /* failures of one address against one account */
        unsigned address_burst; /* failures of one address, whatever the account */
        unsigned account_burst; /* failures against one account, whatever the address */
        uint64_t max_delay_ms;  /* longest wait */
        uint64_t forget_ms;     /* an entry with no failure for this long is dropped */
        size_t max_entries;
} ThrottlePolicy;

/* Longest address or account name used in a key; longer ones are cut. */
#define THROTTLE_KEY_MAX 128u

int throttle_new(const ThrottlePolicy *policy, Throttle **ret);
Throttle *throttle_free(Throttle *t);
/* Applies to later failures; entries keep what they have. */
void throttle_set_policy(Throttle *t, const ThrottlePolicy *policy);

/* Milliseconds until address may try to log in as account (NULL: any account); 0 if it may now. */
uint64_t throttle_login_wait(Throttle *t, const char *address, const char *account, uint64_t now_ms);
void throttle_login_failed(Throttle *t, const char *address, const char *account, uint64_t now_ms);
/* A successful login: the pair and the account start afresh; the address keeps its record. */
void throttle_login_succeeded(Throttle *t, const char *address, const char *account);
size_t throttle_size(const Throttle *t);
