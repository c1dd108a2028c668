/* SPDX-License-Identifier: MIT */
#include "charset.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>

#include "macro.h"
#include "utf8.h"

static const char *const charset_names[_CHARSET_MAX] = {
    [CHARSET_UTF8] = "utf-8",
    [CHARSET_LATIN1] = "iso-8859-1",
    [CHARSET_CP1252] = "windows-1252",
};

/* Windows-1252's characters for 0x80..0x9F; 0 where it defines none. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

const char *charset_to_string(Charset c)
{
        return c >= 0 && c < _CHARSET_MAX ? charset_names[c] : NULL;
}

Charset charset_from_string(const char *s)
{
        for (Charset c = 0; c < _CHARSET_MAX; c++)
                if (streq(s, charset_names[c]))
                        return c;
        return _CHARSET_INVALID;
}

Charset charset_detect_legacy(const char *s, size_t n)
{
        bool high = false;

        for (size_t i = 0; i < n; i++) {
                uint8_t b = (uint8_t)s[i];

                if ((b < 0x20 && b != '\t' && b != '\n' && b != '\f' && b != '\r') || b == 0x7f)
                        return _CHARSET_INVALID;
                if (b >= 0x80 && b <= 0x9f) {
                        if (cp1252_high[b - 0x80] == 0)
                                return _CHARSET_INVALID;
                        high = true;
                }
        }
        return high ? CHARSET_CP1252 : CHARSET_LATIN1;
}

static uint32_t decode_byte(Charset c, uint8_t b)
{
        if (c == CHARSET_CP1252 && b >= 0x80 && b <= 0x9f)
                return cp1252_high[b - 0x80];
        return b;
}

/* The byte for code point cp in c, or -1. */
static int encode_char(Charset c, uint32_t cp)
{
        if (cp < 0x80 || (cp >= 0xa0 && cp <= 0xff))
                return (int)cp;
        if (c == CHARSET_LATIN1)
                return cp <= 0xff ? (int)cp : -1;
        for (size_t i = 0; i < ELEMENTSOF(cp1252_high); i++)
                if (cp1252_high[i] != 0 && cp1252_high[i] == cp)
                        return (int)(0x80 + i);
        return -1;
}

int charset_decode_append(Charset c, const char *s, size_t n, Buf *out)
{
        int r;

        assert(c == CHARSET_LATIN1 || c == CHARSET_CP1252);
        /* At most three UTF-8 bytes per byte (the euro sign and its neighbours). */
        if (n > SIZE_MAX / 3)
                return -ENOMEM;
        r = buf_reserve(out, n * 3);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                uint32_t cp = decode_byte(c, (uint8_t)s[i]);
                char *p = out->data + out->len;

                if (cp == 0 && s[i] != 0)
                        return -EINVAL;
                if (cp < 0x80)
                        *p++ = (char)cp;
                else if (cp < 0x800) {
                        *p++ = (char)(0xc0 | (cp >> 6));
                        *p++ = (char)(0x80 | (cp & 0x3f));
                } else {
                        *p++ = (char)(0xe0 | (cp >> 12));
                        *p++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                        *p++ = (char)(0x80 | (cp & 0x3f));
                }
                out->len = (size_t)(p - out->data);
        }
        out->data[out->len] = '\0';
        return 0;
}

/* The code point of the valid UTF-8 sequence of len bytes at s. */
static uint32_t utf8_code_point(const uint8_t *s, int len)
{
        switch (len) {
        case 1:
                return s[0];
        case 2:
                return ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
        case 3:
                return ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        default:
                return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
                       ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        }
}

/* Walk valid UTF-8 text, appending its bytes in c to out when out is not NULL. */
static int encode(Charset c, const char *s, size_t n, Buf *out, CharsetBadChar *ret_bad)
{
        size_t u16 = 0;
        int r;

        assert(c == CHARSET_LATIN1 || c == CHARSET_CP1252);
        if (out) {
                r = buf_reserve(out, n);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n;) {
                const uint8_t *p = (const uint8_t *)s + i;
                int len = utf8_sequence(p, n - i), byte;
                uint32_t cp;

                if (len <= 0)
                        return -EINVAL;
                cp = utf8_code_point(p, len);
                byte = encode_char(c, cp);
                if (byte < 0) {
                        if (ret_bad)
                                *ret_bad = (CharsetBadChar){cp, u16};
                        return -EILSEQ;
                }
                if (out)
                        out->data[out->len++] = (char)byte;
                u16 += cp >= 0x10000 ? 2 : 1;
                i += (size_t)len;
        }
        if (out)
                out->data[out->len] = '\0';
        return 0;
}

int charset_encode_append(Charset c, const char *s, size_t n, Buf *out, CharsetBadChar *ret_bad)
{
        assert(out);
        return encode(c, s, n, out, ret_bad);
}

int charset_check(Charset c, const char *s, size_t n, CharsetBadChar *ret_bad)
{
        return encode(c, s, n, NULL, ret_bad);
}
