/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>

/* The gateway's TLS files: checking them before use, telling whether they changed (a reload takes new
 * ones), and a self-signed pair for `cert = auto`. */

/* Whether cert holds a PEM certificate (chain) and key the private key that matches it. On failure
 * *ret_reason says what is wrong, in words for an admin. */
int tls_check_files(const char *cert, const char *key, const char **ret_reason);

/* What tells the files apart from their earlier versions: device, inode, size and change time. */
typedef struct TlsFilesId {
        dev_t dev[2];
        ino_t ino[2];
        off_t size[2];
        struct timespec mtime[2];
} TlsFilesId;

int tls_files_id(const char *cert, const char *key, TlsFilesId *ret);
bool tls_files_id_equal(const TlsFilesId *a, const TlsFilesId *b);

/* dir/cert.pem and dir/key.pem (0600): made once, a self-signed certificate for this host's name,
 * localhost and the loopback addresses; kept when both are there. *ret_made says whether they were
 * made now; ret_fingerprint gets its SHA-256 as hex pairs (96 bytes). */
#define TLS_FINGERPRINT_MAX 96
int tls_self_signed(const char *dir, char **ret_cert, char **ret_key, bool *ret_made,
                    char ret_fingerprint[TLS_FINGERPRINT_MAX]);
