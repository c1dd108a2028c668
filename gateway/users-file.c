/* SPDX-License-Identifier: MIT */
#include "users-file.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crypto-util.h"
#include "log.h"
#include "macro.h"

typedef struct UserEntry {
        char *name;
        char *hash;
} UserEntry;

struct UsersFile {
        UserEntry *entries;
        size_t n;
};

bool user_name_is_valid(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > USER_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static bool hash_is_valid(const char *h)
{
        /* crypt(3) hashes are printable ASCII without ':' or spaces; '*' and '!' prefixes lock an
         * account, and then nothing may match. */
        if (!*h)
                return false;
        for (const char *p = h; *p; p++)
                if (*p <= ' ' || *p > '~' || *p == ':')
                        return false;
        return true;
}

UsersFile *users_file_free(UsersFile *u)
{
        if (!u)
                return NULL;
        for (size_t i = 0; i < u->n; i++) {
                free(u->entries[i].name);
                explicit_bzero(u->entries[i].hash, strlen(u->entries[i].hash));
                free(u->entries[i].hash);
        }
        free(u->entries);
        free(u);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(UsersFile *, users_file_free);

static int read_file(const char *path, Buf *ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        Buf b = {};

        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size > USERS_FILE_MAX)
                return -EFBIG;
        if (st.st_mode & 0004)
                log_warning("%s is readable by everyone; password hashes should not be.", path);
        for (;;) {
                ssize_t n;
                if (buf_reserve(&b, 65536) < 0) {
                        buf_done(&b);
                        return -ENOMEM;
                }
                n = read(fd, b.data + b.len, 65536);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        buf_done(&b);
                        return negative_errno();
                }
                if (n == 0)
                        break;
                b.len += (size_t)n;
                b.data[b.len] = '\0';
                if (b.len > USERS_FILE_MAX) {
                        buf_done(&b);
                        return -EFBIG;
                }
        }
        if (buf_reserve(&b, 1) < 0)
                return -ENOMEM;
        b.data[b.len] = '\0';
        *ret = b;
        return 0;
}

/* Split "name:hash" in place. */
static bool split_line(char *line, char **ret_name, char **ret_hash)
{
        char *colon = strchr(line, ':');

        if (!colon)
                return false;
        *colon = '\0';
        *ret_name = line;
        *ret_hash = colon + 1;
        return true;
}

int users_file_load(const char *path, UsersFile **ret)
{
        _cleanup_(users_file_freep) UsersFile *u = NULL;
        Buf b = {};
        unsigned lineno = 0;
        int r;

        r = read_file(path, &b);
        if (r < 0)
                return r;
        u = calloc(1, sizeof(UsersFile));
        if (!u) {
                buf_done(&b);
                return -ENOMEM;
        }
        if (memchr(b.data, '\0', b.len)) {
                buf_done(&b);
                return -EBADMSG;
        }
        r = 0;
        for (char *line = b.data, *next; line && *line; line = next) {
                char *name, *hash;
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                lineno++;
                if (*line == '\0' || *line == '#')
                        continue;
                if (!split_line(line, &name, &hash) || !user_name_is_valid(name) || !hash_is_valid(hash)) {
                        log_error("%s:%u: expected 'name:hash'.", path, lineno);
                        r = -EBADMSG;
                        break;
                }
                if (users_file_lookup(u, name)) {
                        log_error("%s:%u: user '%s' appears twice.", path, lineno, name);
                        r = -EBADMSG;
                        break;
                }
                UserEntry *e = realloc(u->entries, (u->n + 1) * sizeof(UserEntry));
                if (!e) {
                        r = -ENOMEM;
                        break;
                }
                u->entries = e;
                e[u->n].name = strdup(name);
                e[u->n].hash = strdup(hash);
                if (!e[u->n].name || !e[u->n].hash) {
                        free(e[u->n].name);
                        free(e[u->n].hash);
                        r = -ENOMEM;
                        break;
                }
                u->n++;
        }
        explicit_bzero(b.data, b.len);
        buf_done(&b);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(u);
        return 0;
}

const char *users_file_lookup(const UsersFile *u, const char *name)
{
        /* Linear: a users file for one gateway holds a class at most, and lookups happen per login. */
        for (size_t i = 0; i < u->n; i++)
                if (streq(u->entries[i].name, name))
                        return u->entries[i].hash;
        return NULL;
}

size_t users_file_count(const UsersFile *u)
{
        return u->n;
}

int password_hash(const char *password, char **ret_hash)
{
        _cleanup_free_ char *salt = NULL;
        void *data = NULL;
        int size = 0;
        const char *h;
        char *copy;

        /* NULL random bytes: libxcrypt reads them from the kernel itself. */
        errno = 0;
        salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
        if (!salt)
                return errno > 0 ? -errno : -EINVAL;
        h = crypt_ra(password, salt, &data, &size);
        if (!h || h[0] == '*') {
                free(data);
                return -EINVAL;
        }
        copy = strdup(h);
        explicit_bzero(data, (size_t)size);
        free(data);
        if (!copy)
                return -ENOMEM;
        *ret_hash = copy;
        return 0;
}

bool password_verify(const char *password, const char *hash)
{
        struct crypt_data *data;
        bool ok = false;
        const char *h;

        if (!hash_is_valid(hash) || hash[0] == '*' || hash[0] == '!')
                return false;
        /* struct crypt_data is 32 KiB: not for a thread-pool stack. */
        data = calloc(1, sizeof(struct crypt_data));
        if (!data)
                return false;
        h = crypt_rn(password, hash, data, sizeof(*data));
        if (h && h[0] != '*' && strlen(h) == strlen(hash))
                ok = secret_equal(h, strlen(h), hash, strlen(hash));
        explicit_bzero(data, sizeof(*data));
        free(data);
        return ok;
}

static void unlinkp(char **p)
{
        if (*p) {
                (void)unlink(*p);
                free(*p);
        }
}

/* For buffers that held hashes: wiped before they are freed. */
static void buf_wipep(Buf *b)
{
        if (b->data)
                explicit_bzero(b->data, b->len);
        buf_done(b);
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

int users_file_update(const char *path, const char *name, const char *password)
{
        _cleanup_free_ char *hash = NULL;
        _cleanup_(unlinkp) char *tmp = NULL;
        _cleanup_(buf_wipep) Buf old = {}, out = {};
        _cleanup_close_ int fd = -1;
        size_t name_len = strlen(name);
        bool found = false;
        mode_t mode = 0600;
        struct stat st;
        int r;

        if (!user_name_is_valid(name))
                return -EINVAL;
        if (password) {
                r = password_hash(password, &hash);
                if (r < 0)
                        return r;
        }

        r = read_file(path, &old);
        if (r == -ENOENT && !password)
                return -ENOENT;
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0 && stat(path, &st) == 0)
                mode = st.st_mode & 07777;

        /* Keep every other line as it is, comments included; replace or drop the user's. */
        for (char *line = old.data, *next; line && *line; line = next) {
                size_t len;
                next = strchr(line, '\n');
                len = next ? (size_t)(next - line) : strlen(line);
                if (next)
                        next++;
                if (len > name_len && strncmp(line, name, name_len) == 0 && line[name_len] == ':') {
                        found = true;
                        if (password && buf_printf(&out, "%s:%s\n", name, hash) < 0)
                                return -ENOMEM;
                        continue;
                }
                if (buf_append(&out, line, len) < 0 || buf_append(&out, "\n", 1) < 0)
                        return -ENOMEM;
        }
        if (!found) {
                if (!password)
                        return -ENOENT;
                if (buf_printf(&out, "%s:%s\n", name, hash) < 0)
                        return -ENOMEM;
        }

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                free(tmp);
                tmp = NULL;
                return r;
        }
        if (fchmod(fd, mode) < 0)
                return negative_errno();
        r = write_all(fd, out.data ? out.data : "", out.len);
        if (r < 0)
                return r;
        if (fsync(fd) < 0 || rename(tmp, path) < 0)
                return negative_errno();
        /* Renamed: nothing to remove any more. */
        free(tmp);
        tmp = NULL;
        return 0;
}
