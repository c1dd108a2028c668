/* SPDX-License-Identifier: MIT */
#include "fs-encoding.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "macro.h"
#include "utf8.h"

size_t base64_encoded_size(size_t n)
{
        return base64_encoded_len(n, true);
}

int base64_encode(const void *data, size_t n, char **ret, size_t *ret_len)
{
        size_t len;
        char *out;

        if (n > (SIZE_MAX - 3) / 4 * 3)
                return -ENOMEM;
        len = base64_encoded_size(n);
        out = malloc(len + 1);
        if (!out)
                return -ENOMEM;
        base64_encode_into(data, n, BASE64_STANDARD, true, out);
        out[len] = '\0';
        *ret = out;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
        size_t len;
        uint8_t *out;
        int r;

        out = malloc(base64_decoded_max(n) + 1);
        if (!out)
                return -ENOMEM;
        r = base64_decode_into(s, n, BASE64_STANDARD, BASE64_PAD_REQUIRED, out, base64_decoded_max(n), &len);
        if (r < 0) {
                free(out);
                return r;
        }
        out[len] = 0;
        *ret = out;
        *ret_len = len;
        return 0;
}

bool fs_text_is_json_safe(const char *s, size_t n)
{
        return !memchr(s, 0, n) && utf8_is_valid(s, n);
}

/* The bytes cJSON's printer adds to each byte of a string: two-character escapes for \b \t \n \f \r " and
 * \\, \u00XX for the other controls, everything else (DEL and non-ASCII included) verbatim. */
static const uint8_t json_escape_extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5,         5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, ['"'] = 1, ['\\'] = 1,
};

size_t fs_json_string_size(const char *s, size_t n)
{
        size_t size = n;

        for (size_t i = 0; i < n; i++)
                size += json_escape_extra[(uint8_t)s[i]];
        return size;
}
