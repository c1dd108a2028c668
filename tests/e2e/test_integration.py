"""The services working together through the bus, as a user's day exercises them, and the worker's
contract with its service manager (sd_notify, idle exit)."""

import os
import socket
import time

import pytest

from helios import RpcError


@pytest.fixture
def notify_socket(tmp_path):
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    yield path, s
    s.close()


def read_notifications(s, until, timeout=10):
    """Collect sd_notify datagrams until `until(list_of_fields)` holds."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        got.extend(msg.split("\n"))
        if until(got):
            return got
    raise TimeoutError(f"sd_notify: only got {got}")


def test_ready_and_status(make_worker, notify_socket):
    path, s = notify_socket
    w = make_worker(env={"NOTIFY_SOCKET": path})
    with w.connect() as c:
        c.call("worker:info")
        got = read_notifications(s, lambda g: "STATUS=1 connection, 0 terminals, 0 open files" in g)
        # READY=1 comes once the socket is served, before this connection was accepted.
        assert "READY=1" in got
        assert got.index("READY=1") < got.index("STATUS=1 connection, 0 terminals, 0 open files")

        with open(w.path("a.txt"), "w") as f:
            f.write("hello\n")
        c.call("project:load", {"root": w.home})
        c.call("file:open", {"path": "a.txt"})
        c.call("terminal:create", {"cols": 80, "rows": 24, "command": "sleep 30"})
        read_notifications(s, lambda g: "STATUS=1 connection, 1 terminal, 1 open file" in g)


def test_live_terminal_keeps_idle_worker_alive(make_worker):
    w = make_worker("--idle-timeout", "1")
    with w.connect() as c:
        tid = c.call("terminal:create", {"cols": 80, "rows": 24, "command": "sleep 3"})["terminalId"]
    # No connection, but a live terminal: the worker stays.
    time.sleep(2)
    assert w.proc.poll() is None
    # The terminal ends by itself; then the idle timeout applies.
    w.proc.wait(timeout=15)
    assert w.proc.returncode == 0
    assert tid


def test_terminal_writes_reach_open_buffer(worker, client):
    """A file changed by a program in the terminal: the clean buffer follows, every client hears."""
    with open(worker.path("notes.txt"), "w") as f:
        f.write("one\n")
    client.call("project:load", {"root": worker.home})
    opened = client.call("file:open", {"path": "notes.txt"})
    assert opened["content"] == "one\n" and opened["dirty"] is False

    client.call("terminal:create", {"cols": 80, "rows": 24,
                                    "command": "printf 'two\\n' >> notes.txt"})
    ch = client.wait_notification("file:changed_on_disk",
                                  lambda p: p["path"].endswith("/notes.txt"), timeout=5)
    assert ch["kind"] in ("modified", "created")
    # A clean buffer reloads itself from disk.
    deadline = time.monotonic() + 5
    while True:
        again = client.call("file:open", {"path": "notes.txt"})
        if again["content"] == "one\ntwo\n" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert again["content"] == "one\ntwo\n"
    assert again["version"] > opened["version"]
    assert again["dirty"] is False


def test_dirty_buffer_is_never_overwritten_by_disk(worker, client):
    with open(worker.path("x.txt"), "w") as f:
        f.write("disk\n")
    client.call("project:load", {"root": worker.home})
    v = client.call("file:open", {"path": "x.txt"})["version"]
    client.call("file:edit", {"path": "x.txt", "version": v,
                              "changes": [{"from": 0, "to": 0, "insert": "mine "}]})
    with open(worker.path("x.txt"), "a") as f:
        f.write("theirs\n")
    client.wait_notification("file:changed_on_disk", lambda p: p["path"].endswith("/x.txt"), timeout=5)
    st = client.wait_notification(
        "state:updated",
        lambda p: any(f["path"].endswith("/x.txt") and f["diskChanged"] for f in p["openFiles"]),
        timeout=5)
    assert st
    assert client.call("file:open", {"path": "x.txt"})["content"] == "mine disk\n"
    with pytest.raises(RpcError) as e:
        client.call("file:save", {"path": "x.txt"})
    assert e.value.code == -32003
    with open(worker.path("x.txt")) as f:
        assert f.read() == "disk\ntheirs\n"
    client.call("file:save", {"path": "x.txt", "force": True})
    with open(worker.path("x.txt")) as f:
        assert f.read() == "mine disk\n"


def test_state_lists_terminals(worker, client):
    tid = client.call("terminal:create", {"cols": 80, "rows": 24})["terminalId"]
    st = client.wait_notification(
        "state:updated", lambda p: any(t["terminalId"] == tid for t in p["terminals"]), timeout=5)
    assert st
    state = client.call("workspace:state")
    assert any(t["terminalId"] == tid and t["alive"] for t in state["terminals"])
    client.call("terminal:close", {"terminalId": tid})


def test_worker_writes_are_not_reported_as_outside_changes(worker, client):
    client.call("project:load", {"root": worker.home})
    client.call("fs:write_file", {"path": "own.txt", "content": "by helios\n"})
    client.call("fs:create_directory", {"path": "d"})
    client.call("fs:rename", {"from": "own.txt", "to": "d/own.txt"})
    client.call("fs:delete", {"path": "d", "recursive": True})
    seen = [n for n in client.collect_notifications(1.0) if n["method"] == "file:changed_on_disk"]
    assert seen == []
    # An outside change right after is still reported.
    with open(worker.path("outside.txt"), "w") as f:
        f.write("x")
    client.wait_notification("file:changed_on_disk", lambda p: p["path"].endswith("/outside.txt"))


def test_many_users_worth_of_requests_stay_in_order(worker):
    """Interleaved requests from several connections each get exactly their own answers."""
    with open(worker.path("f.txt"), "w") as f:
        f.write("data")
    clients = [worker.connect() for _ in range(8)]
    for round_ in range(50):
        for i, c in enumerate(clients):
            c.send({"jsonrpc": "2.0", "id": f"{i}-{round_}", "method": "fs:read_file",
                    "params": {"path": worker.path("f.txt")}})
    for i, c in enumerate(clients):
        for round_ in range(50):
            r = c.wait_response(f"{i}-{round_}")
            assert r["result"]["content"] == "data"
        c.close()


def test_journal_is_not_reported_as_a_change(make_worker, tmp_path):
    """With the default layout the state directory lies inside the project ($HOME): the journal
    written on every keystroke must not reach clients as file:changed_on_disk."""
    home = os.path.join(str(tmp_path), "w", "home")
    w = make_worker(name="w", env={"XDG_STATE_HOME": os.path.join(home, ".local", "state")})
    with open(w.path("a.txt"), "w") as f:
        f.write("x\n")
    with w.connect() as c:
        c.call("project:load", {"root": w.home})
        v = c.call("file:open", {"path": "a.txt"})["version"]
        for i in range(20):
            v = c.call("file:edit", {"path": "a.txt", "version": v,
                                     "changes": [{"from": 0, "to": 0, "insert": "y"}]})["version"]
        seen = [n["params"]["path"] for n in c.collect_notifications(1.0)
                if n["method"] == "file:changed_on_disk"]
        assert seen == []
        assert c.call("worker:info")["stateDir"].startswith(w.home)
