/* SPDX-License-Identifier: MIT */
/* The sandbox settings an admin may change, server-wide and per user, for both modes: one table with
 * each setting's default, bounds and reason, and what each becomes under systemd (a directive of the
 * worker unit, set on a user's unit at start by the launcher) and in embedded mode (a file of the
 * worker's cgroup, or an rlimit).
 *
 * Where an admin changes them: /etc/helios/sandbox.conf for every workspace, then
 * /etc/helios/sandbox.d/USER.conf for one user's, `key = value` lines (common/conf-file.h), each key
 * one of the table's. A file must belong to root and be writable by nobody else: it decides what a
 * student's workspace may use. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf-file.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "policy.h"

#define GIB (1024ULL * 1024 * 1024)

const PolicySetting policy_settings[_POLICY_SETTING_MAX] = {
    [POLICY_SETTING_MEMORY_MAX] =
        {
            .key = "memory_max",
            .type = POLICY_SETTING_SIZE,
            .value = 2 * GIB,
            .min = 64 * 1024 * 1024,
            .max = POLICY_INFINITY,
            .unit_property = "MemoryMax",
            .cgroup_file = "memory.max",
            .controller = "memory",
            /* A build, a language server and a browser-sized test run fit; one student cannot push the
             * machine into the OOM killer for everyone. */
            .reason = "memory of the whole workspace, terminals included",
        },
    [POLICY_SETTING_TASKS_MAX] =
        {
            .key = "tasks_max",
            .type = POLICY_SETTING_COUNT,
            .value = 512,
            .min = 16,
            .max = POLICY_INFINITY,
            .unit_property = "TasksMax",
            .cgroup_file = "pids.max",
            .controller = "pids",
            /* make -j of a class project and its compilers, far short of a fork bomb. */
            .reason = "processes and threads of the whole workspace",
        },
    [POLICY_SETTING_CPU_WEIGHT] =
        {
            .key = "cpu_weight",
            .type = POLICY_SETTING_COUNT,
            .value = 100,
            .min = 1,
            .max = 10000,
            .unit_property = "CPUWeight",
            .cgroup_file = "cpu.weight",
            .controller = "cpu",
            /* Equal shares: a busy workspace gets the idle CPU, never another's share. */
            .reason = "share of the CPU when workspaces compete",
        },
    [POLICY_SETTING_OPEN_FILES] =
        {
            .key = "open_files",
            .type = POLICY_SETTING_COUNT,
            .value = 8192,
            .min = 64,
            .max = 1024 * 1024,
            .unit_property = "LimitNOFILE",
            .unit_only_at_build = true,
            .rlimit = RLIMIT_NOFILE,
            /* Enough for an IDE with many watched files and a few language servers. */
            .reason = "open files of each process (RLIMIT_NOFILE)",
        },
    /* The next three are bounds of the sandbox's own mounts (limits.c says why they exist). Under
     * systemd the unit's TemporaryFileSystem= lines carry the defaults; no directive bounds
     * pseudo-terminals. */
    [POLICY_SETTING_TMP_SIZE] =
        {
            .key = "tmp_size",
            .type = POLICY_SETTING_SIZE,
            .value = POLICY_TMP_SIZE_DEFAULT,
            .min = 1024 * 1024,
            .max = 64 * GIB,
            .bound = POLICY_BOUND_TMP_SIZE,
            .reason = "RAM in the private /tmp, and again in /var/tmp",
        },
    [POLICY_SETTING_SHM_SIZE] =
        {
            .key = "shm_size",
            .type = POLICY_SETTING_SIZE,
            .value = POLICY_SHM_SIZE_DEFAULT,
            .min = 1024 * 1024,
            .max = 64 * GIB,
            .bound = POLICY_BOUND_SHM_SIZE,
            .reason = "RAM in the private /dev/shm",
        },
    [POLICY_SETTING_PTY_MAX] =
        {
            .key = "pty_max",
            .type = POLICY_SETTING_COUNT,
            .value = POLICY_PTYS_DEFAULT,
            .min = 4,
            .max = 4096,
            .bound = POLICY_BOUND_PTYS,
            .reason = "pseudo-terminals open at once",
        },
    /* The workspace's way out of its own network namespace (workspace.c). Under systemd the unit's
     * Environment=HELIOS_OUTBOUND_NETWORK= carries it (a drop-in changes it); off, the workspace
     * keeps its loopback and nothing else. */
    [POLICY_SETTING_OUTBOUND_NETWORK] =
        {
            .key = "outbound_network",
            .type = POLICY_SETTING_BOOL,
            .value = POLICY_OUTBOUND_NETWORK_DEFAULT,
            .min = 0,
            .max = 1,
            .reason = "the network beyond the workspace's own loopback, through pasta",
        },
};

void policy_values_default(PolicyValues *ret)
{
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++)
                ret->v[i] = policy_settings[i].value;
}

void policy_values_bounds(const PolicyValues *values, PolicyBounds *ret)
{
        PolicyBounds b = policy_bounds;

        for (size_t i = 0; values && i < _POLICY_SETTING_MAX; i++)
                switch (policy_settings[i].bound) {
                case POLICY_BOUND_TMP_SIZE:
                        b.tmp_size = values->v[i];
                        break;
                case POLICY_BOUND_SHM_SIZE:
                        b.shm_size = values->v[i];
                        break;
                case POLICY_BOUND_PTYS:
                        b.ptys = (unsigned)values->v[i];
                        break;
                default:
                        break;
                }
        *ret = b;
}

static int parse_value(const PolicySetting *s, const char *text, uint64_t *ret)
{
        uint64_t v;
        int r;

        if (s->max == POLICY_INFINITY && (streq(text, "infinity") || streq(text, "max"))) {
                *ret = POLICY_INFINITY;
                return 0;
        }
        if (s->type == POLICY_SETTING_BOOL) {
                bool b;
                r = parse_bool(text, &b);
                if (r < 0)
                        return r;
                *ret = b;
                return 0;
        }
        if (s->type == POLICY_SETTING_SIZE)
                r = parse_size(text, s->min, s->max == POLICY_INFINITY ? UINT64_MAX - 1 : s->max, &v);
        else
                r = parse_uint(text, s->min, s->max == POLICY_INFINITY ? UINT64_MAX - 1 : s->max, &v);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

static int on_setting(const char *path, unsigned line, const char *key, const char *value, void *userdata)
{
        PolicyValues *values = userdata;

        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++) {
                const PolicySetting *s = &policy_settings[i];
                int r;

                if (!streq(key, s->key))
                        continue;
                r = parse_value(s, value, &values->v[i]);
                if (r < 0)
                        return log_error_errno(r, "%s:%u: invalid value '%s' for %s.", path, line, value,
                                               key);
                return 0;
        }
        log_error("%s:%u: unknown setting '%s'.", path, line, key);
        return -EINVAL;
}

/* Apply one file on top of values; a missing file changes nothing. */
static int load_file(const char *path, PolicyValues *values)
{
        _cleanup_close_ int fd = -1;
        struct stat st;
        FILE *f;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot stat %s: %m", path);
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 0022)) {
                log_error("%s must be a regular file of root's that nobody else may write.", path);
                return -EPERM;
        }
        f = fdopen(fd, "re");
        if (!f)
                return log_error_errno(errno, "Cannot read %s: %m", path);
        fd = -1;
        r = conf_file_parse_stream(f, path, on_setting, values);
        fclose(f);
        return r;
}

int policy_values_load(const char *dir, const char *user, PolicyValues *ret)
{
        _cleanup_free_ char *path = NULL;
        PolicyValues values;
        int r;

        policy_values_default(&values);
        if (asprintf(&path, "%s/sandbox.conf", dir) < 0)
                return -ENOMEM;
        r = load_file(path, &values);
        if (r < 0)
                return r;
        if (user) {
                /* A user name as the launcher accepts it: never a path of its own. */
                if (!*user || strchr(user, '/') || user[0] == '.')
                        return -EINVAL;
                free(path);
                if (asprintf(&path, "%s/sandbox.d/%s.conf", dir, user) < 0) {
                        path = NULL;
                        return -ENOMEM;
                }
                r = load_file(path, &values);
                if (r < 0)
                        return r;
        }
        *ret = values;
        return 0;
}

int policy_value_format(PolicySettingId id, uint64_t v, bool cgroup, char *buf, size_t size)
{
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {{"G", GIB}, {"M", 1024 * 1024}, {"K", 1024}};
        int n = -1;

        assert(id >= 0 && id < _POLICY_SETTING_MAX);

        if (policy_settings[id].type == POLICY_SETTING_BOOL)
                n = snprintf(buf, size, "%s", v ? "yes" : "no");
        else if (v == POLICY_INFINITY)
                n = snprintf(buf, size, "%s", cgroup ? "max" : "infinity");
        else if (!cgroup && policy_settings[id].type == POLICY_SETTING_SIZE)
                for (size_t i = 0; i < ELEMENTSOF(units) && n < 0; i++)
                        if (v % units[i].mult == 0)
                                n = snprintf(buf, size, "%llu%s", (unsigned long long)(v / units[i].mult),
                                             units[i].suffix);
        if (n < 0)
                n = snprintf(buf, size, "%llu", (unsigned long long)v);
        return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}
