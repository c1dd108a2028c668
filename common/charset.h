/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The text encodings a file can be edited in. JSON carries text as UTF-8, so a file in one of the 8-bit
 * encodings is decoded when read and encoded again when written. */
typedef enum Charset {
        CHARSET_UTF8,
        CHARSET_LATIN1, /* ISO-8859-1: byte = code point, U+0000..U+00FF */
        CHARSET_CP1252, /* Windows-1252: Latin-1 with printable characters (€, curly quotes) in 0x80..0x9F */
        _CHARSET_MAX,
        _CHARSET_INVALID = -22, /* -EINVAL */
} Charset;

/* The wire name ("utf-8", "iso-8859-1", "windows-1252"), and back (-EINVAL when unknown). */
const char *charset_to_string(Charset c);
Charset charset_from_string(const char *s);

/* What the bytes of a file that is not UTF-8 read as: CHARSET_LATIN1 when every byte is a printable
 * Latin-1 character or a tab, line or page break (nothing in 0x80..0x9F), CHARSET_CP1252 when bytes in
 * 0x80..0x9F are all characters Windows-1252 defines, -EINVAL (binary) otherwise: NUL and other control
 * characters, or one of the five bytes Windows-1252 leaves undefined. */
Charset charset_detect_legacy(const char *s, size_t n);

/* Append the UTF-8 text of s[0..n) in charset c (not UTF-8) to out. -EINVAL for a byte c does not
 * define. */
int charset_decode_append(Charset c, const char *s, size_t n, Buf *out);

/* Where valid UTF-8 text has a character charset c cannot hold. */
typedef struct CharsetBadChar {
        uint32_t code_point;
        size_t offset; /* in UTF-16 code units from the start of the text */
} CharsetBadChar;

/* Append the bytes of the valid UTF-8 text s[0..n) in charset c (not UTF-8) to out. -EILSEQ, with
 * *ret_bad set, at the first character c cannot hold; out then holds a prefix. */
int charset_encode_append(Charset c, const char *s, size_t n, Buf *out, CharsetBadChar *ret_bad);

/* Whether charset c can hold every character of the valid UTF-8 text s[0..n): 0, or -EILSEQ with
 * *ret_bad (its offset counted from s) set. */
int charset_check(Charset c, const char *s, size_t n, CharsetBadChar *ret_bad);
