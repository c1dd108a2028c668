/* SPDX-License-Identifier: MIT */
#include "pam-sessions.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "launcher-protocol.h"
#include "log.h"
#include "macro.h"

/* After a lost launcher, a busy answer or a failure, the next try waits this long, doubled after each
 * failure of the same login up to RETRY_MAX_MS: a PAM stack that fails every time is not run every
 * two seconds. */
#define RETRY_MS     2000
#define RETRY_MAX_MS (5 * 60 * 1000)

typedef enum EntryState {
        ENTRY_OPENING,
        ENTRY_OPEN,
        ENTRY_LOST,    /* the launcher is gone, or was busy: open again while there are pages */
        ENTRY_REFUSED, /* PAM said no: not asked again until the login's pages are all gone */
} EntryState;

typedef struct Entry Entry;
struct Entry {
        PamSessions *owner;
        Entry *prev, *next;
        char key[SESSION_HANDLE_LEN + 1];
        char user[SESSION_USER_MAX + 1];
        char rhost[LAUNCHER_RHOST_MAX + 1];
        EntryState state;
        unsigned pages;
        uint64_t idle_since_ms; /* when its last page closed; 0 while it has pages */
        uint64_t retry_ms;
        unsigned failures; /* in a row */
        LauncherRequest *request;
};

struct PamSessions {
        Launcher *launcher;
        Entry *entries;
        unsigned n_open;
        uint64_t now_ms;
        uint64_t launcher_retry_ms; /* the launcher could not be reached: no try before this */
        bool unsupported;           /* the launcher holds no sessions (embedded) */
};

static void entry_set_state(Entry *e, EntryState state)
{
        if (e->state == ENTRY_OPEN)
                e->owner->n_open--;
        if (state == ENTRY_OPEN)
                e->owner->n_open++;
        e->state = state;
}

static void entry_retry_later(Entry *e)
{
        uint64_t delay = RETRY_MS << MIN(e->failures, 8u);

        e->failures++;
        e->retry_ms = e->owner->now_ms + MIN(delay, (uint64_t)RETRY_MAX_MS);
}

static Entry *entry_find(PamSessions *p, const char *key)
{
        for (Entry *e = p->entries; e; e = e->next)
                if (streq(e->key, key))
                        return e;
        return NULL;
}

/* Tells the launcher to end the session, if it has one, and forgets the entry. */
static void entry_free(Entry *e, bool close)
{
        PamSessions *p = e->owner;

        if (close && (e->state == ENTRY_OPEN || e->state == ENTRY_OPENING))
                launcher_close_session(p->launcher, e->key);
        launcher_request_cancel(e->request);
        entry_set_state(e, ENTRY_LOST);
        if (e->prev)
                e->prev->next = e->next;
        else
                p->entries = e->next;
        if (e->next)
                e->next->prev = e->prev;
        free(e);
}

static void on_opened(int r, void *userdata)
{
        Entry *e = userdata;

        e->request = NULL;
        if (r >= 0) {
                e->failures = 0;
                entry_set_state(e, ENTRY_OPEN);
                log_debug("PAM session of %s (login %s) open.", e->user, e->key);
                return;
        }
        if (r == -EACCES || r == -EPERM) {
                log_notice("No PAM session for %s (login %s): refused by the launcher.", e->user, e->key);
                entry_set_state(e, ENTRY_REFUSED);
                return;
        }
        if (r != -ECANCELED) /* the gateway is stopping */
                log_warning_errno(r, "No PAM session for %s (login %s) for now: %m", e->user, e->key);
        entry_set_state(e, ENTRY_LOST);
        entry_retry_later(e);
}

static void entry_open(Entry *e)
{
        int r;

        r = launcher_open_session(e->owner->launcher, e->key, e->user, e->rhost, on_opened, e, &e->request);
        if (r == -EOPNOTSUPP) {
                e->owner->unsupported = true;
                entry_free(e, false);
                return;
        }
        if (r < 0) {
                log_debug_errno(r, "Cannot ask for the PAM session of %s yet: %m", e->user);
                entry_set_state(e, ENTRY_LOST);
                entry_retry_later(e);
                /* One try per period for all of them while the launcher is away, not one each. */
                e->owner->launcher_retry_ms = e->retry_ms;
                return;
        }
        entry_set_state(e, ENTRY_OPENING);
}

static void on_sessions_lost(void *userdata)
{
        PamSessions *p = userdata;

        for (Entry *e = p->entries; e; e = e->next)
                if (e->state == ENTRY_OPEN || e->state == ENTRY_OPENING) {
                        /* A request in flight was failed already (and its answer ran). */
                        launcher_request_cancel(TAKE_PTR(e->request));
                        entry_set_state(e, ENTRY_LOST);
                        e->failures = 0;
                        e->retry_ms = p->now_ms + RETRY_MS;
                }
}

int pam_sessions_new(Launcher *launcher, PamSessions **ret)
{
        PamSessions *p = calloc(1, sizeof(PamSessions));

        if (!p)
                return -ENOMEM;
        p->launcher = launcher;
        launcher_on_sessions_lost(launcher, on_sessions_lost, p);
        *ret = p;
        return 0;
}

PamSessions *pam_sessions_free(PamSessions *p)
{
        if (!p)
                return NULL;
        launcher_on_sessions_lost(p->launcher, NULL, NULL);
        while (p->entries)
                entry_free(p->entries, false);
        free(p);
        return NULL;
}

/* The login's address as PAM_RHOST: what the launcher accepts, else unknown. */
static void copy_rhost(char *dst, const char *from)
{
        size_t n = strlen(from);

        dst[0] = '\0';
        if (!streq(from, "-") && launcher_rhost_valid(from, n))
                memcpy(dst, from, n + 1);
}

void pam_sessions_page_opened(PamSessions *p, const Session *session, uint64_t now_ms)
{
        const char *key = session_handle(session);
        Entry *e;

        p->now_ms = now_ms;
        if (p->unsupported)
                return;
        e = entry_find(p, key);
        if (e) {
                e->pages++;
                e->idle_since_ms = 0;
                if (e->state == ENTRY_LOST && now_ms >= e->retry_ms)
                        entry_open(e);
                return;
        }
        e = calloc(1, sizeof(Entry));
        if (!e) {
                log_oom();
                return;
        }
        e->owner = p;
        e->state = ENTRY_LOST;
        e->pages = 1;
        assert(strlen(key) < sizeof(e->key) && strlen(session_user(session)) < sizeof(e->user));
        strcpy(e->key, key);
        strcpy(e->user, session_user(session));
        copy_rhost(e->rhost, session_from(session));
        e->next = p->entries;
        if (p->entries)
                p->entries->prev = e;
        p->entries = e;
        entry_open(e);
}

void pam_sessions_page_closed(PamSessions *p, const Session *session, uint64_t now_ms)
{
        Entry *e = entry_find(p, session_handle(session));

        p->now_ms = now_ms;
        if (!e || e->pages == 0)
                return;
        if (--e->pages == 0)
                e->idle_since_ms = now_ms;
}

void pam_sessions_login_ended(PamSessions *p, const Session *session, SessionEnd why)
{
        Entry *e = entry_find(p, session_handle(session));

        /* At shutdown the sessions are saved and the launcher ends the PAM sessions with the connection. */
        if (e && why != SESSION_END_SHUTDOWN) {
                log_debug("Ending the PAM session of %s (login %s): %s.", e->user, e->key,
                          session_end_to_string(why));
                entry_free(e, true);
        }
}

void pam_sessions_tick(PamSessions *p, uint64_t now_ms, uint64_t grace_ms)
{
        p->now_ms = now_ms;
        for (Entry *e = p->entries, *next; e; e = next) {
                next = e->next;
                if (e->pages == 0 && now_ms - e->idle_since_ms >= grace_ms)
                        entry_free(e, true);
                else if (e->pages > 0 && e->state == ENTRY_LOST && now_ms >= e->retry_ms &&
                         now_ms >= p->launcher_retry_ms)
                        entry_open(e);
        }
}

unsigned pam_sessions_count(const PamSessions *p)
{
        return p ? p->n_open : 0;
}
