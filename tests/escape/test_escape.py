"""The embedded-mode sandbox against the escape battery, with real accounts.

Two accounts are made for the test: one to sandbox, one whose home and worker must stay out of its
reach. A root-owned runtime directory stands in for /run/helios, with listening sockets for the
launcher and the other account's worker, all left open to everyone on purpose: only the sandbox stands
between them and the battery. tests/escape/sandbox-exec enters the sandbox exactly as the launcher
does and runs tests/escape/battery.py inside; every escape must be refused and every step of the
working day must succeed. The same battery run as the same user without the sandbox shows that the
checks can fail at all.
"""

import ctypes
import os
import pwd
import re
import shutil
import signal
import secrets
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from battery import DAEMON_MARK  # noqa: E402 (tests/escape is on sys.path under pytest)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import helios  # noqa: E402 (the e2e tests' JSON-RPC client)
from launcher_fixtures import Launcher, as_user, kill_workers, remove_worker_cgroups, useradd, userdel  # noqa: E402

BUILD_DIR = os.environ.get("HELIOS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
SANDBOX_EXEC = os.environ.get("HELIOS_SANDBOX_EXEC") or os.path.join(BUILD_DIR, "tests", "sandbox-exec")
BATTERY = os.path.join(HERE, "battery.py")
PYTHON = "/usr/bin/python3"
POLICY = os.environ.get("HELIOS_POLICY") or os.path.join(BUILD_DIR, "policy", "helios-policy")
# policy_bounds.ptys in policy/limits.c (no directive carries it).
PTY_BOUND = 256

USER, PEER = "helios-t-sbx", "helios-t-sbx-peer"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create accounts and namespaces")

# Every check the battery must run and pass inside the sandbox (the per-path ones are added below).
REQUIRED = [
    "escape.read_shadow", "escape.root_home", "escape.write_usr", "escape.write_etc", "escape.mount",
    "escape.unshare_user", "escape.unshare_mount", "escape.clone_newuser", "escape.clone_newuser_newns",
    "escape.clone_newnet", "escape.clone3_newuser", "escape.setns", "escape.tiocsti",
    "escape.tiocsti_high_bits", "escape.tioclinux", "escape.tioclinux_high_bits", "escape.load_module",
    "escape.bpf", "escape.perf_event_open", "escape.setuid", "escape.reboot", "escape.settimeofday",
    "escape.keyctl", "escape.userfaultfd", "escape.chroot", "escape.open_by_handle_at", "escape.devices",
    "escape.other_terminals", "escape.open_other_terminal",
    "work.write_home", "work.write_tmp", "work.cc_make", "work.git", "work.python", "work.debug",
    "work.pty", "work.threads_fork", "escape.foreign_descriptors", "escape.worker_stdio",
    "escape.socket_families", "escape.io_uring", "escape.ipc_of_others", "escape.pty_pool",
    "escape.tmpfs_bounds", "work.sockets", "work.local_server", "escape.proc_net",
]

# The other workspace's server: a line on 127.0.0.1:PORT and on an abstract Unix socket, the way a
# student's `python3 -m http.server --bind 127.0.0.1` or a language server would listen.
PEER_SERVER = r"""
import os, socket, sys, threading, time
port, name = int(sys.argv[1]), sys.argv[2]
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
unix = socket.socket(socket.AF_UNIX)
try:
    tcp.bind(("127.0.0.1", port))
    unix.bind("\0" + name)
except OSError:
    # Taken: the other copy of this server shares this loopback (no network namespace between them).
    print("ready taken", flush=True)
    time.sleep(3600)
tcp.listen(16)
unix.listen(16)
def serve(s):
    while True:
        c, _ = s.accept()
        c.sendall(b"the other workspace's homework\n")
        c.close()
threading.Thread(target=serve, args=(unix,), daemon=True).start()
print("ready", os.getpid(), flush=True)
serve(tcp)
"""

# A server outside every workspace, in a network namespace of the test's own: what outbound reaches.
OUTSIDE_SERVER = r"""
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"helios-outbound-ok\n")
    c.close()
"""

PEER_PORT = 18731
PEER_ABSTRACT = "helios-t-peer-socket"
# The test's own network: the sandbox runs in namespace NET_OUTER, whose only way out is a veth pair
# to NET_HOST, where the outside server listens. Nothing of it touches the machine's own network.
OUTER_ADDR, HOST_ADDR, OUTSIDE_PORT = "10.213.0.1", "10.213.0.2", 18732


def tmpfs_bounds():
    """--tmpfs-bound arguments from the unit's TemporaryFileSystem= lines: the numbers of
    policy_bounds, as the policy writes them."""
    out = subprocess.run([POLICY, "--unit-directives"], capture_output=True, text=True, check=True).stdout
    bounds = []
    for m in re.finditer(r"^TemporaryFileSystem=([^:]+):\S*size=(\d+),nr_inodes=(\d+)", out, re.M):
        bounds += ["--tmpfs-bound", f"{m[1]}:{m[2]}:{m[3]}"]
    assert len(bounds) == 6, out
    return bounds


# ---- IPC objects on the host, through the C library ----

libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT, IPC_RMID = 0o1000, 0


def host_mqueue(name, create):
    """Make (open to all) or look for a POSIX message queue of the host; True when it exists."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    fd = libc.mq_open(name.encode(), flags, 0o666, None)
    if fd < 0:
        return False
    os.close(fd)
    return True


def host_mqueues_unlink(prefix, n):
    for i in range(n):
        libc.mq_unlink(f"{prefix}-{i}".encode())


def host_shm_segments(uid):
    """The System V segments of the host whose creator is uid."""
    with open("/proc/sysvipc/shm") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    return [r for r in rows if int(r[9]) == uid]



def retry(args):
    """useradd and userdel fail while another test holds the account files' lock."""
    for _ in range(50):
        p = subprocess.run(args, capture_output=True, text=True)
        if p.returncode == 0 or "lock" not in p.stderr:
            return p
        time.sleep(0.1)
    return p


def delete_user(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    retry(["userdel", "--remove", name])


def create_user(name, home=None, create_home=True):
    delete_user(name)  # a leftover of an interrupted run
    p = retry(["useradd", "--create-home" if create_home else "--no-create-home",
               "--home-dir", home or f"/home/{name}", "--user-group", "--shell", "/bin/bash", name])
    assert p.returncode == 0, p.stderr
    # A password: useradd leaves "!", a locked one, and a locked account gets no workspace.
    p = subprocess.run(["chpasswd"], input=f"{name}:{secrets.token_urlsafe(12)}\n", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return pwd.getpwnam(name)


SETUID_HELPER = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("%u\n", (unsigned)geteuid()); return 0; }
"""


class Setup:
    pass


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def make_networks(s):
    """Two network namespaces joined by a veth pair: the sandbox's 'machine' and an outside host."""
    s.outer, s.host = f"helios-t-{os.getpid()}-o", f"helios-t-{os.getpid()}-h"
    ip("netns", "add", s.outer)
    ip("netns", "add", s.host)
    ip("-n", s.outer, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", s.host)
    ip("-n", s.outer, "addr", "add", f"{OUTER_ADDR}/24", "dev", "eth0")
    ip("-n", s.host, "addr", "add", f"{HOST_ADDR}/24", "dev", "eth0")
    for ns in (s.outer, s.host):
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", s.outer, "route", "add", "default", "via", HOST_ADDR)


def in_outer(setup, args):
    return ["ip", "netns", "exec", setup.outer, *args]


def start_line_server(args, procs):
    """Start a server that prints 'ready ...' once it listens; return that line's words."""
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    procs.append(p)
    line = p.stdout.readline()
    assert line.startswith("ready"), f"{args}: {line!r} {p.stderr.read() if p.poll() is not None else ''}"
    return line.split()


def user_processes(uid, mark):
    """Host pids of uid's processes whose command line starts with mark."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].decode(errors="replace") == mark:
                    found.append(int(pid))
        except OSError:
            pass
    return found


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def setup():
    s = Setup()
    procs = []
    listeners = []
    s.run_dir = None
    s.outer = s.host = None
    try:
        s.user = create_user(USER)
        s.peer = create_user(PEER)
        # pasta runs as the user and needs the tun device, which Debian's udev leaves open to all.
        if os.stat("/dev/net/tun").st_mode & 0o777 != 0o666:
            os.chmod("/dev/net/tun", 0o666)
        make_networks(s)
        start_line_server(["ip", "netns", "exec", s.host, PYTHON, "-c", OUTSIDE_SERVER, HOST_ADDR,
                           str(OUTSIDE_PORT)], procs)
        s.outside = f"{HOST_ADDR}:{OUTSIDE_PORT}"

        # The other account's home is readable by all on the host: only the sandbox hides it.
        os.chmod(s.peer.pw_dir, 0o755)
        with open(os.path.join(s.peer.pw_dir, "secret.txt"), "w") as f:
            f.write("the other user's work\n")
        os.chmod(os.path.join(s.peer.pw_dir, "secret.txt"), 0o644)

        # A stand-in for /run/helios, open to everyone.
        s.run_dir = tempfile.mkdtemp(prefix="helios-t-run-", dir="/run")
        os.chmod(s.run_dir, 0o755)
        os.mkdir(os.path.join(s.run_dir, "workers"), 0o755)
        s.sockets = [os.path.join(s.run_dir, "launcher.sock"),
                     os.path.join(s.run_dir, "workers", f"{PEER}.sock")]
        for path in s.sockets:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            sock.listen(16)
            os.chmod(path, 0o666)
            listeners.append(sock)

        # Processes outside the sandbox: root's and the other account's.
        procs.append(subprocess.Popen(["sleep", "600"]))
        procs.append(subprocess.Popen(["setpriv", f"--reuid={s.peer.pw_uid}", f"--regid={s.peer.pw_gid}",
                                       "--init-groups", "sleep", "600"]))
        s.pids = [procs[-2].pid, procs[-1].pid]
        # The other account's workspace, sandboxed, with its servers on its own loopback; and the same
        # servers unsandboxed, for the run without the sandbox to find.
        peer_script = os.path.join(s.peer.pw_dir, "server.py")
        with open(peer_script, "w") as f:
            f.write(PEER_SERVER)
        os.chmod(peer_script, 0o644)
        start_line_server(in_outer(s, [SANDBOX_EXEC, "--user", PEER, "--", PYTHON, peer_script, str(PEER_PORT),
                                       PEER_ABSTRACT]), procs)
        s.peer_workspace_pid = user_processes(s.peer.pw_uid, PYTHON)
        assert len(s.peer_workspace_pid) == 1, s.peer_workspace_pid
        s.peer_workspace_pid = s.peer_workspace_pid[0]
        start_line_server(in_outer(s, ["setpriv", f"--reuid={s.peer.pw_uid}", f"--regid={s.peer.pw_gid}",
                                       "--init-groups", PYTHON, peer_script, str(PEER_PORT), PEER_ABSTRACT]),
                          procs)
        s.pids.append(s.peer_workspace_pid)
        # A terminal of root's on the host, which the sandbox's own devpts must not show.
        s.pty = os.openpty()

        # A set-user-ID root program in the sandboxed user's own home, the one place that is not
        # mounted nosuid: only no_new_privs keeps it from running as root.
        src = os.path.join(s.run_dir, "euid.c")
        with open(src, "w") as f:
            f.write(SETUID_HELPER)
        s.setuid = os.path.join(s.user.pw_dir, "euid")
        subprocess.run(["cc", "-o", s.setuid, src], check=True)
        os.chown(s.setuid, 0, 0)
        os.chmod(s.setuid, 0o4755)

        # The battery, where the sandboxed user can read it whatever the source tree's location.
        s.battery = os.path.join(s.user.pw_dir, "battery.py")
        shutil.copy(BATTERY, s.battery)
        os.chmod(s.battery, 0o644)
        # Likewise the worker (a build tree under /root would be hidden).
        s.worker = os.path.join(s.user.pw_dir, "helios-worker")
        shutil.copy(helios.WORKER, s.worker)
        os.chmod(s.worker, 0o755)

        # IPC objects of the host, open to all: a workspace with an IPC namespace of its own sees neither.
        s.mqueue = f"/helios-t-outside-{os.getpid()}"
        assert host_mqueue(s.mqueue, create=True)
        s.shm_key = 0x48540000 | (os.getpid() & 0xffff)
        s.shm_id = libc.shmget(s.shm_key, 4096, IPC_CREAT | 0o666)
        assert s.shm_id >= 0

        s.args = ["--other-home", s.peer.pw_dir, "--other-home", "/root",
                  "--hidden", s.run_dir, "--hidden", "/run/helios", "--setuid", s.setuid,
                  "--mqueue", s.mqueue, "--shm-key", hex(s.shm_key), "--pty-bound", str(PTY_BOUND),
                  *tmpfs_bounds(), "--peer-port", str(PEER_PORT), "--peer-abstract", PEER_ABSTRACT]
        s.daemon_file = os.path.join(s.user.pw_dir, "daemon.pid")
        for path in s.sockets:
            s.args += ["--socket", path]
        for pid in s.pids:
            s.args += ["--pid", str(pid)]
        yield s
    finally:
        if getattr(s, "mqueue", None):
            libc.mq_unlink(s.mqueue.encode())
        if getattr(s, "shm_id", -1) >= 0:
            libc.shmctl(s.shm_id, IPC_RMID, None)
        for fd in getattr(s, "pty", ()):
            os.close(fd)
        # The sandboxed peer's workspace ends with its first process; then its supervisor exits.
        kill_all([getattr(s, "peer_workspace_pid", None)] if getattr(s, "peer_workspace_pid", None) else [])
        for p in reversed(procs):
            p.kill()
            p.wait()
        for ns in (s.outer, s.host):
            if ns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for sock in listeners:
            sock.close()
        if s.run_dir:
            shutil.rmtree(s.run_dir, ignore_errors=True)
        delete_user(USER)
        delete_user(PEER)


def parse(out):
    """{name: (status, detail)} from the battery's lines; the SUMMARY line separately."""
    checks, summary = {}, None
    for line in out.splitlines():
        if line.startswith("SUMMARY "):
            summary = line
            continue
        status, _, rest = line.partition(" ")
        name, _, detail = rest.partition(" ")
        assert status in ("PASS", "FAIL", "SKIP"), f"unparseable line: {line!r}"
        assert name not in checks, f"check {name} reported twice"
        checks[name] = (status, detail)
    return checks, summary


def run_sandboxed(setup, *extra, sandbox=()):
    return subprocess.run(in_outer(setup, [SANDBOX_EXEC, "--user", USER, "--hide", setup.run_dir, *sandbox, "--",
                                           PYTHON, setup.battery, *setup.args, *extra]),
                          capture_output=True, text=True, timeout=600, cwd="/")


def required_checks(setup):
    required = REQUIRED + [f"escape.other_home:{setup.peer.pw_dir}", f"escape.hidden:{setup.run_dir}"]
    required += [f"escape.connect:{s}" for s in setup.sockets]
    required += [f"escape.{what}:{pid}" for pid in setup.pids for what in ("ptrace", "see_process",
                                                                           "probe_process")]
    required += [f"escape.loopback:{PEER_PORT}", f"escape.abstract:{PEER_ABSTRACT}", "work.outbound",
                 "work.leave_daemon"]
    return required


def test_battery_inside_the_sandbox(setup):
    tag = f"helios-t-left-{os.getpid()}"
    try:
        p = run_sandboxed(setup, "--leave-ipc", tag, "--outbound", setup.outside, "--leave-daemon",
                          setup.daemon_file)
        # What the battery left in its IPC namespace went with it: the machine's pools are untouched.
        assert not host_mqueue(f"/{tag}-0", create=False), "a message queue of the sandbox outlived it"
        assert host_shm_segments(setup.user.pw_uid) == [], "a System V segment of the sandbox outlived it"
    finally:
        host_mqueues_unlink(f"/{tag}", 300)
    checks, summary = parse(p.stdout)
    required = required_checks(setup) + ["work.ipc"]
    # The workspace is gone once the battery (its first process) exited, and its daemon with it.
    left = user_processes(setup.user.pw_uid, DAEMON_MARK)
    kill_all(left)
    assert not left, f"the battery's daemon outlived its workspace: pids {left}"

    not_passed = {n: c for n, c in checks.items() if c[0] != "PASS"}
    missing = [n for n in required if n not in checks]
    assert not not_passed and not missing, f"{not_passed} missing={missing}\n{p.stdout}\n{p.stderr}"
    assert summary == f"SUMMARY pass={len(checks)} fail=0 skip=0", p.stdout
    assert p.returncode == 0, p.stderr


def test_outbound_network_off(setup):
    """With the setting off, the workspace has its loopback and nothing else."""
    p = run_sandboxed(setup, "--no-outbound", setup.outside, sandbox=["--no-outbound-network"])
    checks, summary = parse(p.stdout)
    assert checks["escape.outbound_off"][0] == "PASS", p.stdout
    assert checks["work.local_server"][0] == "PASS", p.stdout
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"


def test_battery_without_the_sandbox_finds_the_holes(setup):
    """The same user, the same battery, no sandbox: what only the sandbox hides must show, or the
    checks above could not fail."""
    env = {"HOME": setup.user.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    tag = f"helios-t-left-{os.getpid()}"
    # The battery's standard error is a file of root's, as a worker's was the launcher's log.
    log = tempfile.TemporaryFile(dir="/run")
    try:
        p = subprocess.run(in_outer(setup, ["setpriv", f"--reuid={setup.user.pw_uid}",
                                            f"--regid={setup.user.pw_gid}", "--init-groups", "env", "-i",
                                            *[f"{k}={v}" for k, v in env.items()], PYTHON, setup.battery,
                                            *setup.args, "--leave-ipc", tag, "--no-outbound", setup.outside,
                                            "--leave-daemon", setup.daemon_file]),
                           stdout=subprocess.PIPE, stderr=log, text=True, timeout=600, cwd="/")
        # Without a namespace what was left behind stays in the machine's pools.
        assert host_mqueue(f"/{tag}-0", create=False)
        assert host_shm_segments(setup.user.pw_uid) != []
    finally:
        log.close()
        host_mqueues_unlink(f"/{tag}", 300)
        for row in host_shm_segments(setup.user.pw_uid):
            libc.shmctl(int(row[1]), IPC_RMID, None)
    checks, _ = parse(p.stdout)
    left = user_processes(setup.user.pw_uid, DAEMON_MARK)
    kill_all(left)
    assert left, "without the sandbox the battery's daemon should have stayed"
    expected = [f"escape.other_home:{setup.peer.pw_dir}", f"escape.hidden:{setup.run_dir}", "escape.setuid",
                "escape.other_terminals", "escape.foreign_descriptors", "escape.worker_stdio",
                "escape.socket_families", "escape.io_uring", "escape.ipc_of_others", "escape.pty_pool",
                "escape.tmpfs_bounds", f"escape.loopback:{PEER_PORT}", f"escape.abstract:{PEER_ABSTRACT}",
                "escape.proc_net", "escape.outbound_off"]
    expected += [f"escape.connect:{s}" for s in setup.sockets]
    expected += [f"escape.see_process:{pid}" for pid in setup.pids]
    expected += [f"escape.probe_process:{pid}" for pid in setup.pids]
    for name in expected:
        assert checks[name][0] == "FAIL", f"{name}: {checks[name]}\n{p.stdout}"
    assert p.returncode == 1


def test_sandbox_state(setup):
    """What the battery cannot see from inside: the process's identity and its limits."""
    script = ("import os, resource; s = open('/proc/self/status').read(); "
              "print(os.getresuid(), os.getresgid(), os.getgroups(), os.getcwd()); "
              "print(resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_NPROC)); "
              "print(sorted(l for l in s.splitlines() if l.split(':')[0] in "
              "('NoNewPrivs', 'Seccomp', 'CapEff', 'CapPrm', 'CapBnd', 'CapAmb')))")
    p = subprocess.run([SANDBOX_EXEC, "--user", USER, "--", PYTHON, "-c", script],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    ids, limits, status = p.stdout.splitlines()
    u, g = setup.user.pw_uid, setup.user.pw_gid
    assert ids == f"({u}, {u}, {u}) ({g}, {g}, {g}) [{g}] {setup.user.pw_dir}"
    assert limits == "(8192, 8192) (4096, 4096)"
    assert status == str(sorted(["NoNewPrivs:\t1", "Seccomp:\t2", "CapPrm:\t0000000000000000",
                                 "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
                                 "CapAmb:\t0000000000000000"]))


def test_home_elsewhere(setup):
    """A home outside /home (/srv/.../student) is the account's, from the password database: the worker
    starts there, the home is read-write, and the homes next to it, those under /home and the rest of
    the directory holding it are out of sight; the battery passes in it."""
    base = tempfile.mkdtemp(prefix="helios-t-homes-", dir="/srv")
    name, neighbour = "helios-t-sbx-srv", "helios-t-sbx-srv2"
    try:
        os.chmod(base, 0o755)
        user = create_user(name, home=os.path.join(base, name))
        other = create_user(neighbour, home=os.path.join(base, neighbour))
        os.chmod(other.pw_dir, 0o755)
        with open(os.path.join(other.pw_dir, "secret.txt"), "w") as f:
            f.write("the neighbour's work\n")
        os.chmod(os.path.join(other.pw_dir, "secret.txt"), 0o644)
        battery = os.path.join(user.pw_dir, "battery.py")
        shutil.copy(BATTERY, battery)
        os.chmod(battery, 0o644)

        script = (f'cd && touch "$HOME/written" && echo home-ok; ls -A /home; touch {base}/x 2>/dev/null '
                  f'|| echo ro-ok; ls -A {base}; cat {other.pw_dir}/secret.txt 2>/dev/null || echo hidden-ok')
        p = subprocess.run([SANDBOX_EXEC, "--user", name, "--", "/bin/sh", "-c", script],
                           capture_output=True, text=True, timeout=60, cwd="/")
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["home-ok", "ro-ok", name, "hidden-ok"], p.stdout
        assert os.path.exists(os.path.join(user.pw_dir, "written"))

        p = subprocess.run([SANDBOX_EXEC, "--user", name, "--", PYTHON, battery, "--other-home", other.pw_dir,
                            "--other-home", setup.peer.pw_dir, "--other-home", "/root"],
                           capture_output=True, text=True, timeout=600, cwd="/")
        checks, _ = parse(p.stdout)
        failed = {n: c for n, c in checks.items() if c[0] != "PASS"}
        assert not failed and p.returncode == 0, p.stdout + p.stderr
        assert checks[f"escape.other_home:{other.pw_dir}"][0] == "PASS"
    finally:
        delete_user(name)
        delete_user(neighbour)
        shutil.rmtree(base, ignore_errors=True)


def test_writable_workspace_root(setup):
    """A workspace root outside the home, owned by the user, is writable inside; a root in the other
    user's home or one the user does not own is refused."""
    base = tempfile.mkdtemp(prefix="helios-t-ws-", dir="/srv")
    try:
        os.chmod(base, 0o755)
        root = os.path.join(base, "project")
        os.mkdir(root)
        os.chown(root, setup.user.pw_uid, setup.user.pw_gid)
        script = f'touch {root}/made && echo root-ok; touch {base}/x 2>/dev/null || echo ro-ok'
        p = subprocess.run([SANDBOX_EXEC, "--user", USER, "--writable", root, "--", "/bin/sh", "-c", script],
                           capture_output=True, text=True, timeout=60, cwd="/")
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["root-ok", "ro-ok"], p.stdout
        assert os.path.exists(os.path.join(root, "made"))

        theirs = os.path.join(setup.peer.pw_dir, "shared")
        os.makedirs(theirs, exist_ok=True)
        os.chown(theirs, setup.user.pw_uid, setup.user.pw_gid)
        for bad in (theirs, base):
            p = subprocess.run([SANDBOX_EXEC, "--user", USER, "--writable", bad, "--", "/bin/true"],
                               capture_output=True, text=True)
            assert p.returncode == 125, (bad, p.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(os.path.join(setup.peer.pw_dir, "shared"), ignore_errors=True)


def test_home_the_sandbox_would_hide_is_refused():
    """A home under /tmp (private in the sandbox) cannot be given back; no half-applied sandbox."""
    base = tempfile.mkdtemp(prefix="helios-t-homes-", dir="/tmp")
    name = "helios-t-sbx-tmp"
    try:
        create_user(name, home=base, create_home=False)
        p = subprocess.run([SANDBOX_EXEC, "--user", name, "--", "/bin/true"], capture_output=True, text=True)
        assert p.returncode == 125, p.stderr
        assert "Invalid argument" in p.stderr
    finally:
        delete_user(name)
        shutil.rmtree(base, ignore_errors=True)


def test_hidden_directories_nested_or_already_covered(setup):
    """Hidden directories inside one another, or where the policy already covers everything (another
    home, /tmp), are fine: the sandbox starts, and they show nothing."""
    inner = os.path.join(setup.run_dir, "workers")
    below_peer = os.path.join(setup.peer.pw_dir, "sub")
    os.makedirs(below_peer, exist_ok=True)
    below_tmp = tempfile.mkdtemp(prefix="helios-t-hide-", dir="/tmp")
    try:
        script = f"ls -A {setup.run_dir} {inner} {below_peer} {below_tmp} 2>&1; echo done"
        p = subprocess.run([SANDBOX_EXEC, "--user", USER, "--hide", setup.run_dir, "--hide", inner,
                            "--hide", below_peer, "--hide", below_tmp, "--", "/bin/sh", "-c", script],
                           capture_output=True, text=True, timeout=60, cwd="/")
        assert p.returncode == 0, p.stderr
        assert "launcher.sock" not in p.stdout and f"{PEER}.sock" not in p.stdout, p.stdout
        assert p.stdout.rstrip().endswith("done"), p.stdout
    finally:
        os.rmdir(below_tmp)


def test_refused_accounts():
    """Root and unknown accounts get no sandbox (and no program runs)."""
    for user in ("root", "helios-t-no-such-user"):
        p = subprocess.run([SANDBOX_EXEC, "--user", user, "--", "/bin/true"], capture_output=True, text=True)
        assert p.returncode == 125, p.stderr
        assert "cannot plan the sandbox" in p.stderr


def battery_in_terminal(sock_path, command, timeout=300):
    """Run command in a terminal of the worker listening on sock_path; return its output."""
    # By connecting: the worker's socket is in its workspace's network namespace, whose /proc/net/unix
    # the test does not see.
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(sock_path)
            break
        except OSError:
            assert time.monotonic() < deadline, "the worker did not come up"
            time.sleep(0.05)
    out = ""
    with helios.Client(sock_path) as c:
        tid = c.call("terminal:create", {"cols": 200, "rows": 50, "command": command})["terminalId"]
        deadline = time.monotonic() + timeout
        while not re.search(r"SUMMARY [^\n]*\n", out.replace("\r", "")):
            left = deadline - time.monotonic()
            assert left > 0, f"no SUMMARY from the battery: {out[-2000:]!r}"
            out += c.wait_notification("terminal:data_out", lambda p: p["terminalId"] == tid,
                                       timeout=left)["data"]
    return out.replace("\r", "")


def stop_group(proc):
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_battery_in_a_worker_terminal(setup):
    """Embedded mode end to end: the worker started in the sandbox the way the launcher starts it,
    and the battery typed into one of its terminals."""
    sock_path = os.path.join(setup.user.pw_dir, "worker.sock")
    proc = subprocess.Popen(in_outer(setup, [SANDBOX_EXEC, "--user", USER, "--hide", setup.run_dir, "--",
                                             setup.worker, "--listen", sock_path, "--idle-timeout", "1s"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, cwd="/")
    try:
        out = battery_in_terminal(sock_path, [PYTHON, setup.battery, *setup.args, "--outbound", setup.outside,
                                              "--leave-daemon", setup.daemon_file])
    finally:
        stop_group(proc)
    # The worker stopped (idle): nothing of its workspace runs, the daemon its terminal left included.
    left = user_processes(setup.user.pw_uid, DAEMON_MARK)
    kill_all(left)
    assert not left, f"a daemon outlived the worker: pids {left}"
    checks, summary = parse(out[out.index("PASS ") if "PASS " in out else 0:])
    failed = {n: c for n, c in checks.items() if c[0] != "PASS"}
    assert not failed, out
    assert all(n in checks for n in REQUIRED + ["work.outbound", "work.leave_daemon"]), out
    assert summary == f"SUMMARY pass={len(checks)} fail=0 skip=0"
    assert proc.returncode == 0, proc.stderr.read()


def test_worker_seccomp_option(setup):
    """Under systemd the unit's directives build the mount namespace and the worker loads the filter
    itself (--seccomp): without any mount sandbox here, the system-call checks of the battery must
    still pass in its terminals, and the file-system ones show what the directives are for."""
    base = tempfile.mkdtemp(prefix="helios-t-seccomp-", dir=setup.user.pw_dir)
    os.chown(base, setup.user.pw_uid, setup.user.pw_gid)
    sock_path = os.path.join(base, "worker.sock")
    env = {"HOME": setup.user.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    proc = subprocess.Popen(["setpriv", f"--reuid={setup.user.pw_uid}", f"--regid={setup.user.pw_gid}",
                             "--init-groups", setup.worker, "--seccomp", "--listen", sock_path,
                             "--idle-timeout", "1s"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, cwd="/")
    try:
        out = battery_in_terminal(sock_path, [PYTHON, setup.battery, *setup.args])
    finally:
        stop_group(proc)
    checks, _ = parse(out[out.index("PASS ") if "PASS " in out else 0:])
    for name in ("escape.unshare_user", "escape.clone_newuser", "escape.clone_newuser_newns",
                 "escape.clone3_newuser", "escape.tiocsti", "escape.tiocsti_high_bits", "escape.keyctl",
                 "escape.userfaultfd", "escape.setuid", "escape.perf_event_open", "escape.mount"):
        assert checks[name][0] == "PASS", f"{name}: {checks[name]}\n{out}"
    assert all(checks[n][0] == "PASS" for n in checks if n.startswith("work.")), out
    assert checks[f"escape.hidden:{setup.run_dir}"][0] == "FAIL", out
    assert proc.returncode == 0, proc.stderr.read()


def launcher_worker_socket(launcher, gw, user):
    """Ask helios-launcher for user's worker, as the gateway does; the socket's path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(10)
    with as_user(gw):
        sock.connect(launcher.sock)
    try:
        sock.send(b"1\0worker\0" + user.encode() + b"\0")
        reply = sock.recv(8192)[:-1].split(b"\0")
    finally:
        sock.close()
    assert reply[:2] == [b"1", b"ok"], reply
    return reply[2].decode()


def terminal_as(sock_path, pw, command, timeout=300):
    """battery_in_terminal(), connected with pw's ids (the worker admits the gateway's group only)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with as_user(pw):
        s.connect(sock_path)
    c = helios.Client.__new__(helios.Client)
    c.path, c.timeout, c.sock, c.buf = sock_path, 30, s, b""
    c.notifications, c.responses, c.next_id = __import__("collections").deque(), {}, 1
    out = ""
    try:
        tid = c.call("terminal:create", {"cols": 200, "rows": 50, "command": command})["terminalId"]
        deadline = time.monotonic() + timeout
        while not re.search(r"SUMMARY [^\n]*\n", out.replace("\r", "")):
            left = deadline - time.monotonic()
            assert left > 0, f"no SUMMARY from the battery: {out[-2000:]!r}"
            out += c.wait_notification("terminal:data_out", lambda p: p["terminalId"] == tid,
                                       timeout=left)["data"]
    finally:
        c.close()
    return out.replace("\r", "")


def test_battery_in_a_launcher_worker(setup):
    """helios-launcher in embedded mode, started as an admin would, its errors going to a log file of
    root's: the worker it starts holds neither that file nor anything else of the launcher's (a student
    who copies the worker's descriptors 0-2 with pidfd_getfd gets /dev/null and her own pipe), and what
    the worker writes reaches the launcher's log tagged with its user."""
    gw_name = "helios-t-sbx-gw"
    userdel(gw_name)
    gw = useradd(gw_name, system=True)
    base = tempfile.mkdtemp(prefix="helios-t-launcher-", dir="/run")
    os.chmod(base, 0o755)
    launcher = Launcher(base, gw_name, "helios-t-sbx-none").start()
    try:
        path = launcher_worker_socket(launcher, gw, USER)
        # The launcher hides its own runtime directory, not the stand-in the other tests use.
        pairs = zip(setup.args[::2], setup.args[1::2])
        args = [x for k, v in pairs if not v.startswith(setup.run_dir) for x in (k, v)]
        out = terminal_as(path, gw, [PYTHON, setup.battery, *args, "--hidden", launcher.runtime,
                                      "--socket", launcher.sock])
        # The workspace's way out runs beside it, as the user (the machine's own network here).
        pasta = user_processes(setup.user.pw_uid, "pasta")
    finally:
        kill_workers([setup.user.pw_uid])
        remove_worker_cgroups([USER])
        launcher.assert_clean()
        userdel(gw_name)
        log = launcher.read_log()
        shutil.rmtree(base, ignore_errors=True)
    checks, summary = parse(out[out.index("PASS ") if "PASS " in out else 0:])
    failed = {n: c for n, c in checks.items() if c[0] != "PASS"}
    assert not failed, out
    assert all(n in checks for n in REQUIRED), out
    assert f"worker {USER}: " in log, log[-3000:]
    assert len(pasta) == 1, log[-3000:]


def test_battery_in_single_user_mode(setup):
    """The gateway's single-user mode (tools/start): the gateway runs as the person and starts the
    worker itself, its errors going to a file that is not the person's. The worker gets the policy's
    seccomp filter and no_new_privs, /dev/null and a pipe of its own for 0-2, and, with the
    machine's unprivileged user namespaces, IPC and mount namespaces of its own: other homes hidden,
    a devpts with the policy's bound, a bounded /dev/shm."""
    rundir = os.path.join(setup.user.pw_dir, "gateway-run")
    errors = os.path.join(setup.run_dir, "gateway.log")  # root's
    env = {"HOME": setup.user.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "HELIOS_LOG_LEVEL": "debug"}
    with open(errors, "wb") as log:
        proc = subprocess.Popen(["setpriv", f"--reuid={setup.user.pw_uid}", f"--regid={setup.user.pw_gid}",
                                 "--init-groups", helios.GATEWAY, "--listen", "127.0.0.1:0", "--web-root",
                                 helios.WEB_ROOT, "--worker", setup.worker, "--runtime-dir", rundir,
                                 "--config", "/dev/null"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, cwd="/")
    try:
        sock_path = os.path.join(rundir, "worker.sock")
        deadline = time.monotonic() + 20
        while not os.path.exists(sock_path) or not helios.is_listening(sock_path):
            assert proc.poll() is None and time.monotonic() < deadline, open(errors).read()
            time.sleep(0.05)
        shm = [a for a in setup.args if a.startswith("/dev/shm:")]
        args = ["--other-home", setup.peer.pw_dir, "--other-home", "/root", "--mqueue", setup.mqueue,
                "--shm-key", hex(setup.shm_key), "--pty-bound", str(PTY_BOUND), "--tmpfs-bound", shm[0]]
        out = terminal_as(sock_path, setup.user, [PYTHON, setup.battery, *args])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        stop_group(proc)
        kill_workers([setup.user.pw_uid])
        remove_worker_cgroups([USER])
        log = open(errors, errors="replace").read()
    checks, summary = parse(out[out.index("PASS ") if "PASS " in out else 0:])
    for name in ("escape.socket_families", "escape.io_uring", "escape.worker_stdio", "escape.foreign_descriptors",
                 "escape.unshare_user", "escape.clone_newuser", "escape.tiocsti", "escape.keyctl", "escape.bpf",
                 "escape.setuid", "escape.mount", "escape.ipc_of_others", "escape.pty_pool",
                 "escape.tmpfs_bounds", "escape.other_terminals", f"escape.other_home:{setup.peer.pw_dir}",
                 "escape.hidden:/run/helios"):
        assert checks.get(name, ("missing",))[0] == "PASS", f"{name}: {checks.get(name)}\n{out}"
    assert all(c[0] == "PASS" for n, c in checks.items() if n.startswith("work.")), out
    assert "user, mount and IPC namespaces of its own" in log, log[-3000:]
    for pattern in helios.SANITIZER_REPORTS:
        assert pattern not in log, log[-5000:]
