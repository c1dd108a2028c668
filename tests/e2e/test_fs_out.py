# SPDX-License-Identifier: MIT
"""The file-system service out of the worker's process: helios-fs, started from the shipped manifest
that replaces the built-in service. (The fs, workspace, terminal and upload suites run against it
too: meson's e2e-*-fs-out tests, HELIOS_E2E_FS=out.)"""

import json
import os
import signal
import socket
import subprocess
import time

import helios


def fs_worker(make_worker, tmp_path, *args):
    return make_worker("--admin-services", helios.write_fs_manifest(str(tmp_path / "admin-services")), *args)


def services(client):
    return {s["name"]: s for s in client.call("bus:services")["services"]}


def wait_gone(pid):
    deadline = time.monotonic() + 10
    while helios.alive(pid):
        assert time.monotonic() < deadline, f"helios-fs {pid} still running"
        helios.reap([pid])
        time.sleep(0.02)


def test_the_manifest_names_every_fs_topic(worker, client):
    """The shipped manifest claims exactly what the built-in fs service serves: a method added to the
    service and not to the manifest would be lost to a worker running helios-fs."""
    with open(helios.FS_MANIFEST) as f:
        manifest = json.load(f)
    built_in = services(client)["fs"]
    assert built_in["inProcess"] is True
    assert sorted(manifest["topics"]) == sorted(built_in["topics"])
    assert manifest["replaces"] == "fs"


def test_fs_is_served_out_of_process(make_worker, tmp_path):
    w = fs_worker(make_worker, tmp_path)
    with w.connect() as client:
        listed = services(client)
        assert listed["fs"]["inProcess"] is False and listed["fs"]["replaces"] == "fs"
        assert listed["fs"]["state"] == "stopped"  # started on the first request
        client.call("project:load", {"root": w.home})
        path = w.path("hello.txt")
        client.call("fs:write_file", {"path": path, "content": "héllo"})
        assert client.call("fs:read_file", {"path": "hello.txt"})["content"] == "héllo"
        fs = services(client)["fs"]
        assert fs["state"] == "running" and isinstance(fs["pid"], int)
        status = helios.read_status(fs["pid"])
        assert os.readlink(f"/proc/{fs['pid']}/exe") == os.path.realpath(helios.HELIOS_FS)
        # A child of the worker, as its user.
        worker_pid = int(client.call("worker:info")["pid"])
        assert int(status["PPid"]) == worker_pid
        assert status["Uid"].split()[0] == str(os.getuid())
        assert "The built-in fs service is replaced by a service manifest." in w.read_log()
        # Changes made by others are reported by it, published as the worker's own fs service's.
        with open(w.path("other.txt"), "w") as f:
            f.write("x")
        change = client.wait_notification("file:changed_on_disk",
                                          lambda p: p["path"] == w.path("other.txt"))
        assert change["kind"] in ("created", "modified")
        pid = fs["pid"]
    # It ends with the worker.
    w.stop()
    wait_gone(pid)


def test_killed_helios_fs_fails_what_it_was_asked_and_comes_back(make_worker, tmp_path):
    w = fs_worker(make_worker, tmp_path)
    with w.connect() as client:
        client.call("project:load", {"root": w.home})
        with open(w.path("a.txt"), "w") as f:
            f.write("a")
        pid = services(client)["fs"]["pid"]
        # Stopped, it holds the request in flight; killed, the request fails "service gone".
        os.kill(pid, signal.SIGSTOP)
        rid = "in-flight"
        client.send({"jsonrpc": "2.0", "id": rid, "method": "fs:read_file", "params": {"path": w.path("a.txt")}})
        time.sleep(0.2)
        assert rid not in client.responses
        os.kill(pid, signal.SIGKILL)
        resp = client.wait_response(rid)
        assert resp["error"]["code"] == -32603 and resp["error"]["data"]["reason"] == "service gone", resp
        wait_gone(pid)
        # The next request starts it again; it finds the loaded project by itself.
        assert client.call("fs:read_file", {"path": "a.txt"})["content"] == "a"
        again = services(client)["fs"]
        assert again["state"] == "running" and again["pid"] != pid
        # It learns the loaded project from the worker's answer to its workspace:state, which reaches it
        # before any request sent after its first answer: once that is answered, the project is watched.
        client.call("fs:stat", {"path": "."})
        with open(w.path("b.txt"), "w") as f:
            f.write("b")
        client.wait_notification("file:changed_on_disk", lambda p: p["path"] == w.path("b.txt"))


def test_a_user_manifest_cannot_replace_fs(make_worker, tmp_path):
    user = str(tmp_path / "user-services")
    helios.write_fs_manifest(user)
    w = make_worker(f"--user-services={user}")
    with w.connect() as client:
        assert services(client)["fs"]["inProcess"] is True
        client.call("fs:stat", {"path": w.home})
    assert "only an administrator's manifest may replace a built-in service" in w.read_log()


class FakeWorker:
    """helios-fs started as the worker starts it (stdin and stdout one end of a socket pair), with this
    test as the worker: what it asks at start is answered here."""

    def __init__(self, home, state, max_message=65536):
        self.sock, child = socket.socketpair()
        self.log = open(os.path.join(state, "helios-fs.log"), "wb")
        self.proc = subprocess.Popen([helios.HELIOS_FS], stdin=child, stdout=child, stderr=self.log,
                                     env={**os.environ, "HELIOS_LOG_LEVEL": "debug"})
        child.close()
        self.buf = b""
        self.next_id = 1
        info = self.recv()
        assert info["method"] == "worker:info"
        self.send({"jsonrpc": "2.0", "id": info["id"], "result": {
            "roots": [home], "home": home, "stateDir": state, "watchExclude": [],
            "limits": {"maxMessageSize": max_message, "maxWatches": 100}}})
        asked = [self.recv() for _ in range(3)]
        assert [m["method"] for m in asked] == ["bus:serve", "bus:subscribe", "workspace:state"]
        assert "fs:read_file" in asked[0]["params"]["topics"]
        assert asked[1]["params"]["topics"] == ["project:loaded"]
        for m in asked[:2]:
            self.send({"jsonrpc": "2.0", "id": m["id"], "result": {}})
        self.send({"jsonrpc": "2.0", "id": asked[2]["id"], "result": {"root": home, "openFiles": []}})

    def send(self, msg):
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def recv(self, timeout=10.0):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            assert data, "helios-fs closed the connection"
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.sock.close()
        assert self.proc.wait(timeout=10) == 0
        self.log.close()


def rss_kib(pid):
    return int(helios.read_status(pid)["VmRSS"].split()[0])


def test_helios_fs_bounds_what_it_reads_and_holds(tmp_path):
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    state.mkdir()
    (home / "f.txt").write_bytes(b"y" * 60000)
    w = FakeWorker(str(home), str(state))
    try:
        # A message over the limit is dropped; the connection goes on.
        w.sock.sendall(b'{"jsonrpc":"2.0","id":"big","method":"fs:stat","params":{"x":"' + b"z" * 200000 + b'"}}\n')
        w.send({"jsonrpc": "2.0", "id": "after", "method": "fs:stat", "params": {"path": "f.txt"}})
        resp = w.recv()
        assert resp["id"] == "after" and resp["result"]["size"] == 60000
        # Asked without end while nobody reads its answers, it stops reading: its memory stays bounded
        # (each answer is 60 KB; without the bound it would hold them all), and nothing is lost.
        before = rss_kib(w.proc.pid)
        w.sock.setblocking(False)
        req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "fs:read_file",
                          "params": {"path": "f.txt"}}).encode() + b"\n"
        pending, sent = b"", 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sent < 20000:
            try:
                if not pending:
                    pending = req
                n = w.sock.send(pending)
                pending = pending[n:]
                sent += not pending
            except BlockingIOError:
                time.sleep(0.01)
        grown = rss_kib(w.proc.pid) - before
        assert grown < 48 * 1024, f"helios-fs grew by {grown} KiB with {sent} requests unread"
        for _ in range(sent):
            assert w.recv()["result"]["size"] == 60000
        if pending:  # the rest of a request cut short
            w.sock.setblocking(True)
            w.sock.sendall(pending)
            assert w.recv()["result"]["size"] == 60000
    finally:
        w.close()
    log = open(state / "helios-fs.log").read()
    assert "Dropping a message from the worker over" in log
    for pattern in helios.SANITIZER_REPORTS + ("still open at exit",):
        assert pattern not in log, log[-4000:]
