"""The [worker] section of helios.conf and worker.d/USER.conf, read by the worker itself at its start:
the idle timeout, a terminal idle timeout that ends forgotten terminals so that the worker can exit, the
limits, and files that are refused."""

import os
import pwd
import subprocess
import time

import pytest

import helios
from test_terminal import create, listed, read_output, wait_exit


def write_conf(base, text, mode=0o644, user_text=None):
    """helios.conf (gateway settings first, then [worker]) and, with user_text, worker.d/USER.conf for the
    account running the tests (the worker's own)."""
    path = os.path.join(base, "helios.conf")
    with open(path, "w") as f:
        f.write("# The gateway's settings come first.\nmax_sessions = 100\n\n[worker]\n" + text)
    os.chmod(path, mode)
    if user_text is not None:
        d = os.path.join(base, "worker.d")
        os.makedirs(d, exist_ok=True)
        user = pwd.getpwuid(os.geteuid()).pw_name
        with open(os.path.join(d, user + ".conf"), "w") as f:
            f.write(user_text)
        os.chmod(os.path.join(d, user + ".conf"), 0o644)
    return path


def test_a_forgotten_terminal_ends_and_the_worker_then_exits(make_worker, tmp_path):
    # The section sets an hour; the user's own file, which wins, two seconds.
    conf = write_conf(str(tmp_path), "idle_timeout = 1s\nterminal_idle_timeout = 1h\n",
                      user_text="terminal_idle_timeout = 2s\n")
    w = make_worker("--config", conf)
    with w.connect() as c:
        tid = create(c, "sleep 1000")
        leader = listed(c, tid)["pid"]
    started = time.monotonic()
    # No page, no input, no output: ended after 2 s, then the worker's own 1 s idle exit.
    w.proc.wait(timeout=20)
    assert w.proc.returncode == 0
    assert time.monotonic() - started >= 2
    log = w.read_log()
    assert f"Ending terminal {tid} (pid {leader}): no input, output or page" in log, log[-2000:]
    assert "No connections and no terminals for 1 s, exiting." in log, log[-2000:]


def test_active_and_attached_terminals_are_kept(make_worker, tmp_path):
    conf = write_conf(str(tmp_path), "terminal_idle_timeout = 2s\n")
    w = make_worker("--config", conf)
    creator = w.connect()
    quiet = create(creator, "sleep 1000")
    busy = create(creator, "while true; do echo tick; sleep 0.3; done")
    # Input is not echoed, and nothing reads it: only the typing keeps this one.
    typed = create(creator, "stty -echo; echo ready; exec sleep 1000")
    read_output(creator, busy, "tick")
    read_output(creator, typed, "ready")
    creator.close()  # all three detached now
    page = w.connect()
    watched = create(page, "sleep 1000")  # attached to an open page, and silent
    # Past twice the limit, typing into one all along.
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        page.call("terminal:data_in", {"terminalId": typed, "data": "x"})
        time.sleep(0.5)
    assert wait_exit(page, quiet, timeout=1)["terminalId"] == quiet
    assert listed(page, busy)["alive"], "a terminal printing output was ended"
    assert listed(page, typed)["alive"], "a terminal being typed into was ended"
    assert listed(page, watched)["alive"], "a terminal attached to a page was ended"
    # Typing stopped: it goes the way of the quiet one.
    assert wait_exit(page, typed, timeout=10)["terminalId"] == typed
    assert listed(page, watched)["alive"]
    page.close()


def test_limits_come_from_the_section_and_the_command_line_wins(make_worker, tmp_path):
    conf = write_conf(str(tmp_path), "max_terminals = 1\nmax_connections = 2\n")
    w = make_worker("--config", conf, "--max-connections", "5", name="limits")
    c = w.connect()
    create(c, "sleep 1000")
    with pytest.raises(helios.RpcError) as e:
        create(c, "sleep 1000")
    assert "terminal" in str(e.value).lower()
    # Five connections, as the command line says, not the file's two.
    others = [w.connect() for _ in range(4)]
    for o in others:
        assert o.call("worker:info")["pid"]
    for o in others:
        o.close()
    c.close()


@pytest.mark.parametrize("text, mode, why", [
    ("terminal_idle_timeout = soon\n", 0o644, "invalid value 'soon' for terminal_idle_timeout"),
    ("fork_bombs = 3\n", 0o644, "unknown setting 'fork_bombs' in [worker]"),
    ("max_terminals = 3\n", 0o666, "must be a regular file of root's that nobody else may write"),
    ("max_terminals = 3\n[workers]\n", 0o644, "unknown section '[workers]'"),
])
def test_a_file_in_error_starts_no_worker(tmp_path, text, mode, why):
    conf = write_conf(str(tmp_path), text, mode=mode)
    out = subprocess.run([helios.WORKER, "--config", conf, "--listen", str(tmp_path / "w.sock")],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state")))
    assert out.returncode != 0
    assert why in out.stderr, out.stderr
    # helios-gateway --check-config says the same of the file it reads.
    out = subprocess.run([helios.GATEWAY, "--check-config", "-c", conf, f"--web-root={helios.WEB_ROOT}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0, out.stdout
    assert why in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: writes /etc/helios/worker.d and runs a worker as another account")
def test_the_admins_files_must_be_roots_even_for_their_own_user(tmp_path):
    """A worker runs as its user: a worker.d/USER.conf that user owns (chowned by mistake) would let the user
    set their own limits. Beside the admin's file only root's files count; a file named with --config (a
    developer's, a test's) may also be the reader's own."""
    acct = helios.e2e_account()
    run = tmp_path / "run"
    run.mkdir()
    own = write_conf(str(run), "max_terminals = 3\n")
    user_dir = "/etc/helios/worker.d"
    made = [d for d in ("/etc/helios", user_dir) if not os.path.isdir(d)]
    for d in made:
        os.mkdir(d, 0o755)
    path = os.path.join(user_dir, acct.pw_name + ".conf")
    assert not os.path.exists(path)
    try:
        with open(path, "w") as f:
            f.write("max_terminals = 4096\n")
        os.chown(path, acct.pw_uid, acct.pw_gid)
        os.chmod(path, 0o644)
        env = dict(os.environ, HOME=str(run), XDG_STATE_HOME=str(run / "state"))
        cmd = helios.as_test_account([helios.WORKER, "--listen", str(run / "w.sock")], str(run))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
        assert out.returncode != 0
        assert f"{path} must be a regular file of root's that nobody else may write" in out.stderr, out.stderr
        # Its own file, named on the command line, is read (and then the worker serves until stopped).
        cmd = helios.as_test_account([helios.WORKER, "--config", own, "--idle-timeout", "1s",
                                      "--listen", str(run / "w2.sock")], str(run))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
        assert "must be a regular file" not in out.stderr, out.stderr
        assert out.returncode == 0, out.stderr[-2000:]
    finally:
        os.unlink(path)
        for d in reversed(made):
            os.rmdir(d)
