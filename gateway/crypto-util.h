/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Small primitives for secrets: randomness, their text form, comparing them, and keyed hashing for
 * tables whose keys an attacker chooses. */

/* Fill p with n bytes from the kernel's CSPRNG (getrandom; blocks only before the pool is seeded). */
int random_bytes(void *p, size_t n);

/* base64url without padding (RFC 4648 §5). out needs BASE64URL_LEN(n) + 1 bytes. */
#define BASE64URL_LEN(n) (((n)*4 + 2) / 3)
void base64url_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly out_len bytes from s[0..len); -EINVAL unless s is exactly that much valid base64url. */
int base64url_decode(const char *s, size_t len, uint8_t *out, size_t out_len);

/* Compare a secret given by a client with the expected one in time that depends only on the expected
 * secret's length, never on where they differ. */
bool secret_equal(const void *given, size_t given_len, const void *expected, size_t expected_len);

/* SipHash-2-4 (Aumasson, Bernstein): a hash an attacker cannot aim collisions at without the key. */
uint64_t siphash24(const void *data, size_t len, const uint8_t key[16]);
