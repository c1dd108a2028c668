/* SPDX-License-Identifier: MIT */
#include "worker-home.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "policy.h"

static void fclosep(FILE **f)
{
        if (*f)
                (void)fclose(*f);
}

static int account_home(const char *user, char **ret)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *found = NULL;
        size_t size = 16384;
        int r;

        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        r = getpwnam_r(user, &pw, buf, size, &found);
        if (r != 0)
                return -r;
        if (!found)
                return -ESRCH;
        if (!pw.pw_dir || pw.pw_dir[0] != '/')
                return -ENOENT;
        /* The real path: a symlinked home would be bound where it points anyway. */
        *ret = realpath(pw.pw_dir, NULL);
        return *ret ? 0 : negative_errno();
}

/* The file's text, when it is exactly `want` bytes long at most; anything else reads as different. */
static bool same_text(const char *path, const char *want, size_t len)
{
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *have = NULL;
        size_t n;

        if (!f)
                return false;
        have = malloc(len + 1);
        if (!have)
                return false;
        n = fread(have, 1, len + 1, f);
        return n == len && memcmp(have, want, len) == 0;
}

int worker_home_dropin_write(const char *dropin_root, const char *instance, const char *user)
{
        _cleanup_free_ char *home = NULL, *text = NULL, *dir = NULL, *path = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0;
        FILE *f;
        int r;

        r = account_home(user, &home);
        if (r < 0)
                return r;
        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        r = policy_write_home_dropin(f, home);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;

        if (asprintf(&dir, "%s/helios-worker@%s.service.d", dropin_root, instance) < 0) {
                dir = NULL;
                return -ENOMEM;
        }
        if (asprintf(&path, "%s/50-home.conf", dir) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&tmp, "%s/.50-home.conf.tmp", dir) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        if (same_text(path, text, len))
                return 0;
        bool replacing = access(path, F_OK) == 0;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return negative_errno();
        /* systemd reads it as any unit file: readable by all, like the unit itself. */
        if (fchmod(fd, 0644) < 0)
                return negative_errno();
        for (size_t done = 0; done < len;) {
                ssize_t n = write(fd, text + done, len - done);
                if (n < 0) {
                        r = negative_errno();
                        (void)unlink(tmp);
                        return r;
                }
                done += (size_t)n;
        }
        if (rename(tmp, path) < 0) {
                r = negative_errno();
                (void)unlink(tmp);
                return r;
        }
        return replacing;
}
