/* SPDX-License-Identifier: MIT */
#include "preview-head.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "preview.h"

/* ---- the app's response heads ---- */

/* Whether a Set-Cookie value sets one of Helios' cookies (in any case, with any prefix): an app's answer
 * may set cookies for the host name, which the IDE shares when previews are on another port of it. */
static bool set_cookie_is_ours(const char *v, size_t len)
{
        size_t n = 0;

        while (n < len && v[n] != '=' && v[n] != ';')
                n++;
        for (size_t i = 0; i < n; i++)
                if (n - i >= strlen("helios_") && strncasecmp(v + i, "helios_", strlen("helios_")) == 0)
                        return true;
        return false;
}

int preview_response_filter(const char *data, size_t len, char **ret_out, size_t *ret_len, bool *ret_done)
{
        _cleanup_free_ char *out = NULL;
        size_t pos = 0, n = 0;
        unsigned code = 0;
        bool first = true;

        /* A head ends at an empty line; lines end in CRLF, or LF alone from some servers. */
        for (;;) {
                const char *lf = memchr(data + pos, '\n', len - pos);
                size_t line_len;

                if (!lf)
                        return 0;
                line_len = (size_t)(lf - (data + pos)) + 1;
                if (!out && !(out = malloc(len)))
                        return -ENOMEM;
                if (first) {
                        const char *d = data + pos + 9; /* "HTTP/1.x NNN" */
                        if (line_len < 13 || memcmp(data + pos, "HTTP/1.", 7) != 0 || data[pos + 8] != ' ')
                                return -EPROTO;
                        for (int i = 0; i < 3; i++) {
                                if (d[i] < '0' || d[i] > '9')
                                        return -EPROTO;
                                code = code * 10 + (unsigned)(d[i] - '0');
                        }
                        first = false;
                } else if (line_len <= 2 && (line_len == 1 || data[pos] == '\r')) {
                        memcpy(out + n, data + pos, line_len);
                        n += line_len;
                        pos += line_len;
                        break;
                } else if (data[pos] == ' ' || data[pos] == '\t') {
                        /* A folded line, which a browser joins to the field before it. */
                        return -EPROTO;
                } else if (line_len > 10 && strncasecmp(data + pos, "set-cookie", 10) == 0) {
                        /* Some browsers take blanks before the colon. */
                        const char *v = data + pos + 10;
                        size_t vl = line_len - 10;
                        while (vl > 0 && (*v == ' ' || *v == '\t'))
                                v++, vl--;
                        if (vl == 0 || *v != ':')
                                goto copy;
                        v++, vl--;
                        while (vl > 0 && (*v == ' ' || *v == '\t'))
                                v++, vl--;
                        if (set_cookie_is_ours(v, vl)) {
                                pos += line_len;
                                continue;
                        }
                }
        copy:
                memcpy(out + n, data + pos, line_len);
                n += line_len;
                pos += line_len;
        }
        *ret_done = code < 100 || code >= 200 || code == 101;
        *ret_len = n;
        *ret_out = TAKE_PTR(out);
        return (int)pos;
}

/* ---- the request head ---- */

/* (strchr() would find NUL too: its terminator.) */
static bool token_char(char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool header_is(const PreviewHeader *h, const char *name)
{
        return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Whether a comma-separated header value lists token (case-insensitive). */
static bool value_has_token(const char *v, size_t len, const char *token)
{
        size_t tl = strlen(token);

        for (size_t i = 0; i < len;) {
                size_t j = i;
                while (j < len && v[j] != ',')
                        j++;
                size_t a = i, b = j;
                while (a < b && (v[a] == ' ' || v[a] == '\t'))
                        a++;
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                        b--;
                if (b - a == tl && strncasecmp(v + a, token, tl) == 0)
                        return true;
                i = j + 1;
        }
        return false;
}

/* Helios' own cookies never reach the app: the IDE's session (in both its names) and the preview's. */
bool preview_cookie_is_ours(const char *name, size_t len)
{
        static const char *const ours[] = {"helios_session", "__Host-helios_session", PREVIEW_COOKIE_NAME};

        for (size_t i = 0; i < ELEMENTSOF(ours); i++)
                if (len == strlen(ours[i]) && strncmp(name, ours[i], len) == 0)
                        return true;
        return false;
}

void preview_cookies_foreach(const char *v, size_t len, PreviewCookieFn fn, void *userdata)
{
        for (size_t i = 0; i < len;) {
                size_t j = i, eq;
                while (j < len && v[j] != ';')
                        j++;
                size_t a = i, b = j;
                while (a < b && (v[a] == ' ' || v[a] == '\t'))
                        a++;
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                        b--;
                for (eq = a; eq < b && v[eq] != '='; eq++)
                        ;
                if (a < b &&
                    !fn(userdata, v + a, eq - a, eq < b ? v + eq + 1 : v + b, eq < b ? b - eq - 1 : 0))
                        return;
                i = j + 1;
        }
}

typedef struct CookieCopy {
        char *p;
        bool any;
} CookieCopy;

static bool copy_foreign_cookie(void *userdata, const char *name, size_t nl, const char *value, size_t vl)
{
        CookieCopy *cc = userdata;

        if (preview_cookie_is_ours(name, nl))
                return true;
        if (cc->any)
                cc->p = stpcpy(cc->p, "; ");
        memcpy(cc->p, name, nl);
        cc->p += nl;
        *cc->p++ = '=';
        memcpy(cc->p, value, vl);
        cc->p += vl;
        cc->any = true;
        return true;
}

/* Parse "/preview/PORT" at the start of target; *ret_prefix is its length. */
static bool parse_preview_target(const char *target, size_t len, uint16_t *ret_port, size_t *ret_prefix)
{
        static const char prefix[] = "/preview/";
        size_t i = strlen(prefix), start;
        unsigned port = 0;

        if (len < i || memcmp(target, prefix, i) != 0)
                return false;
        start = i;
        while (i < len && target[i] >= '0' && target[i] <= '9' && i - start < 5)
                port = port * 10 + (unsigned)(target[i++] - '0');
        if (i == start || port == 0 || port > 65535 || target[start] == '0' ||
            (i < len && target[i] != '/' && target[i] != '?'))
                return false;
        *ret_port = (uint16_t)port;
        *ret_prefix = i;
        return true;
}

bool preview_login_ticket(const char *target, size_t len, const char **ret_ticket, size_t *ret_len)
{
        const char *q = memchr(target, '?', len), *t = NULL;
        size_t tl = 0;

        /* ?ticket=T and nothing else is needed; other parameters are ignored. */
        for (const char *s = q ? q + 1 : NULL; s && s < target + len;) {
                const char *e = memchr(s, '&', (size_t)(target + len - s));
                if (!e)
                        e = target + len;
                if ((size_t)(e - s) > 7 && memcmp(s, "ticket=", 7) == 0) {
                        t = s + 7;
                        tl = (size_t)(e - t);
                }
                s = e + 1;
        }
        *ret_ticket = t;
        *ret_len = tl;
        return t != NULL;
}

static void fail(PreviewHead *ret, int status, const char *reason, const char *text)
{
        ret->kind = PREVIEW_HEAD_ERROR;
        ret->status = status;
        ret->reason = reason;
        ret->text = text;
}

void preview_head_parse(const char *head, size_t head_len, PreviewHead *ret)
{
        const char *s = head, *end = head + head_len - 2; /* the last CRLF */
        const char *method, *target, *version, *eol;
        size_t method_len, target_len, version_len;
        bool connection_upgrade = false, has_upgrade = false, has_cl = false;

        *ret = (PreviewHead){.kind = PREVIEW_HEAD_ERROR};

        /* Request line: METHOD SP TARGET SP HTTP/1.x */
        eol = memmem(s, (size_t)(end - s) + 2, "\r\n", 2);
        method = s;
        for (method_len = 0; method + method_len < eol && token_char(method[method_len]); method_len++)
                ;
        if (method_len == 0 || method[method_len] != ' ')
                return fail(ret, 400, "Bad Request", "Bad Request\n");
        target = method + method_len + 1;
        for (target_len = 0; target + target_len < eol && (unsigned char)target[target_len] > ' ' &&
                             target[target_len] != 0x7f;
             target_len++)
                ;
        if (target_len == 0 || target[0] != '/' || target[target_len] != ' ')
                return fail(ret, 400, "Bad Request", "Bad Request\n");
        version = target + target_len + 1;
        version_len = (size_t)(eol - version);
        if (version_len != 8 || (memcmp(version, "HTTP/1.1", 8) != 0 && memcmp(version, "HTTP/1.0", 8) != 0))
                return fail(ret, 505, "HTTP Version Not Supported", "HTTP/1.1 only\n");
        ret->method = method;
        ret->method_len = method_len;
        ret->target = target;
        ret->target_len = target_len;
        ret->version = version;
        ret->version_len = version_len;

        /* Header fields: NAME ":" OWS VALUE OWS CRLF; no folded lines, no control characters. */
        for (s = eol + 2; s < end; s = eol + 2) {
                PreviewHeader *h;
                const char *colon;

                eol = memmem(s, (size_t)(end - s) + 2, "\r\n", 2);
                if (ret->n_headers >= PREVIEW_MAX_HEADERS)
                        return fail(ret, 431, "Request Header Fields Too Large", "Too many header fields\n");
                h = &ret->headers[ret->n_headers++];
                colon = memchr(s, ':', (size_t)(eol - s));
                if (!colon || colon == s)
                        return fail(ret, 400, "Bad Request", "Bad Request\n");
                for (const char *q = s; q < colon; q++)
                        if (!token_char(*q))
                                return fail(ret, 400, "Bad Request", "Bad Request\n");
                h->name = s;
                h->name_len = (size_t)(colon - s);
                h->value = colon + 1;
                while (h->value < eol && (*h->value == ' ' || *h->value == '\t'))
                        h->value++;
                h->value_len = (size_t)(eol - h->value);
                while (h->value_len > 0 &&
                       (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
                        h->value_len--;
                for (size_t i = 0; i < h->value_len; i++)
                        if (((unsigned char)h->value[i] < ' ' && h->value[i] != '\t') || h->value[i] == 0x7f)
                                return fail(ret, 400, "Bad Request", "Bad Request\n");
        }

        if (target_len >= strlen(PREVIEW_LOGIN_PATH) &&
            memcmp(target, PREVIEW_LOGIN_PATH, strlen(PREVIEW_LOGIN_PATH)) == 0 &&
            (target_len == strlen(PREVIEW_LOGIN_PATH) || target[strlen(PREVIEW_LOGIN_PATH)] == '?')) {
                if (method_len != 3 || memcmp(method, "GET", 3) != 0)
                        return fail(ret, 405, "Method Not Allowed", "Method Not Allowed\n");
                ret->kind = PREVIEW_HEAD_LOGIN;
                return;
        }
        if (!parse_preview_target(target, target_len, &ret->port, &ret->prefix_len))
                return fail(ret, 404, "Not Found", "Not Found: previews are under /preview/PORT/\n");
        if (ret->prefix_len == target_len || target[ret->prefix_len] == '?') {
                ret->kind = PREVIEW_HEAD_REDIRECT;
                return;
        }

        for (size_t i = 0; i < ret->n_headers; i++) {
                const PreviewHeader *h = &ret->headers[i];
                if (header_is(h, "transfer-encoding"))
                        return fail(ret, 501, "Not Implemented", "Request bodies need a Content-Length\n");
                else if (header_is(h, "content-length")) {
                        uint64_t v = 0;
                        if (has_cl || h->value_len == 0 || h->value_len > 15)
                                return fail(ret, 400, "Bad Request", "Bad Request\n");
                        for (size_t k = 0; k < h->value_len; k++) {
                                if (h->value[k] < '0' || h->value[k] > '9')
                                        return fail(ret, 400, "Bad Request", "Bad Request\n");
                                v = v * 10 + (uint64_t)(h->value[k] - '0');
                        }
                        has_cl = true;
                        ret->content_length = v;
                } else if (header_is(h, "connection"))
                        connection_upgrade =
                            connection_upgrade || value_has_token(h->value, h->value_len, "upgrade");
                else if (header_is(h, "upgrade"))
                        has_upgrade = true;
        }
        ret->upgrade = connection_upgrade && has_upgrade;
        ret->kind = PREVIEW_HEAD_PROXY;
}

size_t preview_head_rewrite(const PreviewHead *h, char *out)
{
        char *o = out;

        o = mempcpy(o, h->method, h->method_len + 1);
        o = mempcpy(o, h->target + h->prefix_len, h->target_len - h->prefix_len);
        o = stpcpy(o, " ");
        o = mempcpy(o, h->version, h->version_len);
        o = stpcpy(o, "\r\n");
        for (size_t i = 0; i < h->n_headers; i++) {
                const PreviewHeader *f = &h->headers[i];
                if (header_is(f, "cookie") || header_is(f, "connection") || header_is(f, "keep-alive") ||
                    header_is(f, "proxy-connection") || header_is(f, "x-forwarded-prefix") ||
                    (!h->upgrade && header_is(f, "upgrade")))
                        continue;
                o = mempcpy(o, f->name, f->name_len);
                o = stpcpy(o, ": ");
                o = mempcpy(o, f->value, f->value_len);
                o = stpcpy(o, "\r\n");
        }
        for (size_t i = 0; i < h->n_headers; i++) {
                const PreviewHeader *f = &h->headers[i];
                char *start = o;
                CookieCopy cc = {o + strlen("Cookie: "), false};
                if (!header_is(f, "cookie"))
                        continue;
                preview_cookies_foreach(f->value, f->value_len, copy_foreign_cookie, &cc);
                if (cc.any) {
                        memcpy(start, "Cookie: ", strlen("Cookie: "));
                        o = stpcpy(cc.p, "\r\n");
                }
        }
        o += sprintf(o, "X-Forwarded-Prefix: /preview/%u\r\n", h->port);
        o = stpcpy(o, h->upgrade ? "Connection: Upgrade\r\n\r\n" : "Connection: close\r\n\r\n");
        return (size_t)(o - out);
}
