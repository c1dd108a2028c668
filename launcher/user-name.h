/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* User names as the launcher accepts them from the gateway: ^[a-z_][a-z0-9_-]{0,31}$. Anything else
 * (slashes, dots, '@', backslashes, spaces, control characters, upper case, UTF-8, empty, over 32
 * bytes) is refused before it reaches PAM, the password database, a path or a unit name. */
bool user_name_valid(const char *name, size_t len);

/* Escape s the way systemd escapes a string into a unit name (systemd-escape without --path): '/' becomes
 * '-', ASCII letters, digits, ':', '_' and '.' (except a leading one) stay, every other byte becomes
 * \xNN. Writes at most size bytes including the NUL; -ENOBUFS if that is not enough. */
int unit_name_escape(const char *s, char *out, size_t size);

/* Room for the escape of a valid user name: every byte may become four. */
#define UNIT_ESCAPED_USER_MAX (32 * 4 + 1)
