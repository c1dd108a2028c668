/* SPDX-License-Identifier: MIT */
/* The sandbox directives of helios-worker@.service, written from the policy's tables at build time,
 * so that the unit and embedded mode cannot drift apart.
 *
 * Most rules have a directive of their own. Two kinds have none: clone() with namespace flags is
 * covered by RestrictNamespaces=, and the ioctl rules (TIOCSTI, TIOCLINUX) only by the filter the
 * worker loads itself when the unit starts it with --seccomp. A few directives systemd offers and the
 * policy gets by other means in embedded mode are listed at the end, each with the reason. */
#include <errno.h>
#include <seccomp.h>
#include <string.h>

#include "macro.h"
#include "policy.h"

/* ProtectHome=tmpfs covers exactly these; any other home-like path gets a TemporaryFileSystem=. */
static bool protect_home_covers(const char *path)
{
        return streq(path, "/home") || streq(path, "/root") || streq(path, "/run/user");
}

static void write_filesystem(FILE *f)
{
        bool homes = false;

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
                                      "# Homes that are not /home/USER need a drop-in with their own "
                                      "BindPaths=\n"
                                      "# and ReadWritePaths=.\n"
                                      "BindPaths=/home/%I\n"
                                      "ReadWritePaths=/home/%I\n",
                                      f);
                                homes = true;
                        }
                        break;
                case POLICY_FS_HIDDEN:
                        fprintf(f, "InaccessiblePaths=%s%s\n", r->optional ? "-" : "", r->path);
                        break;
                case POLICY_FS_PRIVATE_TMP:
                        /* PrivateTmp= covers /tmp and /var/tmp together */
                        if (streq(r->path, "/tmp"))
                                fputs("PrivateTmp=yes\n", f);
                        break;
                case POLICY_FS_DEV:
                        fputs("PrivateDevices=yes\nDevicePolicy=closed\n"
                              "# pasta, the workspace's way out, opens the tun device; the workspace's own\n"
                              "# view of /dev hides it again (policy/namespaces.c).\n"
                              "BindPaths=-/dev/net/tun\n"
                              "DeviceAllow=/dev/net/tun rw\n",
                              f);
                        break;
                case POLICY_FS_PROC:
                        fputs("ProtectProc=invisible\n", f);
                        break;
                default:
                        break;
                }
        }
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
            "# pasta sandboxes itself in namespaces of its own (policy/namespaces.c): the calls for that\n"
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

static void write_unit_only(FILE *f)
{
        fputs("# What systemd adds where embedded mode relies on the rules above: hostname and clock\n"
              "# changes and real-time scheduling need privileges the worker never has, the personality\n"
              "# lock and the address families narrow what an exploit can reach, and RemoveIPC= cleans up\n"
              "# after the user's processes.\n"
              "ProtectHostname=yes\n"
              "ProtectClock=yes\n"
              "RestrictRealtime=yes\n"
              "LockPersonality=yes\n"
              "RemoveIPC=yes\n"
              "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n",
              f);
}

int policy_write_unit_directives(FILE *f)
{
        int r;

        fputs("# The sandbox, generated from policy/ by helios-policy: change policy/, not these lines.\n",
              f);
        write_filesystem(f);
        write_limits(f);
        r = write_syscalls(f);
        if (r < 0)
                return r;
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
