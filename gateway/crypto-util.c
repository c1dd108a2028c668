/* SPDX-License-Identifier: MIT */
#include "crypto-util.h"

#include "base64.h"

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

void base64url_encode(const uint8_t *in, size_t n, char *out)
{
        base64_encode_into(in, n, BASE64_URL, false, out);
        out[BASE64URL_LEN(n)] = '\0';
}

int base64url_decode(const char *s, size_t len, uint8_t *out, size_t out_len)
{
        size_t k;

        if (len != BASE64URL_LEN(out_len) ||
            base64_decode_into(s, len, BASE64_URL, BASE64_PAD_NONE, out, out_len, &k) < 0 || k != out_len)
                return -EINVAL;
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
