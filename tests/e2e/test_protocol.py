"""JSON-RPC 2.0 and framing as a client sees them on the worker's socket."""

import json
import os
import socket
import time

import pytest

import helios




def test_worker_info(client, worker):
    info = client.call("worker:info")
    assert info["name"] == "helios-worker"
    assert info["uid"] == os.getuid()
    assert info["roots"] == [os.path.realpath(worker.home)]
    assert info["limits"]["maxMessageSize"] == 16 * 1024 * 1024


def test_parse_error_keeps_connection(client):
    client.send_raw(b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]\n')
    resp = client.recv()
    assert resp == {"jsonrpc": "2.0", "id": None,
                    "error": {"code": -32700, "message": resp["error"]["message"]}}
    assert client.call("worker:info")["name"] == "helios-worker"


@pytest.mark.parametrize("raw, code", [
    (b'{"jsonrpc":"2.0","method":1,"params":"bar"}', -32600),
    (b'{"jsonrpc":"1.0","method":"worker:info","id":1}', -32600),
    (b'{"method":"worker:info","id":1}', -32600),
    (b'{"jsonrpc":"2.0","method":"worker:info","id":{}}', -32600),
    (b'{"jsonrpc":"2.0","method":"worker:info","params":7,"id":1}', -32600),
    (b'1', -32600),
    (b'"text"', -32600),
    (b'[]', -32600),
])
def test_invalid_requests(client, raw, code):
    client.send_raw(raw + b"\n")
    resp = client.recv()
    assert resp["error"]["code"] == code
    assert "id" in resp


def test_unknown_method_answers_with_id(client):
    resp = client.request("no:such_method", {})
    assert resp["id"] == 1
    assert resp["error"]["code"] == -32601


def test_string_and_null_ids_are_echoed(client):
    client.send_raw(b'{"jsonrpc":"2.0","id":"abc","method":"worker:info"}\n')
    assert client.recv()["id"] == "abc"
    client.send_raw(b'{"jsonrpc":"2.0","id":null,"method":"worker:info"}\n')
    resp = client.recv()
    assert resp["id"] is None and "result" in resp


# Ids as clients write them, each to come back byte for byte: through a double, 8000000000000001
# would come back as 8e+15 and 12345678901234567890 as 1.23456789012346e+19.
EXACT_IDS = [b'0', b'-1', b'9007199254740992', b'8000000000000001', b'1e3', b'1.5', b'-0.000125E-7',
             b'12345678901234567890', b'"a\\"b\\\\c\\u00e9\\ud83d\\ude00\\/"', b'"\xc3\xa9\\t"']


def answer_id_text(line):
    """The id exactly as the answer's text writes it: the worker puts it right after "jsonrpc"."""
    prefix = b'{"jsonrpc":"2.0","id":'
    assert line.startswith(prefix), line
    return line[len(prefix):].split(b',"result"')[0].split(b',"error"')[0]


def request_with_id(rid, method="worker:info", key=b'"id"'):
    return b'{"jsonrpc":"2.0","method":"' + method.encode() + b'",' + key + b':' + rid + b'}'


@pytest.mark.parametrize("rid", EXACT_IDS)
def test_ids_are_echoed_exactly(client, rid):
    client.send_raw(request_with_id(rid) + b"\n")
    line = client.recv_line()
    assert answer_id_text(line) == rid
    assert "result" in json.loads(line)
    # Errors echo it too: an unknown method, and a request refused for a NUL in a string.
    client.send_raw(request_with_id(rid, "no:such") + b"\n")
    line = client.recv_line()
    assert answer_id_text(line) == rid and json.loads(line)["error"]["code"] == -32601
    client.send_raw(b'{"jsonrpc":"2.0","id":' + rid + b',"method":"x","params":{"a":"\\u0000"}}\n')
    line = client.recv_line()
    assert answer_id_text(line) == rid and json.loads(line)["error"]["code"] == -32600


def test_control_characters_around_an_id_are_not_echoed(client):
    # cJSON skips any byte up to the space between tokens; the answer must still be JSON.
    client.send_raw(b'{"jsonrpc":"2.0","method":"worker:info","id":\x03"abc"\x01}\n')
    line = client.recv_line()
    assert answer_id_text(line) == b'"abc"'
    assert json.loads(line)["id"] == "abc"


def test_ids_are_echoed_exactly_in_a_batch(client):
    members = [request_with_id(rid, "worker:info" if i % 2 else "no:such") for i, rid in enumerate(EXACT_IDS)]
    # A member whose "id" key is written with an escape, and spaces around the tokens.
    members.append(b' { "jsonrpc" : "2.0" , "method" : "worker:info" , "\\u0069d" : 8000000000000003 } ')
    client.send_raw(b"[" + b",".join(members) + b"]\n")
    line = client.recv_line()
    answers = json.loads(line)
    assert len(answers) == len(members)
    for rid in EXACT_IDS + [b'8000000000000003']:
        assert b'"id":' + rid + b',' in line, rid
    assert [a for a in answers if a["id"] == 8000000000000003][0]["result"]["name"] == "helios-worker"


def test_ids_are_echoed_exactly_through_the_gateway(gateway):
    rpc = gateway.rpc()
    for rid in EXACT_IDS:
        rpc.ws.send_text(request_with_id(rid).decode())
        line = rpc.ws.recv().encode()
        assert answer_id_text(line) == rid
    rpc.ws.send_text((b"[" + b",".join(request_with_id(rid) for rid in EXACT_IDS) + b"]").decode())
    line = rpc.ws.recv().encode()
    assert len(json.loads(line)) == len(EXACT_IDS)
    for rid in EXACT_IDS:
        assert b'"id":' + rid + b',' in line, rid
    rpc.close()


def test_notifications_are_never_answered(client):
    client.send_raw(b'{"jsonrpc":"2.0","method":"worker:info"}\n')
    client.send_raw(b'{"jsonrpc":"2.0","method":"no:such_method"}\n')
    client.send_raw(b'[{"jsonrpc":"2.0","method":"worker:info"},{"jsonrpc":"2.0","method":"x:y"}]\n')
    client.send_raw(b'{"jsonrpc":"2.0","id":99,"method":"worker:info"}\n')
    assert client.recv()["id"] == 99


def test_batch(client):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "worker:info"},
        {"jsonrpc": "2.0", "method": "worker:info"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"foo": "boo"},
        1,
    ]
    client.send(batch)
    resp = client.recv()
    assert isinstance(resp, list) and len(resp) == 4
    by_id = {r["id"]: r for r in resp if r["id"] is not None}
    assert "result" in by_id[1]
    assert by_id[2]["error"]["code"] == -32601
    assert sorted(r["error"]["code"] for r in resp if r["id"] is None) == [-32600, -32600]


def test_positional_params_are_invalid_params(client):
    client.send_raw(b'{"jsonrpc":"2.0","id":5,"method":"worker:info","params":[1,2]}\n')
    # worker:info takes no params, so positional ones are ignored like any unused member;
    # an unknown method still says so first.
    resp = client.recv()
    assert resp["id"] == 5


def test_nul_in_string_is_refused_not_truncated(client):
    client.send_raw(b'{"jsonrpc":"2.0","id":7,"method":"worker:info","params":{"x":"a\\u0000b"}}\n')
    resp = client.recv()
    assert resp["id"] == 7
    assert resp["error"]["code"] == -32600
    assert "NUL" in resp["error"]["message"]
    # An escaped backslash followed by u0000 is not a NUL.
    client.send_raw(b'{"jsonrpc":"2.0","id":8,"method":"worker:info","params":{"x":"a\\\\u0000b"}}\n')
    assert "result" in client.recv()


def test_invalid_utf8_is_a_parse_error(client):
    client.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"worker:info","params":{"x":"\xff\xfe"}}\n')
    assert client.recv()["error"]["code"] == -32700
    client.send_raw(b'{"jsonrpc":"2.0","id":2,"method":"worker:info","params":{"x":"\xed\xa0\x80"}}\n')
    assert client.recv()["error"]["code"] == -32700
    assert client.call("worker:info")


def test_deep_nesting_is_refused(client):
    client.send_raw(b"[" * 100000 + b"]" * 100000 + b"\n")
    resp = client.recv()
    assert resp["error"]["code"] in (-32600, -32700)
    assert client.call("worker:info")


def test_oversized_message_is_refused_and_connection_survives(make_worker):
    w = make_worker("--max-message-size", "65536")
    with w.connect() as c:
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "worker:info",
                          "params": {"pad": "x" * 200000}}).encode()
        c.send_raw(big + b"\n")
        resp = c.recv()
        assert resp["error"]["code"] == -32004
        assert resp["error"]["data"]["limit"] == 65536
        assert c.call("worker:info")["limits"]["maxMessageSize"] == 65536


def test_messages_split_across_writes_and_pipelined(client):
    msgs = b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "worker:info"}).encode() + b"\n"
        for i in range(200))
    for i in range(0, len(msgs), 7):
        client.send_raw(msgs[i:i + 7])
    ids = [client.recv()["id"] for _ in range(200)]
    assert ids == list(range(200))


def test_crlf_and_blank_lines(client):
    client.send_raw(b'\n\r\n  \n{"jsonrpc":"2.0","id":3,"method":"worker:info"}\r\n')
    assert client.recv()["id"] == 3


def test_many_clients_and_abrupt_disconnects(worker):
    clients = [worker.connect() for _ in range(20)]
    for i, c in enumerate(clients):
        c.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"worker:info"}')  # no LF: mid-message
        if i % 2:
            c.close()
    with worker.connect() as c:
        assert c.call("worker:info")
    for c in clients:
        c.close()


def test_connection_limit(make_worker):
    w = make_worker("--max-connections", "2")
    a, b = w.connect(), w.connect()
    assert a.call("worker:info") and b.call("worker:info")
    c = w.connect()
    with pytest.raises((EOFError, ConnectionResetError, BrokenPipeError)):
        c.call("worker:info", timeout=5)
    c.close()
    b.close()
    time.sleep(0.1)
    with w.connect() as d:
        assert d.call("worker:info")
    a.close()


def test_half_closed_client_still_gets_its_answers(worker):
    s = socket.socket(socket.AF_UNIX)
    s.connect(worker.sock)
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"worker:info"}\n')
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert json.loads(data)["id"] == 1
    s.close()


def test_idle_exit(make_worker):
    w = make_worker("--idle-timeout", "1")
    with w.connect() as c:
        assert c.call("worker:info")
    w.proc.wait(timeout=10)
    assert w.proc.returncode == 0


def test_clean_exit_on_sigterm(worker):
    with worker.connect() as c:
        assert c.call("worker:info")
        worker.proc.terminate()
        worker.proc.wait(timeout=10)
    assert worker.proc.returncode == 0
    assert "still open at exit" not in worker.read_log()


# ---- batches are bounded ----

def batch_of(member, n):
    return b"[" + b",".join([member] * n) + b"]\n"


def test_batch_member_limit(client):
    client.send_raw(batch_of(b"{}", 1024))
    answers = json.loads(client.recv_line())
    assert len(answers) == 1024 and {a["error"]["code"] for a in answers} == {-32600}
    client.send_raw(batch_of(b'{"jsonrpc":"2.0","method":"worker:info","id":1}', 1025))
    resp = client.recv()
    assert resp["id"] is None and resp["error"]["code"] == -32004
    assert resp["error"]["data"] == {"limit": 1024}
    assert client.call("worker:info")["name"] == "helios-worker"


def test_batch_answer_is_bounded_by_the_message_limit(make_worker):
    w = make_worker("--max-message-size", "65536")
    with w.connect() as c:
        info = b'{"jsonrpc":"2.0","method":"worker:info","id":1}'
        # Each answer is some 400 bytes: 100 fit, 1000 do not.
        c.send_raw(batch_of(info, 100))
        assert len(json.loads(c.recv_line())) == 100
        unknown = b'{"jsonrpc":"2.0","method":"no:such","id":"' + b"i" * 200 + b'"}'
        for message in (batch_of(info, 1000), batch_of(b"{}", 1000), batch_of(unknown, 250)):
            assert len(message) < 65536  # the request fits, its answer does not
            c.send_raw(message)
            line = c.recv_line()
            assert len(line) < 1024
            resp = json.loads(line)
            assert resp["id"] is None and resp["error"]["code"] == -32004
            assert resp["error"]["data"] == {"limit": 65536}
        # Members after the answer outgrew the limit are not run.
        create = b'{"jsonrpc":"2.0","method":"terminal:create","params":{"cols":80,"rows":24,"command":"sleep 100"},"id":2}'
        c.send_raw(b"[" + b",".join([info] * 200 + [create] * 10) + b"]\n")
        assert c.recv()["error"]["code"] == -32004
        assert c.call("terminal:list")["terminals"] == []
        assert c.call("worker:info")["limits"]["maxMessageSize"] == 65536


def test_huge_messages_keep_memory_bounded(worker, client):
    pid = worker.pid
    # 400 kB of invalid members once got a 21.8 MB answer; 10 MB took the worker to 941 MB.
    for n in (133000, 3400000):
        client.send_raw(batch_of(b"{}", n))
        line = client.recv_line(timeout=30)
        assert len(line) < 1024
        resp = json.loads(line)
        assert resp["id"] is None and resp["error"]["code"] == -32004
    # The same in one request: 5 million values in 10 MB of text would cost cJSON some 400 MB.
    for n, code in ((200000, -32601), (5000000, -32004)):
        client.send_raw(b'{"jsonrpc":"2.0","method":"no:such","id":1,"params":[' + b",".join([b"0"] * n) + b"]}\n")
        resp = client.recv(timeout=30)
        assert resp["error"]["code"] == code
    assert resp["id"] is None and resp["error"]["data"] == {"limit": 262144}
    assert client.call("worker:info")["name"] == "helios-worker"
    if not helios.sanitized(pid):
        assert int(helios.read_status(pid)["VmHWM"].split()[0]) < 100 * 1024


def test_a_big_message_keeps_its_place_among_the_connections_messages(worker, client):
    # A message this big is parsed off the worker's loop; the messages sent after it on the same
    # connection wait for it, so the read sees what the save before it wrote.
    path = os.path.join(worker.home, "order.txt")
    with open(path, "w") as f:
        f.write("old")
    content = "new " * (256 * 1024)
    save = {"jsonrpc": "2.0", "id": 1, "method": "fs:write_file", "params": {"path": path, "content": content}}
    read = {"jsonrpc": "2.0", "id": 2, "method": "fs:read_file", "params": {"path": path}}
    for _ in range(3):
        client.send_raw(json.dumps(save).encode() + b"\n" + json.dumps(read).encode() + b"\n")
        answers = {}
        while len(answers) < 2:
            msg = client.recv(timeout=30)
            answers[msg["id"]] = msg
        assert "result" in answers[1], answers[1]
        assert answers[2]["result"]["content"] == content
        with open(path, "w") as f:
            f.write("old")


def test_a_big_answer_keeps_its_place_among_the_connections_output(client):
    # A scrollback of this size is printed off the worker's loop; the terminal's output after it
    # waits for it, so the client never sees output that belongs after a scrollback it has not got.
    tid = client.call("terminal:create", {"cols": 80, "rows": 24,
                                          "command": "yes helios-output-after-the-scrollback"})["terminalId"]
    client.call("terminal:detach", {"terminalId": tid})
    time.sleep(1)
    client.send({"jsonrpc": "2.0", "id": 99, "method": "terminal:attach", "params": {"terminalId": tid}})
    while True:
        msg = client.recv(timeout=30)
        if msg.get("id") == 99:
            assert len(msg["result"]["scrollback"]) > 64 * 1024
            break
        assert not (msg.get("method") == "terminal:data_out" and msg["params"]["terminalId"] == tid), \
            "output of the terminal before the answer to terminal:attach"
    client.call("terminal:close", {"terminalId": tid})
