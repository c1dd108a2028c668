"""tools/start as root: it serves the user who ran sudo (SUDO_USER), never root, or says what to do.
Driven without a browser: the gateway it starts is checked by its uid and its answers."""

import os
import pwd
import select
import shutil
import signal
import subprocess
import time

import pytest

import helios
from launcher_fixtures import userdel, useradd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tools/start's root path, accounts")

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
START = os.path.join(SOURCE, "tools", "start")
NAME = "helios-t-start"


@pytest.fixture
def account():
    home = f"/home/{NAME}"
    userdel(NAME)
    shutil.rmtree(home, ignore_errors=True)
    pw = useradd(NAME, home=home)
    yield pw
    assert pw.pw_uid != 0
    subprocess.run(["pkill", "-KILL", "-u", str(pw.pw_uid)], capture_output=True)
    time.sleep(0.2)
    userdel(NAME)
    shutil.rmtree(home, ignore_errors=True)


def start(sudo_user, *args):
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    env["HELIOS_BUILD_DIR"] = helios.BUILD_DIR
    if sudo_user is not None:
        env["SUDO_USER"] = sudo_user
    return subprocess.Popen([START, "--listen", "127.0.0.1:0", "--config", "/dev/null", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def read_lines(proc, n, timeout=15):
    out, deadline = b"", time.monotonic() + timeout
    while out.count(b"\n") < n and time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
    return out.decode()


def uid_of(pid):
    return int(helios.read_status(pid)["Uid"].split()[1])


def test_root_with_sudo_user_serves_that_user(account):
    proc = start(NAME)
    try:
        out = read_lines(proc, 3)
        assert f"Starting Helios for {NAME}, workspace {account.pw_dir}" in out, out
        line = next(l for l in out.splitlines() if l.startswith("Helios for "))
        assert line.startswith(f"Helios for {NAME}: http://127.0.0.1:"), line
        # tools/start became the gateway (exec), which runs as the account, not as root.
        assert os.path.basename(os.readlink(f"/proc/{proc.pid}/exe")) == "helios-gateway"
        assert uid_of(proc.pid) == account.pw_uid
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
        assert f"HOME={account.pw_dir}".encode() in env
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        assert helios.http_request("127.0.0.1", port, "GET", "/healthz").status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0


@pytest.mark.parametrize("sudo_user", [None, "", "root", "helios-no-such-user"])
def test_root_without_a_user_to_serve_says_what_to_do(sudo_user):
    proc = start(sudo_user)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert b"Helios for" not in out
    assert b"sudo" in err or b"no account" in err, err


def test_gateway_run_by_root_directly_exits():
    """What tools/start guards against, the gateway refuses on its own too."""
    gw = os.path.join(helios.BUILD_DIR, "gateway", "helios-gateway")
    out = subprocess.run([gw, "--listen", "127.0.0.1:0", "--config", "/dev/null"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 1 and "does not run as root" in out.stderr


def test_setup_for_running_needs_no_node_and_fetches_nothing_for_tests(tmp_path):
    """tools/start sets up with --run: building and serving Helios must not touch npm or node (the
    page is the committed bundle; playwright-core is for the browser tests only). Here npm and node
    fail loudly and leave a mark; the set-up still succeeds and never called them."""
    shims = tmp_path / "bin"
    shims.mkdir()
    mark = tmp_path / "called"
    for name in ("npm", "node", "npx"):
        shim = shims / name
        shim.write_text(f"#!/bin/sh\necho {name} >> {mark}\nexit 1\n")
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")
    setup = os.path.join(SOURCE, "tools", "setup")
    out = subprocess.run([setup, "--run", helios.BUILD_DIR], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert not mark.exists(), mark.read_text()
    with open(START) as f:
        assert "tools/setup --run " in f.read()
