#!/usr/bin/env python3
"""Sandbox escape battery for Helios: run it as the user, inside the sandbox of a worker (a terminal
of the IDE, the systemd unit, or tests/escape/sandbox-exec), and it tries what the sandbox policy
(policy/) must refuse, then a normal working day that must still succeed.

One line per check, easy to parse:

    PASS escape.read_shadow
    FAIL escape.keyctl keyctl(JOIN_SESSION_KEYRING) succeeded
    SKIP work.debug neither strace nor gdb is installed

`escape.*` passes when the attempt is refused; `work.*` passes when the work gets done. The last
line is `SUMMARY pass=N fail=N skip=N`; the exit status is 0 only when nothing failed.

Self-contained: the Python 3 standard library only (ctypes for the system calls), no test harness.
Paths and pids of what lies outside the sandbox are given as arguments; see --help. It refuses to
run as root, where some attempts would succeed for real.
"""

import argparse
import ctypes
import errno
import os
import platform
import pty
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

results = {"PASS": 0, "FAIL": 0, "SKIP": 0}


def report(status, name, detail=""):
    results[status] += 1
    line = f"{status} {name.replace(' ', '_')}"
    if detail:
        line += " " + " ".join(str(detail).split())
    print(line, flush=True)


def check(name, fn):
    """Run fn; it returns None (pass), a string (fail, the detail), or ("SKIP", reason)."""
    try:
        out = fn()
    except Exception as e:  # a check that breaks is a failure, never a silent pass
        out = f"{type(e).__name__}: {e}"
    if out is None:
        report("PASS", name)
    elif isinstance(out, tuple) and out[0] == "SKIP":
        report("SKIP", name, out[1])
    else:
        report("FAIL", name, out)


# ---- System calls through ctypes ----

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

SYSCALLS = {
    "x86_64": dict(clone=56, clone3=435, fsopen=430, init_module=175, finit_module=313, bpf=321,
                   perf_event_open=298, keyctl=250, add_key=248, userfaultfd=323,
                   open_by_handle_at=304, name_to_handle_at=303, reboot=169, socket=41,
                   socketpair=53, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
                   pidfd_open=434, pidfd_getfd=438),
    "aarch64": dict(clone=220, clone3=435, fsopen=430, init_module=105, finit_module=273, bpf=280,
                    perf_event_open=241, keyctl=219, add_key=217, userfaultfd=282,
                    open_by_handle_at=265, name_to_handle_at=264, reboot=142, socket=198,
                    socketpair=199, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
                    pidfd_open=434, pidfd_getfd=438),
}
NR = SYSCALLS.get(platform.machine(), {})


def arg(a):
    if a is None:
        return ctypes.c_void_p(None)
    if isinstance(a, int):
        return ctypes.c_long(a)
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    return a


def syscall(name, *args):
    """(result, errno) of a raw system call."""
    if name not in NR:
        raise NotImplementedError(f"no number for {name} on {platform.machine()}")
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(NR[name]), *[arg(a) for a in args])
    return r, ctypes.get_errno()


def libc_call(fn, *args):
    ctypes.set_errno(0)
    r = fn(*[arg(a) for a in args])
    return r, ctypes.get_errno()


def refused(what, r, err):
    """None when the call failed; otherwise a failure detail."""
    if r == -1:
        return None
    return f"{what} succeeded (returned {r})"


def errname(e):
    return errno.errorcode.get(e, str(e))


CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
SIGCHLD = 17
TIOCSTI, TIOCLINUX, TIOCSCTTY = 0x5412, 0x541C, 0x540E
HIGH_BITS = 0xffffffff00000000


def clone_with(flags):
    """clone() used like fork(); a child that does get created leaves at once."""
    r, err = syscall("clone", flags | SIGCHLD, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
        return f"clone({flags:#x}) created a child"
    return None


# ---- Escapes: every one must be refused ----

def read_file(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        return None if e.errno in (errno.EACCES, errno.EPERM, errno.ENOENT) else f"{path}: {e}"
    return f"read {path}"


def invisible_dir(path):
    """Absent, unreadable or empty: nothing of what is there outside may show."""
    try:
        entries = os.listdir(path)
    except OSError as e:
        return None if e.errno in (errno.EACCES, errno.EPERM, errno.ENOENT) else f"{path}: {e}"
    if entries:
        return f"{path} shows {len(entries)} entries: {' '.join(sorted(entries)[:5])}"
    return None


def write_under(directory):
    probe = os.path.join(directory, f".helios-escape-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        return None if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else f"{probe}: {e}"
    os.close(fd)
    os.unlink(probe)
    return f"created {probe}"


def append_to(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as e:
        return None if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT) else f"{path}: {e}"
    os.close(fd)
    return f"opened {path} for writing"


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
    except OSError:
        return None
    finally:
        s.close()
    return f"connected to {path}"


PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def ptrace_other(pid):
    libc.ptrace.restype = ctypes.c_long
    r, err = libc_call(libc.ptrace, PTRACE_ATTACH, pid, None, None)
    if r == 0:
        libc_call(libc.ptrace, PTRACE_DETACH, pid, None, None)
        return f"attached to pid {pid}"
    return None


def see_process(pid):
    if os.path.exists(f"/proc/{pid}"):
        return f"/proc/{pid} is visible"
    return None


def mount_tmpfs():
    d = tempfile.mkdtemp(prefix="helios-escape-")
    try:
        r, err = libc_call(libc.mount, b"none", d.encode(), b"tmpfs", 0, None)
        if r == 0:
            libc.umount2(d.encode(), 2)
            return f"mounted a tmpfs on {d}"
        r, err = syscall("fsopen", b"tmpfs", 0)
        if r >= 0:
            os.close(r)
            return "fsopen(tmpfs) succeeded"
        return None
    finally:
        os.rmdir(d)


def unshare_command(flag):
    exe = shutil.which("unshare")
    if not exe:
        return ("SKIP", "no unshare command")
    p = subprocess.run([exe, flag, "true"], capture_output=True, timeout=30)
    if p.returncode == 0:
        return f"unshare {flag} true succeeded"
    return None


def unshare_call(flags):
    r, err = libc_call(libc.unshare, flags)
    return refused(f"unshare({flags:#x})", r, err)


def clone3_newuser():
    # struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls
    args = struct.pack("QQQQQQQQ", CLONE_NEWUSER, 0, 0, 0, SIGCHLD, 0, 0, 0)
    buf = ctypes.create_string_buffer(args, len(args))
    r, err = syscall("clone3", buf, len(args))
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
        return "clone3(CLONE_NEWUSER) created a child"
    return None


def tty_inject(request, high=False):
    """In a new session whose controlling terminal is a fresh pty (where TIOCSTI works for anyone
    when the kernel allows it at all), push a byte into the terminal's input."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fd = os.open(name, os.O_RDWR)
            libc.ioctl(fd, ctypes.c_ulong(TIOCSCTTY), ctypes.c_long(0))
            cmd = request | (HIGH_BITS if high else 0)
            c = ctypes.c_char(b"X")
            ctypes.set_errno(0)
            libc.ioctl.restype = ctypes.c_int
            r = libc.ioctl(fd, ctypes.c_ulong(cmd), ctypes.byref(c))
            os._exit(0 if r == -1 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    os.close(slave)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    if code == 1:
        return f"ioctl({request | (HIGH_BITS if high else 0):#x}) succeeded"
    return f"the probe child failed ({code})"


def load_module():
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        r, err = syscall("finit_module", fd, b"", 0)
        if r == 0:
            return "finit_module succeeded"
        image = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
        r, err = syscall("init_module", image, 64, b"")
        if r == 0:
            return "init_module succeeded"
        # ENOSYS: a kernel built without modules, which refuses them all.
        if err not in (errno.EPERM, errno.EACCES, errno.ENOSYS):
            return f"init_module reached the module loader ({errname(err)})"
    finally:
        os.close(fd)
    return None


def bpf():
    # BPF_MAP_CREATE of a 1-entry array: the simplest thing bpf() does.
    attr = struct.pack("IIII", 2, 4, 4, 1) + b"\0" * 112
    buf = ctypes.create_string_buffer(attr, len(attr))
    r, err = syscall("bpf", 0, buf, len(attr))
    if r >= 0:
        os.close(r)
        return "bpf(BPF_MAP_CREATE) succeeded"
    return None


def perf_event_open():
    # PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, this process, user space only.
    size = 128
    attr = bytearray(size)
    struct.pack_into("IIQ", attr, 0, 1, size, 0)
    struct.pack_into("Q", attr, 40, 1 << 5 | 1 << 6)  # exclude_kernel, exclude_hv
    buf = ctypes.create_string_buffer(bytes(attr), size)
    r, err = syscall("perf_event_open", buf, 0, -1, -1, 0)
    if r >= 0:
        os.close(r)
        return "perf_event_open succeeded"
    return None


def setuid_programs(user, helper):
    """Set-user-ID and set-group-ID programs must not lift the user's privileges."""
    problems = []
    if shutil.which("passwd"):
        # With root's powers passwd -S reads the shadow entry and prints its dates; without, it
        # knows only the passwd entry.
        p = subprocess.run(["passwd", "-S", user], capture_output=True, text=True, timeout=30)
        fields = p.stdout.split()
        if p.returncode == 0 and len(fields) > 2:
            problems.append(f"passwd -S read the shadow entry: {p.stdout.strip()}")
    if shutil.which("chage"):
        # chage is set-group-ID shadow; it can list the account's aging only by reading /etc/shadow.
        p = subprocess.run(["chage", "-l", user], capture_output=True, text=True, timeout=30)
        if p.returncode == 0:
            problems.append("chage -l read /etc/shadow")
    if helper:
        p = subprocess.run([helper], capture_output=True, text=True, timeout=30)
        out = p.stdout.strip()
        if out != str(os.getuid()):
            problems.append(f"{helper} ran with effective uid {out or '?'} ({p.stderr.strip()})")
    if not problems and not helper and not shutil.which("passwd") and not shutil.which("chage"):
        return ("SKIP", "no set-user-ID program to try")
    return "; ".join(problems) or None


LINUX_REBOOT_MAGIC1 = 0xfee1dead


def reboot():
    # A wrong second magic number: the kernel checks the privilege first (EPERM) and the magic
    # after (EINVAL), so EINVAL would mean the caller may reboot the machine, and nothing happens.
    r, err = syscall("reboot", LINUX_REBOOT_MAGIC1, 0x1234, 0, None)
    if r == 0 or err != errno.EPERM:
        return f"reboot() got past the privilege check ({errname(err)})"
    return None


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


def settimeofday():
    tv = Timeval()
    libc.gettimeofday(ctypes.byref(tv), None)
    r, err = libc_call(libc.settimeofday, ctypes.byref(tv), None)
    if r == 0:
        return "settimeofday succeeded"
    ts = (ctypes.c_long * 2)()
    libc.clock_gettime(0, ts)
    r, err = libc_call(libc.clock_settime, 0, ts)
    return refused("clock_settime", r, err)


KEYCTL_JOIN_SESSION_KEYRING, KEY_SPEC_PROCESS_KEYRING = 1, -2


def keyctl():
    r, err = syscall("keyctl", KEYCTL_JOIN_SESSION_KEYRING, None)
    if r >= 0:
        return "keyctl(JOIN_SESSION_KEYRING) succeeded"
    r, err = syscall("add_key", b"user", b"helios-escape", b"x", 1, KEY_SPEC_PROCESS_KEYRING)
    return refused("add_key", r, err)


def userfaultfd():
    r, err = syscall("userfaultfd", os.O_CLOEXEC | 1)  # UFFD_USER_MODE_ONLY
    if r >= 0:
        os.close(r)
        return "userfaultfd succeeded"
    return None


def chroot():
    r, err = libc_call(libc.chroot, b"/tmp")
    return refused("chroot", r, err)


def open_by_handle():
    handle = ctypes.create_string_buffer(struct.pack("Ii", 128, 0) + b"\0" * 128)
    mount_id = ctypes.c_int()
    r, err = syscall("name_to_handle_at", -100, b"/", handle, ctypes.byref(mount_id), 0)
    if r != 0:
        return None
    fd = os.open("/", os.O_RDONLY)
    try:
        r, err = syscall("open_by_handle_at", fd, handle, os.O_RDONLY)
    finally:
        os.close(fd)
    if r >= 0:
        os.close(r)
        return "open_by_handle_at succeeded"
    return None


def setns_init():
    try:
        fd = os.open("/proc/1/ns/mnt", os.O_RDONLY)
    except OSError:
        return None
    try:
        r, err = libc_call(libc.setns, fd, 0)
    finally:
        os.close(fd)
    return refused("setns(/proc/1/ns/mnt)", r, err)


def devices():
    """A minimal /dev: no disks, no memory, no kernel log, no consoles."""
    seen = []
    for name in ("mem", "kmem", "port", "kmsg", "console", "sda", "vda", "nvme0", "nvme0n1", "tty0",
                 "tty1", "loop0", "loop-control", "fuse", "kvm", "net/tun", "uinput"):
        if os.path.exists(os.path.join("/dev", name)):
            seen.append(name)
    for name in os.listdir("/dev"):
        try:
            mode = os.lstat(os.path.join("/dev", name)).st_mode
        except OSError:
            continue
        if stat.S_ISBLK(mode) and name not in seen:
            seen.append(name)
    return f"/dev has {' '.join(seen)}" if seen else None


def other_terminals():
    """Only this sandbox's own pseudo-terminals exist: nobody else's can be opened or watched."""
    theirs = []
    try:
        names = os.listdir("/dev/pts")
    except OSError:
        return None
    for name in names:
        if name == "ptmx":
            continue
        try:
            st = os.stat(os.path.join("/dev/pts", name))
        except OSError:
            continue
        if st.st_uid != os.getuid():
            theirs.append(f"{name}(uid {st.st_uid})")
    return f"/dev/pts shows others' terminals: {' '.join(theirs)}" if theirs else None


def open_other_terminal():
    """No one else's pseudo-terminal can be opened, whether or not it can be seen."""
    try:
        names = os.listdir("/dev/pts")
    except OSError:
        return None
    opened = []
    for name in names:
        path = os.path.join("/dev/pts", name)
        try:
            if name == "ptmx" or os.stat(path).st_uid == os.getuid():
                continue
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            continue
        os.close(fd)
        opened.append(name)
    return f"opened others' terminals: {' '.join(opened)}" if opened else None


# ---- Another workspace: its network and its processes ----

def connect_tcp(host, port, timeout=3):
    """The first line the server at host:port sends, or the error."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        return s.recv(256)


def reach_loopback(port):
    """Another workspace's server on 127.0.0.1:port must not answer here: the loopback is one's own."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return f"connected to 127.0.0.1:{port}"
    except OSError:
        return None


def reach_abstract(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect("\0" + name)
    except OSError:
        return None
    finally:
        s.close()
    return f"connected to the abstract socket @{name}"


def proc_net(ports, names):
    """/proc/net shows this workspace's sockets only."""
    seen = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]
            if int(local.rsplit(":", 1)[1], 16) in ports:
                seen.append(f"{table}:{local}")
    try:
        with open("/proc/net/unix") as f:
            unix = f.read()
    except OSError:
        unix = ""
    seen += [f"unix:@{n}" for n in names if f"@{n}" in unix]
    return f"/proc/net shows another workspace's sockets: {' '.join(seen)}" if seen else None


SYS_PIDFD_OPEN = 434


class SchedParam(ctypes.Structure):
    _fields_ = [("sched_priority", ctypes.c_int)]


def probe_process(pid):
    """Every question about another workspace's process must say it does not exist (ESRCH): EPERM
    already tells that it is there."""
    answers = []
    r, err = libc_call(libc.kill, pid, 0)
    answers.append(("kill(0)", r, err))
    r, err = libc_call(libc.getsid, pid)
    answers.append(("getsid", r, err))
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS_PIDFD_OPEN), ctypes.c_long(pid), ctypes.c_long(0))
    err = ctypes.get_errno()
    if r >= 0:
        os.close(r)
    answers.append(("pidfd_open", r, err))
    param = SchedParam()
    r, err = libc_call(libc.sched_getparam, pid, ctypes.byref(param))
    answers.append(("sched_getparam", r, err))
    r, err = libc_call(libc.getpriority, 1, pid)  # PRIO_PROCESS
    answers.append(("getpriority", r if err else 0, err))
    told = [f"{what}={'ok' if not err else errname(err)}" for what, r, err in answers if err != errno.ESRCH]
    return f"pid {pid} answers: {' '.join(told)}" if told else None


def outbound(target):
    host, _, port = target.rpartition(":")
    line = connect_tcp(host, int(port))
    return None if line else f"{target} sent nothing"


def outbound_refused(target):
    host, _, port = target.rpartition(":")
    try:
        connect_tcp(host, int(port))
    except OSError:
        return None
    return f"reached {target} with outbound network off"
# ---- What the worker holds, the kernel surface, IPC and bounds ----

# Device nodes every process may hold whoever owns them: the policy's /dev.
SHARED_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                  "/dev/ptmx", "/dev/pts/ptmx"}


def my_processes():
    """Pids of the processes of this user that can be looked at."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == os.getuid():
                    out.append(int(entry))
            except OSError:
                pass
    return out


def foreign_target(link):
    """Why the file a descriptor link (/proc/P/fd/N) reaches is not this user's, or None. Pipes,
    sockets and anonymous inodes have no path and are judged by the other checks."""
    try:
        target = os.readlink(link)
    except OSError:
        return None
    if not target.startswith("/") or target in SHARED_DEVICES:
        return None
    try:
        st = os.stat(link)
    except OSError:
        return None
    if st.st_uid == os.getuid():
        return None
    return f"{target} (uid {st.st_uid})"


def foreign_descriptors():
    """No process of this user (the worker, its terminals and everything they started) holds a file
    of someone else's: the launcher's log or the terminal it was started from, say."""
    found = []
    for pid in my_processes():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            why = foreign_target(f"/proc/{pid}/fd/{fd}")
            if why:
                found.append(f"pid {pid} fd {fd}: {why}")
    return "; ".join(found[:8]) if found else None


def worker_pid():
    """The outermost ancestor running as this user: the worker, seen from one of its terminals."""
    pid, top = os.getpid(), os.getpid()
    for _ in range(64):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            ppid = int(fields["PPid"])
            if ppid <= 1 or os.stat(f"/proc/{ppid}").st_uid != os.getuid():
                return top
        except (OSError, KeyError, ValueError):
            return top
        pid = top = ppid
    return top


def worker_stdio():
    """pidfd_getfd() on the worker's descriptors 0-2, as a user can on her own worker: what they
    reach must be hers or the bit bucket (a pipe or a socket to a log), never a file or terminal of
    someone else's."""
    pid = worker_pid()
    pidfd, err = syscall("pidfd_open", pid, 0)
    if pidfd < 0:
        return ("SKIP", f"pidfd_open({pid}): {errname(err)}")
    found = []
    try:
        for fd in (0, 1, 2):
            copy, err = syscall("pidfd_getfd", pidfd, fd, 0)
            if copy < 0:
                continue
            try:
                why = foreign_target(f"/proc/self/fd/{copy}")
                if why:
                    found.append(f"fd {fd} of pid {pid}: {why}")
            finally:
                os.close(copy)
    finally:
        os.close(pidfd)
    return "copied " + "; ".join(found) if found else None


AF_NETLINK, NETLINK_ROUTE = 16, 0
# (what, family, type, protocol): families and netlink protocols beyond a working day's.
FOREIGN_SOCKETS = [
    ("AF_VSOCK", 40, socket.SOCK_STREAM, 0),
    ("AF_PACKET", 17, socket.SOCK_DGRAM, 0),
    ("AF_ALG", 38, socket.SOCK_SEQPACKET, 0),
    ("AF_KEY", 15, socket.SOCK_RAW, 2),
    ("AF_TIPC", 30, socket.SOCK_RDM, 0),
    ("AF_XDP", 44, socket.SOCK_RAW, 0),
    ("AF_BLUETOOTH", 31, socket.SOCK_RAW, 0),
    ("NETLINK_AUDIT", AF_NETLINK, socket.SOCK_RAW, 9),
    ("NETLINK_KOBJECT_UEVENT", AF_NETLINK, socket.SOCK_RAW, 15),
    ("NETLINK_SOCK_DIAG", AF_NETLINK, socket.SOCK_RAW, 4),
    ("AF_VSOCK with high bits", 40 | (1 << 32), socket.SOCK_STREAM, 0),
]


def socket_families():
    """Only AF_UNIX, AF_INET, AF_INET6 and routing netlink: every other socket() and socketpair() is
    refused with EPERM, whatever the kernel would have said."""
    wrong = []
    for what, family, type_, proto in FOREIGN_SOCKETS:
        r, err = syscall("socket", family, type_ | socket.SOCK_CLOEXEC, proto)
        if r >= 0:
            os.close(r)
            wrong.append(f"socket({what}) succeeded")
        elif err != errno.EPERM:
            wrong.append(f"socket({what}): {errname(err)}")
    fds = (ctypes.c_int * 2)()
    for what, family in (("AF_VSOCK", 40), ("AF_TIPC", 30)):
        r, err = syscall("socketpair", family, socket.SOCK_STREAM, 0, fds)
        if r >= 0:
            os.close(fds[0])
            os.close(fds[1])
            wrong.append(f"socketpair({what}) succeeded")
        elif err != errno.EPERM:
            wrong.append(f"socketpair({what}): {errname(err)}")
    return "; ".join(wrong) if wrong else None


def io_uring():
    """io_uring's operations never pass the system-call filter: setting one up is refused."""
    params = ctypes.create_string_buffer(120)
    wrong = []
    r, err = syscall("io_uring_setup", 4, params)
    if r >= 0:
        os.close(r)
        wrong.append("io_uring_setup succeeded")
    elif err != errno.EPERM:
        wrong.append(f"io_uring_setup: {errname(err)}")
    for name, args in (("io_uring_enter", (-1, 0, 0, 0, None, 0)), ("io_uring_register", (-1, 0, None, 0))):
        r, err = syscall(name, *args)
        if r >= 0 or err != errno.EPERM:
            wrong.append(f"{name}: {r} {errname(err)}")
    return "; ".join(wrong) if wrong else None


libc.mq_open.restype = ctypes.c_int
libc.shmget.restype = ctypes.c_int
libc.shmat.restype = ctypes.c_void_p


class MqAttr(ctypes.Structure):
    _fields_ = [("mq_flags", ctypes.c_long), ("mq_maxmsg", ctypes.c_long), ("mq_msgsize", ctypes.c_long),
                ("mq_curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]


def ipc_of_others(mqueue, shm_key):
    """A POSIX message queue and a System V segment made outside the sandbox, open to everyone, do not
    exist inside: the workspace has an IPC namespace of its own."""
    seen = []
    if mqueue:
        r, err = libc_call(libc.mq_open, mqueue.encode(), os.O_RDONLY)
        if r >= 0:
            os.close(r)
            seen.append(f"opened the message queue {mqueue}")
    if shm_key is not None:
        r, err = libc_call(libc.shmget, ctypes.c_int(shm_key), ctypes.c_size_t(0), 0)
        if r >= 0:
            seen.append(f"found the shared-memory segment with key {shm_key:#x}")
    return "; ".join(seen) if seen else None


def ipc_left_behind(tag, pool):
    """What a user can leave in the IPC pools: a System V segment (1 MiB, touched) that outlives its
    processes, and message queues until the pool is full (POSIX queues live until unlinked). Both must
    work inside; the test harness checks afterwards that none of it reached the machine's pools."""
    key = 0x48450000 | (os.getuid() & 0xffff)
    shmid, err = libc_call(libc.shmget, ctypes.c_int(key), ctypes.c_size_t(1 << 20), 0o1600)
    if shmid < 0:
        return f"shmget: {errname(err)}"
    addr = libc.shmat(shmid, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        return f"shmat: {errname(ctypes.get_errno())}"
    ctypes.memset(addr, 0x5a, 1 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    attr = MqAttr(mq_maxmsg=1, mq_msgsize=1)
    made = 0
    for i in range(pool):
        r, err = libc_call(libc.mq_open, f"/{tag}-{i}".encode(), os.O_RDWR | os.O_CREAT, 0o600,
                           ctypes.byref(attr))
        if r < 0:
            if made == 0:
                return f"mq_open: {errname(err)}"
            break
        os.close(r)
        made += 1
    return None


def pty_pool(bound):
    """A workspace holds at most `bound` pseudo-terminals at once; a student who opens them all leaves
    the rest of the machine's (kernel.pty.max) to everyone else."""
    fds = []
    try:
        for _ in range(bound + 16):
            try:
                fds.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EIO):
                    break
                raise
    finally:
        for fd in fds:
            os.close(fd)
    if len(fds) > bound:
        return f"opened {len(fds)} pseudo-terminals (bound {bound})"
    if not fds:
        return "could not open a single pseudo-terminal"
    return None


def tmpfs_bounds(limits):
    """Private /tmp, /var/tmp and /dev/shm are bounded in bytes and in inodes."""
    wrong = []
    for spec in limits:
        path, size, inodes = spec.split(":")
        if not os.path.isdir(path):
            continue
        st = os.statvfs(path)
        if st.f_blocks * st.f_frsize > int(size):
            wrong.append(f"{path} holds {st.f_blocks * st.f_frsize} bytes (bound {size})")
        if st.f_files == 0 or st.f_files > int(inodes):
            wrong.append(f"{path} holds {st.f_files} inodes (bound {inodes})")
    return "; ".join(wrong) if wrong else None


# ---- A working day: every step must succeed ----

def run(args, cwd, **kw):
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {(p.stderr or p.stdout).strip()[-200:]}")
    return p.stdout


def write_and_read(directory):
    path = os.path.join(directory, f".helios-battery-{os.getpid()}")
    with open(path, "w") as f:
        f.write("helios\n")
    with open(path) as f:
        ok = f.read() == "helios\n"
    os.unlink(path)
    return None if ok else f"{path} read back wrong"


def cc_make(work):
    if not shutil.which("cc") or not shutil.which("make"):
        return ("SKIP", "cc or make is not installed")
    d = os.path.join(work, "hello")
    os.makedirs(d)
    with open(os.path.join(d, "hello.c"), "w") as f:
        f.write('#include <stdio.h>\nint main(void) { printf("hello %d\\n", 6 * 7); return 0; }\n')
    with open(os.path.join(d, "Makefile"), "w") as f:
        f.write("hello: hello.c\n\t$(CC) -O2 -g -Wall -o $@ $<\n")
    run(["make"], d)
    out = run(["./hello"], d)
    return None if out == "hello 42\n" else f"./hello printed {out!r}"


def git(work):
    if not shutil.which("git"):
        return ("SKIP", "git is not installed")
    d = os.path.join(work, "repo")
    os.makedirs(d)
    env = dict(os.environ, GIT_AUTHOR_NAME="Helios", GIT_AUTHOR_EMAIL="helios@localhost",
               GIT_COMMITTER_NAME="Helios", GIT_COMMITTER_EMAIL="helios@localhost",
               GIT_CONFIG_NOSYSTEM="1")
    run(["git", "init", "-q"], d, env=env)
    with open(os.path.join(d, "README"), "w") as f:
        f.write("a working day\n")
    run(["git", "add", "README"], d, env=env)
    run(["git", "commit", "-q", "-m", "First"], d, env=env)
    out = run(["git", "log", "--format=%s"], d, env=env)
    return None if out.strip() == "First" else f"git log says {out!r}"


def python():
    out = run([sys.executable, "-c", "import json; print(json.dumps([6 * 7]))"], None)
    return None if out.strip() == "[42]" else f"python printed {out!r}"


def debug_child(work):
    """Tracing one's own child: strace, else gdb."""
    if shutil.which("strace"):
        out_file = os.path.join(work, "strace.out")
        run(["strace", "-f", "-o", out_file, "-e", "trace=execve", "true"], work)
        with open(out_file) as f:
            return None if "execve" in f.read() else "strace saw no execve"
    if shutil.which("gdb"):
        out = run(["gdb", "-batch", "-ex", "run", "-ex", "info inferiors", "--args", "true"], work)
        return None if "exited normally" in out else f"gdb: {out[-200:]!r}"
    return ("SKIP", "neither strace nor gdb is installed")


def pty_session():
    """A shell on a new pseudo-terminal, the way the worker starts a terminal."""
    pid, master = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", "stty cols 91 rows 17; stty size; echo helios-pty-ok"])
    out = b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    return None if "17 91" in text and "helios-pty-ok" in text else f"the terminal said {text!r}"


def sockets():
    """The families a working day needs: a local socket pair, TCP over IPv4 (and IPv6 where the
    machine has it), and the routing netlink the C library asks for addresses."""
    a, b = socket.socketpair()
    a.send(b"x")
    ok = b.recv(1) == b"x"
    a.close()
    b.close()
    if not ok:
        return "socketpair lost a byte"
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError as e:
        if e.errno != errno.EAFNOSUPPORT:
            raise
    socket.socket(AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE).close()
    socket.getaddrinfo("localhost", 80, flags=socket.AI_ADDRCONFIG)
    return None


def local_server(work):
    """A web server on a local port of one's own, fetched from one's own terminal."""
    import urllib.request
    d = os.path.join(work, "site")
    os.makedirs(d)
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write("helios-local-ok\n")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=d,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        server.kill()
        server.wait()
    if body != "helios-local-ok\n":
        return f"the local server sent {body!r}"
    # An abstract socket of one's own works too.
    name = f"helios-battery-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv, socket.socket(socket.AF_UNIX) as c:
        srv.bind("\0" + name)
        srv.listen(1)
        c.connect("\0" + name)
    return None


DAEMON_MARK = "helios-battery-daemon"


def leave_daemon(path):
    """A daemon the way a shell makes one: fork, setsid, fork again, and the middle one exits. It must
    not outlive the workspace (whoever runs the battery checks that after the workspace stopped); its
    command line carries DAEMON_MARK and its pid (as seen here) goes to path."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        if os.fork() == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            os.execvp("sleep", [DAEMON_MARK, "3600"])
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    daemon = os.read(r, 32).decode()
    os.close(r)
    with open(path, "w") as f:
        f.write(daemon + "\n")
    return None if daemon else "the daemon did not start"


def pip_user(work):
    """pip install --user of a local package into the home, and the package imported from there."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        return ("SKIP", "pip is not installed")
    d = os.path.join(work, "heliosdemo")
    os.makedirs(d)
    with open(os.path.join(d, "setup.py"), "w") as f:
        f.write("from setuptools import setup\nsetup(name='heliosdemo', version='1.0', py_modules=['heliosdemo'])\n")
    with open(os.path.join(d, "heliosdemo.py"), "w") as f:
        f.write("VALUE = 6 * 7\n")
    cmd = [sys.executable, "-m", "pip", "install", "--user", "--no-index", "--no-build-isolation", "--no-deps",
           "--no-cache-dir", "--quiet", d]
    p = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    if p.returncode != 0 and "externally-managed" in p.stdout + p.stderr:
        # Debian's own Python asks for this to install into the home (PEP 668).
        p = subprocess.run(cmd + ["--break-system-packages"], cwd=work, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return f"pip install --user failed: {(p.stderr or p.stdout).strip()[-300:]}"
    try:
        out = run([sys.executable, "-c", "import heliosdemo, site; print(heliosdemo.VALUE, heliosdemo.__file__"
                   ".startswith(site.getuserbase()))"], work)
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "--break-system-packages",
                        "heliosdemo"], cwd=work, capture_output=True)
    return None if out.split() == ["42", "True"] else f"the installed package said {out!r}"


def threads_and_fork():
    box = []
    t = threading.Thread(target=lambda: box.append(42))
    t.start()
    t.join()
    if box != [42]:
        return "a thread did not run"
    out = run(["sh", "-c", "echo $((6 * 7)) | cat"], None)
    return None if out.strip() == "42" else f"a pipeline printed {out!r}"


# ---- Main ----

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other-home", action="append", default=[],
                    help="another user's home directory (default: every other account's home)")
    ap.add_argument("--hidden", action="append", default=[],
                    help="a directory that must be invisible (default: /run/helios)")
    ap.add_argument("--socket", action="append", default=[],
                    help="a socket that must be unreachable: the launcher's, another user's worker")
    ap.add_argument("--pid", action="append", type=int, default=[],
                    help="a process outside the sandbox (root's, another user's)")
    ap.add_argument("--setuid", metavar="PROGRAM",
                    help="a set-user-ID root program that prints its effective uid")
    ap.add_argument("--workdir", help="where the working day happens (default: a new directory in $HOME)")
    ap.add_argument("--peer-port", action="append", type=int, default=[],
                    help="a TCP port another workspace listens on at its 127.0.0.1")
    ap.add_argument("--peer-abstract", action="append", default=[],
                    help="an abstract Unix socket (name without the leading NUL) another workspace listens on")
    ap.add_argument("--outbound", metavar="HOST:PORT",
                    help="a server outside that answers with a line: the workspace must reach it")
    ap.add_argument("--no-outbound", metavar="HOST:PORT",
                    help="the same, with outbound network turned off: the workspace must not reach it")
    ap.add_argument("--leave-daemon", metavar="FILE",
                    help="leave a double-forked daemon behind and write its pid to FILE")
    ap.add_argument("--mqueue", help="a POSIX message queue made outside, open to everyone")
    ap.add_argument("--shm-key", type=lambda v: int(v, 0), help="the key of a System V segment made outside")
    ap.add_argument("--leave-ipc", metavar="TAG",
                    help="leave a System V segment and queues /TAG-N (up to the pool's size) behind")
    ap.add_argument("--pty-bound", type=int, metavar="N",
                    help="the most pseudo-terminals a workspace may hold at once")
    ap.add_argument("--tmpfs-bound", action="append", default=[], metavar="PATH:BYTES:INODES",
                    help="the size of a private temporary directory")
    opts = ap.parse_args()

    if os.geteuid() == 0:
        report("FAIL", "battery.not_root", "run the battery as the sandboxed user, never as root")
        print(f"SUMMARY pass={results['PASS']} fail={results['FAIL']} skip={results['SKIP']}")
        return 1

    import pwd
    me = pwd.getpwuid(os.getuid())
    other_homes = opts.other_home
    if not other_homes:
        other_homes = sorted({p.pw_dir for p in pwd.getpwall()
                              if p.pw_uid != me.pw_uid and p.pw_dir.startswith("/home/")})
    hidden = opts.hidden or ["/run/helios"]

    check("escape.read_shadow", lambda: read_file("/etc/shadow"))
    check("escape.root_home", lambda: invisible_dir("/root"))
    for h in other_homes:
        check(f"escape.other_home:{h}", lambda h=h: invisible_dir(h))
    for d in hidden:
        check(f"escape.hidden:{d}", lambda d=d: invisible_dir(d))
    check("escape.write_usr", lambda: write_under("/usr") or write_under("/usr/local/bin"))
    check("escape.write_etc", lambda: write_under("/etc") or append_to("/etc/passwd"))
    for s in opts.socket:
        check(f"escape.connect:{s}", lambda s=s: connect(s))
    for p in opts.pid:
        check(f"escape.ptrace:{p}", lambda p=p: ptrace_other(p))
        check(f"escape.see_process:{p}", lambda p=p: see_process(p))
        check(f"escape.probe_process:{p}", lambda p=p: probe_process(p))
    for port in opts.peer_port:
        check(f"escape.loopback:{port}", lambda port=port: reach_loopback(port))
    for name in opts.peer_abstract:
        check(f"escape.abstract:{name}", lambda name=name: reach_abstract(name))
    if opts.peer_port or opts.peer_abstract:
        check("escape.proc_net", lambda: proc_net(set(opts.peer_port), opts.peer_abstract))
    if opts.no_outbound:
        check("escape.outbound_off", lambda: outbound_refused(opts.no_outbound))
    check("escape.mount", mount_tmpfs)
    check("escape.unshare_user", lambda: unshare_command("-U") or unshare_call(CLONE_NEWUSER))
    check("escape.unshare_mount", lambda: unshare_command("-m") or unshare_call(CLONE_NEWNS))
    check("escape.clone_newuser", lambda: clone_with(CLONE_NEWUSER))
    check("escape.clone_newuser_newns", lambda: clone_with(CLONE_NEWUSER | CLONE_NEWNS))
    check("escape.clone_newnet", lambda: clone_with(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID))
    check("escape.clone3_newuser", clone3_newuser)
    check("escape.setns", setns_init)
    check("escape.tiocsti", lambda: tty_inject(TIOCSTI))
    check("escape.tiocsti_high_bits", lambda: tty_inject(TIOCSTI, high=True))
    check("escape.tioclinux", lambda: tty_inject(TIOCLINUX))
    check("escape.tioclinux_high_bits", lambda: tty_inject(TIOCLINUX, high=True))
    check("escape.load_module", load_module)
    check("escape.bpf", bpf)
    check("escape.perf_event_open", perf_event_open)
    check("escape.setuid", lambda: setuid_programs(me.pw_name, opts.setuid))
    check("escape.reboot", reboot)
    check("escape.settimeofday", settimeofday)
    check("escape.keyctl", keyctl)
    check("escape.userfaultfd", userfaultfd)
    check("escape.chroot", chroot)
    check("escape.open_by_handle_at", open_by_handle)
    check("escape.devices", devices)
    check("escape.other_terminals", other_terminals)
    check("escape.open_other_terminal", open_other_terminal)
    check("escape.foreign_descriptors", foreign_descriptors)
    check("escape.worker_stdio", worker_stdio)
    check("escape.socket_families", socket_families)
    check("escape.io_uring", io_uring)
    if opts.mqueue or opts.shm_key is not None:
        check("escape.ipc_of_others", lambda: ipc_of_others(opts.mqueue, opts.shm_key))
    if opts.pty_bound:
        check("escape.pty_pool", lambda: pty_pool(opts.pty_bound))
    if opts.tmpfs_bound:
        check("escape.tmpfs_bounds", lambda: tmpfs_bounds(opts.tmpfs_bound))

    work = opts.workdir or tempfile.mkdtemp(prefix=".helios-battery-", dir=os.path.expanduser("~"))
    try:
        check("work.write_home", lambda: write_and_read(os.path.expanduser("~")))
        check("work.write_tmp", lambda: write_and_read(tempfile.gettempdir()))
        check("work.cc_make", lambda: cc_make(work))
        check("work.git", lambda: git(work))
        check("work.python", python)
        check("work.debug", lambda: debug_child(work))
        check("work.pty", pty_session)
        check("work.threads_fork", threads_and_fork)
        check("work.sockets", sockets)
        check("work.pip_user", lambda: pip_user(work))
        if opts.leave_ipc:
            check("work.ipc", lambda: ipc_left_behind(opts.leave_ipc, 300))
        check("work.local_server", lambda: local_server(work))
        if opts.outbound:
            check("work.outbound", lambda: outbound(opts.outbound))
        if opts.leave_daemon:
            check("work.leave_daemon", lambda: leave_daemon(opts.leave_daemon))
    finally:
        if not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"SUMMARY pass={results['PASS']} fail={results['FAIL']} skip={results['SKIP']}", flush=True)
    return 0 if results["FAIL"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
