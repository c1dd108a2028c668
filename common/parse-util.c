/* SPDX-License-Identifier: MIT */
#include "parse-util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* Digits only: strtoull alone would accept leading spaces, signs and "0x". */
static int parse_digits(const char *s, unsigned long long *ret, const char **ret_end)
{
        char *end;
        unsigned long long v;

        if (!isdigit((unsigned char)s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0)
                return -EINVAL;
        *ret = v;
        *ret_end = end;
        return 0;
}

static int scale(unsigned long long v, uint64_t mult, uint64_t min, uint64_t max, uint64_t *ret)
{
        if (v > max / mult)
                return -ERANGE;
        v *= mult;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {
            {"", 1},
            {"K", 1024},
            {"KiB", 1024},
            {"M", 1024 * 1024},
            {"MiB", 1024 * 1024},
            {"G", 1024ULL * 1024 * 1024},
            {"GiB", 1024ULL * 1024 * 1024},
        };
        unsigned long long v;
        const char *end;
        int r;

        r = parse_digits(s, &v, &end);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(end, units[i].suffix))
                        return scale(v, units[i].mult, min, max, ret);
        return -EINVAL;
}

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
        unsigned long long v;
        const char *end;
        int r;

        r = parse_digits(s, &v, &end);
        if (r < 0)
                return r;
        if (*end != '\0')
                return -EINVAL;
        return scale(v, 1, min, max, ret);
}

int parse_duration_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *ret)
{
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {
            {"", 1000},         {"ms", 1},          {"s", 1000},
            {"min", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24ULL * 3600 * 1000},
        };
        unsigned long long v;
        const char *end;
        int r;

        r = parse_digits(s, &v, &end);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(end, units[i].suffix))
                        return scale(v, units[i].mult, min_ms, max_ms, ret);
        return -EINVAL;
}

int parse_bool(const char *s, bool *ret)
{
        static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off",
                                                                                    "0"};

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (streq(s, yes[i])) {
                        *ret = true;
                        return 0;
                }
                if (streq(s, no[i])) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}
