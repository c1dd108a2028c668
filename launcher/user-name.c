/* SPDX-License-Identifier: MIT */
#include "user-name.h"

#include <errno.h>

#include "launcher-protocol.h"

static bool is_lower_or_underscore(char c)
{
        return (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

bool user_name_valid(const char *name, size_t len)
{
        if (len == 0 || len > LAUNCHER_USER_MAX)
                return false;
        if (!is_lower_or_underscore(name[0]))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!is_lower_or_underscore(name[i]) && !is_digit(name[i]) && name[i] != '-')
                        return false;
        return true;
}

static bool unit_char_plain(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == ':' || c == '_' ||
               c == '.';
}

int unit_name_escape(const char *s, char *out, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;

        for (size_t i = 0; s[i]; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '/' || (unit_char_plain((char)c) && !(i == 0 && c == '.'))) {
                        if (k + 1 >= size)
                                return -ENOBUFS;
                        out[k++] = c == '/' ? '-' : (char)c;
                } else {
                        if (k + 4 >= size)
                                return -ENOBUFS;
                        out[k++] = '\\';
                        out[k++] = 'x';
                        out[k++] = hex[c >> 4];
                        out[k++] = hex[c & 15];
                }
        }
        if (k >= size)
                return -ENOBUFS;
        out[k] = '\0';
        return 0;
}
