/* SPDX-License-Identifier: MIT */
/* Feeds arbitrary bytes to what the gateway parses from the network before anyone is logged in: the
 * client address behind X-Forwarded-For, Accept-Encoding, cookies and Basic credentials (base64), the
 * static file path check and lookup, and UTF-8 validation of WebSocket text in pieces (checked against
 * the one-piece validator). The first byte picks the parser. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "crypto-util.h"
#include "netaddr.h"
#include "static-files.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static WebRoot *web;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s;
        uint8_t out[4096];
        size_t n;

        if (size < 1)
                return 0;
        /* The input is not a C string: copy it into one. */
        s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';

        switch (data[0] % 6) {
        case 0: {
                NetPrefix trusted[2];
                NetAddr peer = {AF_INET, {127, 0, 0, 1}}, c;
                char buf[NETADDR_STRLEN];
                assert(netprefix_parse("127.0.0.0/8", &trusted[0]) == 0);
                assert(netprefix_parse("10.0.0.0/8", &trusted[1]) == 0);
                c = netaddr_client_from_forwarded(&peer, s, trusted, 2);
                netaddr_format(&c, buf);
                assert(strlen(buf) < sizeof(buf));
                break;
        }
        case 1:
                (void)accept_encoding_has_gzip(s);
                break;
        case 2:
                for (int pad = BASE64_PAD_NONE; pad <= BASE64_PAD_REQUIRED; pad++)
                        if (base64_decode_into(s, strlen(s), BASE64_STANDARD, pad, out, sizeof(out), &n) ==
                            0) {
                                /* One text per value in each mode: encoding it again gives it back. */
                                char again[2 * sizeof(out)];
                                bool padded = strchr(s, '=') != NULL;
                                assert(n <= sizeof(out));
                                base64_encode_into(out, n, BASE64_STANDARD, padded, again);
                                assert(base64_encoded_len(n, padded) == strlen(s));
                                assert(memcmp(again, s, strlen(s)) == 0);
                        }
                if (base64url_decode(s, strlen(s), out, 32) == 0) {
                        char back[BASE64URL_LEN(32) + 1];
                        base64url_encode(out, 32, back);
                        assert(strcmp(back, s) == 0); /* one text per value */
                }
                break;
        case 3: {
                StaticFile f;
                if (!web && web_root_open("/usr/share/doc", &web) < 0)
                        break;
                if (web_root_lookup(web, s, data[0] & 0x80, &f) == 0) {
                        assert(f.fd >= 0 && f.content_type && f.cache_control);
                        close(f.fd);
                }
                break;
        }
        case 4: {
                NetPrefix p;
                NetAddr a;
                if (netprefix_parse(s, &p) == 0 && p.addr.family != AF_UNIX)
                        assert(p.bits <= (p.addr.family == AF_INET ? 32u : 128u));
                if (netaddr_parse(s, strlen(s), &a) == 0)
                        assert(a.family == AF_INET || a.family == AF_INET6);
                break;
        }
        default: {
                /* Pieces cut where the input says; the verdict must match the whole-text one. */
                size_t len = size - 1, cut1 = len ? data[0] % (len + 1) : 0, cut2 = cut1 + (len - cut1) / 2;
                const char *t = (const char *)data + 1;
                Utf8Stream st = {};
                bool ok = utf8_stream_feed(&st, t, cut1, false) &&
                          utf8_stream_feed(&st, t + cut1, cut2 - cut1, false) &&
                          utf8_stream_feed(&st, t + cut2, len - cut2, true);
                assert(ok == utf8_is_valid(t, len));
        }
        }
        free(s);
        return 0;
}
