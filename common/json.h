/* SPDX-License-Identifier: MIT */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

typedef enum JsonScanResult {
        JSON_SCAN_OK,
        JSON_SCAN_BAD_UTF8, /* not UTF-8: not JSON (RFC 8259 §8.1) */
        JSON_SCAN_CONTROL,  /* raw control character inside a string: not JSON */
        JSON_SCAN_NUL,      /* a \u0000 escape: cJSON would silently cut the string there */
        JSON_SCAN_TOO_DEEP, /* nesting beyond the limit */
        JSON_SCAN_TOO_MANY, /* more values than the limit */
        _JSON_SCAN_RESULT_MAX,
} JsonScanResult;

/* One linear pass over raw JSON text that refuses what cJSON would accept wrongly or handle badly:
 * invalid UTF-8, raw control characters and NUL escapes in strings, nesting deeper than max_depth
 * (checked before cJSON recurses), and more than max_values values (each costs cJSON some 80 bytes
 * of memory however short its text: "0," is two bytes). It does not check the grammar; cJSON does. */
JsonScanResult json_prescan(const char *s, size_t n, unsigned max_depth, size_t max_values);
const char *json_scan_result_to_string(JsonScanResult r);

/* Parse exactly s[0..n) (s[n] must be NUL), refusing trailing garbage. NULL on a syntax error. */
cJSON *json_parse(const char *s, size_t n);

/* The index of the first byte at or after i in s[0..n) that cJSON does not skip as whitespace (any byte
 * up to ' '). */
size_t json_skip_space(const char *s, size_t n, size_t i);
/* The index just past the value that starts at s[i], in text json_parse() accepted; n if the text ends
 * first. A linear scan without recursion or allocation, for finding where members lie in the text. */
size_t json_skip_value(const char *s, size_t n, size_t i);
/* The number of members of the array whose '[' is at s[i] (text as for json_skip_value()), counting
 * no further than max + 1. */
size_t json_count_members(const char *s, size_t n, size_t i, size_t max);
/* True if s[0..n) is a number as RFC 8259 writes one (cJSON also takes "01" and "1."). */
bool json_is_strict_number(const char *s, size_t n);

/* Compact JSON text (no raw newlines), or NULL on allocation failure. */
char *json_print(const cJSON *item, size_t *ret_len);
/* True if json_print() would write at least n bytes of item, counting its strings and a byte for each
 * value (numbers count short): in time linear in n whatever the item's size, for choosing where to
 * print it. */
bool json_size_at_least(const cJSON *item, size_t n);

/* An item for the integer v that prints exactly as cJSON_CreateNumber(v) would, but without cJSON's
 * printf("%1.15g") and sscanf() round trip: a cJSON_Raw of its decimal digits. For replies about to be
 * printed; whoever reads the item in-process sees a raw item, not a number. Beyond +-10^15, where
 * cJSON may write an exponent, it is cJSON's own number. */
cJSON *json_create_integer(int64_t v);

/* A cJSON_Raw item that borrows raw (complete JSON text) the way cJSON_CreateStringReference() borrows
 * a string: printed verbatim, never freed by cJSON_Delete(). raw must outlive the item. */
cJSON *json_create_raw_reference(const char *raw);

/* A string item that takes s (allocated with malloc(), NUL-terminated) instead of copying it: for
 * large contents. s is freed on failure too. */
cJSON *json_create_string_take(char *s);

typedef enum JsonFieldType {
        JSON_FIELD_STRING, /* const char ** */
        JSON_FIELD_UINT,   /* uint64_t *, an integral number in 0..max (max 0 means 2^53) */
        JSON_FIELD_BOOL,   /* bool * */
        JSON_FIELD_OBJECT, /* const cJSON ** */
        JSON_FIELD_ARRAY,  /* const cJSON ** */
        JSON_FIELD_ANY,    /* const cJSON ** */
        _JSON_FIELD_TYPE_MAX,
} JsonFieldType;

typedef struct JsonField {
        const char *name;
        JsonFieldType type;
        bool required;
        void *ret;
        uint64_t max;
} JsonField;

/* Read named members of an object into typed outputs. A member that is absent or null leaves its
 * output untouched (so callers set defaults first) unless it is required. Unknown members are
 * ignored. On failure returns -EINVAL and a human-readable reason in *ret_reason (static storage,
 * valid until the next call). */
int json_dispatch(const cJSON *obj, const JsonField *fields, size_t n_fields, const char **ret_reason);

/* True if the item is a number with an exact integer value in 0..max. */
bool json_get_uint(const cJSON *item, uint64_t max, uint64_t *ret);
