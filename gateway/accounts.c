/* SPDX-License-Identifier: MIT */
#include "accounts.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

/* Periodic checks started per tick: a thousand users are all checked again within a few minutes,
 * without a burst of PAM helpers. */
#define ACCOUNT_CHECKS_PER_TICK 8u
/* A result younger than this is not asked for again when a page connects: a storm of pages is one
 * check. */
#define ACCOUNT_FRESH_MS (10u * 1000u)
/* A result stays good this long past the interval: the periodic check renews it before then. */
#define ACCOUNT_GRACE_MS (60u * 1000u)
/* How long a refusal is remembered (the user's sessions are gone; new ones need a login). */
#define ACCOUNT_REFUSED_MS (60u * 1000u)

typedef enum AccountState {
        ACCOUNT_UNKNOWN,
        ACCOUNT_OK,
        ACCOUNT_REFUSED,
} AccountState;

typedef struct Entry Entry;
struct Entry {
        AccountChecks *owner;
        Entry *next;
        AccountState state;
        uint64_t checked_ms;
        LauncherRequest *request; /* in flight */
        char user[];
};

struct AccountChecks {
        Launcher *launcher;
        SessionStore *sessions;
        uint64_t interval_ms;
        Entry *entries;
        bool enabled;
};

int account_checks_new(Launcher *launcher, SessionStore *sessions, AccountChecks **ret)
{
        AccountChecks *a = calloc(1, sizeof(AccountChecks));

        if (!a)
                return -ENOMEM;
        a->launcher = launcher;
        a->sessions = sessions;
        a->interval_ms = 5 * 60 * 1000;
        a->enabled = !launcher_single_user(launcher);
        *ret = a;
        return 0;
}

AccountChecks *account_checks_free(AccountChecks *a)
{
        if (!a)
                return NULL;
        for (Entry *e = a->entries, *next; e; e = next) {
                next = e->next;
                launcher_request_cancel(e->request);
                free(e);
        }
        free(a);
        return NULL;
}

void account_checks_set_interval(AccountChecks *a, uint64_t interval_ms)
{
        a->interval_ms = interval_ms;
}

static Entry *entry_get(AccountChecks *a, const char *user, bool create)
{
        Entry *e;

        for (e = a->entries; e; e = e->next)
                if (streq(e->user, user))
                        return e;
        if (!create)
                return NULL;
        e = calloc(1, sizeof(Entry) + strlen(user) + 1);
        if (!e)
                return NULL;
        e->owner = a;
        strcpy(e->user, user);
        e->next = a->entries;
        a->entries = e;
        return e;
}

static void on_answer(int r, void *userdata)
{
        Entry *e = userdata;
        AccountChecks *a = e->owner;
        size_t n;

        e->request = NULL;
        if (r == -ECANCELED)
                return;
        if (r < 0 && r != -EACCES && r != -EPERM && r != -EKEYEXPIRED) {
                /* The launcher could not tell (restarting, busy): what was known stays, and the next tick
                 * asks again. */
                log_warning_errno(r, "Cannot check the account %s: %m", e->user);
                return;
        }
        e->state = r == 0 ? ACCOUNT_OK : ACCOUNT_REFUSED;
        if (e->state == ACCOUNT_REFUSED) {
                n = session_store_end_user(a->sessions, e->user,
                                           r == -EKEYEXPIRED ? SESSION_END_ACCOUNT_LOCKED
                                                             : SESSION_END_ACCOUNT);
                log_notice("The account %s may no longer log in: %zu session%s ended.", e->user, n,
                           n == 1 ? "" : "s");
        }
}

static void entry_check(AccountChecks *a, Entry *e, uint64_t now_ms)
{
        int r;

        if (e->request)
                return;
        r = launcher_check_account(a->launcher, e->user, on_answer, e, &e->request);
        if (r < 0) {
                e->request = NULL;
                log_debug_errno(r, "Cannot ask for a check of the account %s now: %m", e->user);
                return;
        }
        /* The result holds from when it was asked for. */
        e->checked_ms = now_ms;
}

int account_checks_admit(AccountChecks *a, const char *user, uint64_t now_ms)
{
        Entry *e;

        if (!a->enabled)
                return 0;
        e = entry_get(a, user, true);
        if (!e)
                return -EAGAIN;
        if (e->state == ACCOUNT_REFUSED && now_ms - e->checked_ms < ACCOUNT_REFUSED_MS)
                return -EPERM;
        if (e->state == ACCOUNT_OK && now_ms - e->checked_ms < ACCOUNT_FRESH_MS)
                return 0;
        /* Every other page that connects has the account checked again. One known to have been good
         * lately connects meanwhile, and is closed with the others if the answer is no; one not known
         * waits for the answer. */
        bool good_lately =
            e->state == ACCOUNT_OK && now_ms - e->checked_ms < a->interval_ms + ACCOUNT_GRACE_MS;
        entry_check(a, e, now_ms);
        return good_lately ? 0 : -EAGAIN;
}

void account_checks_passed(AccountChecks *a, const char *user, uint64_t now_ms)
{
        Entry *e;

        if (!a->enabled || !(e = entry_get(a, user, true)))
                return;
        e->state = ACCOUNT_OK;
        e->checked_ms = now_ms;
}

void account_checks_start(AccountChecks *a, const char *user, uint64_t now_ms)
{
        Entry *e;

        if (a->enabled && (e = entry_get(a, user, true)))
                entry_check(a, e, now_ms);
}

void account_checks_tick(AccountChecks *a, uint64_t now_ms)
{
        unsigned started = 0;

        if (!a->enabled)
                return;
        for (Entry **p = &a->entries, *e; (e = *p);) {
                if (!e->request && !session_store_has_user(a->sessions, e->user) &&
                    !(e->state == ACCOUNT_REFUSED && now_ms - e->checked_ms < ACCOUNT_REFUSED_MS)) {
                        *p = e->next;
                        free(e);
                        continue;
                }
                if (e->state != ACCOUNT_REFUSED && !e->request && started < ACCOUNT_CHECKS_PER_TICK &&
                    now_ms - e->checked_ms >= a->interval_ms) {
                        entry_check(a, e, now_ms);
                        started++;
                }
                p = &e->next;
        }
}
