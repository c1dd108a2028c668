"""Who may talk to a worker: only its own user, root, and uids or groups it was told to serve.
Real Unix accounts, a real socket-activated worker running as one of them."""

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import helios

OWNER, STRANGER = "helios-t-owner", "helios-t-other"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create accounts")


def ensure_user(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


@pytest.fixture(scope="module")
def accounts():
    return ensure_user(OWNER), ensure_user(STRANGER)


@pytest.fixture
def base():
    """A directory every account can traverse (pytest's own temporary tree is root's alone)."""
    d = tempfile.mkdtemp(prefix="helios-peers-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_worker_as(owner, base, *args):
    home = os.path.join(base, "home")
    os.makedirs(home)
    os.chown(home, owner.pw_uid, owner.pw_gid)
    os.chmod(base, 0o755)
    sock = os.path.join(base, "worker.sock")
    log = open(os.path.join(base, "worker.log"), "ab")
    env = dict(os.environ, HOME=home)
    env.pop("XDG_STATE_HOME", None)
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", sock,
         "-E", "HOME", "-E", "ASAN_OPTIONS", "-E", "UBSAN_OPTIONS",
         "setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups",
         helios.WORKER, *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True)
    deadline = time.monotonic() + 10
    while not helios.is_listening(sock):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    # Let anyone connect: the worker's own check is what is tested.
    os.chmod(sock, 0o666)
    return proc, sock


CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
data = b""
try:
    # A refused peer is disconnected at once: its write may already fail.
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"worker:info"}\\n')
    while not data.endswith(b"\\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except (ConnectionResetError, BrokenPipeError):
    pass
print(json.dumps(json.loads(data)["result"]["uid"]) if data else "refused")
"""


def ask_as(user, sock):
    out = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
         sys.executable, "-c", CLIENT, sock],
        capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def stop(proc):
    proc.terminate()
    proc.wait(timeout=10)


def test_other_users_are_refused(accounts, base):
    owner, stranger = accounts
    proc, sock = start_worker_as(owner, base)
    try:
        assert ask_as(owner, sock) == str(owner.pw_uid)
        assert ask_as(stranger, sock) == "refused"
        # The owner is still served after a stranger was turned away.
        assert ask_as(owner, sock) == str(owner.pw_uid)
    finally:
        stop(proc)


def test_allowed_group_is_served(accounts, base):
    owner, stranger = accounts
    group = grp.getgrgid(stranger.pw_gid).gr_name
    proc, sock = start_worker_as(owner, base, "--allow-group", group)
    try:
        assert ask_as(stranger, sock) == str(owner.pw_uid)
    finally:
        stop(proc)


def test_allowed_uid_is_served(accounts, base):
    owner, stranger = accounts
    proc, sock = start_worker_as(owner, base, "--allow-uid", str(stranger.pw_uid))
    try:
        assert ask_as(stranger, sock) == str(owner.pw_uid)
    finally:
        stop(proc)
