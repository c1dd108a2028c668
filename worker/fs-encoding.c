/* SPDX-License-Identifier: MIT */
#include "fs-encoding.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "macro.h"
#include "utf8.h"

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_size(size_t n)
{
        return (n / 3 + (n % 3 != 0)) * 4;
}

/* Writes base64_encoded_size(n) characters to out. */
static void base64_encode_into(const uint8_t *p, size_t n, char *out)
{
        size_t i = 0, o = 0;

        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
                out[o++] = base64_alphabet[v >> 18];
                out[o++] = base64_alphabet[(v >> 12) & 63];
                out[o++] = base64_alphabet[(v >> 6) & 63];
                out[o++] = base64_alphabet[v & 63];
        }
        if (i < n) {
                uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
                out[o++] = base64_alphabet[v >> 18];
                out[o++] = base64_alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < n ? base64_alphabet[(v >> 6) & 63] : '=';
                out[o++] = '=';
        }
}

/* base64 of data, with quote (if not NUL) on either side. */
static int base64_encode_with(const void *data, size_t n, char quote, char **ret, size_t *ret_len)
{
        size_t len, q = quote ? 1 : 0;
        char *out;

        if (n > (SIZE_MAX - 3) / 4 * 3)
                return -ENOMEM;
        len = base64_encoded_size(n) + 2 * q;
        out = malloc(len + 1);
        if (!out)
                return -ENOMEM;
        base64_encode_into(data, n, out + q);
        if (quote)
                out[0] = out[len - 1] = quote;
        out[len] = '\0';
        *ret = out;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int base64_encode(const void *data, size_t n, char **ret, size_t *ret_len)
{
        return base64_encode_with(data, n, '\0', ret, ret_len);
}

int base64_encode_quoted(const void *data, size_t n, char **ret, size_t *ret_len)
{
        return base64_encode_with(data, n, '"', ret, ret_len);
}

static int base64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
        size_t pad = 0, o = 0;
        uint8_t *out;

        if (n % 4 != 0)
                return -EINVAL;
        if (n > 0 && s[n - 1] == '=')
                pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < n; i += 4) {
                bool final = i + 4 == n;
                size_t digits = final ? 4 - pad : 4;
                uint32_t v = 0;

                for (size_t j = 0; j < 4; j++) {
                        int d = j < digits ? base64_value(s[i + j]) : 0;
                        if (d < 0) {
                                free(out);
                                return -EINVAL;
                        }
                        v = v << 6 | (uint32_t)d;
                }
                /* Bits the padding leaves unused must be zero, or two texts would decode alike. */
                if ((digits == 2 && (v & 0xFFFF)) || (digits == 3 && (v & 0xFF))) {
                        free(out);
                        return -EINVAL;
                }
                out[o++] = (uint8_t)(v >> 16);
                if (digits > 2)
                        out[o++] = (uint8_t)(v >> 8);
                if (digits > 3)
                        out[o++] = (uint8_t)v;
        }
        out[o] = 0;
        *ret = out;
        *ret_len = o;
        return 0;
}

bool fs_text_is_json_safe(const char *s, size_t n)
{
        return !memchr(s, 0, n) && utf8_is_valid(s, n);
}

/* The bytes cJSON's printer adds to each byte of a string: two-character escapes for \b \t \n \f \r " and
 * \\, \u00XX for the other controls, everything else (DEL and non-ASCII included) verbatim. */
static const uint8_t json_escape_extra[256] = {
        5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
        ['"'] = 1,
        ['\\'] = 1,
};

size_t fs_json_string_size(const char *s, size_t n)
{
        size_t size = n;

        for (size_t i = 0; i < n; i++)
                size += json_escape_extra[(uint8_t)s[i]];
        return size;
}

/* For the eight bytes of w (the first in the low bits): a mask with the high bit set in each byte that a
 * JSON string escapes (a control character, '"' or '\\'), and perhaps in bytes after such a byte. These
 * are the usual word-at-a-time tests for a byte below 0x20 and for a zero byte (after XOR with '"' and
 * '\\'); their borrows only carry into later bytes, and the AND with ~w leaves bytes from 0x80 up out. So
 * the mask is 0 exactly when no byte needs escaping, and its lowest set bit marks the first that does. */
static uint64_t json_word_escapes(uint64_t w)
{
        const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
        uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');

        return (((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash)) &
               high;
}

/* Writes the escape sequence for c (one that needs one) as cJSON does; returns its length. */
static size_t json_escape(uint8_t c, char *out)
{
        static const char hex[] = "0123456789abcdef";
        char e;

        switch (c) {
        case '"':
        case '\\':
                e = (char)c;
                break;
        case '\b':
                e = 'b';
                break;
        case '\f':
                e = 'f';
                break;
        case '\n':
                e = 'n';
                break;
        case '\r':
                e = 'r';
                break;
        case '\t':
                e = 't';
                break;
        default:
                memcpy(out, "\\u00", 4);
                out[4] = hex[c >> 4];
                out[5] = hex[c & 15];
                return 6;
        }
        out[0] = '\\';
        out[1] = e;
        return 2;
}

int fs_json_quote(const char *s, size_t n, size_t limit, char **ret, size_t *ret_len)
{
        _cleanup_(buf_done) Buf b = {};
        size_t i = 0, plain = 0; /* s[plain..i) is text to copy as it is */

        /* Room for the text, some escapes and the quotes; more if it comes to that. */
        if (buf_reserve(&b, MIN(n + n / 16, limit) + 2) < 0)
                return -ENOMEM;
        b.data[b.len++] = '"';
        while (i < n) {
                /* Eight bytes at a time to the next byte to escape. */
                if (n - i >= 8) {
                        uint64_t w, m;

                        memcpy(&w, s + i, sizeof(w));
                        m = json_word_escapes(le64toh(w));
                        if (m == 0) {
                                i += 8;
                                continue;
                        }
                        i += (size_t)__builtin_ctzll(m) / 8;
                } else if (json_escape_extra[(uint8_t)s[i]] == 0) {
                        i++;
                        continue;
                }
                if (buf_reserve(&b, i - plain + 6) < 0)
                        return -ENOMEM;
                memcpy(b.data + b.len, s + plain, i - plain);
                b.len += i - plain;
                b.len += json_escape((uint8_t)s[i], b.data + b.len);
                plain = ++i;
                /* What is written so far plus a byte for each one left: the body is at least that. */
                if (b.len - 1 + (n - i) > limit)
                        return -EFBIG;
        }
        if (b.len - 1 + (n - plain) > limit)
                return -EFBIG;
        if (buf_reserve(&b, n - plain + 1) < 0)
                return -ENOMEM;
        memcpy(b.data + b.len, s + plain, n - plain);
        b.len += n - plain;
        b.data[b.len++] = '"';
        b.data[b.len] = '\0';
        *ret = buf_steal(&b, ret_len);
        return 0;
}
