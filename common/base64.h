/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Base64 (RFC 4648) in its two alphabets, one coder for every user: session cookies and tokens
 * (base64url, no padding), Basic credentials (standard, padding optional) and file content (standard,
 * padded). Decoding is strict in every mode: only the alphabet's characters, no whitespace, and the
 * bits the last character leaves over must be zero, so each byte string has exactly one accepted text
 * per mode. */

typedef enum Base64Alphabet {
        BASE64_STANDARD, /* §4: + and / */
        BASE64_URL,      /* §5: - and _ */
} Base64Alphabet;

typedef enum Base64Padding {
        BASE64_PAD_NONE,     /* no '=': the text ends with the data */
        BASE64_PAD_OPTIONAL, /* without '=', or padded to a multiple of four */
        BASE64_PAD_REQUIRED, /* padded to a multiple of four */
} Base64Padding;

/* Characters of the text for n bytes, padded or not. */
size_t base64_encoded_len(size_t n, bool pad);
/* Write base64_encoded_len(n, pad) characters (no NUL) to out. */
void base64_encode_into(const void *data, size_t n, Base64Alphabet alphabet, bool pad, char *out);

/* Most bytes a text of len characters decodes to. */
static inline size_t base64_decoded_max(size_t len)
{
        return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}
/* Decode s[0..len) into out, at most out_size bytes; the count in *ret_len. -EINVAL if s is not valid in
 * this mode, or decodes to more than out_size bytes. */
int base64_decode_into(const char *s, size_t len, Base64Alphabet alphabet, Base64Padding padding,
                       uint8_t *out, size_t out_size, size_t *ret_len);
