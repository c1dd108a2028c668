/* SPDX-License-Identifier: MIT */
#include "tls.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

/* Ten years: nobody is meant to trust it beyond "this is the machine I set up"; a real certificate
 * replaces it (cert = FILE). */
#define SELF_SIGNED_DAYS 3650L

static FILE *open_read(const char *path, int *ret_errno)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        FILE *f;

        if (fd < 0) {
                *ret_errno = errno;
                return NULL;
        }
        f = fdopen(fd, "r");
        if (!f) {
                *ret_errno = errno;
                close(fd);
        }
        return f;
}

int tls_check_files(const char *cert, const char *key, const char **ret_reason)
{
        X509 *x = NULL;
        EVP_PKEY *pk = NULL;
        FILE *f;
        int err = 0, r = 0;

        assert(cert && key && ret_reason);

        f = open_read(cert, &err);
        if (!f) {
                *ret_reason = err == ENOENT   ? "the certificate file does not exist"
                              : err == EACCES ? "the certificate file is not readable by the gateway"
                                              : "the certificate file cannot be opened";
                return -err;
        }
        x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        if (!x) {
                *ret_reason = "the certificate file holds no PEM certificate";
                r = -EINVAL;
                goto out;
        }
        f = open_read(key, &err);
        if (!f) {
                *ret_reason = err == ENOENT   ? "the key file does not exist"
                              : err == EACCES ? "the key file is not readable by the gateway"
                                              : "the key file cannot be opened";
                r = -err;
                goto out;
        }
        pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!pk) {
                *ret_reason = "the key file holds no unencrypted PEM private key";
                r = -EINVAL;
                goto out;
        }
        if (X509_check_private_key(x, pk) != 1) {
                *ret_reason = "the key does not belong to the certificate";
                r = -EKEYREJECTED;
                goto out;
        }
        if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
                *ret_reason = "the certificate has expired";
                r = -EKEYEXPIRED;
                goto out;
        }
out:
        ERR_clear_error();
        X509_free(x);
        EVP_PKEY_free(pk);
        return r;
}

int tls_files_id(const char *cert, const char *key, TlsFilesId *ret)
{
        const char *paths[2] = {cert, key};
        TlsFilesId id = {};

        for (int i = 0; i < 2; i++) {
                struct stat st;
                if (stat(paths[i], &st) < 0)
                        return negative_errno();
                id.dev[i] = st.st_dev;
                id.ino[i] = st.st_ino;
                id.size[i] = st.st_size;
                id.mtime[i] = st.st_mtim;
        }
        *ret = id;
        return 0;
}

bool tls_files_id_equal(const TlsFilesId *a, const TlsFilesId *b)
{
        for (int i = 0; i < 2; i++)
                if (a->dev[i] != b->dev[i] || a->ino[i] != b->ino[i] || a->size[i] != b->size[i] ||
                    a->mtime[i].tv_sec != b->mtime[i].tv_sec || a->mtime[i].tv_nsec != b->mtime[i].tv_nsec)
                        return false;
        return true;
}

static void fingerprint(X509 *x, char out[TLS_FINGERPRINT_MAX])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        out[0] = '\0';
        if (!X509_digest(x, EVP_sha256(), md, &n))
                return;
        for (unsigned i = 0; i < n && 3 * i + 3 <= TLS_FINGERPRINT_MAX; i++)
                (void)snprintf(out + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
}

static bool dns_name_ok(const char *h)
{
        if (!h[0] || strlen(h) > 253)
                return false;
        for (const char *p = h; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
                        return false;
        return true;
}

static int add_ext(X509 *x, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509_EXTENSION *e;
        int ok;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!e)
                return -EINVAL;
        ok = X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        return ok ? 0 : -ENOMEM;
}

static int make_pair(X509 **ret_x, EVP_PKEY **ret_pk)
{
        char host[256] = "", san[600];
        EVP_PKEY *pk = EVP_EC_gen("P-256");
        X509 *x = X509_new();
        BIGNUM *serial = BN_new();
        X509_NAME *name;
        int r = -ENOMEM;

        if (!pk || !x || !serial)
                goto fail;
        if (gethostname(host, sizeof(host) - 1) < 0 || !dns_name_ok(host))
                strcpy(host, "localhost");
        if (!X509_set_version(x, 2) || !BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
            !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
            !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), SELF_SIGNED_DAYS * 24 * 3600) || !X509_set_pubkey(x, pk))
                goto fail;
        name = X509_get_subject_name(x);
        if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0) ||
            !X509_set_issuer_name(x, name))
                goto fail;
        (void)snprintf(san, sizeof(san), "DNS:%s%s,IP:127.0.0.1,IP:::1", host,
                       streq(host, "localhost") ? "" : ",DNS:localhost");
        if (add_ext(x, NID_subject_alt_name, san) < 0 ||
            add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            add_ext(x, NID_ext_key_usage, "serverAuth") < 0)
                goto fail;
        if (!X509_sign(x, pk, EVP_sha256()))
                goto fail;
        BN_free(serial);
        *ret_x = x;
        *ret_pk = pk;
        return 0;
fail:
        ERR_clear_error();
        BN_free(serial);
        X509_free(x);
        EVP_PKEY_free(pk);
        return r;
}

/* Written beside and renamed into place, 0600 from the start. */
static int write_pem(const char *path, X509 *x, EVP_PKEY *pk)
{
        _cleanup_free_ char *tmp = NULL;
        FILE *f;
        int fd, ok;

        if (asprintf(&tmp, "%s.tmp", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        f = fdopen(fd, "w");
        if (!f) {
                close(fd);
                return -ENOMEM;
        }
        ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
        ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
        ok = (fclose(f) == 0) && ok;
        if (!ok || rename(tmp, path) < 0) {
                (void)unlink(tmp);
                return -EIO;
        }
        return 0;
}

int tls_self_signed(const char *dir, char **ret_cert, char **ret_key, bool *ret_made,
                    char ret_fingerprint[TLS_FINGERPRINT_MAX])
{
        _cleanup_free_ char *cert = NULL, *key = NULL;
        X509 *x = NULL;
        EVP_PKEY *pk = NULL;
        bool made = false;
        FILE *f;
        int r, err;

        if (asprintf(&cert, "%s/cert.pem", dir) < 0 || asprintf(&key, "%s/key.pem", dir) < 0) {
                cert = key = NULL;
                return -ENOMEM;
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (access(cert, F_OK) < 0 || access(key, F_OK) < 0) {
                r = make_pair(&x, &pk);
                if (r < 0)
                        return r;
                /* The key first: a certificate is never there without its key. */
                r = write_pem(key, NULL, pk);
                if (r >= 0)
                        r = write_pem(cert, x, NULL);
                EVP_PKEY_free(pk);
                if (r < 0) {
                        X509_free(x);
                        return r;
                }
                made = true;
        } else {
                f = open_read(cert, &err);
                if (!f)
                        return -err;
                x = PEM_read_X509(f, NULL, NULL, NULL);
                fclose(f);
                ERR_clear_error();
        }
        if (x)
                fingerprint(x, ret_fingerprint);
        else
                ret_fingerprint[0] = '\0';
        X509_free(x);
        *ret_cert = TAKE_PTR(cert);
        *ret_key = TAKE_PTR(key);
        *ret_made = made;
        return 0;
}
