/* SPDX-License-Identifier: MIT */
/* The sandbox of policy/ for a worker started by its own user (the gateway's single-user mode, no
 * privileges at all): as much of it as an unprivileged process can give itself.
 *
 * Always: no_new_privs and the seccomp filter of syscalls.c, the same as in every other mode (the
 * kernel surface, io_uring, the socket families, namespaces, keyrings, TIOCSTI).
 *
 * Where the machine allows unprivileged user namespaces: a user namespace that maps the user to
 * itself (files keep their owners; nobody becomes root), and inside it a mount namespace and an IPC
 * namespace of the worker's own. In the mount namespace: the other homes under the policy's home
 * directories disappear behind empty tmpfs with the user's own put back, Helios' runtime directory
 * too, /dev/pts is a devpts instance with the policy's max=, and /dev/shm a tmpfs with its size.
 *
 * Left out, on purpose or because an unprivileged process cannot: /tmp and /var/tmp stay the
 * machine's (the person's own workspaces and tools often live there; one user has no one to be
 * protected from), the system is not made read-only (the person owns it), /proc is the machine's
 * (a new one needs a PID namespace), and no cgroup bounds memory or tasks. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "policy.h"

#define MAX_HOME_DIRS 32

struct PolicyUserSandbox {
        char *home; /* canonical, or NULL: no home to put back (none, or one the policy covers) */
        const char *home_cover;
        char *home_dirs[MAX_HOME_DIRS]; /* below the cover down to the home, outermost first */
        size_t n_home_dirs;
        char uid_map[64], gid_map[64];
        char *shm_options, *devpts_options;
        struct sock_fprog filter;
};

static bool path_within(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

PolicyUserSandbox *policy_user_sandbox_free(PolicyUserSandbox *s)
{
        if (!s)
                return NULL;
        free(s->home);
        for (size_t i = 0; i < s->n_home_dirs; i++)
                free(s->home_dirs[i]);
        free(s->shm_options);
        free(s->devpts_options);
        free(s->filter.filter);
        free(s);
        return NULL;
}

int policy_user_sandbox_new(const char *home, PolicyUserSandbox **ret)
{
        PolicyUserSandbox *s;
        size_t best = 0;
        int r;

        s = calloc(1, sizeof(PolicyUserSandbox));
        if (!s)
                return -ENOMEM;
        (void)snprintf(s->uid_map, sizeof(s->uid_map), "%u %u 1\n", (unsigned)getuid(), (unsigned)getuid());
        (void)snprintf(s->gid_map, sizeof(s->gid_map), "%u %u 1\n", (unsigned)getgid(), (unsigned)getgid());
        s->shm_options = policy_tmpfs_options(&policy_bounds, "/dev/shm");
        /* No gid=: only the user's own group exists in the namespace. */
        s->devpts_options = policy_devpts_options(&policy_bounds, -1);
        if (!s->shm_options || !s->devpts_options) {
                policy_user_sandbox_free(s);
                return -ENOMEM;
        }

        /* The home goes back inside the policy's home directory that holds it; one elsewhere is not
         * covered at all here, so nothing needs putting back. */
        s->home = home ? realpath(home, NULL) : NULL;
        for (size_t i = 0; s->home && i < policy_n_filesystem; i++) {
                const PolicyFsRule *rule = &policy_filesystem[i];

                if (rule->kind == POLICY_FS_HOMES && path_within(s->home, rule->path) &&
                    !streq(s->home, rule->path) && strlen(rule->path) > best) {
                        best = strlen(rule->path);
                        s->home_cover = rule->path;
                }
        }
        for (const char *p = s->home_cover ? s->home + best + 1 : NULL; p; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                if (s->n_home_dirs >= MAX_HOME_DIRS) {
                        policy_user_sandbox_free(s);
                        return -E2BIG;
                }
                s->home_dirs[s->n_home_dirs] = strndup(s->home, (size_t)(p - s->home));
                if (!s->home_dirs[s->n_home_dirs++]) {
                        policy_user_sandbox_free(s);
                        return -ENOMEM;
                }
                if (*p == '\0')
                        break;
        }

        /* Under a service manager's own system-call filter that refuses seccomp() (a gateway unit's
         * @system-service), libseccomp cannot even build the filter, and the worker could not load it:
         * it inherits the process's own filter instead. The caller is told and says so. */
        r = policy_seccomp_export(&s->filter);
        if (r < 0)
                s->filter = (struct sock_fprog){};
        *ret = s;
        return r < 0 ? 0 : 1;
}

/* ---- After fork: system calls only. ---- */

static int tmpfs(const char *path, unsigned long flags, const char *options)
{
        if (mount("tmpfs", path, "tmpfs", flags, options) < 0)
                return negative_errno();
        return 0;
}

static int cover_homes(const PolicyUserSandbox *s, const char *path, int *home_fd)
{
        struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
        int r;

        r = tmpfs(path, MS_NOSUID | MS_NODEV | MS_NOEXEC, POLICY_TMPFS_EMPTY_OPTIONS);
        if (r < 0)
                return r;
        if (s->home_cover == path && *home_fd >= 0) {
                for (size_t i = 0; i < s->n_home_dirs; i++)
                        if (mkdir(s->home_dirs[i], 0755) < 0 && errno != EEXIST)
                                return negative_errno();
                r = move_mount(*home_fd, "", AT_FDCWD, s->home, MOVE_MOUNT_F_EMPTY_PATH);
                *home_fd = safe_close(*home_fd);
                if (r < 0)
                        return negative_errno();
        }
        return mount_setattr(AT_FDCWD, path, 0, &ro, sizeof(ro)) < 0 ? negative_errno() : 0;
}

static int enter_namespaces(const PolicyUserSandbox *s)
{
        int home_fd = -1, r = 0;

        if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) < 0)
                return negative_errno();
        r = write_string_file("/proc/self/setgroups", "deny", 0);
        if (r >= 0)
                r = write_string_file("/proc/self/uid_map", s->uid_map, 0);
        if (r >= 0)
                r = write_string_file("/proc/self/gid_map", s->gid_map, 0);
        if (r >= 0 && mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                r = negative_errno();
        if (r >= 0 && s->home_cover) {
                home_fd = open_tree(AT_FDCWD, s->home, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
                if (home_fd < 0)
                        r = negative_errno();
        }
        for (size_t i = 0; r >= 0 && i < policy_n_filesystem; i++) {
                const PolicyFsRule *rule = &policy_filesystem[i];
                struct stat st;

                if (lstat(rule->path, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue; /* nothing there to cover */
                switch (rule->kind) {
                case POLICY_FS_HOMES:
                        /* /run/user holds the person's own session (the desktop's sockets). */
                        if (!streq(rule->path, "/run/user"))
                                r = cover_homes(s, rule->path, &home_fd);
                        break;
                case POLICY_FS_HIDDEN:
                        r = tmpfs(rule->path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                  POLICY_TMPFS_EMPTY_OPTIONS);
                        break;
                case POLICY_FS_DEV:
                        /* Terminals from an instance with the policy's bound; /dev/ptmx follows it. */
                        if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, s->devpts_options) <
                                0 ||
                            mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL) < 0)
                                r = negative_errno();
                        else if (lstat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
                                r = tmpfs("/dev/shm", MS_NOSUID | MS_NODEV, s->shm_options);
                        break;
                default:
                        break;
                }
        }
        safe_close(home_fd);
        return r;
}

int policy_user_sandbox_enter(const PolicyUserSandbox *s, bool *ret_namespaces)
{
        int r;

        /* Without user namespaces (or as root, where they would change nothing for the better) the
         * filter still holds. A failure half-way through the mounts is an error: no half sandbox. */
        r = getuid() == 0 ? -EPERM : enter_namespaces(s);
        if (r < 0 && r != -EPERM && r != -EINVAL && r != -ENOSPC && r != -EUSERS)
                return r;
        if (ret_namespaces)
                *ret_namespaces = r >= 0;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        if (!s->filter.filter)
                return 0;
        return policy_seccomp_load_bpf(&s->filter);
}

int policy_user_sandbox_probe(void)
{
        int status;
        pid_t pid;

        if (getuid() == 0)
                return 0;
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0)
                _exit(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) < 0 ? errno : 0);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (!WIFEXITED(status))
                return -EIO;
        return WEXITSTATUS(status) == 0 ? 1 : -WEXITSTATUS(status);
}
