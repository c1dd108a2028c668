/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The HTTP heads of the preview listener, as bytes in and results out (no sockets, no state): the
 * client's request head parsed and rewritten for the app, and the app's response heads filtered. */

#define PREVIEW_MAX_HEADERS 100u

typedef struct PreviewHeader {
        const char *name, *value;
        size_t name_len, value_len;
} PreviewHeader;

typedef enum PreviewHeadKind {
        PREVIEW_HEAD_ERROR,    /* answer with status, reason, text */
        PREVIEW_HEAD_LOGIN,    /* GET /preview-login[?...] */
        PREVIEW_HEAD_REDIRECT, /* /preview/PORT or /preview/PORT?...: add the slash */
        PREVIEW_HEAD_PROXY,    /* /preview/PORT/...: for the app, if the cookie holds */
} PreviewHeadKind;

/* Points into the parsed head, which must outlive it. */
typedef struct PreviewHead {
        PreviewHeadKind kind;
        int status; /* PREVIEW_HEAD_ERROR */
        const char *reason, *text;
        const char *method, *target, *version;
        size_t method_len, target_len, version_len;
        PreviewHeader headers[PREVIEW_MAX_HEADERS];
        size_t n_headers;
        uint16_t port;     /* REDIRECT, PROXY */
        size_t prefix_len; /* of "/preview/PORT" in target */
        bool upgrade;      /* PROXY: Connection: upgrade and an Upgrade field */
        uint64_t content_length;
} PreviewHead;

/* Parse head[0..head_len), which ends in CRLFCRLF and holds no other CRLFCRLF. */
void preview_head_parse(const char *head, size_t head_len, PreviewHead *ret);

/* The ticket=T parameter of a /preview-login target; false if there is none. */
bool preview_login_ticket(const char *target, size_t len, const char **ret_ticket, size_t *ret_len);

/* Walk the cookies of one Cookie value: fn(userdata, name, name_len, value, value_len) for each, until
 * fn returns false. */
typedef bool (*PreviewCookieFn)(void *userdata, const char *name, size_t nl, const char *value, size_t vl);
void preview_cookies_foreach(const char *v, size_t len, PreviewCookieFn fn, void *userdata);

/* Whether a cookie of that name is Helios' own (never passed to an app). */
bool preview_cookie_is_ours(const char *name, size_t len);

/* The most bytes preview_head_rewrite() writes for a head of head_len bytes, a NUL after it included. */
#define PREVIEW_REWRITE_MAX(head_len) (2 * (head_len) + 256)

/* The head for the app of a PROXY head: the target without the prefix, Helios' cookies and hop-by-hop
 * fields left out, Connection: close unless it is an upgrade. Returns its length. */
size_t preview_head_rewrite(const PreviewHead *h, char *out);

/* Filter the app's response heads in data[0..len): any 1xx, then the final one (or a 101), without the
 * Set-Cookie fields that would set a Helios cookie. Returns 0 while the heads are incomplete, -EPROTO for
 * what is no HTTP response head, -ENOMEM, or the bytes consumed, with *ret_out (malloc'd, *ret_len
 * bytes) and *ret_done (whether the final head has passed). */
int preview_response_filter(const char *data, size_t len, char **ret_out, size_t *ret_len, bool *ret_done);
