/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
bool utf8_is_valid(const char *s, size_t n);

/* Validation of text that arrives in pieces (WebSocket fragments): an incomplete sequence at the end of
 * one piece is carried into the next. Zero-initialise before the first piece. */
typedef struct Utf8Stream {
        uint8_t carry[4];
        uint8_t carry_len;
} Utf8Stream;

/* Is s[0..n) valid as the next piece? final: the text ends here (nothing may be left incomplete).
 * After a false return the state is undefined until reset. */
bool utf8_stream_feed(Utf8Stream *st, const char *s, size_t n, bool final);

/* Length of the sequence starting at s[0] if it is a complete, valid one within n bytes; 0 if it is
 * invalid; -1 if it is a valid but truncated prefix (more bytes could complete it). */
int utf8_sequence(const uint8_t *s, size_t n);

/* Append s[0..n) to out with every invalid byte replaced by U+FFFD. When final is false, a valid but
 * incomplete sequence at the very end is left out; *ret_consumed says how many input bytes were used
 * (the caller carries the rest into the next call). */
int utf8_sanitize_append(Buf *out, const char *s, size_t n, bool final, size_t *ret_consumed);

/* Number of UTF-16 code units the valid UTF-8 text s[0..n) encodes. */
size_t utf16_length(const char *s, size_t n);

/* Byte offset in valid UTF-8 text that corresponds to a UTF-16 offset. -ERANGE past the end,
 * -EINVAL when the offset falls inside a surrogate pair. */
int utf16_to_byte_offset(const char *s, size_t n, size_t u16, size_t *ret);

/* Append s as the body of a JSON string (no quotes), escaping what JSON requires. s must be valid
 * UTF-8; NUL bytes are written as \u0000. */
int json_escape_append(Buf *out, const char *s, size_t n);
