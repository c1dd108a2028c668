/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How file content travels in JSON: as text when it is UTF-8 that a JSON string can carry, otherwise
 * as base64. */

/* Length of the RFC 4648 base64 text for n bytes (with padding). */
size_t base64_encoded_size(size_t n);
/* Encode into a new NUL-terminated string. */
int base64_encode(const void *p, size_t n, char **ret, size_t *ret_len);
/* Decode strictly: the standard alphabet only, no whitespace, padded to a multiple of four, and the
 * unused bits of the last group zero, so every byte string has exactly one accepted encoding.
 * -EINVAL otherwise. The result is NUL-terminated (not counted in *ret_len). */
int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len);

/* True if the bytes can travel as a JSON string: valid UTF-8 without NUL (cJSON ends strings there). */
bool fs_text_is_json_safe(const char *s, size_t n);
/* Bytes cJSON writes for s (valid UTF-8) as a JSON string body, quotes not counted. */
size_t fs_json_string_size(const char *s, size_t n);
