/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Parsers for setting values, shared by the binaries' command lines and configuration files. Each
 * returns 0 and writes *ret only on success, -EINVAL for malformed text, -ERANGE when out of bounds. */

/* A byte count: digits with an optional K, KiB, M, MiB, G or GiB suffix (powers of 1024). */
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* A plain unsigned decimal integer. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* A duration in milliseconds: digits with an optional unit, ms, s, min, h or d (no unit: seconds). */
int parse_duration_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *ret);

/* yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *ret);
