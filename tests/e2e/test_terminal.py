"""Terminals as a client sees them: PTYs owned by the worker, streamed as JSON-RPC notifications."""

import json
import os
import re
import signal
import time

import pytest

import helios

def create(c, command=None, cols=80, rows=24, **extra):
    params = {"cols": cols, "rows": rows, **extra}
    if command is not None:
        params["command"] = command
    return c.call("terminal:create", params)["terminalId"]


def is_output(tid):
    return lambda p: p["terminalId"] == tid


def read_output(c, tid, until, timeout=10.0):
    """terminal:data_out text for tid, accumulated until the regex `until` matches it."""
    out = ""
    deadline = time.monotonic() + timeout
    while not re.search(until, out):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{until!r} not seen; got {out[-800:]!r}")
        out += c.wait_notification("terminal:data_out", is_output(tid), timeout=left)["data"]
    return out


def wait_exit(c, tid, timeout=10.0):
    return c.wait_notification("terminal:exit", is_output(tid), timeout=timeout)


def listed(c, tid):
    for t in c.call("terminal:list")["terminals"]:
        if t["terminalId"] == tid:
            return t
    return None


def process_gone(pid):
    """True once pid has exited (a zombie counts: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)  # orphans end up with the test as their subreaper
        except ChildProcessError:
            pass
        return True
    return False


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def vm_kib(pid, field):
    return int(helios.read_status(pid)[field].split()[0])


# ---- basics ----

def test_create_echo_and_list(client):
    tid = create(client)
    assert isinstance(tid, str) and tid
    client.call("terminal:data_in", {"terminalId": tid, "data": "echo $((6*7))\n"})
    # The echoed command line holds "6*7", not "42": only the shell's answer matches.
    read_output(client, tid, r"\b42\r\n")
    t = listed(client, tid)
    assert t["cols"] == 80 and t["rows"] == 24 and t["alive"] is True
    assert t["pid"] > 0 and "exitCode" not in t and "signal" not in t
    assert create(client) != tid


def test_login_shell_is_default(client):
    tid = create(client)
    client.call("terminal:data_in", {"terminalId": tid, "data": "echo \"A0=$0 SH=$(shopt -q login_shell && echo login)\"\n"})
    read_output(client, tid, r"A0=-bash SH=login")


@pytest.mark.parametrize("params", [
    {},
    {"cols": 80},
    {"rows": 24},
    {"cols": 0, "rows": 24},
    {"cols": 80, "rows": 0},
    {"cols": 1001, "rows": 24},
    {"cols": 80, "rows": 1001},
    {"cols": -1, "rows": 24},
    {"cols": 80.5, "rows": 24},
    {"cols": "80", "rows": 24},
    {"cols": 80, "rows": True},
    {"cols": 80, "rows": 24, "cwd": 5},
    {"cols": 80, "rows": 24, "cwd": ""},
    {"cols": 80, "rows": 24, "command": 5},
    {"cols": 80, "rows": 24, "command": []},
    {"cols": 80, "rows": 24, "command": ["ls", 1]},
    {"cols": 80, "rows": 24, "command": {"sh": "-c"}},
    [80, 24],
])
def test_create_invalid_params(client, params):
    resp = client.request("terminal:create", params)
    assert resp["error"]["code"] == -32602, resp
    assert client.call("terminal:list")["terminals"] == []


def test_size_limits_are_inclusive(client):
    tid = create(client, "stty size", cols=1000, rows=1)
    read_output(client, tid, r"1 1000")
    tid = create(client, "stty size", cols=1, rows=1000)
    read_output(client, tid, r"1000 1")


def test_other_methods_invalid_params(client):
    tid = create(client)
    bad = [
        ("terminal:data_in", {"terminalId": tid}),
        ("terminal:data_in", {"terminalId": tid, "data": 5}),
        ("terminal:data_in", {"terminalId": tid, "data": ["x"]}),
        ("terminal:resize", {"terminalId": tid, "cols": 0, "rows": 5}),
        ("terminal:resize", {"terminalId": tid, "cols": 5, "rows": 1001}),
        ("terminal:resize", {"terminalId": tid, "cols": "5", "rows": 5}),
        ("terminal:resize", {"terminalId": tid}),
        ("terminal:attach", {}),
        ("terminal:close", {}),
        ("terminal:detach", {}),
        ("terminal:pause", {}),
        ("terminal:resume", {}),
        ("terminal:data_in", {"data": "x"}),
        ("terminal:list", [1]),
        ("terminal:close", [tid]),
    ]
    for method, params in bad:
        resp = client.request(method, params)
        assert resp["error"]["code"] == -32602, (method, params, resp)
    assert listed(client, tid)["alive"] is True


@pytest.mark.parametrize("tid", ["999", "", 1, None, True, [], {}, 1.5])
def test_unknown_terminal_any_type(client, tid):
    create(client)
    calls = [
        ("terminal:data_in", {"data": "x"}),
        ("terminal:resize", {"cols": 10, "rows": 10}),
        ("terminal:close", {}),
        ("terminal:attach", {}),
        ("terminal:detach", {}),
        ("terminal:pause", {}),
        ("terminal:resume", {}),
    ]
    for method, params in calls:
        resp = client.request(method, {"terminalId": tid, **params})
        err = resp["error"]
        assert err["code"] == -32010, (method, resp)
        assert err["data"] == {"terminalId": tid}


# ---- output and the process inside ----

def test_utf8_split_across_writes_and_invalid_bytes(client):
    # "€" is E2 82 AC: the first two bytes and the last arrive in separate reads.
    tid = create(client, "printf 'A\\342\\202'; sleep 0.3; printf '\\254B\\n'; printf 'x\\377y\\n'; sleep 0.2")
    out = read_output(client, tid, r"x.y\r\n")
    assert "A€B\r\n" in out
    assert "x\ufffdy\r\n" in out
    assert out.count("\ufffd") == 1


def test_incomplete_sequence_at_exit_is_replaced(client):
    tid = create(client, "printf 'end\\342\\202'")
    out = read_output(client, tid, r"end\ufffd")
    wait_exit(client, tid)
    assert "end" in out


def test_environment(client):
    tid = create(client, 'echo "T=$TERM C=$COLORTERM L=${LISTEN_FDS-unset}/${LISTEN_PID-unset}/'
                         '${LISTEN_FDNAMES-unset} N=${NOTIFY_SOCKET-unset} H=${HELIOS_LOG_LEVEL-unset} '
                         'HOME=$HOME"')
    out = read_output(client, tid, r"HOME=\S+\r\n")
    assert "T=xterm-256color C=truecolor L=unset/unset/unset N=unset H=unset " in out


def test_session_leader_with_controlling_tty(client):
    tid = create(client, 'read -r l < /proc/$$/stat; echo "STAT $$ ${l##*) }"; '
                         'echo "PS $(ps -o sid=,tty= -p $$)"; '
                         'if exec 3</dev/tty; then echo CTTY-OK; fi')
    out = read_output(client, tid, r"CTTY-OK")
    pid, _state, _ppid, pgrp, sid, tty_nr = re.search(r"STAT (\d+) (\S) (\d+) (\d+) (\d+) (\d+)", out).groups()
    assert pid == pgrp == sid
    assert int(tty_nr) != 0
    assert int(pid) == listed(client, tid)["pid"]
    ps_sid, ps_tty = re.search(r"PS\s+(\d+)\s+(\S+)", out).groups()
    assert ps_sid == pid and ps_tty.startswith("pts/")


def test_resize(client):
    tid = create(client, "trap 'echo \"WINCH $(stty size)\"' WINCH; echo \"SIZE $(stty size)\"; "
                         "while :; do sleep 0.05; done", cols=80, rows=24)
    read_output(client, tid, r"SIZE 24 80")
    assert client.call("terminal:resize", {"terminalId": tid, "cols": 101, "rows": 31}) == {}
    read_output(client, tid, r"WINCH 31 101")
    t = listed(client, tid)
    assert (t["cols"], t["rows"]) == (101, 31)


def test_exit_code(client):
    tid = create(client, "exit 3")
    assert wait_exit(client, tid) == {"terminalId": tid, "exitCode": 3, "signal": None}
    t = listed(client, tid)
    assert t["alive"] is False and t["exitCode"] == 3 and "signal" not in t


def test_killed_shell_reports_signal(client):
    tid = create(client)
    client.call("terminal:data_in", {"terminalId": tid, "data": "echo ready-$((1+1))\n"})
    read_output(client, tid, r"ready-2")
    os.kill(listed(client, tid)["pid"], signal.SIGKILL)
    assert wait_exit(client, tid) == {"terminalId": tid, "exitCode": None, "signal": "SIGKILL"}
    t = listed(client, tid)
    assert t["alive"] is False and t["signal"] == "SIGKILL" and "exitCode" not in t


def test_exit_goes_to_every_client(worker):
    with worker.connect() as a, worker.connect() as b:
        tid = create(a, "sleep 0.3; exit 7")
        assert wait_exit(b, tid)["exitCode"] == 7
        assert wait_exit(a, tid)["exitCode"] == 7


def test_output_before_exit_is_complete(client):
    tid = create(client, "seq 1 20000")
    out = ""
    while True:
        msg = client.recv()
        if msg.get("method") == "terminal:exit":
            assert msg["params"]["terminalId"] == tid
            break
        if msg.get("method") == "terminal:data_out":
            assert msg["params"]["terminalId"] == tid
            out += msg["params"]["data"]
    assert out.split("\r\n")[:-1] == [str(i) for i in range(1, 20001)]


def test_ctrl_c_interrupts(client):
    tid = create(client)
    client.call("terminal:data_in", {"terminalId": tid, "data": "sleep 100\n"})
    read_output(client, tid, r"sleep 100\r\n")
    time.sleep(0.5)  # let the shell start sleep in the foreground
    started = time.monotonic()
    client.call("terminal:data_in", {"terminalId": tid, "data": "\x03"})
    client.call("terminal:data_in", {"terminalId": tid, "data": "echo after-$((5+5))\n"})
    read_output(client, tid, r"after-10\r\n", timeout=10)
    assert time.monotonic() - started < 10


def test_title(client):
    tid = create(client, "printf '\\033]0;first title\\007'; printf '\\033]2;s\\303\\251cond\\033\\\\'; "
                         "echo done; sleep 100")
    read_output(client, tid, r"done")
    assert wait_until(lambda: listed(client, tid).get("title") == "s\u00e9cond", 3)


# ---- attach, detach, reconnect ----

def test_survives_disconnect_and_reattach(worker):
    a = worker.connect()
    tid = create(a)
    a.call("terminal:data_in", {"terminalId": tid, "data": "echo first-$((1+1))\n"})
    read_output(a, tid, r"first-2\r\n")
    a.close()

    with worker.connect() as b:
        t = listed(b, tid)
        assert t and t["alive"] is True
        r = b.call("terminal:attach", {"terminalId": tid})
        assert r["terminalId"] == tid and r["alive"] is True
        assert (r["cols"], r["rows"]) == (80, 24)
        assert "first-2\r\n" in r["scrollback"]
        b.call("terminal:data_in", {"terminalId": tid, "data": "echo second-$((2+1))\n"})
        read_output(b, tid, r"second-3\r\n")


def test_attach_snapshot_and_stream_lose_and_repeat_nothing(worker):
    with worker.connect() as a, worker.connect() as b:
        tid = create(a, "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo L$i; sleep 0.01; done; sleep 0.3")
        read_output(a, tid, r"L30\r\n")
        snapshot = b.call("terminal:attach", {"terminalId": tid})["scrollback"]
        assert "L30\r\n" in snapshot and "L300\r\n" not in snapshot
        stream = ""
        while True:
            msg = b.recv()
            if msg.get("method") == "terminal:exit":
                break
            if msg.get("method") == "terminal:data_out":
                stream += msg["params"]["data"]
        lines = re.findall(r"L(\d+)\r\n", snapshot + stream)
        assert [int(x) for x in lines] == list(range(1, 301))


def test_two_attached_clients_both_get_output(worker):
    with worker.connect() as a, worker.connect() as b:
        tid = create(a)
        b.call("terminal:attach", {"terminalId": tid})
        a.call("terminal:data_in", {"terminalId": tid, "data": "echo both-$((20+22))\n"})
        read_output(a, tid, r"both-42\r\n")
        read_output(b, tid, r"both-42\r\n")


def test_detach_stops_stream_and_reading_goes_on(client):
    tid = create(client, "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.05; done")
    out = read_output(client, tid, r"tick-5\r\n")
    assert client.call("terminal:detach", {"terminalId": tid}) == {}
    client.notifications.clear()
    notes = client.collect_notifications(0.8)
    assert not [n for n in notes if n["method"] == "terminal:data_out"]
    last_seen = max(int(x) for x in re.findall(r"tick-(\d+)", out))
    snap = client.call("terminal:attach", {"terminalId": tid})["scrollback"]
    assert max(int(x) for x in re.findall(r"tick-(\d+)", snap)) > last_seen + 5
    read_output(client, tid, r"tick-\d+\r\n")
    # Detaching twice, or without being attached, is harmless.
    assert client.call("terminal:detach", {"terminalId": tid}) == {}
    assert client.call("terminal:detach", {"terminalId": tid}) == {}


def test_attach_exited_terminal_shows_how_it_ended(worker):
    with worker.connect() as a:
        tid = create(a, "echo goodbye; exit 5")
        wait_exit(a, tid)
    with worker.connect() as b:
        r = b.call("terminal:attach", {"terminalId": tid})
        assert r["alive"] is False and r["exitCode"] == 5
        assert "goodbye\r\n" in r["scrollback"]
        err = b.request("terminal:data_in", {"terminalId": tid, "data": "x"})["error"]
        assert err["code"] == -32000 and err["data"]["errno"] == "EIO"
        assert b.call("terminal:close", {"terminalId": tid}) == {}
        assert listed(b, tid) is None


def test_exited_terminals_are_bounded(client):
    ids = [create(client, "exit 0") for _ in range(12)]
    order = []  # terminal:exit goes out in the order the terminals ended
    while len(order) < len(ids):
        order.append(client.wait_notification("terminal:exit")["terminalId"])
    assert sorted(order) == sorted(ids)
    terminals = client.call("terminal:list")["terminals"]
    # The eight that ended last are kept, listed in the order they were created.
    assert [t["terminalId"] for t in terminals] == [tid for tid in ids if tid in order[-8:]]
    assert all(t["alive"] is False for t in terminals)


def test_scrollback_is_bounded_and_starts_on_a_character(make_worker):
    w = make_worker("--scrollback", "4096")
    with w.connect() as c:
        tid = create(c, "printf '\u20ac%.0s' $(seq 1 3000); echo END")
        wait_exit(c, tid)
        snap = c.call("terminal:attach", {"terminalId": tid})["scrollback"]
        raw = snap.encode()
        assert 4096 - 3 <= len(raw) <= 4096
        assert snap.endswith("END\r\n")
        assert set(snap[:-5]) == {"\u20ac"}


def test_messages_fit_a_small_message_limit(make_worker):
    w = make_worker("--max-message-size", "4096")
    with w.connect() as c:
        # Control characters grow six-fold in JSON: the worst case for the size of a message.
        tid = create(c, "head -c 300000 /dev/urandom; echo; echo DONE")
        text = ""
        while True:
            line = c.recv_line()
            assert len(line) <= 4096
            msg = json.loads(line)
            if msg.get("method") == "terminal:exit":
                break
            if msg.get("method") == "terminal:data_out":
                text += msg["params"]["data"]
        assert "DONE\r\n" in text
        resp = c.request("terminal:attach", {"terminalId": tid})
        assert "result" in resp
        snap = resp["result"]["scrollback"]
        assert snap.endswith("DONE\r\n") and 0 < len(snap.encode()) < 4096


# ---- flow control ----

def test_slow_reader_keeps_memory_bounded_and_still_gets_data(worker):
    c = worker.connect(timeout=30)
    pid = c.call("worker:info")["pid"]
    tid = create(c, "yes helios-flow-control")
    # Stop reading: the socket fills, the worker's queue reaches its mark, the PTY must stop being read.
    time.sleep(5)
    hwm = vm_kib(pid, "VmHWM")
    assert vm_kib(pid, "VmRSS") < 64 * 1024
    assert hwm < 64 * 1024, f"peak RSS {hwm} KiB"
    # The client reads again and the stream resumes.
    got = 0
    deadline = time.monotonic() + 20
    while got < 8 * 1024 * 1024:
        assert time.monotonic() < deadline
        msg = c.recv()
        if msg.get("method") == "terminal:data_out":
            got += len(msg["params"]["data"])
    assert listed(c, tid)["alive"] is True
    c.call("terminal:close", {"terminalId": tid})
    c.close()


def test_unattached_terminal_keeps_reading_into_bounded_scrollback(worker):
    with worker.connect() as c:
        pid = c.call("worker:info")["pid"]
        tid = create(c, "yes helios-nobody-reads")
        c.call("terminal:detach", {"terminalId": tid})
        time.sleep(3)
        assert vm_kib(pid, "VmHWM") < 64 * 1024
        snap = c.call("terminal:attach", {"terminalId": tid}, timeout=30)["scrollback"]
        assert 1024 * 1024 - 64 <= len(snap.encode()) <= 1024 * 1024
        assert "helios-nobody-reads\r\n" in snap
        c.call("terminal:close", {"terminalId": tid})


def test_pause_and_resume(client):
    tid = create(client, "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.02; done")
    read_output(client, tid, r"tick-3\r\n")
    assert client.call("terminal:pause", {"terminalId": tid}) == {}
    # Whatever was sent before the answer came before it; after it, nothing.
    client.notifications.clear()
    notes = client.collect_notifications(1.0)
    assert not [n for n in notes if n["method"] == "terminal:data_out"]
    assert client.call("terminal:resume", {"terminalId": tid}) == {}
    out = read_output(client, tid, r"tick-\d+\r\n", timeout=5)
    assert out
    # Pausing a terminal one is not attached to changes nothing.
    with helios.Client(client.path) as other:
        assert other.call("terminal:pause", {"terminalId": tid}) == {}
        read_output(client, tid, r"tick-\d+\r\n", timeout=5)


def test_paused_client_disconnecting_resumes_the_terminal(worker):
    with worker.connect() as a, worker.connect() as b:
        tid = create(a, "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.02; done")
        b.call("terminal:attach", {"terminalId": tid})
        b.call("terminal:pause", {"terminalId": tid})
        a.notifications.clear()
        a.collect_notifications(0.3)
        assert not [n for n in a.collect_notifications(0.5) if n["method"] == "terminal:data_out"]
        b.close()
        read_output(a, tid, r"tick-\d+\r\n", timeout=5)


def test_input_queue_is_bounded(client):
    tid = create(client, "stty raw -echo; echo ready; sleep 100")
    read_output(client, tid, r"ready")
    err = client.request("terminal:data_in", {"terminalId": tid, "data": "a" * (1536 * 1024)})["error"]
    assert err["code"] == -32004 and err["data"]["limit"] == 1024 * 1024
    # The program reads nothing: the kernel's buffers fill, then the worker's queue does.
    chunk = "b" * (256 * 1024)
    for _ in range(12):
        resp = client.request("terminal:data_in", {"terminalId": tid, "data": chunk})
        if "error" in resp:
            assert resp["error"]["code"] == -32004
            break
    else:
        pytest.fail("3 MiB of input queued for a program that reads none")
    assert client.call("worker:info")


# ---- limits, close, errors ----

def test_terminal_limit(make_worker):
    w = make_worker("--max-terminals", "2")
    with w.connect() as c:
        a = create(c, "sleep 100")
        create(c, "sleep 100")
        err = c.request("terminal:create", {"cols": 80, "rows": 24})["error"]
        assert err["code"] == -32004 and err["data"] == {"limit": 2}
        c.call("terminal:close", {"terminalId": a})
        b = create(c, "exit 0")
        wait_exit(c, b)
        # An exited terminal is no longer live: it does not count.
        create(c, "sleep 100")


def test_close_kills_the_process_group(client):
    tid = create(client, "sleep 1000 & echo child=$!; wait")
    child = int(re.search(r"child=(\d+)", read_output(client, tid, r"child=\d+\r\n")).group(1))
    leader = listed(client, tid)["pid"]
    assert client.call("terminal:close", {"terminalId": tid}) == {}
    assert listed(client, tid) is None
    assert wait_until(lambda: process_gone(leader) and process_gone(child), 1.5)
    assert client.request("terminal:close", {"terminalId": tid})["error"]["code"] == -32010


def test_close_tells_every_client_how_the_terminal_ended(worker):
    with worker.connect() as a, worker.connect() as b:
        tid = create(a, "sleep 1000")
        assert a.call("terminal:close", {"terminalId": tid}) == {}
        for c in (a, b):
            ended = wait_exit(c, tid)
            assert ended == {"terminalId": tid, "exitCode": None, "signal": "SIGHUP"}

        # The leader gone but its output not at an end (a child holds the PTY): closing it now is
        # how it ends for the clients, with the leader's exit code.
        tid = create(a, "trap '' HUP; sleep 1000 & echo child=$!; exit 3")
        child = int(re.search(r"child=(\d+)", read_output(a, tid, r"child=\d+\r\n")).group(1))
        try:
            assert wait_until(lambda: listed(a, tid)["pid"] and process_gone(listed(a, tid)["pid"]), 5)
            assert listed(a, tid)["alive"] is True
            assert a.call("terminal:close", {"terminalId": tid}) == {}
            for c in (a, b):
                assert wait_exit(c, tid) == {"terminalId": tid, "exitCode": 3, "signal": None}
        finally:
            os.kill(child, signal.SIGKILL)

        # A terminal that ended already was announced then, and closing it says nothing more.
        tid = create(a, "exit 4")
        assert wait_exit(b, tid)["exitCode"] == 4
        assert wait_exit(a, tid)["exitCode"] == 4
        a.call("terminal:close", {"terminalId": tid})
        seen = a.collect_notifications(0.5) + b.collect_notifications(0.1)
        assert not [n for n in seen if n["method"] == "terminal:exit" and n["params"]["terminalId"] == tid]


def test_close_escalates_to_sigkill(client):
    tid = create(client, "trap '' HUP; sleep 1000 & echo child=$!; while :; do sleep 0.1; done")
    child = int(re.search(r"child=(\d+)", read_output(client, tid, r"child=\d+\r\n")).group(1))
    leader = listed(client, tid)["pid"]
    client.call("terminal:close", {"terminalId": tid})
    time.sleep(1.0)
    assert not process_gone(leader) and not process_gone(child)
    assert wait_until(lambda: process_gone(leader) and process_gone(child), 4)


def test_bad_command(client, worker):
    err = client.request("terminal:create", {"cols": 80, "rows": 24, "command": ["/nonexistent/helios-cmd"]})["error"]
    assert err["code"] == -32001 and err["data"]["errno"] == "ENOENT"
    assert err["data"]["path"] == "/nonexistent/helios-cmd"
    err = client.request("terminal:create", {"cols": 80, "rows": 24, "command": ["helios-no-such-command"]})["error"]
    assert err["code"] == -32001 and err["data"]["errno"] == "ENOENT"
    with open(worker.path("not-executable"), "w") as f:
        f.write("#!/bin/sh\n")
    err = client.request("terminal:create", {"cols": 80, "rows": 24,
                                             "command": [worker.path("not-executable")]})["error"]
    assert err["code"] == -32002 and err["data"]["errno"] == "EACCES"
    assert client.call("terminal:list")["terminals"] == []


def test_command_array_is_not_a_shell_line(client):
    tid = create(client, ["printf", "%s|%s\\n", "$HOME", "a b"])
    read_output(client, tid, r"\$HOME\|a b\r\n")


def test_cwd(client, worker):
    os.makedirs(worker.path("proj", "sub"))
    with open(worker.path("file"), "w"):
        pass
    real = os.path.realpath(worker.path("proj", "sub"))
    tid = create(client, "pwd -P", cwd="proj/sub")
    read_output(client, tid, re.escape(real) + r"\r\n")
    tid = create(client, "pwd -P", cwd=real)
    read_output(client, tid, re.escape(real) + r"\r\n")
    tid = create(client, "pwd -P")
    read_output(client, tid, re.escape(os.path.realpath(worker.home)) + r"\r\n")

    def error(cwd):
        return client.request("terminal:create", {"cols": 80, "rows": 24, "cwd": cwd})["error"]
    assert error("missing")["code"] == -32001
    assert error("file")["code"] == -32006
    assert error("/")["code"] == -32002
    assert error("proj/../../..")["code"] == -32002


def test_idle_exit_waits_for_live_terminals(make_worker):
    w = make_worker("--idle-timeout", "1")
    with w.connect() as c:
        tid = create(c, "sleep 3")
        started = time.monotonic()
    time.sleep(2)
    assert w.proc.poll() is None, "the worker exited with a live terminal"
    w.proc.wait(timeout=10)
    assert time.monotonic() - started >= 3
    assert w.proc.returncode == 0
    assert tid


def test_stop_hangs_up_terminals(worker):
    c = worker.connect()
    tid = create(c, "sleep 1000")
    leader = listed(c, tid)["pid"]
    worker.proc.terminate()
    worker.proc.wait(timeout=10)
    assert worker.proc.returncode == 0
    assert wait_until(lambda: process_gone(leader), 3)
    c.close()
