/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "crypto-util.h"

/* Server-side login sessions. A session is named by 256 random bits (the cookie, base64url); it ends on
 * logout, when revoked, when unused for the idle timeout, at its absolute lifetime, or when its user
 * opens one too many. Whatever depends on a session (an open WebSocket) hangs a SessionLink on it and
 * is told when it ends. */

typedef struct SessionStore SessionStore;
typedef struct Session Session;

typedef enum SessionEnd {
        SESSION_END_LOGOUT,
        SESSION_END_REVOKED,
        SESSION_END_EXPIRED,
        SESSION_END_EVICTED, /* the user's oldest, dropped for a new login over the per-user limit */
        SESSION_END_SHUTDOWN,
        SESSION_END_ACCOUNT,        /* the launcher no longer admits the account (PAM, removed) */
        SESSION_END_ACCOUNT_LOCKED, /* its password was locked or the account expired */
        _SESSION_END_MAX,
} SessionEnd;

const char *session_end_to_string(SessionEnd e);

typedef struct SessionLink SessionLink;
struct SessionLink {
        SessionLink *prev, *next;
        /* Called once when the session ends, after the link has been taken off it. */
        void (*ended)(SessionLink *link, SessionEnd why);
};

typedef struct SessionLimits {
        uint64_t idle_ms;
        uint64_t lifetime_ms;
        size_t max_sessions;
        size_t max_per_user;
} SessionLimits;

#define SESSION_ID_BYTES     32u
#define SESSION_DIGEST_BYTES 32u
#define SESSION_COOKIE_LEN   BASE64URL_LEN(SESSION_ID_BYTES)
/* A session's public name, for listing and revoking; it grants nothing. */
#define SESSION_HANDLE_LEN 16u
#define SESSION_USER_MAX   64u
#define SESSION_FROM_MAX   63u

int session_store_new(const SessionLimits *limits, SessionStore **ret);
/* Ends every session (SESSION_END_SHUTDOWN) and frees the store. */
SessionStore *session_store_free(SessionStore *s);
void session_store_set_limits(SessionStore *s, const SessionLimits *limits);

/* -EBUSY when the store is full of other users' sessions. */
/* from: the client's address, for the admin's view (NULL: unknown). */
int session_create(SessionStore *s, const char *user, const char *from, uint64_t now_ms,
                   Session **ret_session, char ret_cookie[SESSION_COOKIE_LEN + 1]);
/* The live session a cookie value names, marked used now; NULL if none (malformed, unknown, ended or
 * expired: an expired one is ended here). */
Session *session_find(SessionStore *s, const char *cookie, size_t len, uint64_t now_ms);
/* By public handle; user NULL: of any user. */
Session *session_find_by_handle(SessionStore *s, const char *user, const char *handle);
void session_end(SessionStore *s, Session *session, SessionEnd why);
/* End every session past its idle or absolute timeout. */
void session_store_expire(SessionStore *s, uint64_t now_ms);
size_t session_store_count(const SessionStore *s);

/* End every session of user. Returns how many there were. */
size_t session_store_end_user(SessionStore *s, const char *user, SessionEnd why);
bool session_store_has_user(const SessionStore *s, const char *user);

typedef void (*SessionForeachFn)(const Session *session, void *userdata);
void session_store_foreach_of_user(SessionStore *s, const char *user, SessionForeachFn fn, void *userdata);

void session_touch(Session *session, uint64_t now_ms);

/* fn is called as a session ends, after its links heard of it and before it is freed. */
void session_store_on_end(SessionStore *s,
                          void (*fn)(const Session *session, SessionEnd why, void *userdata),
                          void *userdata);
/* fn is called after a session begins or ends (other than at shutdown), so that it can be saved. */
void session_store_on_change(SessionStore *s, void (*fn)(void *userdata), void *userdata);
/* Whether a session was used since the last call: its last use time is worth saving. */
bool session_store_take_used(SessionStore *s);
/* The sessions as text, times as wall-clock ms (loop ms + wall_offset_ms), ids only as their SHA-256:
 * the file lets nobody in. */
int session_store_save(const SessionStore *s, FILE *f, uint64_t wall_offset_ms);
/* Adds the sessions saved in f that are still valid under the store's limits; malformed lines are
 * skipped. Returns how many, or -EBADMSG if f is not a saved store. Calls no change callback. */
int session_store_load(SessionStore *s, FILE *f, uint64_t wall_offset_ms, uint64_t now_ms);
const char *session_user(const Session *session);
const char *session_handle(const Session *session);
const char *session_from(const Session *session); /* "-" if unknown */
size_t session_n_links(const Session *session);   /* open pages */
typedef void (*SessionForeachAllFn)(Session *session, void *userdata);
void session_store_foreach(SessionStore *s, SessionForeachAllFn fn, void *userdata);
uint64_t session_created_ms(const Session *session);
uint64_t session_last_used_ms(const Session *session);
/* When it ends if unused from now on. */
uint64_t session_expires_ms(const SessionStore *s, const Session *session);

void session_link(Session *session, SessionLink *link);
void session_unlink(Session *session, SessionLink *link);
