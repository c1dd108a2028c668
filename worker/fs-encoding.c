/* SPDX-License-Identifier: MIT */
#include "fs-encoding.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"
#include "macro.h"
#include "utf8.h"

size_t base64_encoded_size(size_t n)
{
        return base64_encoded_len(n, true);
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
        base64_encode_into(data, n, BASE64_STANDARD, true, out + q);
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

int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
        size_t len;
        uint8_t *out;
        int r;

        out = malloc(base64_decoded_max(n) + 1);
        if (!out)
                return -ENOMEM;
        r = base64_decode_into(s, n, BASE64_STANDARD, BASE64_PAD_REQUIRED, out, base64_decoded_max(n), &len);
        if (r < 0) {
                free(out);
                return r;
        }
        out[len] = 0;
        *ret = out;
        *ret_len = len;
        return 0;
}

bool fs_text_is_json_safe(const char *s, size_t n)
{
        return !memchr(s, 0, n) && utf8_is_valid(s, n);
}

/* The bytes cJSON's printer adds to each byte of a string: two-character escapes for \b \t \n \f \r " and
 * \\, \u00XX for the other controls, everything else (DEL and non-ASCII included) verbatim. */
static const uint8_t json_escape_extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5,         5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, ['"'] = 1, ['\\'] = 1,
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
