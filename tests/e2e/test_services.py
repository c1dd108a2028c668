# SPDX-License-Identifier: MIT
"""Services on another connection: bus:serve over the worker's socket, requests forwarded under the
worker's own ids and answered under the client's, and what happens when the service goes."""

import json
import os
import subprocess
import sys
import time

import pytest

import helios

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "examples",
                       "wordcount-service.py")


@pytest.fixture
def run_example():
    """Start the example service joined to a worker over its socket; ended after the test."""
    procs = []

    def run(sock, as_gateway=False):
        cmd = [sys.executable, EXAMPLE, "--connect", sock]
        if as_gateway and os.geteuid() == 0:
            # The gateway's worker admits its own user only (root is nobody in its user namespace).
            acct = helios.e2e_account()
            cmd = ["setpriv", f"--reuid={acct.pw_uid}", f"--regid={acct.pw_gid}", "--clear-groups", *cmd]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        procs.append(p)
        return p

    yield run
    for p in procs:
        p.kill()
        p.wait()


def wait_served(conn, method, params):
    """Ask until the service has joined (-32601 until then); return the answer."""
    deadline = time.monotonic() + 10
    while True:
        resp = conn.request(method, params)
        if resp.get("error", {}).get("code") != -32601 or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def drive_example(conn, other):
    """What the example promises, driven through conn (a worker or /ws client); other sees the rest."""
    resp = wait_served(conn, "wc:count", {"text": "one two\nthree\n"})
    assert resp["result"] == {"lines": 2, "words": 3, "bytes": 14}
    assert conn.request("wc:count", {"text": 5})["error"]["code"] == -32602
    assert conn.request("wc:nothing", {})["error"]["code"] == -32601
    sid = conn.call("wc:stream", {"text": "a b\nc\nd e f", "chunk": 1})["streamId"]
    words = [conn.wait_notification("wc:chunk", lambda p: p["index"] == i)["words"] for i in range(3)]
    assert words == [2, 1, 3]
    assert conn.wait_notification("wc:done") == {"streamId": sid, "chunks": 3}
    # The stream went to the client that asked, not to the other one; wc:pong goes to everyone.
    conn.send({"jsonrpc": "2.0", "method": "wc:ping"})
    assert other.wait_notification("wc:pong", timeout=5.0) == {}
    assert conn.wait_notification("wc:pong", timeout=5.0) == {}
    # What the service sent before wc:pong reached other before it, so none of it is left unseen.
    assert [m["method"] for m in other.notifications if m["method"].startswith("wc:")] == []


def serve(conn, topics):
    return conn.request("bus:serve", {"topics": topics})


def test_a_connection_serves_topics(worker, client):
    with worker.connect() as svc:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        client.send({"jsonrpc": "2.0", "id": "c-1", "method": "demo:echo", "params": {"x": [1, "é"]}})
        req = svc.recv()
        assert req["method"] == "demo:echo"
        token = req["params"].pop("busClient")
        assert isinstance(token, str) and req["params"] == {"x": [1, "é"]}
        assert req["id"] != "c-1"
        svc.send({"jsonrpc": "2.0", "id": req["id"], "result": {"echo": req["params"]}})
        assert client.recv() == {"jsonrpc": "2.0", "id": "c-1", "result": {"echo": {"x": [1, "é"]}}}

        # Errors come back as the service gave them, under the client's id.
        client.send({"jsonrpc": "2.0", "id": 8000000000000001, "method": "demo:fail"})
        req = svc.recv()
        svc.send({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32001, "message": "nope", "data": {"k": 1}}})
        line = client.recv_line()
        assert line.startswith(b'{"jsonrpc":"2.0","id":8000000000000001,')
        assert json.loads(line)["error"] == {"code": -32001, "message": "nope", "data": {"k": 1}}

        # An answer to nothing it was asked is dropped; the connection goes on.
        svc.send({"jsonrpc": "2.0", "id": 123456, "result": True})
        assert svc.call("worker:info")["name"] == "helios-worker"


def test_topics_taken_or_built_in_are_refused(worker, client):
    with worker.connect() as svc, worker.connect() as other:
        assert svc.call("bus:serve", {"topics": ["demo:*", "solo:one"]}) == {}
        for topics in (["demo:x"], ["demo:*"], ["demo:e*"], ["solo:one"]):
            assert serve(other, topics)["error"]["code"] == -32005, topics
        for topics in (["fs:read_file"], ["fs:*"], ["bus:*"], ["terminal:create"], ["free:x", "workspace:state"]):
            resp = serve(other, topics)
            assert resp["error"]["code"] == -32002, topics
        for topics in ([], ["nocolon"], ["a*b:c"], [""], [1], "demo:x", ["x:" + "y" * 200]):
            assert serve(other, topics)["error"]["code"] == -32602, topics
        # Nothing was taken by the refused lists: free:x is still free.
        assert other.call("bus:serve", {"topics": ["free:x"]}) == {}
        # The same connection may name its own topics again, or widen them.
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        assert svc.call("bus:serve", {"topics": ["solo:*"]}) == {}
        other.send({"jsonrpc": "2.0", "id": 5, "method": "solo:two"})
        assert svc.recv()["method"] == "solo:two"


def test_service_gone(worker, client):
    svc = worker.connect()
    assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
    client.send({"jsonrpc": "2.0", "id": 7, "method": "demo:hold"})
    assert svc.recv()["method"] == "demo:hold"
    svc.close()
    resp = client.recv()
    assert resp["id"] == 7
    assert resp["error"]["code"] == -32603 and resp["error"]["data"]["reason"] == "service gone"
    # The topics are free again, and nobody serves them meanwhile.
    assert client.request("demo:hold")["error"]["code"] == -32601
    with worker.connect() as again:
        assert again.call("bus:serve", {"topics": ["demo:*"]}) == {}


def test_requests_in_flight_are_bounded(worker, client):
    with worker.connect() as svc:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        for i in range(257):
            client.send({"jsonrpc": "2.0", "id": i, "method": "demo:hold"})
        # The 257th is refused at once; the 256 before it reach the service.
        resp = client.recv()
        assert resp["id"] == 256 and resp["error"]["code"] == -32000
        ids = [svc.recv()["id"] for _ in range(256)]
        assert len(set(ids)) == 256


def test_subscribe(worker, client):
    with worker.connect() as sub:
        assert sub.call("bus:subscribe", {"topics": ["client:connected", "terminal:exit"]}) == {}
        for topics in ([], ["nocolon"], ["a*:b"], "x:y"):
            assert sub.request("bus:subscribe", {"topics": topics})["error"]["code"] == -32602, topics
        # An event inside the worker reaches it.
        with worker.connect():
            ev = sub.wait_notification("client:connected", timeout=5.0)
            assert isinstance(ev["clientId"], int)
        # One that every connection gets anyway comes once, not twice.
        tid = client.call("terminal:create", {"cols": 80, "rows": 24, "command": "exit 3"})["terminalId"]
        ev = sub.wait_notification("terminal:exit", lambda p: p["terminalId"] == tid, timeout=10.0)
        assert ev["exitCode"] == 3
        later = sub.collect_notifications(0.3)
        assert [m for m in later if m["method"] == "terminal:exit"] == []
        # A topic it did not name does not.
        assert [m for m in later if m["method"] == "client:disconnected"] == []


def test_service_notifications_are_published(worker, client):
    with worker.connect() as svc, worker.connect() as other, worker.connect() as sub:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        assert sub.call("bus:subscribe", {"topics": ["demo:*"]}) == {}
        svc.notify("demo:tick", {"n": 1})
        for conn in (client, other):
            assert conn.wait_notification("demo:tick", timeout=5.0) == {"n": 1}
        assert sub.wait_notification("demo:tick", timeout=5.0) == {"n": 1}
        # Once, though the subscriber is a client too; and not back to the service.
        assert [m for m in sub.collect_notifications(0.3) if m["method"] == "demo:tick"] == []
        assert [m for m in svc.collect_notifications(0.1) if m["method"] == "demo:tick"] == []

        # Only in its own namespace: a service cannot speak for the file system or another service.
        with worker.connect() as svc2:
            assert svc2.call("bus:serve", {"topics": ["solo:one"]}) == {}
            svc.notify("fs:changed", {"path": "/etc/passwd", "kind": "deleted"})
            svc.notify("solo:one", {"forged": True})
            svc2.notify("solo:two", {"n": 2})  # its namespace is "solo:"
            svc.notify("demo:bad", [1, 2])  # params that are not an object
            got = client.collect_notifications(0.5)
            assert [(m["method"], m.get("params")) for m in got] == [("solo:two", {"n": 2})]
            # The forged solo:one went to its server as an ordinary notification.
            req = svc2.recv()
            assert req["method"] == "solo:one" and "id" not in req


def test_service_internal_notification(worker, client):
    """busInternal: true publishes to the subscribers alone, as an in-process service's internal event."""
    with worker.connect() as svc, worker.connect() as sub:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        assert sub.call("bus:subscribe", {"topics": ["demo:*"]}) == {}
        svc.notify("demo:inner", {"n": 1, "busInternal": True})
        svc.notify("demo:outer", {"n": 2})
        assert sub.wait_notification("demo:inner", timeout=5.0) == {"n": 1}
        got = client.collect_notifications(0.5)
        assert [(m["method"], m.get("params")) for m in got] == [("demo:outer", {"n": 2})]


def test_service_notification_to_the_asking_client(worker, client):
    with worker.connect() as svc, worker.connect() as other:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        # A client cannot choose the token: whatever it sends is replaced by its own.
        client.send({"jsonrpc": "2.0", "id": 1, "method": "demo:find", "params": {"busClient": "777"}})
        req = svc.recv()
        mine = req["params"]["busClient"]
        other.send({"jsonrpc": "2.0", "id": 2, "method": "demo:find"})
        req2 = svc.recv()
        theirs = req2["params"]["busClient"]
        assert mine != theirs and mine != "777"
        assert req2["params"] == {"busClient": theirs}

        svc.notify("demo:results", {"busClient": mine, "hits": [1]})
        assert client.wait_notification("demo:results", timeout=5.0) == {"hits": [1]}
        svc.notify("demo:results", {"busClient": theirs, "hits": [2]})
        assert other.wait_notification("demo:results", timeout=5.0) == {"hits": [2]}
        assert [m for m in client.collect_notifications(0.3) if m["method"] == "demo:results"] == []

        # A token of nobody (unknown, malformed, a client gone): nobody gets it.
        with worker.connect() as gone:
            gone.send({"jsonrpc": "2.0", "id": 3, "method": "demo:find"})
            gone_token = svc.recv()["params"]["busClient"]
        for token in (gone_token, "999999", "0", "01", "x", 5, None):
            svc.notify("demo:results", {"busClient": token, "hits": [3]})
        got = client.collect_notifications(0.5) + other.collect_notifications(0.1)
        assert [m for m in got if m["method"] == "demo:results"] == []
        for r in (req, req2):
            svc.send({"jsonrpc": "2.0", "id": r["id"], "result": {}})
        assert client.recv()["id"] == 1 and other.recv()["id"] == 2


def test_example_service_by_bus_serve(worker, client, run_example):
    run_example(worker.sock)
    with worker.connect() as other:
        drive_example(client, other)


def test_example_service_through_the_gateway(gateway, run_example):
    ws = gateway.rpc()
    assert ws.call("worker:info")["name"] == "helios-worker"
    # The gateway's single-user mode: the one worker's socket in its runtime directory.
    sock = os.path.join(gateway.runtime, "worker.sock")
    run_example(sock, as_gateway=True)
    other = gateway.rpc()
    drive_example(ws, other)
    other.close()
    ws.close()


# ---- services started from manifests ----

def manifests(tmp_path, **levels):
    """Directories of manifests: levels maps system/admin/user to {name: manifest}; returns the
    worker's options naming them."""
    args = []
    for level in ("system", "admin", "user"):
        d = tmp_path / f"{level}-services"
        d.mkdir(exist_ok=True)
        for name, m in levels.get(level, {}).items():
            (d / f"{name}.json").write_text(m if isinstance(m, str) else json.dumps(m))
        args.append(f"--{level}-services={d}")
    return args


def started_pids(w, name):
    return [int(line.rsplit("(pid ", 1)[1].split(")")[0]) for line in w.read_log().splitlines()
            if f"Started the service {name} (pid " in line]


def test_manifest_starts_the_service_on_demand(make_worker, tmp_path):
    wc = {"exec": ["/bin/sh", "-c", f"echo hello from wc >&2; exec {sys.executable} {EXAMPLE}"],
          "topics": ["wc:*"]}
    w = make_worker(*manifests(tmp_path, user={"wordcount": wc}))
    with w.connect() as client, w.connect() as other:
        assert started_pids(w, "wordcount") == []  # not before it is asked for
        drive_example(client, other)
        pids = started_pids(w, "wordcount")
        assert len(pids) == 1 and helios.alive(pids[0])
        # Its stderr is in the worker's log, tagged with its name.
        deadline = time.monotonic() + 5
        while "wordcount: hello from wc" not in w.read_log():
            assert time.monotonic() < deadline, w.read_log()[-3000:]
            time.sleep(0.05)
        # Its topics are its own: no connection can take them.
        assert other.request("bus:serve", {"topics": ["wc:count"]})["error"]["code"] == -32005
        # Killed, it is started again by the next request (one that raced the kill fails "service gone").
        os.kill(pids[0], 9)
        deadline = time.monotonic() + 5
        while "error" in (resp := client.request("wc:count", {"text": "a"})):
            assert resp["error"]["data"]["reason"] == "service gone", resp
            assert time.monotonic() < deadline
        assert resp["result"]["words"] == 1
        pids = started_pids(w, "wordcount")
        assert len(pids) == 2
    # Killed with the worker.
    w.stop()
    deadline = time.monotonic() + 5
    while helios.alive(pids[1]):
        assert time.monotonic() < deadline
        helios.reap([pids[1]])
        time.sleep(0.05)


def test_manifest_restarts_are_bounded(make_worker, tmp_path):
    crash = {"exec": ["/bin/sh", "-c", "read line; exit 3"], "topics": ["crash:*"]}
    w = make_worker(*manifests(tmp_path, user={"crash": crash}))
    with w.connect() as client:
        for _ in range(5):
            err = client.request("crash:now", {})["error"]
            assert err["code"] == -32603 and err["data"]["reason"] == "service gone", err
        err = client.request("crash:now", {})["error"]
        assert err["code"] == -32603 and err["data"]["reason"] == "service failing", err
        assert "restarted too often" in err["message"]
        assert len(started_pids(w, "crash")) == 5
        assert "Service crash (pid" in w.read_log() and "exited with status 3" in w.read_log()
        # The worker itself goes on.
        assert client.call("worker:info")["name"] == "helios-worker"


def test_manifest_cannot_start(make_worker, tmp_path):
    gone = {"exec": ["/nonexistent/program"], "topics": ["gone:*"]}
    w = make_worker(*manifests(tmp_path, user={"gone": gone}))
    with w.connect() as client:
        err = client.request("gone:x", {})["error"]
        assert err["code"] == -32603 and err["data"]["reason"] == "service gone", err
        assert "Cannot start the service gone" in w.read_log()


def test_manifests_precedence_and_bad_ones(make_worker, tmp_path):
    example = [sys.executable, EXAMPLE]
    w = make_worker(*manifests(
        tmp_path,
        system={"wc": {"exec": ["/bin/false"], "topics": ["wc:*"]}},
        # The administrator's of the same name wins over the shipped one.
        admin={"wc": {"exec": example, "topics": ["wc:*"]}},
        user={
            # Not the user's to take: a built-in topic, an admin's topic, an admin's name, replacing.
            "mine": {"exec": example, "topics": ["fs:*"]},
            "theirs": {"exec": example, "topics": ["wc:count"]},
            "wc": {"exec": example, "topics": ["own:*"]},
            "swap": {"exec": example, "topics": ["swap:*"], "replaces": "terminal"},
            # Malformed.
            "bad1": "{not json",
            "bad2": {"exec": "python3", "topics": ["b:*"]},
            "bad3": {"exec": ["relative"], "topics": ["b:*"]},
            "bad4": {"exec": example, "topics": ["nocolon"]},
            "bad5": {"exec": example},
            "bad6": "x" * (65 * 1024),
        }))
    with w.connect() as client:
        assert client.call("wc:count", {"text": "a b"})["words"] == 2
        assert client.request("own:x", {})["error"]["code"] == -32601
        assert client.request("swap:x", {})["error"]["code"] == -32601
        assert client.call("terminal:list") is not None
        assert client.request("fs:stat", {"path": w.home})["result"]["type"] == "dir"
        log = w.read_log()
        assert "Not starting the service mine: its topic fs:* is served already." in log
        assert "Not starting the service theirs: its topic wc:count is served already." in log
        for name in ("bad1", "bad2", "bad3", "bad4", "bad5", "bad6", "swap"):
            assert f"Ignoring the service manifest {tmp_path}/user-services/{name}.json" in log, name


def test_admin_manifest_replaces_a_built_in_service(make_worker, tmp_path):
    example = [sys.executable, EXAMPLE]
    # The fs service's topics (fs:upload_* and fs:read_range are the upload service's).
    topics = ["fs:read_file", "fs:write_file", "fs:stat", "fs:list_directory", "fs:create_directory",
              "fs:rename", "fs:delete"]
    w = make_worker(*manifests(tmp_path, admin={"fs2": {"exec": example, "topics": topics, "replaces": "fs"}}))
    with w.connect() as client:
        # fs:stat now reaches the replacement (which has no fs:stat), not the built-in service.
        err = client.request("fs:stat", {"path": w.home})["error"]
        assert err["code"] == -32601
        assert client.request("fs:read_range", {})["error"]["code"] == -32602  # still the upload service's
        assert len(started_pids(w, "fs2")) == 1
        assert "The built-in fs service is replaced by a service manifest." in w.read_log()


def test_bus_services(make_worker, tmp_path):
    wc = {"exec": [sys.executable, EXAMPLE], "topics": ["wc:*"]}
    w = make_worker(*manifests(tmp_path, user={"wordcount": wc, "taken": {"exec": ["/bin/true"], "topics": ["fs:stat"]}}))
    with w.connect() as client, w.connect() as svc:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}

        def services():
            return {s["name"]: s for s in client.call("bus:services")["services"]}

        got = services()
        assert got["wordcount"] == {"name": "wordcount", "topics": ["wc:*"], "inProcess": False, "state": "stopped"}
        assert got["taken"]["state"] == "refused"
        assert got["fs"]["inProcess"] and "fs:read_file" in got["fs"]["topics"] and got["fs"]["state"] == "running"
        assert "fs:read_file" not in got["terminal"]["topics"] and "terminal:create" in got["terminal"]["topics"]
        assert {"bus:services", "worker:info"} <= set(got["worker"]["topics"]) and "bus:serve" in got["bus"]["topics"]
        conn = got["connection"]
        assert conn["topics"] == ["demo:*"] and conn["inProcess"] is False and isinstance(conn["clientId"], int)

        assert client.call("wc:count", {"text": "x"})["words"] == 1
        got = services()["wordcount"]
        assert got["state"] == "running" and got["pid"] == started_pids(w, "wordcount")[0]
        # The connection of a manifest's service is listed as the service, not as a connection.
        assert [s for s in client.call("bus:services")["services"] if s["name"] == "connection"] == [conn]


def test_manifest_service_through_the_gateway(make_gateway):
    g = make_gateway(start=False)
    # The user's own manifest, in the worker's home; the example copied there too (the sandbox
    # shows the worker its home, not the test's directories).
    services = os.path.join(g.home, ".config", "helios", "services")
    os.makedirs(services)
    script = os.path.join(g.home, "wordcount-service.py")
    with open(EXAMPLE) as src, open(script, "w") as dst:
        dst.write(src.read())
    with open(os.path.join(services, "wordcount.json"), "w") as f:
        json.dump({"exec": ["/usr/bin/python3", script], "topics": ["wc:*"]}, f)
    g.start()
    ws, other = g.rpc(), g.rpc()
    drive_example(ws, other)
    got = {s["name"]: s for s in ws.call("bus:services")["services"]}
    assert got["wordcount"]["state"] == "running" and isinstance(got["wordcount"]["pid"], int)
    other.close()
    ws.close()


def test_a_running_service_does_not_keep_the_worker_up(make_worker, tmp_path):
    wc = {"exec": [sys.executable, EXAMPLE], "topics": ["wc:*"]}
    w = make_worker("--idle-timeout=1", *manifests(tmp_path, user={"wordcount": wc}))
    with w.connect() as client:
        assert client.call("wc:count", {"text": "x"})["words"] == 1
    pid = started_pids(w, "wordcount")[0]
    # Its last client gone, the worker exits after its idle timeout and ends the service with it.
    deadline = time.monotonic() + 10
    while w.proc.poll() is None or helios.alive(pid):
        assert time.monotonic() < deadline, w.read_log()[-3000:]
        helios.reap([pid])
        time.sleep(0.05)
    assert "No connections and no terminals" in w.read_log()
