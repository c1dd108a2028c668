/* SPDX-License-Identifier: MIT */
#include "fs-encoding.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_size(size_t n)
{
        return (n / 3 + (n % 3 != 0)) * 4;
}

int base64_encode(const void *data, size_t n, char **ret, size_t *ret_len)
{
        const uint8_t *p = data;
        size_t len = base64_encoded_size(n), i = 0, o = 0;
        char *out;

        if (n > (SIZE_MAX - 1) / 4 * 3)
                return -ENOMEM;
        out = malloc(len + 1);
        if (!out)
                return -ENOMEM;
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
        out[o] = '\0';
        *ret = out;
        if (ret_len)
                *ret_len = o;
        return 0;
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

size_t fs_json_string_size(const char *s, size_t n)
{
        size_t size = n;

        /* What cJSON's printer does: two-character escapes for these, \u00XX for other controls,
         * everything else (DEL and non-ASCII included) verbatim. */
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
                        size += 1;
                else if (c < 0x20)
                        size += 5;
        }
        return size;
}
