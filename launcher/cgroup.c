/* SPDX-License-Identifier: MIT */
#include "cgroup.h"

#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file-util.h"
#include "log.h"
#include "macro.h"

#define TREE_NAME       "helios"
#define SUPERVISOR_NAME "supervisor"

struct CgroupTree {
        char *path;                        /* .../helios */
        bool enabled[_POLICY_SETTING_MAX]; /* the setting's controller is on in the tree */
};

static void fclosep(FILE **f)
{
        if (*f)
                (void)fclose(*f);
}

static int read_line(const char *path, char **ret)
{
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        if (!f)
                return negative_errno();
        n = getline(&line, &cap, f);
        if (n < 0) {
                free(line);
                line = strdup("");
        } else if (n > 0 && line[n - 1] == '\n')
                line[n - 1] = '\0';
        if (!line)
                return -ENOMEM;
        *ret = TAKE_PTR(line);
        return 0;
}

/* The mount point of the cgroup2 hierarchy (its root mounted, not a subtree). */
static int find_mount(char **ret)
{
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/mountinfo", "re");
        _cleanup_free_ char *line = NULL, *found = NULL;
        size_t cap = 0;

        if (!f)
                return negative_errno();
        while (getline(&line, &cap, f) > 0) {
                char root[256], point[256], type[64];
                const char *dash = strstr(line, " - ");

                /* ID PARENT MAJ:MIN ROOT POINT OPTIONS [FIELDS...] - TYPE SOURCE OPTIONS; the paths
                 * of cgroup mounts need no unescaping. */
                if (!dash || sscanf(line, "%*s %*s %*s %255s %255s", root, point) != 2 ||
                    sscanf(dash + 3, "%63s", type) != 1)
                        continue;
                if (!streq(type, "cgroup2") || !streq(root, "/"))
                        continue;
                /* The usual place wins over another mount of the same hierarchy. */
                if (!found || streq(point, "/sys/fs/cgroup")) {
                        free(found);
                        found = strdup(point);
                        if (!found)
                                return -ENOMEM;
                }
        }
        if (!found)
                return -ENOENT;
        *ret = TAKE_PTR(found);
        return 0;
}

/* This process's cgroup in the v2 hierarchy, "/..." */
static int own_cgroup(char **ret)
{
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/cgroup", "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        if (!f)
                return negative_errno();
        while ((n = getline(&line, &cap, f)) > 0) {
                if (line[n - 1] == '\n')
                        line[n - 1] = '\0';
                if (strncmp(line, "0::", 3) == 0) {
                        char *p = strdup(line + 3);
                        if (!p)
                                return -ENOMEM;
                        *ret = p;
                        return 0;
                }
        }
        return -ENOENT;
}

/* Move the launcher and this process (the only ones allowed in dir) to dir/supervisor. */
static int take_over(const char *dir, char **ret_why)
{
        _cleanup_free_ char *procs = NULL, *sup = NULL, *sup_procs = NULL, *line = NULL;
        _cleanup_(fclosep) FILE *f = NULL;
        pid_t mine[2] = {getpid(), getppid()};
        pid_t pids[2];
        size_t n = 0, cap = 0;
        int r;

        if (asprintf(&procs, "%s/cgroup.procs", dir) < 0 || asprintf(&sup, "%s/" SUPERVISOR_NAME, dir) < 0 ||
            asprintf(&sup_procs, "%s/cgroup.procs", sup) < 0)
                return -ENOMEM;
        f = fopen(procs, "re");
        if (!f)
                return negative_errno();
        while (getline(&line, &cap, f) > 0) {
                pid_t p = (pid_t)strtol(line, NULL, 10);
                if (p != mine[0] && p != mine[1]) {
                        if (asprintf(ret_why, "%s holds processes other than Helios' own", dir) < 0)
                                *ret_why = NULL;
                        return -EBUSY;
                }
                if (n < ELEMENTSOF(pids))
                        pids[n++] = p;
        }
        if (mkdir(sup, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        for (size_t i = 0; i < n; i++) {
                char buf[24];
                (void)snprintf(buf, sizeof(buf), "%d", (int)pids[i]);
                r = write_string_file(sup_procs, buf, O_NOFOLLOW);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Turn on in dir's children those of the settings' controllers that dir has. */
static int enable_controllers(const char *dir, bool enabled[_POLICY_SETTING_MAX])
{
        _cleanup_free_ char *path = NULL, *available = NULL, *control = NULL;
        int r;

        if (asprintf(&path, "%s/cgroup.controllers", dir) < 0 ||
            asprintf(&control, "%s/cgroup.subtree_control", dir) < 0)
                return -ENOMEM;
        r = read_line(path, &available);
        if (r < 0)
                return r;
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++) {
                const char *c = policy_settings[i].controller;
                char word[32];
                bool have = false;

                if (!c || !enabled[i])
                        continue;
                for (char *p = available; *p;) {
                        size_t l = strcspn(p, " ");
                        if (l == strlen(c) && strncmp(p, c, l) == 0)
                                have = true;
                        p += l;
                        p += strspn(p, " ");
                }
                if (have) {
                        (void)snprintf(word, sizeof(word), "+%s", c);
                        r = write_string_file(control, word, O_NOFOLLOW);
                        if (r < 0)
                                have = false;
                }
                enabled[i] = have;
        }
        return 0;
}

int cgroup_tree_open(CgroupTree **ret, char **ret_why)
{
        _cleanup_free_ char *mount = NULL, *own = NULL, *dir = NULL, *type = NULL, *tree = NULL;
        bool enabled[_POLICY_SETTING_MAX];
        CgroupTree *t;
        char *why = NULL;
        int r;

        assert(ret && ret_why);

        *ret = NULL;
        *ret_why = NULL;
        r = find_mount(&mount);
        if (r == -ENOENT) {
                *ret_why = strdup("no cgroup v2 hierarchy is mounted");
                return 0;
        }
        if (r < 0)
                return r;
        r = own_cgroup(&own);
        if (r == -ENOENT) {
                *ret_why = strdup("this process is in no cgroup v2");
                return 0;
        }
        if (r < 0)
                return r;
        /* Started again after the first one moved there: the tree is where it was. */
        char *slash = strrchr(own, '/');
        bool moved = slash && slash != own && streq(slash + 1, SUPERVISOR_NAME);
        if (moved)
                *slash = '\0';
        if (asprintf(&dir, "%s%s", mount, streq(own, "/") ? "" : own) < 0 ||
            asprintf(&type, "%s/cgroup.type", dir) < 0)
                return -ENOMEM;
        /* The root of the hierarchy has no cgroup.type, and may hold processes beside its children. */
        if (!moved && access(type, F_OK) == 0) {
                r = take_over(dir, &why);
                if (r < 0) {
                        if (!why && asprintf(&why, "cannot move out of %s: %s", dir, strerror(-r)) < 0)
                                why = NULL;
                        *ret_why = why;
                        return 0;
                }
        }
        if (asprintf(&tree, "%s/" TREE_NAME, dir) < 0)
                return -ENOMEM;
        if (mkdir(tree, 0755) < 0 && errno != EEXIST) {
                r = negative_errno();
                if (asprintf(ret_why, "cannot create %s: %s", tree, strerror(-r)) < 0)
                        *ret_why = NULL;
                return 0;
        }
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++)
                enabled[i] = policy_settings[i].controller != NULL;
        r = enable_controllers(dir, enabled);
        if (r >= 0)
                r = enable_controllers(tree, enabled);
        if (r < 0)
                return r;

        t = calloc(1, sizeof(CgroupTree));
        if (!t)
                return -ENOMEM;
        t->path = TAKE_PTR(tree);
        memcpy(t->enabled, enabled, sizeof(enabled));

        /* Say which bounds cannot be had. */
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++) {
                const PolicySetting *s = &policy_settings[i];
                char *w;
                if (!s->controller || t->enabled[i])
                        continue;
                if (asprintf(&w, "%s%s%s (%s)", why ? why : "", why ? ", " : "", s->controller, s->key) <
                    0) {
                        free(why);
                        cgroup_tree_free(t);
                        return -ENOMEM;
                }
                free(why);
                why = w;
        }
        if (why) {
                char *w;
                if (asprintf(&w, "the cgroup v2 controllers %s are not available in %s", why, dir) < 0)
                        w = NULL;
                free(why);
                why = w;
        }
        *ret_why = why;
        *ret = t;
        return 0;
}

CgroupTree *cgroup_tree_free(CgroupTree *t)
{
        if (!t)
                return NULL;
        free(t->path);
        free(t);
        return NULL;
}

const char *cgroup_tree_path(const CgroupTree *t)
{
        return t->path;
}

/* Everything in dir killed: cgroup.kill, or where the kernel has none, SIGKILL to each member until
 * none is left. */
static void kill_all(const char *dir)
{
        _cleanup_free_ char *kill_path = NULL, *procs = NULL;

        if (asprintf(&kill_path, "%s/cgroup.kill", dir) < 0 || asprintf(&procs, "%s/cgroup.procs", dir) < 0)
                return;
        if (write_string_file(kill_path, "1", O_NOFOLLOW) != -ENOENT)
                return;
        for (unsigned round = 0; round < 16; round++) {
                _cleanup_(fclosep) FILE *f = fopen(procs, "re");
                _cleanup_free_ char *line = NULL;
                size_t cap = 0;
                bool any = false;

                while (f && getline(&line, &cap, f) > 0) {
                        (void)kill((pid_t)strtol(line, NULL, 10), SIGKILL);
                        any = true;
                }
                if (!any)
                        return;
        }
}

int cgroup_worker_prepare(CgroupTree *t, const char *name, const PolicyValues *values, char **ret_procs)
{
        _cleanup_free_ char *dir = NULL, *procs = NULL;
        int r;

        assert(t && name && values && ret_procs);

        if (asprintf(&dir, "%s/%s", t->path, name) < 0 || asprintf(&procs, "%s/cgroup.procs", dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0) {
                if (errno != EEXIST)
                        return negative_errno();
                /* Left from an earlier worker: nothing of it may share the new one's bounds. */
                kill_all(dir);
        }
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++) {
                _cleanup_free_ char *file = NULL;
                char v[32];

                if (!t->enabled[i] || !policy_settings[i].cgroup_file)
                        continue;
                r = policy_value_format((PolicySettingId)i, values->v[i], true, v, sizeof(v));
                if (r < 0)
                        return r;
                if (asprintf(&file, "%s/%s", dir, policy_settings[i].cgroup_file) < 0)
                        return -ENOMEM;
                r = write_string_file(file, v, O_NOFOLLOW);
                if (r < 0)
                        return r;
        }
        *ret_procs = TAKE_PTR(procs);
        return 0;
}

void cgroup_worker_kill(CgroupTree *t, const char *name)
{
        _cleanup_free_ char *dir = NULL;
        struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};

        if (!t || asprintf(&dir, "%s/%s", t->path, name) < 0)
                return;
        kill_all(dir);
        /* The killed exit in a moment; a cgroup with members cannot be removed. One still busy after
         * 100 ms stays, and is emptied again before the user's next worker joins it. */
        for (unsigned i = 0; i < 20; i++) {
                if (rmdir(dir) == 0 || errno == ENOENT)
                        return;
                if (errno != EBUSY)
                        break;
                (void)nanosleep(&pause, NULL);
        }
        log_debug_errno(errno, "Cannot remove %s yet: %m", dir);
}

int cgroup_join(const char *procs_path)
{
        int fd = open(procs_path, O_WRONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = write(fd, "0", 1);
        if (n != 1) {
                int r = n < 0 ? negative_errno() : -EIO;
                (void)close(fd);
                return r;
        }
        (void)close(fd);
        return 0;
}
