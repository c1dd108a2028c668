/* SPDX-License-Identifier: MIT */
/* Feeds arbitrary bytes to the preview listener's heads (gateway/preview-head.c): the first byte picks a
 * client's request head (parsed, then rewritten for the app) or an app's response heads (filtered). Beyond
 * not crashing, what goes on is checked: the head for the app stays within its bound, ends in CRLFCRLF,
 * has no CR or LF but in its line ends and no other control character but HT, carries none of Helios'
 * cookies, no /preview/PORT prefix and exactly one Connection field; a filtered response keeps no
 * Set-Cookie that sets a Helios cookie, even across a folded line. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "preview-head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool no_cookie_of_ours(void *userdata, const char *name, size_t nl, const char *value, size_t vl)
{
        (void)userdata, (void)value, (void)vl;
        assert(!preview_cookie_is_ours(name, nl));
        return true;
}

static bool line_starts(const char *line, size_t len, const char *name)
{
        return len >= strlen(name) && strncasecmp(line, name, strlen(name)) == 0;
}

static void check_request(const char *in, size_t size)
{
        PreviewHead *h;
        char *head, *out, *crlf2;
        size_t head_len, out_len, connections = 0;

        /* As the listener hands it over: up to and with the first CRLFCRLF. */
        crlf2 = memmem(in, size, "\r\n\r\n", 4);
        if (!crlf2)
                return;
        head_len = (size_t)(crlf2 + 4 - in);
        head = malloc(head_len); /* exactly: reads beyond it are caught */
        h = malloc(sizeof(*h));
        assert(head && h);
        memcpy(head, in, head_len);
        preview_head_parse(head, head_len, h);

        if (h->kind == PREVIEW_HEAD_LOGIN) {
                const char *t;
                size_t tl;
                if (preview_login_ticket(h->target, h->target_len, &t, &tl))
                        assert(t > h->target && t + tl <= h->target + h->target_len);
        }
        if (h->kind != PREVIEW_HEAD_PROXY)
                goto done;

        assert(h->port > 0 && h->prefix_len <= h->target_len && h->target[h->prefix_len] == '/');
        out = malloc(PREVIEW_REWRITE_MAX(head_len));
        assert(out);
        out_len = preview_head_rewrite(h, out);
        assert(out_len < PREVIEW_REWRITE_MAX(head_len)); /* and the NUL stpcpy() adds */
        assert(out_len >= 4 && memcmp(out + out_len - 4, "\r\n\r\n", 4) == 0);
        assert((char *)memmem(out, out_len, "\r\n\r\n", 4) == out + out_len - 4);
        assert(out[0] != ' ' && memchr(out, ' ', out_len) != NULL);
        assert(*((char *)memchr(out, ' ', out_len) + 1) == '/');
        for (size_t i = 0; i < out_len; i++) {
                unsigned char ch = (unsigned char)out[i];
                if (ch == '\r')
                        assert(i + 1 < out_len && out[i + 1] == '\n');
                else if (ch == '\n')
                        assert(i > 0 && out[i - 1] == '\r');
                else
                        assert((ch >= ' ' && ch != 0x7f) || ch == '\t');
        }
        /* Field by field. */
        for (const char *l = (char *)memmem(out, out_len, "\r\n", 2) + 2; l < out + out_len - 2;) {
                const char *e = memmem(l, (size_t)(out + out_len - l), "\r\n", 2);
                size_t ll = (size_t)(e - l);
                assert(ll > 0 && l[0] != ' ' && l[0] != '\t' && memchr(l, ':', ll));
                if (line_starts(l, ll, "cookie:"))
                        preview_cookies_foreach(l + 7, ll - 7, no_cookie_of_ours, NULL);
                if (line_starts(l, ll, "connection:"))
                        connections++;
                assert(!line_starts(l, ll, "keep-alive:") && !line_starts(l, ll, "proxy-connection:"));
                if (!h->upgrade)
                        assert(!line_starts(l, ll, "upgrade:"));
                l = e + 2;
        }
        assert(connections == 1);
        free(out);
done:
        free(h);
        free(head);
}

/* Whether line (its end excluded) is a Set-Cookie field, in any spelling a browser takes, that sets a
 * Helios cookie. */
static bool sets_ours(const char *line, size_t len)
{
        size_t i = strlen("set-cookie");

        if (!line_starts(line, len, "set-cookie"))
                return false;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
        if (i == len || line[i] != ':')
                return false;
        for (i++; i < len && line[i] != '=' && line[i] != ';'; i++)
                if (len - i >= 7 && strncasecmp(line + i, "helios_", 7) == 0)
                        return true;
        return false;
}

static void check_response(const char *in, size_t size)
{
        char *out = NULL, *unfolded;
        size_t out_len = 0, u = 0;
        bool done = false;
        int r;

        r = preview_response_filter(in, size, &out, &out_len, &done);
        assert(r == 0 || r == -EPROTO || r == -ENOMEM || (r > 0 && (size_t)r <= size));
        if (r <= 0)
                return;
        assert(out_len <= (size_t)r && out_len >= 1 && out[out_len - 1] == '\n');
        assert(memcmp(out, in, 12) == 0); /* the status line passes as it is */
        /* Lines as a browser reads them: CR dropped before LF, a line that starts with SP or HT folded
         * into the one before. */
        unfolded = malloc(out_len + 1);
        assert(unfolded);
        for (size_t i = 0; i < out_len; i++) {
                if (out[i] == '\r' && i + 1 < out_len && out[i + 1] == '\n')
                        continue;
                if (out[i] == '\n' && i + 1 < out_len && (out[i + 1] == ' ' || out[i + 1] == '\t')) {
                        unfolded[u++] = ' ';
                        continue;
                }
                unfolded[u++] = out[i];
        }
        for (size_t a = 0; a < u;) {
                const char *lf = memchr(unfolded + a, '\n', u - a);
                size_t b = lf ? (size_t)(lf - unfolded) : u;
                assert(!sets_ours(unfolded + a, b - a));
                a = b + 1;
        }
        free(unfolded);
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        if (data[0] % 2 == 0)
                check_request((const char *)data + 1, size - 1);
        else
                check_response((const char *)data + 1, size - 1);
        return 0;
}
