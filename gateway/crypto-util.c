/* SPDX-License-Identifier: MIT */
#include "crypto-util.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "macro.h"

int random_bytes(void *p, size_t n)
{
        uint8_t *b = p;

        while (n > 0) {
                ssize_t r = getrandom(b, n, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                b += r;
                n -= (size_t)r;
        }
        return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void base64url_encode(const uint8_t *in, size_t n, char *out)
{
        size_t i = 0;

        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
                *out++ = b64url[v >> 18];
                *out++ = b64url[(v >> 12) & 63];
                *out++ = b64url[(v >> 6) & 63];
                *out++ = b64url[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t)in[i] << 16;
                *out++ = b64url[v >> 18];
                *out++ = b64url[(v >> 12) & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
                *out++ = b64url[v >> 18];
                *out++ = b64url[(v >> 12) & 63];
                *out++ = b64url[(v >> 6) & 63];
        }
        *out = '\0';
}

static int b64url_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int base64url_decode(const char *s, size_t len, uint8_t *out, size_t out_len)
{
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t k = 0;

        if (len != BASE64URL_LEN(out_len))
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int v = b64url_value(s[i]);
                if (v < 0)
                        return -EINVAL;
                acc = acc << 6 | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[k++] = (uint8_t)(acc >> bits);
                }
        }
        /* Leftover bits must be zero, or two texts would decode to the same bytes. */
        if (k != out_len || (acc & ((1u << bits) - 1)) != 0)
                return -EINVAL;
        return 0;
}

static int b64_value(char c)
{
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        if (c == '-' || c == '_')
                return -1;
        return b64url_value(c);
}

int base64_decode(const char *s, size_t len, uint8_t *out, size_t out_size, size_t *ret_len)
{
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t k = 0;

        while (len > 0 && s[len - 1] == '=')
                len--;
        if (len % 4 == 1)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int v = b64_value(s[i]);
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
        if ((acc & ((1u << bits) - 1)) != 0)
                return -EINVAL;
        *ret_len = k;
        return 0;
}

bool secret_equal(const void *given, size_t given_len, const void *expected, size_t expected_len)
{
        const volatile uint8_t *g = given, *e = expected;
        uint8_t d = given_len != expected_len;

        for (size_t i = 0; i < expected_len; i++)
                d |= e[i] ^ (i < given_len ? g[i] : 0);
        return d == 0;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                   \
        do {                       \
                v0 += v1;          \
                v1 = ROTL(v1, 13); \
                v1 ^= v0;          \
                v0 = ROTL(v0, 32); \
                v2 += v3;          \
                v3 = ROTL(v3, 16); \
                v3 ^= v2;          \
                v0 += v3;          \
                v3 = ROTL(v3, 21); \
                v3 ^= v0;          \
                v2 += v1;          \
                v1 = ROTL(v1, 17); \
                v1 ^= v2;          \
                v2 = ROTL(v2, 32); \
        } while (0)

static uint64_t load64_le(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

uint64_t siphash24(const void *data, size_t len, const uint8_t key[16])
{
        const uint8_t *in = data;
        uint64_t k0 = load64_le(key), k1 = load64_le(key + 8);
        uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
        uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
        uint64_t b = (uint64_t)len << 56, m;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                m = load64_le(in + i);
                v3 ^= m;
                SIPROUND;
                SIPROUND;
                v0 ^= m;
        }
        for (size_t j = 0; i + j < len; j++)
                b |= (uint64_t)in[i + j] << (8 * j);
        v3 ^= b;
        SIPROUND;
        SIPROUND;
        v0 ^= b;
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
}
