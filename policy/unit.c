/* SPDX-License-Identifier: MIT */
/* The sandbox directives of helios-worker@.service, written from the policy's tables at build time,
 * so that the unit and embedded mode cannot drift apart.
 *
 * Most rules have a directive of their own. Two kinds have none: clone() with namespace flags is
 * covered by RestrictNamespaces=, and the ioctl rules (TIOCSTI, TIOCLINUX) only by the filter the
 * worker loads itself when the unit starts it with --seccomp. A few directives systemd offers and the
 * policy gets by other means in embedded mode are listed at the end, each with the reason. */
#include <assert.h>
#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "policy.h"

/* ProtectHome=tmpfs covers exactly these; any other home-like path gets a TemporaryFileSystem=. */
static bool protect_home_covers(const char *path)
{
        return streq(path, "/home") || streq(path, "/root") || streq(path, "/run/user");
}

/* A private temporary directory as a tmpfs with the policy's bounds. PrivateTmp= cannot say how large
 * (systemd 252 has no size for it, and its directories live on the host's /tmp, often a disk), and
 * PrivateDevices= binds the host's /dev/shm: a tmpfs of the unit's own over each is what bounds them. */
static int write_tmpfs(FILE *f, const char *path)
{
        _cleanup_free_ char *options = policy_tmpfs_options(&policy_bounds, path);

        if (!options)
                return -ENOMEM;
        fprintf(f, "TemporaryFileSystem=%s:%s,nosuid,nodev\n", path, options);
        return 0;
}

/* PrivateDevices= binds the host's devpts: every workspace's terminals would come from the machine's
 * one pool, with nothing bounding how many one takes, and no directive mounts a devpts. Each workspace
 * therefore gets an instance of its own with the policy's max=, mounted on the host by
 * helios-worker-pts@.service (policy_write_pts_unit()), which the sandbox binds over /dev/pts, with its
 * ptmx over /dev/ptmx. The home drop-in sets BindPaths= anew and so repeats these lines. */
static void write_devpts_binds(FILE *f)
{
        fputs("BindPaths=" POLICY_UNIT_PTS_DIR "/%i:/dev/pts\n"
              "BindPaths=" POLICY_UNIT_PTS_DIR "/%i/ptmx:/dev/ptmx\n",
              f);
}

int policy_write_pts_unit(FILE *f)
{
        _cleanup_free_ char *options = policy_devpts_options(&policy_bounds, -1);

        if (!options)
                return -ENOMEM;
        fprintf(
            f,
            "# Generated from policy/ by helios-policy --pts-unit: change policy/, not this file.\n"
            "# The terminals of the workspace of %%I: a devpts instance of its own with the policy's\n"
            "# max=, mounted on the host for helios-worker@%%i.service to bind over its /dev/pts, and\n"
            "# unmounted when that stops. No sandboxing that makes a mount namespace: the mount must be\n"
            "# the host's.\n"
            "[Unit]\n"
            "Description=Helios terminals of %%I\n"
            "Documentation=man:helios-worker(8)\n"
            "DefaultDependencies=no\n"
            "StopWhenUnneeded=yes\n"
            "Conflicts=shutdown.target\n"
            "Before=shutdown.target\n"
            "\n"
            "[Service]\n"
            "Type=oneshot\n"
            "RemainAfterExit=yes\n"
            "ExecStart=/bin/mkdir -p " POLICY_UNIT_PTS_DIR "/%%i\n"
            "ExecStart=/bin/mount -t devpts -o %s helios-pts " POLICY_UNIT_PTS_DIR "/%%i\n"
            "ExecStop=-/bin/umount " POLICY_UNIT_PTS_DIR "/%%i\n"
            "ExecStopPost=-/bin/rmdir " POLICY_UNIT_PTS_DIR "/%%i\n"
            "CapabilityBoundingSet=CAP_SYS_ADMIN\n"
            "NoNewPrivileges=yes\n"
            "SystemCallArchitectures=native\n"
            "RestrictAddressFamilies=AF_UNIX\n"
            "IPAddressDeny=any\n"
            "LockPersonality=yes\n"
            "RestrictRealtime=yes\n"
            "RestrictSUIDSGID=yes\n"
            "MemoryDenyWriteExecute=yes\n",
            options);
        return ferror(f) ? -EIO : 0;
}

static int write_filesystem(FILE *f)
{
        bool homes = false;
        int k;

        fputs("# policy/filesystem.c: the system read-only, other homes and Helios' runtime directory\n"
              "# invisible, private /tmp and /var/tmp, a minimal /dev, a /proc of the user's processes.\n",
              f);
        for (size_t i = 0; i < policy_n_filesystem; i++) {
                const PolicyFsRule *r = &policy_filesystem[i];

                switch (r->kind) {
                case POLICY_FS_READ_ONLY:
                        /* embedded mode makes the whole tree read-only, /proc/sys, /sys and the
                         * cgroup tree included, and leaves no kernel log device in /dev */
                        fputs("ProtectSystem=strict\n"
                              "ProtectKernelTunables=yes\n"
                              "ProtectControlGroups=yes\n"
                              "ProtectKernelLogs=yes\n"
                              "ProtectKernelModules=yes\n",
                              f);
                        break;
                case POLICY_FS_HOMES:
                        if (!protect_home_covers(r->path))
                                fprintf(f, "TemporaryFileSystem=%s:ro\n", r->path);
                        else if (!homes) {
                                fputs("ProtectHome=tmpfs\n"
                                      "# The home: helios-launcher writes a drop-in with the account's own "
                                      "from the\n"
                                      "# password database before it starts the unit (helios-policy "
                                      "--home-dropin);\n"
                                      "# these lines serve a unit started by hand for a home under /home.\n"
                                      "BindPaths=-/home/%I\n"
                                      "ReadWritePaths=-/home/%I\n",
                                      f);
                                homes = true;
                        }
                        break;
                case POLICY_FS_HIDDEN:
                        fprintf(f, "InaccessiblePaths=%s%s\n", r->optional ? "-" : "", r->path);
                        break;
                case POLICY_FS_PRIVATE_TMP:
                        k = write_tmpfs(f, r->path);
                        if (k < 0)
                                return k;
                        break;
                case POLICY_FS_DEV:
                        fputs("PrivateDevices=yes\nDevicePolicy=closed\n"
                              "# pasta, the workspace's way out, opens the tun device; the workspace's own\n"
                              "# view of /dev hides it again (policy/workspace.c).\n"
                              "BindPaths=-/dev/net/tun\n"
                              "DeviceAllow=/dev/net/tun rw\n",
                              f);
                        k = write_tmpfs(f, "/dev/shm");
                        if (k < 0)
                                return k;
                        write_devpts_binds(f);
                        break;
                case POLICY_FS_PROC:
                        fputs("ProtectProc=invisible\n", f);
                        break;
                default:
                        break;
                }
        }
        return 0;
}

static void write_limits(FILE *f)
{
        fputs("# policy/limits.c: no privileges, and the resource limits both modes share.\n"
              "NoNewPrivileges=yes\n"
              /* Not RestrictSUIDSGID=: systemd 252 cannot look inside openat2()'s struct for the mode, so
               * that directive makes every openat2() fail with ENOSYS, and the worker confines paths with
               * openat2(RESOLVE_BENEATH). A set-user-ID file a user makes in their home grants only their
               * own uid, which NoNewPrivileges= already denies to every process in the sandbox. */
              "CapabilityBoundingSet=\n"
              "AmbientCapabilities=\n",
              f);
        for (size_t i = 0; i < policy_n_limits; i++)
                fprintf(f, "%s=%llu\n", policy_limits[i].unit, (unsigned long long)policy_limits[i].value);
}

/* The defaults of policy/settings.c. An admin changes them in /etc/helios/sandbox.conf and
 * sandbox.d/USER.conf, which the launcher applies to the user's unit at start. */
static int write_settings(FILE *f)
{
        fputs("# policy/settings.c: the defaults of /etc/helios/sandbox.conf; the launcher sets what that\n"
              "# file (and sandbox.d/USER.conf) says on each user's unit when it starts it.\n",
              f);
        for (size_t i = 0; i < _POLICY_SETTING_MAX; i++) {
                const PolicySetting *s = &policy_settings[i];
                char v[32];
                int r;

                if (!s->unit_property)
                        continue;
                r = policy_value_format((PolicySettingId)i, s->value, false, v, sizeof(v));
                if (r < 0)
                        return r;
                fprintf(f, "%s=%s\n", s->unit_property, v);
        }
        return 0;
}

/* systemd skips names it cannot resolve with a warning; write only the ones it will take. */
static bool name_known(const char *name)
{
        return seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}

static int write_syscalls(FILE *f)
{
        const char *concern = NULL;
        bool open_line = false;

        fputs(
            "# policy/syscalls.c: the deny list. The ioctl rules (TIOCSTI, TIOCLINUX on the low 32 bits of\n"
            "# the request) are refused by the filter helios-worker --seccomp loads itself.\n"
            "SystemCallArchitectures=native\n"
            "SystemCallErrorNumber=EPERM\n"
            "# The worker makes the workspace's user, network and PID namespaces and mounts its /proc, and\n"
            "# pasta sandboxes itself in namespaces of its own (policy/workspace.c): the calls for that\n"
            "# (namespace flags, unshare, setns, mount, umount2, pivot_root) are left to the filter the\n"
            "# worker loads before it serves anything, which binds every process of the workspace.\n"
            "RestrictNamespaces=~cgroup\n",
            f);
        for (size_t i = 0; i < policy_n_syscalls; i++) {
                const PolicySyscall *s = &policy_syscalls[i];

                if (s->match != POLICY_MATCH_ALWAYS || s->workspace_setup || !name_known(s->name))
                        continue;
                if (!concern || !streq(concern, s->concern)) {
                        if (open_line)
                                fputc('\n', f);
                        fprintf(f, "# %s\nSystemCallFilter=~", s->concern);
                        concern = s->concern;
                        open_line = false;
                }
                fprintf(f, "%s%s", open_line ? " " : "", s->name);
                if (s->error != EPERM) {
                        const char *e = s->error == ENOSYS ? "ENOSYS" : NULL;
                        if (!e)
                                return -EINVAL;
                        fprintf(f, ":%s", e);
                }
                open_line = true;
        }
        if (open_line)
                fputc('\n', f);
        return 0;
}

static void write_families(FILE *f)
{
        fputs("# The socket families of policy/syscalls.c (netlink's protocol, routing only, is checked by\n"
              "# the worker's own filter: no directive looks at it).\n"
              "RestrictAddressFamilies=",
              f);
        for (size_t i = 0; i < policy_n_socket_families; i++)
                fprintf(f, "%s%s", i > 0 ? " " : "", policy_socket_families[i].name);
        fputc('\n', f);
}

static void write_namespaces(FILE *f)
{
        fputs("# policy/namespaces.c: what each workspace has of its own.\n", f);
        for (size_t i = 0; i < policy_n_namespaces; i++)
                if (policy_namespaces[i].directive)
                        fprintf(f, "%s\n", policy_namespaces[i].directive);
}

/* Said explicitly: the manager's defaults (DefaultStandardOutput= in system.conf) could send a
 * worker's output to a console or a terminal of someone else's. */
static void write_descriptors(FILE *f)
{
        fputs("# A worker holds nothing of anyone else's: input from /dev/null, output to the journal.\n"
              "StandardInput=null\n"
              "StandardOutput=journal\n"
              "StandardError=journal\n",
              f);
}

static void write_unit_only(FILE *f)
{
        fputs("# What systemd adds where embedded mode relies on the rules above: hostname and clock\n"
              "# changes and real-time scheduling need privileges the worker never has, and the\n"
              "# personality lock narrows what an exploit can reach.\n"
              "ProtectHostname=yes\n"
              "ProtectClock=yes\n"
              "RestrictRealtime=yes\n"
              "LockPersonality=yes\n",
              f);
}

int policy_write_unit_directives(FILE *f)
{
        int r;

        fputs("# The sandbox, generated from policy/ by helios-policy: change policy/, not these lines.\n",
              f);
        r = write_filesystem(f);
        if (r < 0)
                return r;
        write_limits(f);
        r = write_settings(f);
        if (r < 0)
                return r;
        r = write_syscalls(f);
        if (r < 0)
                return r;
        write_families(f);
        write_namespaces(f);
        write_descriptors(f);
        write_unit_only(f);
        return ferror(f) ? -EIO : 0;
}

/* Lines of a unit file are short; a longer one is not a template this tool was written for. */
int policy_render_unit_template(FILE *in, FILE *out)
{
        char line[4096];
        bool done = false;

        while (fgets(line, sizeof(line), in)) {
                size_t n = strlen(line);

                if (n == sizeof(line) - 1 && line[n - 1] != '\n')
                        return -E2BIG;
                if (strncmp(line, POLICY_UNIT_PLACEHOLDER, strlen(POLICY_UNIT_PLACEHOLDER)) == 0 &&
                    strspn(line + strlen(POLICY_UNIT_PLACEHOLDER), " \t\n") ==
                        n - strlen(POLICY_UNIT_PLACEHOLDER)) {
                        int r = policy_write_unit_directives(out);
                        if (r < 0)
                                return r;
                        done = true;
                } else
                        fputs(line, out);
        }
        if (ferror(in))
                return -EIO;
        return done ? 0 : -ENOENT;
}

/* Characters a path may have to go into a unit file as it is: no specifier (%), no quoting, no
 * whitespace, no escape. Homes are plain paths; one that is not is refused rather than escaped. */
static bool unit_path_safe(const char *path)
{
        if (path[0] != '/' || strstr(path, "/../") || strstr(path, "/./") || strstr(path, "//"))
                return false;
        for (const char *p = path; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+@", *p))
                        return false;
        return true;
}

static bool path_within(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int policy_home_root(const char *home, char **ret)
{
        _cleanup_free_ char *root = NULL;
        char *slash;

        assert(home && ret);

        if (!unit_path_safe(home) || streq(home, "/"))
                return -EINVAL;
        for (size_t i = 0; i < policy_n_filesystem; i++) {
                const PolicyFsRule *r = &policy_filesystem[i];

                if (r->kind == POLICY_FS_READ_ONLY)
                        continue;
                if (path_within(r->path, home))
                        return -EINVAL;
                if (r->kind == POLICY_FS_HOMES && path_within(home, r->path) && !streq(home, r->path)) {
                        *ret = NULL;
                        return 0;
                }
                if (path_within(home, r->path))
                        return -EINVAL;
        }
        root = strdup(home);
        if (!root)
                return -ENOMEM;
        slash = strrchr(root, '/');
        if (slash == root)
                return -EINVAL;
        *slash = '\0';
        for (size_t i = 0; i < policy_n_filesystem; i++)
                if (policy_filesystem[i].kind != POLICY_FS_READ_ONLY &&
                    path_within(policy_filesystem[i].path, root))
                        return -EINVAL;
        *ret = TAKE_PTR(root);
        return 0;
}

int policy_write_home_dropin(FILE *f, const char *home)
{
        _cleanup_free_ char *root = NULL;
        int r;

        r = policy_home_root(home, &root);
        if (r < 0)
                return r;
        fputs("# Written by helios-launcher from the password database: the home of this account, and\n"
              "# no other. Empty assignments drop the unit's /home/%I (and its devpts binds, given again).\n"
              "[Service]\n"
              "BindPaths=\n"
              "ReadWritePaths=\n",
              f);
        write_devpts_binds(f);
        /* Outside /home, /root and /run/user, the directory holding the home disappears like /home
         * does, and the homes next to this one with it. */
        if (root)
                fprintf(f, "TemporaryFileSystem=%s:ro\n", root);
        fprintf(f, "BindPaths=%s\nReadWritePaths=%s\n", home, home);
        return ferror(f) ? -EIO : 0;
}
