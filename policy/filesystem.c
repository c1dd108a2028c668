/* SPDX-License-Identifier: MIT */
/* What a worker, and every process in its terminals, sees of the file system.
 *
 * The system is there, read-only: compilers, interpreters, man pages and /etc as the machine has
 * them, so a terminal feels like a login on the machine. What belongs to others is not there at all:
 * other users' homes, root's home, other users' runtime directories (/run/user), and Helios' own
 * runtime directory with the launcher's and the other workers' sockets. Hiding beats permissions: a
 * home left world-readable by mistake, or a socket whose peer check has a bug, is still out of reach.
 *
 * The user's own home is the one persistent place that is writable. /tmp and /var/tmp are private
 * and start empty, so nothing can be planted in them for another user or the launcher to trip over.
 * /dev holds only the harmless devices, and a pseudo-terminal instance of the sandbox's own, so no
 * other user's terminal can be opened. /proc is a fresh instance that shows the user's processes
 * only.
 *
 * Order matters: the rules are applied in this order, and a later one mounts over what an earlier
 * one made read-only. Under systemd, ProtectSystem=strict, ProtectHome=tmpfs, TemporaryFileSystem=,
 * PrivateDevices=, InaccessiblePaths= and ProtectProc= make the same view (see unit.c). */
#include "macro.h"
#include "policy.h"

const PolicyFsRule policy_filesystem[] = {
    {"/", POLICY_FS_READ_ONLY},
    /* Homes: everyone's disappear; the user's own comes back (also when it lives elsewhere). */
    {"/home", POLICY_FS_HOMES},
    {"/root", POLICY_FS_HOMES},
    {"/run/user", POLICY_FS_HOMES, .optional = true},
    {POLICY_RUNTIME_DIR, POLICY_FS_HIDDEN, .optional = true},
    {"/tmp", POLICY_FS_PRIVATE_TMP},
    {"/var/tmp", POLICY_FS_PRIVATE_TMP, .optional = true},
    {"/dev", POLICY_FS_DEV},
    {"/proc", POLICY_FS_PROC},
};

const size_t policy_n_filesystem = ELEMENTSOF(policy_filesystem);

/* What programs expect to open: the bit buckets, randomness, and the process's own terminal. No
 * disks, no memory, no consoles, no kernel log. */
const char *const policy_devices[] = {
    "null", "zero", "full", "random", "urandom", "tty",
};

const size_t policy_n_devices = ELEMENTSOF(policy_devices);
