# SPDX-License-Identifier: MIT
"""Services on another connection: bus:serve over the worker's socket, requests forwarded under the
worker's own ids and answered under the client's, and what happens when the service goes."""

import json

import helios


def serve(conn, topics):
    return conn.request("bus:serve", {"topics": topics})


def test_a_connection_serves_topics(worker, client):
    with worker.connect() as svc:
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}
        client.send({"jsonrpc": "2.0", "id": "c-1", "method": "demo:echo", "params": {"x": [1, "é"]}})
        req = svc.recv()
        assert req["method"] == "demo:echo" and req["params"] == {"x": [1, "é"]}
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
        # The same connection may name its own topics again.
        assert svc.call("bus:serve", {"topics": ["demo:*"]}) == {}


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
