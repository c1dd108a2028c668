/* SPDX-License-Identifier: MIT */
#include "base64.h"

#include <errno.h>

static const char alphabets[2][65] = {
    [BASE64_STANDARD] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    [BASE64_URL] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

size_t base64_encoded_len(size_t n, bool pad)
{
        return pad ? (n / 3 + (n % 3 != 0)) * 4 : n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void base64_encode_into(const void *data, size_t n, Base64Alphabet alphabet, bool pad, char *out)
{
        const char *a = alphabets[alphabet];
        const uint8_t *p = data;
        size_t i = 0;

        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
                *out++ = a[v >> 18];
                *out++ = a[(v >> 12) & 63];
                *out++ = a[(v >> 6) & 63];
                *out++ = a[v & 63];
        }
        if (i < n) {
                uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
                *out++ = a[v >> 18];
                *out++ = a[(v >> 12) & 63];
                if (i + 1 < n)
                        *out++ = a[(v >> 6) & 63];
                else if (pad)
                        *out++ = '=';
                if (pad)
                        *out++ = '=';
        }
}

static int value(char c, Base64Alphabet alphabet)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == alphabets[alphabet][62])
                return 62;
        if (c == alphabets[alphabet][63])
                return 63;
        return -1;
}

int base64_decode_into(const char *s, size_t len, Base64Alphabet alphabet, Base64Padding padding,
                       uint8_t *out, size_t out_size, size_t *ret_len)
{
        size_t pad = 0, data, k = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        /* At most two '=' end a text; a third is a character out of place, found below. */
        while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
                pad++;
        data = len - pad;
        if ((pad > 0 && (padding == BASE64_PAD_NONE || len % 4 != 0)) ||
            (padding == BASE64_PAD_REQUIRED && len % 4 != 0) || data % 4 == 1)
                return -EINVAL;
        for (size_t i = 0; i < data; i++) {
                int v = value(s[i], alphabet);
                if (v < 0)
                        return -EINVAL;
                acc = acc << 6 | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        if (k >= out_size)
                                return -EINVAL;
                        out[k++] = (uint8_t)(acc >> bits);
                }
        }
        /* Leftover bits must be zero, or two texts would decode to the same bytes. */
        if ((acc & ((1u << bits) - 1)) != 0)
                return -EINVAL;
        *ret_len = k;
        return 0;
}
