/* SPDX-License-Identifier: MIT */
/* Entering the sandbox of policy/ in embedded mode: the file system of policy/filesystem.c in a new
 * mount namespace, then the privilege drop, the limits of policy/limits.c and the filter of
 * policy/syscalls.c.
 *
 * The work is split so that the child of fork() does no more than system calls: everything that
 * allocates, reads a file or asks NSS (the account, its groups, the home directory, the BPF program,
 * every path and mount option) is prepared in sandbox_plan_new(), in the launcher, before fork. */
#include "sandbox.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "policy.h"

/* Room for the descriptors of policy_devices[] and of the writable roots in the child, which cannot
 * allocate. */
#define MAX_DEVICES  16
#define MAX_WRITABLE 16

#define TUN_PATH "/dev/net/tun"

/* One rule of policy_filesystem[] as it applies on this machine, with its path made absolute and
 * checked at plan time. */
typedef struct PlanRule {
        const char *path;
        PolicyFsKind kind;
        char *options; /* mount options of a private temporary directory, with its bounds */
} PlanRule;

struct SandboxPlan {
        char *user;
        uid_t uid;
        gid_t gid;
        gid_t *groups;
        size_t n_groups;
        char *home; /* canonical */

        PlanRule *rules;
        size_t n_rules;
        char **hide; /* extra directories hidden like POLICY_RUNTIME_DIR, canonical */
        size_t n_hide;
        char **writable; /* workspace roots outside the home, canonical */
        size_t n_writable;

        /* The HOMES rule whose tmpfs covers the home, and the directories to create inside that tmpfs,
         * outermost first, the home itself last. A home outside every HOMES rule of the policy
         * (/srv/students/alice) gets a rule of its own for the directory holding it, home_root, so
         * that the homes next to it (/srv/students/bob) disappear like those under /home. */
        char *home_root;
        const char *home_cover;
        char **home_dirs;
        size_t n_home_dirs;

        char **device_paths; /* "/dev/null", ... */
        char *devpts_options;
        char *shm_options;
        /* pasta, the workspace's network stack, runs in this view and needs the tun device; the
         * workspace's own view hides it again (policy/workspace.c). */
        bool outbound_network;
        bool tun;
        bool pass_credentials;
        struct sock_fprog filter;

        /* The bounds of the private tmpfs and devpts, with the user's settings. */
        PolicyBounds bounds;
        /* The rlimits among the user's settings, after policy_limits[]. */
        struct {
                int resource;
                rlim_t value;
        } rlimits[_POLICY_SETTING_MAX];
        size_t n_rlimits;
};

static void strv_freep(char ***v, size_t *n)
{
        for (size_t i = 0; i < *n; i++)
                free((*v)[i]);
        free(*v);
        *v = NULL;
        *n = 0;
}

SandboxPlan *sandbox_plan_free(SandboxPlan *plan)
{
        if (!plan)
                return NULL;
        free(plan->user);
        free(plan->groups);
        free(plan->home);
        free(plan->home_root);
        for (size_t i = 0; i < plan->n_rules; i++)
                free(plan->rules[i].options);
        free(plan->rules);
        strv_freep(&plan->hide, &plan->n_hide);
        strv_freep(&plan->writable, &plan->n_writable);
        strv_freep(&plan->home_dirs, &plan->n_home_dirs);
        if (plan->device_paths)
                strv_freep(&plan->device_paths, &(size_t){policy_n_devices});
        free(plan->devpts_options);
        free(plan->shm_options);
        free(plan->filter.filter);
        free(plan);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(SandboxPlan *, sandbox_plan_free);

uid_t sandbox_plan_uid(const SandboxPlan *plan)
{
        return plan->uid;
}

gid_t sandbox_plan_gid(const SandboxPlan *plan)
{
        return plan->gid;
}

const char *sandbox_plan_home(const SandboxPlan *plan)
{
        return plan->home;
}

/* path equals dir or lies below it. */
static bool path_within(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        if (streq(dir, "/"))
                return true;
        return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int push(char ***v, size_t *n, char *s)
{
        char **a;

        if (!s)
                return -ENOMEM;
        a = realloc(*v, (*n + 1) * sizeof(char *));
        if (!a) {
                free(s);
                return -ENOMEM;
        }
        a[(*n)++] = s;
        *v = a;
        return 0;
}

static int resolve_account(SandboxPlan *plan, const char *user)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *found = NULL;
        size_t size = 1024;
        int ngroups = 64, r;

        for (;;) {
                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getpwnam_r(user, &pw, buf, size, &found);
                if (r != ERANGE)
                        break;
                if (size > 1024 * 1024)
                        return -E2BIG;
                size *= 2;
        }
        if (r != 0)
                return -r;
        if (!found)
                return -ESRCH;
        /* The sandbox is for ordinary accounts: a worker as root would keep every power the policy
         * takes away. */
        if (pw.pw_uid == 0 || pw.pw_gid == 0)
                return -EPERM;
        if (!pw.pw_dir || pw.pw_dir[0] != '/')
                return -ENOENT;

        plan->uid = pw.pw_uid;
        plan->gid = pw.pw_gid;
        plan->home = realpath(pw.pw_dir, NULL);
        if (!plan->home)
                return negative_errno();

        for (;;) {
                int n = ngroups;
                gid_t *g = realloc(plan->groups, n * sizeof(gid_t));

                if (!g)
                        return -ENOMEM;
                plan->groups = g;
                if (getgrouplist(user, pw.pw_gid, g, &n) >= 0) {
                        plan->n_groups = (size_t)n;
                        break;
                }
                if (n <= ngroups || n > 65536)
                        return -E2BIG;
                ngroups = n;
        }
        return 0;
}

/* Which paths of the policy exist here, and where the home goes. A home that would expose what the
 * policy hides (/, /home itself, anything under /tmp, /dev, /proc or a hidden directory) is refused
 * rather than half-applied. */
static int lay_out_file_system(SandboxPlan *plan)
{
        struct stat st;
        size_t best = 0;

        if (stat(plan->home, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (streq(plan->home, "/"))
                return -EINVAL;

        plan->rules = calloc(policy_n_filesystem + 1, sizeof(PlanRule));
        if (!plan->rules)
                return -ENOMEM;
        for (size_t i = 0; i < policy_n_filesystem; i++) {
                const PolicyFsRule *rule = &policy_filesystem[i];

                if (rule->kind != POLICY_FS_READ_ONLY && path_within(rule->path, plan->home))
                        return -EINVAL;
                if (lstat(rule->path, &st) < 0) {
                        if (errno == ENOENT && rule->optional)
                                continue;
                        return negative_errno();
                }
                /* A mount over a symlink would land wherever it points. */
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
                switch (rule->kind) {
                case POLICY_FS_HOMES:
                        if (path_within(plan->home, rule->path) && strlen(rule->path) > best) {
                                best = strlen(rule->path);
                                plan->home_cover = rule->path;
                        }
                        break;
                case POLICY_FS_HIDDEN:
                case POLICY_FS_PRIVATE_TMP:
                case POLICY_FS_DEV:
                case POLICY_FS_PROC:
                        if (path_within(plan->home, rule->path))
                                return -EINVAL;
                        break;
                default:
                        break;
                }
                PlanRule *p = &plan->rules[plan->n_rules++];
                *p = (PlanRule){.path = rule->path, .kind = rule->kind};
                if (rule->kind == POLICY_FS_PRIVATE_TMP) {
                        p->options = policy_tmpfs_options(&plan->bounds, rule->path);
                        if (!p->options)
                                return -ENOMEM;
                }
        }

        if (!plan->home_cover) {
                _cleanup_free_ char *root = strdup(plan->home);
                char *slash;

                if (!root)
                        return -ENOMEM;
                slash = strrchr(root, '/');
                if (!slash || slash == root)
                        return -EINVAL; /* /alice: the root directory holds no homes to cover */
                *slash = '\0';
                /* A directory that holds what the policy covers besides (/var holds /var/tmp) would
                 * take that with it. */
                for (size_t i = 0; i < plan->n_rules; i++)
                        if (plan->rules[i].kind != POLICY_FS_READ_ONLY &&
                            path_within(plan->rules[i].path, root))
                                return -EINVAL;
                plan->home_root = TAKE_PTR(root);
                plan->home_cover = plan->home_root;
                best = strlen(plan->home_root);
                plan->rules[plan->n_rules++] = (PlanRule){.path = plan->home_root, .kind = POLICY_FS_HOMES};
        }

        {
                /* Every directory from below the cover down to the home: "/home/a", "/home/a/b". */
                for (const char *p = plan->home + best + 1;; p++) {
                        if (*p != '/' && *p != '\0')
                                continue;
                        int r =
                            push(&plan->home_dirs, &plan->n_home_dirs, strndup(plan->home, p - plan->home));
                        if (r < 0)
                                return r;
                        if (*p == '\0')
                                break;
                }
        }
        return 0;
}

/* Rules that leave nothing of what was below them in sight. */
static bool covers_everything_below(PolicyFsKind kind)
{
        return kind == POLICY_FS_HOMES || kind == POLICY_FS_HIDDEN || kind == POLICY_FS_PRIVATE_TMP;
}

static int add_hidden(SandboxPlan *plan, const char *dir)
{
        _cleanup_free_ char *p = NULL;
        struct stat st;

        if (!dir || dir[0] != '/')
                return -EINVAL;
        p = realpath(dir, NULL);
        if (!p) {
                /* Nothing there now, nothing to hide. */
                if (errno == ENOENT)
                        return 0;
                return negative_errno();
        }
        if (stat(p, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* Hiding / or the home (or a directory holding it) would leave no sandbox worth entering. */
        if (streq(p, "/") || path_within(plan->home, p))
                return -EINVAL;
        /* Below another home, /tmp or a hidden directory it is out of sight already, and there would
         * be nothing to mount on inside. */
        if (!path_within(p, plan->home))
                for (size_t i = 0; i < plan->n_rules; i++)
                        if (covers_everything_below(plan->rules[i].kind) &&
                            path_within(p, plan->rules[i].path))
                                return 0;
        for (size_t i = 0; i < plan->n_hide; i++)
                if (path_within(p, plan->hide[i]))
                        return 0;
        return push(&plan->hide, &plan->n_hide, TAKE_PTR(p));
}

/* A workspace root outside the home: it comes back read-write over its own path, like a home outside
 * /home. Only the user's own directories, and none below what the policy covers: a root inside
 * another user's home would bring that home back into view. */
static int add_writable(SandboxPlan *plan, const char *dir)
{
        _cleanup_free_ char *p = NULL;
        struct stat st;

        if (!dir || dir[0] != '/')
                return -EINVAL;
        p = realpath(dir, NULL);
        if (!p)
                return negative_errno();
        if (stat(p, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (st.st_uid != plan->uid)
                return -EPERM;
        if (path_within(p, plan->home))
                return 0; /* writable already */
        if (streq(p, "/") || path_within(plan->home, p))
                return -EINVAL;
        for (size_t i = 0; i < plan->n_rules; i++)
                if (plan->rules[i].kind != POLICY_FS_READ_ONLY &&
                    (path_within(p, plan->rules[i].path) || path_within(plan->rules[i].path, p)))
                        return -EINVAL;
        for (size_t i = 0; i < plan->n_hide; i++)
                if (path_within(p, plan->hide[i]) || path_within(plan->hide[i], p))
                        return -EINVAL;
        if (plan->n_writable >= MAX_WRITABLE)
                return -E2BIG;
        return push(&plan->writable, &plan->n_writable, TAKE_PTR(p));
}

int sandbox_plan_new(const SandboxParams *p, SandboxPlan **ret)
{
        _cleanup_(sandbox_plan_freep) SandboxPlan *plan = NULL;
        struct group gr, *tty = NULL;
        char grbuf[4096];
        int r;

        assert(p);
        assert(p->user);
        assert(ret);

        plan = calloc(1, sizeof(SandboxPlan));
        if (!plan)
                return -ENOMEM;
        plan->user = strdup(p->user);
        if (!plan->user)
                return -ENOMEM;
        policy_values_bounds(p->values, &plan->bounds);
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++)
                if (policy_settings[i].rlimit != 0) {
                        uint64_t v = p->values ? p->values->v[i] : policy_settings[i].value;
                        plan->rlimits[plan->n_rlimits].resource = policy_settings[i].rlimit;
                        plan->rlimits[plan->n_rlimits++].value =
                            v == POLICY_INFINITY ? RLIM_INFINITY : (rlim_t)v;
                }

        r = resolve_account(plan, p->user);
        if (r < 0)
                return r;
        r = lay_out_file_system(plan);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_hide; i++) {
                r = add_hidden(plan, p->hide[i]);
                if (r < 0)
                        return r;
        }
        /* After the hidden directories: a writable root may not lie in one. */
        for (size_t i = 0; i < p->n_writable; i++) {
                r = add_writable(plan, p->writable[i]);
                if (r < 0)
                        return r;
        }

        if (policy_n_devices > MAX_DEVICES)
                return -E2BIG;
        plan->device_paths = calloc(policy_n_devices, sizeof(char *));
        if (!plan->device_paths)
                return -ENOMEM;
        for (size_t i = 0; i < policy_n_devices; i++)
                if (asprintf(&plan->device_paths[i], "/dev/%s", policy_devices[i]) < 0) {
                        plan->device_paths[i] = NULL;
                        return -ENOMEM;
                }

        /* Terminals belong to the tty group, as on the host, when there is one. */
        bool have_tty = getgrnam_r("tty", &gr, grbuf, sizeof(grbuf), &tty) == 0 && tty;
        plan->devpts_options = policy_devpts_options(&plan->bounds, have_tty ? (int)tty->gr_gid : -1);
        plan->shm_options = policy_tmpfs_options(&plan->bounds, "/dev/shm");
        if (!plan->devpts_options || !plan->shm_options)
                return -ENOMEM;

        plan->outbound_network = p->outbound_network;
        plan->pass_credentials = p->pass_credentials;
        if (plan->outbound_network) {
                struct stat st;
                plan->tun = stat(TUN_PATH, &st) >= 0 && S_ISCHR(st.st_mode);
        }

        r = policy_seccomp_export(&plan->filter);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(plan);
        return 0;
}

/* ---- After fork: system calls only. ---- */

static int clone_tree(const char *path, unsigned extra, int *ret_fd)
{
        int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | extra);

        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

/* Attach a detached tree made by clone_tree() at path, and close its descriptor. */
static int attach_tree(int *fd, const char *path)
{
        int r = move_mount(*fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH);

        *fd = safe_close(*fd);
        return r < 0 ? negative_errno() : 0;
}

static int set_read_only(const char *path, unsigned extra_attrs, bool recursive)
{
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | extra_attrs};

        if (mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof(attr)) < 0)
                return negative_errno();
        return 0;
}

static int mount_tmpfs(const char *path, unsigned long flags, const char *options)
{
        if (mount("tmpfs", path, "tmpfs", flags, options) < 0)
                return negative_errno();
        return 0;
}

static int make_dir(const char *path, mode_t mode)
{
        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* An empty tmpfs over the homes, the user's own home (cloned before anything was covered) mounted
 * back at its place, then the tmpfs made read-only: only the home below it stays writable. */
static int cover_homes(const SandboxPlan *plan, const char *path, int *home_fd)
{
        int r;

        r = mount_tmpfs(path, MS_NOSUID | MS_NODEV | MS_NOEXEC, POLICY_TMPFS_EMPTY_OPTIONS);
        if (r < 0)
                return r;
        if (plan->home_cover == path) {
                for (size_t i = 0; i < plan->n_home_dirs; i++) {
                        r = make_dir(plan->home_dirs[i], 0755);
                        if (r < 0)
                                return r;
                }
                r = attach_tree(home_fd, plan->home);
                if (r < 0)
                        return r;
        }
        return set_read_only(path, 0, false);
}

static int hide(const char *path)
{
        return mount_tmpfs(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, POLICY_TMPFS_EMPTY_OPTIONS);
}

static int make_dev(const SandboxPlan *plan, int *device_fds, int *tun_fd)
{
        static const struct {
                const char *target, *path;
        } links[] = {
            {"pts/ptmx", "/dev/ptmx"},          {"/proc/self/fd", "/dev/fd"},
            {"/proc/self/fd/0", "/dev/stdin"},  {"/proc/self/fd/1", "/dev/stdout"},
            {"/proc/self/fd/2", "/dev/stderr"},
        };
        int r;

        r = mount_tmpfs("/dev", MS_NOSUID | MS_NOEXEC, POLICY_TMPFS_DEV_OPTIONS);
        if (r < 0)
                return r;
        for (size_t i = 0; i < policy_n_devices; i++) {
                int fd =
                    open(plan->device_paths[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0)
                        return negative_errno();
                (void)close(fd);
                r = attach_tree(&device_fds[i], plan->device_paths[i]);
                if (r < 0)
                        return r;
        }
        if (*tun_fd >= 0) {
                int fd;

                r = make_dir("/dev/net", 0755);
                if (r < 0)
                        return r;
                fd = open(TUN_PATH, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0)
                        return negative_errno();
                (void)close(fd);
                r = attach_tree(tun_fd, TUN_PATH);
                if (r < 0)
                        return r;
        }

        /* A devpts instance of our own: the terminals of the sandbox, and no others. */
        r = make_dir("/dev/pts", 0755);
        if (r < 0)
                return r;
        if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, plan->devpts_options) < 0)
                return negative_errno();
        r = make_dir("/dev/shm", 01777);
        if (r < 0)
                return r;
        r = mount_tmpfs("/dev/shm", MS_NOSUID | MS_NODEV, plan->shm_options);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                if (symlink(links[i].target, links[i].path) < 0)
                        return negative_errno();

        return set_read_only("/dev", 0, false);
}

static int enter_file_system(const SandboxPlan *plan)
{
        int home_fd = -1, tun_fd = -1, device_fds[MAX_DEVICES], writable_fds[MAX_WRITABLE];
        int r;

        for (size_t i = 0; i < ELEMENTSOF(device_fds); i++)
                device_fds[i] = -1;
        for (size_t i = 0; i < ELEMENTSOF(writable_fds); i++)
                writable_fds[i] = -1;

        /* The namespaces of policy/namespaces.c, the mount namespace among them. Slave, as systemd
         * does for a unit: nothing mounted here leaks out, and the host can still
         * unmount a file system the sandbox would otherwise pin. A mount the host makes later shows up
         * inside as the host made it; under the covering tmpfs mounts of the homes and hidden
         * directories it stays out of sight. */
        int flags = 0;
        for (size_t i = 0; i < policy_n_namespaces; i++)
                flags |= policy_namespaces[i].flag;
        if (unshare(flags) < 0)
                return negative_errno();
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return negative_errno();

        /* Take what will be covered before covering it: the home, the writable roots and the device
         * nodes. Detached trees are untouched by the read-only pass below. */
        r = clone_tree(plan->home, AT_RECURSIVE, &home_fd);
        for (size_t i = 0; r >= 0 && i < plan->n_writable; i++)
                r = clone_tree(plan->writable[i], AT_RECURSIVE, &writable_fds[i]);
        for (size_t i = 0; r >= 0 && i < policy_n_devices; i++)
                r = clone_tree(plan->device_paths[i], 0, &device_fds[i]);
        if (r >= 0 && plan->tun)
                r = clone_tree(TUN_PATH, 0, &tun_fd);

        for (size_t i = 0; r >= 0 && i < plan->n_rules; i++) {
                const PlanRule *rule = &plan->rules[i];

                switch (rule->kind) {
                case POLICY_FS_READ_ONLY:
                        /* nosuid is redundant next to no_new_privs; it costs nothing and holds even
                         * for a process that somehow lost no_new_privs. */
                        r = set_read_only(rule->path, MOUNT_ATTR_NOSUID, true);
                        break;
                case POLICY_FS_HOMES:
                        r = cover_homes(plan, rule->path, &home_fd);
                        break;
                case POLICY_FS_HIDDEN:
                        r = hide(rule->path);
                        break;
                case POLICY_FS_PRIVATE_TMP:
                        r = mount_tmpfs(rule->path, MS_NOSUID | MS_NODEV, rule->options);
                        break;
                case POLICY_FS_DEV:
                        r = make_dev(plan, device_fds, &tun_fd);
                        break;
                case POLICY_FS_PROC:
                        /* A new instance: hidepid is per instance, and the host's /proc stays as it
                         * is for everyone else. */
                        if (mount("proc", rule->path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                  POLICY_PROC_OPTIONS) < 0)
                                r = negative_errno();
                        break;
                default:
                        r = -EINVAL;
                }
        }
        for (size_t i = 0; r >= 0 && i < plan->n_hide; i++)
                r = hide(plan->hide[i]);
        /* The writable roots come back over their own, now read-only, paths. */
        for (size_t i = 0; r >= 0 && i < plan->n_writable; i++)
                r = attach_tree(&writable_fds[i], plan->writable[i]);

        safe_close(home_fd);
        safe_close(tun_fd);
        for (size_t i = 0; i < ELEMENTSOF(writable_fds); i++)
                safe_close(writable_fds[i]);
        for (size_t i = 0; i < ELEMENTSOF(device_fds); i++)
                safe_close(device_fds[i]);
        return r;
}

static int drop_bounding_set(void)
{
        for (unsigned long cap = 0; cap < 64; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL) /* past the last capability this kernel knows */
                                return 0;
                        return negative_errno();
                }
        return 0;
}

static int verify_identity(const SandboxPlan *plan)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;

        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return negative_errno();
        if (ruid != plan->uid || euid != plan->uid || suid != plan->uid || rgid != plan->gid ||
            egid != plan->gid || sgid != plan->gid)
                return -EPERM;
        if (getgroups(0, NULL) != (int)plan->n_groups)
                return -EPERM;
        /* The way back must be closed: a process that can become root again was never dropped. */
        if (setuid(0) == 0 || setgid(0) == 0)
                return -EPERM;
        if (syscall(SYS_capget, &h, d) < 0)
                return negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(d); i++)
                if (d[i].effective || d[i].permitted || d[i].inheritable)
                        return -EPERM;
        return 0;
}

static int apply_limit(int resource, rlim_t v)
{
        struct rlimit rl;

        if (getrlimit(resource, &rl) < 0)
                return negative_errno();
        if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max)
                v = rl.rlim_max;
        rl = (struct rlimit){.rlim_cur = v, .rlim_max = v};
        if (setrlimit(resource, &rl) < 0)
                return negative_errno();
        return 0;
}

static int apply_limits(const SandboxPlan *plan)
{
        int r;

        for (size_t i = 0; i < policy_n_limits; i++) {
                r = apply_limit(policy_limits[i].resource, policy_limits[i].value);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < plan->n_rlimits; i++) {
                r = apply_limit(plan->rlimits[i].resource, plan->rlimits[i].value);
                if (r < 0)
                        return r;
        }
        return 0;
}

int sandbox_enter(const SandboxPlan *plan)
{
        int r, answerer;

        assert(plan);

        r = enter_file_system(plan);
        if (r < 0)
                return r;

        /* The privilege drop, in the only order that works: groups and the bounding set while still
         * root, then gid, then uid, which takes every capability with it. */
        if (setgroups(plan->n_groups, plan->groups) < 0)
                return negative_errno();
        r = drop_bounding_set();
        if (r < 0)
                return r;
        if (setresgid(plan->gid, plan->gid, plan->gid) < 0)
                return negative_errno();
        if (setresuid(plan->uid, plan->uid, plan->uid) < 0)
                return negative_errno();
        r = verify_identity(plan);
        if (r < 0)
                return r;

        /* From here on no exec can raise privileges, which also lets an unprivileged process load a
         * seccomp filter. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        r = apply_limits(plan);
        if (r < 0)
                return r;
        /* The workspace's own network and processes. The namespace calls must come before the filter,
         * which refuses them; from here on this runs in the workspace, and the process that entered
         * stays outside as its supervisor. */
        r = policy_workspace_enter(plan->outbound_network, &answerer);
        if (r < 0)
                return r;
        if (plan->pass_credentials && answerer != POLICY_CREDENTIALS_FD) {
                if (dup2(answerer, POLICY_CREDENTIALS_FD) < 0)
                        return negative_errno();
                safe_close(answerer);
        } else if (plan->pass_credentials) {
                if (fcntl(answerer, F_SETFD, 0) < 0)
                        return negative_errno();
        } else
                safe_close(answerer);
        r = policy_seccomp_load_bpf(&plan->filter);
        if (r < 0)
                return r;

        if (chdir(plan->home) < 0)
                return negative_errno();
        return 0;
}
