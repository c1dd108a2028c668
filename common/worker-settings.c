/* SPDX-License-Identifier: MIT */
#include "worker-settings.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf-file.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

#define YEAR_MS (365ULL * 24 * 3600 * 1000)
#define GIB     (1024ULL * 1024 * 1024)

/* The ranges are helios-worker's own for the same options. */
const WorkerSetting worker_settings[_WORKER_SETTING_MAX] = {
    [WORKER_SETTING_IDLE_TIMEOUT] = {"idle_timeout", "idle-timeout", WORKER_SETTING_DURATION, 0, YEAR_MS},
    [WORKER_SETTING_TERMINAL_IDLE_TIMEOUT] = {"terminal_idle_timeout", "terminal-idle-timeout",
                                              WORKER_SETTING_DURATION, 0, YEAR_MS},
    [WORKER_SETTING_MAX_TERMINALS] = {"max_terminals", "max-terminals", WORKER_SETTING_COUNT, 0, 4096},
    [WORKER_SETTING_MAX_CONNECTIONS] = {"max_connections", "max-connections", WORKER_SETTING_COUNT, 1,
                                        65536},
    [WORKER_SETTING_SCROLLBACK] = {"scrollback", "scrollback", WORKER_SETTING_SIZE, 4096,
                                   256ULL * 1024 * 1024},
    [WORKER_SETTING_MAX_WATCHES] = {"max_watches", "max-watches", WORKER_SETTING_COUNT, 1, 1u << 24},
    [WORKER_SETTING_HIGH_WATER] = {"high_water", "high-water", WORKER_SETTING_SIZE, 4096, GIB},
};

static void fclosep(FILE **f)
{
        if (*f)
                (void)fclose(*f);
}

static int on_setting(const char *path, unsigned line, const char *key, const char *value, void *userdata)
{
        WorkerSettings *s = userdata;

        for (size_t i = 0; i < _WORKER_SETTING_MAX; i++) {
                const WorkerSetting *w = &worker_settings[i];
                int r;

                if (!streq(key, w->key))
                        continue;
                r = w->type == WORKER_SETTING_DURATION ? parse_duration_ms(value, w->min, w->max, &s->v[i])
                    : w->type == WORKER_SETTING_SIZE   ? parse_size(value, w->min, w->max, &s->v[i])
                                                       : parse_uint(value, w->min, w->max, &s->v[i]);
                if (r < 0) {
                        log_error("%s:%u: invalid value '%s' for %s.", path, line, value, key);
                        return -EINVAL;
                }
                s->set[i] = true;
                return 0;
        }
        log_error("%s:%u: unknown setting '%s' in [" WORKER_SETTINGS_SECTION "].", path, line, key);
        return -EINVAL;
}

/* One file on top of s; a missing one changes nothing. section NULL: the whole file is the worker's. */
static int load_file(const char *path, const char *section, bool own_ok, WorkerSettings *s)
{
        _cleanup_close_ int fd = -1;
        _cleanup_(fclosep) FILE *f = NULL;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot stat %s: %m", path);
        /* Anyone else who could write it would set the limits of every workspace. */
        if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && !(own_ok && st.st_uid == geteuid())) ||
            (st.st_mode & 0022)) {
                log_error("%s must be a regular file of root's that nobody else may write.", path);
                return -EPERM;
        }
        f = fdopen(fd, "re");
        if (!f)
                return log_error_errno(errno, "Cannot read %s: %m", path);
        TAKE_FD(fd);
        if (section)
                return conf_file_parse_section_stream(f, path, section, HELIOS_CONF_SECTIONS, on_setting, s);
        return conf_file_parse_stream(f, path, on_setting, s);
}

int worker_settings_load(const char *path, const char *user, bool own_ok, WorkerSettings *ret)
{
        _cleanup_free_ char *user_path = NULL;
        WorkerSettings s = {};
        const char *slash;
        int r;

        r = load_file(path, WORKER_SETTINGS_SECTION, own_ok, &s);
        if (r < 0)
                return r;
        if (user) {
                /* A name as accounts have them: never a path of its own. */
                if (!*user || strchr(user, '/') || user[0] == '.')
                        return -EINVAL;
                slash = strrchr(path, '/');
                if (asprintf(&user_path, "%.*s" WORKER_SETTINGS_USER_DIR "/%s.conf",
                             slash ? (int)(slash - path + 1) : 0, path, user) < 0)
                        return -ENOMEM;
                r = load_file(user_path, NULL, own_ok, &s);
                if (r < 0)
                        return r;
        }
        *ret = s;
        return 0;
}
