/* SPDX-License-Identifier: MIT */
#include "static-files.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

struct WebRoot {
        int dir_fd;
};

int web_root_open(const char *path, WebRoot **ret)
{
        WebRoot *w;
        int fd;

        fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        w = calloc(1, sizeof(WebRoot));
        if (!w) {
                safe_close(fd);
                return -ENOMEM;
        }
        w->dir_fd = fd;
        *ret = w;
        return 0;
}

WebRoot *web_root_free(WebRoot *w)
{
        if (!w)
                return NULL;
        safe_close(w->dir_fd);
        free(w);
        return NULL;
}

static const struct {
        const char *ext;
        const char *type;
        bool compressible;
} mime_types[] = {
    {"html", "text/html; charset=utf-8", true},
    {"js", "text/javascript; charset=utf-8", true},
    {"mjs", "text/javascript; charset=utf-8", true},
    {"css", "text/css; charset=utf-8", true},
    {"json", "application/json", true},
    {"map", "application/json", true},
    {"webmanifest", "application/manifest+json", true},
    {"svg", "image/svg+xml", true},
    {"txt", "text/plain; charset=utf-8", true},
    {"xml", "application/xml", true},
    {"wasm", "application/wasm", true},
    {"png", "image/png", false},
    {"jpg", "image/jpeg", false},
    {"jpeg", "image/jpeg", false},
    {"gif", "image/gif", false},
    {"webp", "image/webp", false},
    {"avif", "image/avif", false},
    {"ico", "image/x-icon", false},
    {"woff", "font/woff", false},
    {"woff2", "font/woff2", false},
    {"ttf", "font/ttf", false},
    {"otf", "font/otf", false},
};

static const char *extension(const char *name)
{
        const char *dot = strrchr(name, '.');

        return dot && dot != name ? dot + 1 : "";
}

static const char *content_type_of(const char *name, bool *ret_compressible)
{
        const char *ext = extension(name);

        for (size_t i = 0; i < ELEMENTSOF(mime_types); i++)
                if (strcasecmp(ext, mime_types[i].ext) == 0) {
                        *ret_compressible = mime_types[i].compressible;
                        return mime_types[i].type;
                }
        *ret_compressible = false;
        return "application/octet-stream";
}

/* A Vite build names assets NAME-HASH.EXT under assets/, HASH being 8 characters of base64url: the
 * content never changes under one name, so clients may keep it for good. */
static bool is_hashed_asset(const char *rel)
{
        const char *name, *ext;

        if (strncmp(rel, "assets/", 7) != 0)
                return false;
        name = strrchr(rel, '/') + 1;
        ext = strrchr(name, '.');
        if (!ext || ext - name < 10)
                return false;
        for (const char *p = ext - 8; p < ext; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                        return false;
        return ext[-9] == '-' || ext[-9] == '.';
}

/* Refuse what no file of a web app is called: "." and ".." segments, hidden names, empty segments,
 * backslashes and control characters. openat2() below would stop an escape anyway; this keeps the
 * answers plain (400 rather than a lookup). */
static bool path_is_acceptable(const char *rel)
{
        const char *seg = rel;

        if (*rel == '\0' || strlen(rel) > STATIC_PATH_MAX)
                return false;
        for (const char *p = rel;; p++) {
                if (*p == '/' || *p == '\0') {
                        size_t n = (size_t)(p - seg);
                        if (n == 0 || seg[0] == '.')
                                return false;
                        if (*p == '\0')
                                return true;
                        seg = p + 1;
                        continue;
                }
                if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
                        return false;
        }
}

/* Without openat2() (kernels before 5.6, or a seccomp filter or valgrind that does not know it): one
 * component at a time, following no symlink at all. rel has no "." or ".." components. */
static int open_beneath_by_components(int dir_fd, const char *rel)
{
        _cleanup_close_ int cur = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        char seg[STATIC_PATH_MAX + 1];

        if (cur < 0)
                return negative_errno();
        for (const char *p = rel;;) {
                size_t n = strcspn(p, "/");
                bool last = p[n] == '\0';
                int next;

                if (n == 0 || n > STATIC_PATH_MAX)
                        return -EINVAL;
                memcpy(seg, p, n);
                seg[n] = '\0';
                next = openat(cur, seg,
                              O_CLOEXEC | O_NOFOLLOW |
                                  (last ? O_RDONLY | O_NOCTTY | O_NONBLOCK : O_PATH | O_DIRECTORY));
                if (next < 0)
                        return negative_errno();
                safe_close(cur);
                cur = next;
                if (last)
                        return TAKE_FD(cur);
                p += n + 1;
        }
}

static int open_beneath(int dir_fd, const char *rel)
{
        struct open_how how = {
            .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof(how));

        if (fd < 0 && (errno == ENOSYS || errno == EPERM))
                return open_beneath_by_components(dir_fd, rel);
        if (fd < 0)
                return negative_errno();
        return (int)fd;
}

/* Open a regular file beneath the root; anything else counts as absent. */
static int open_regular(int dir_fd, const char *rel, struct stat *ret_st)
{
        int fd = open_beneath(dir_fd, rel);

        if (fd < 0)
                return fd == -EXDEV || fd == -ELOOP || fd == -ENOTDIR || fd == -EISDIR ? -ENOENT : fd;
        if (fstat(fd, ret_st) < 0 || !S_ISREG(ret_st->st_mode)) {
                safe_close(fd);
                return -ENOENT;
        }
        return fd;
}

int web_root_lookup(WebRoot *w, const char *path, bool accept_gzip, StaticFile *ret)
{
        char rel[STATIC_PATH_MAX + 8];
        bool compressible;
        struct stat st, gz_st;
        int fd, gz_fd = -1;

        if (path[0] != '/')
                return -EINVAL;
        path++;
        if (*path == '\0')
                path = "index.html";
        if (!path_is_acceptable(path))
                return -EINVAL;
        (void)snprintf(rel, sizeof(rel), "%s", path);

        fd = open_regular(w->dir_fd, rel, &st);
        if (fd < 0)
                return fd;

        StaticFile f = {
            .fd = fd,
            .size = (uint64_t)st.st_size,
            .content_type = content_type_of(rel, &compressible),
            .cache_control = is_hashed_asset(rel) ? "public, max-age=31536000, immutable" : "no-cache",
        };

        if (compressible) {
                char gz[sizeof(rel) + 4];
                (void)snprintf(gz, sizeof(gz), "%s.gz", rel);
                gz_fd = open_regular(w->dir_fd, gz, &gz_st);
                if (gz_fd >= 0) {
                        f.vary = true;
                        if (accept_gzip) {
                                safe_close(f.fd);
                                f.fd = gz_fd;
                                f.size = (uint64_t)gz_st.st_size;
                                f.gzip = true;
                                st = gz_st;
                        } else
                                safe_close(gz_fd);
                }
        }
        /* Size and modification time name a version well enough for revalidation; the gzip form is a
         * different representation and gets its own tag. */
        (void)snprintf(f.etag, sizeof(f.etag), "\"%llx-%llx.%lx%s\"", (unsigned long long)st.st_size,
                       (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec,
                       f.gzip ? "-gz" : "");
        *ret = f;
        return 0;
}

bool accept_encoding_has_gzip(const char *value)
{
        /* Tokens separated by commas, each with optional ";q=..." parameters. */
        for (const char *p = value; *p;) {
                const char *end = strchr(p, ','), *semi;
                size_t n;

                if (!end)
                        end = p + strlen(p);
                while (p < end && (*p == ' ' || *p == '\t'))
                        p++;
                semi = memchr(p, ';', (size_t)(end - p));
                n = (size_t)((semi ? semi : end) - p);
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) || (n == 1 && *p == '*')) {
                        bool zero = false;
                        if (semi) {
                                const char *q = semi + 1;
                                while (q < end && (*q == ' ' || *q == '\t'))
                                        q++;
                                if (end - q >= 3 && strncasecmp(q, "q=0", 3) == 0) {
                                        zero = true;
                                        for (const char *d = q + 3; d < end && *d != ' '; d++)
                                                if (*d != '.' && *d != '0')
                                                        zero = false;
                                }
                        }
                        return !zero;
                }
                p = *end ? end + 1 : end;
        }
        return false;
}
