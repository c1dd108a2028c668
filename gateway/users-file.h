/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The users file of the `file` login method: one `name:hash` line per user, the hash in crypt(3) form
 * (yescrypt by default), '#' comments. Read whole at start and on reload; written only by
 * `helios-gateway passwd`, atomically. */

typedef struct UsersFile UsersFile;

#define USER_NAME_MAX 64u
/* Largest users file read, in bytes. */
#define USERS_FILE_MAX (16u * 1024u * 1024u)

/* Letters, digits, '.', '_', '-'; not starting with '.' or '-'; 1..USER_NAME_MAX bytes. Names go into
 * logs, cookies' session records and JSON, so nothing else is accepted anywhere. */
bool user_name_is_valid(const char *name);

int users_file_load(const char *path, UsersFile **ret);
UsersFile *users_file_free(UsersFile *u);
/* The hash for name, or NULL. */
const char *users_file_lookup(const UsersFile *u, const char *name);
size_t users_file_count(const UsersFile *u);

/* Hash password with a fresh salt (yescrypt unless the system's crypt says otherwise). */
int password_hash(const char *password, char **ret_hash);
/* Does password match hash? A malformed hash matches nothing. Thread-safe. */
bool password_verify(const char *password, const char *hash);

/* Set name's password in the file at path (creating it 0600 if missing), or remove name when password
 * is NULL (-ENOENT if it was not there). The file is replaced atomically; other lines are kept. */
int users_file_update(const char *path, const char *name, const char *password);
