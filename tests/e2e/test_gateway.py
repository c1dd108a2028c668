"""The whole path, browser -> gateway -> worker, in embedded mode with the real worker: the token URL,
logging in, JSON-RPC over /ws, several pages, the worker dying and coming back, the gateway
restarting under a running worker."""

import json
import os
import signal
import stat
import subprocess
import time

import pytest

import helios
from helios import WsClosed


def test_prints_url_with_token_and_serves_the_page(gateway):
    assert gateway.url.startswith("http://127.0.0.1:")
    assert len(gateway.token) == 43
    page = gateway.request("GET", "/")
    assert page.status == 200
    assert b"<title>Helios</title>" in page.body
    # The token is never written to the log.
    assert gateway.token not in gateway.read_log()


def test_runtime_directory_is_private_and_socket_is_owner_only(gateway):
    st = os.stat(gateway.runtime)
    assert stat.S_IMODE(st.st_mode) == 0o700
    sock = os.path.join(gateway.runtime, "worker.sock")
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600


def test_jsonrpc_through_to_the_worker(gateway):
    # No worker runs until the first page connects: socket activation.
    assert gateway.worker_pids() == []
    rpc = gateway.rpc()
    info = rpc.call("worker:info")
    assert info["name"] == "helios-worker"
    assert info["uid"] == helios.gateway_uid()
    assert info["home"] == gateway.home
    assert info["pid"] in gateway.worker_pids()
    # The worker got its socket the way systemd hands it over.
    with open(f"/proc/{info['pid']}/environ", "rb") as f:
        env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    assert env[b"LISTEN_FDS"] == b"1"
    assert env[b"LISTEN_PID"] == str(info["pid"]).encode()
    assert b"NOTIFY_SOCKET" not in env
    with open(f"/proc/{info['pid']}/cmdline", "rb") as f:
        assert b"--listen" not in f.read()
    rpc.close()


def test_worker_gets_only_the_listening_socket(gateway):
    rpc = gateway.rpc()
    pid = rpc.call("worker:info")["pid"]
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    # 0-2, the inherited listener on 3; everything else the worker opened itself (no gateway sockets
    # or files leak into it).
    assert fds[3].startswith("socket:")
    gateway_fds = {os.readlink(f"/proc/{gateway.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{gateway.pid}/fd")}
    leaked = {n for fd, n in fds.items() if fd > 3 and n.startswith("socket:") and n in gateway_fds}
    assert not leaked
    rpc.close()


def test_lf_inside_a_message_becomes_a_space(gateway):
    rpc = gateway.rpc()
    rpc.ws.send_text('{"jsonrpc":"2.0",\n"id":7,\n"method":"worker:info"\n}')
    resp = json.loads(rpc.ws.recv())
    assert resp["id"] == 7 and resp["result"]["name"] == "helios-worker"
    rpc.close()


def test_errors_notifications_and_batches_pass_through_untouched(gateway):
    rpc = gateway.rpc()
    resp = rpc.request("no:such_method", {})
    assert resp["error"]["code"] == -32601
    # A notification gets no answer; a batch gets one array back.
    rpc.ws.send_text('{"jsonrpc":"2.0","method":"worker:info"}')
    rpc.ws.send_text('[{"jsonrpc":"2.0","id":"a","method":"worker:info"},{"jsonrpc":"2.0","id":"b","method":"x:y"}]')
    batch = json.loads(rpc.ws.recv())
    assert sorted(r["id"] for r in batch) == ["a", "b"]
    # Invalid JSON is the worker's to judge; the gateway passes it on.
    rpc.ws.send_text("this is not json")
    assert json.loads(rpc.ws.recv())["error"]["code"] == -32700
    rpc.close()


def test_fragmented_message_is_one_line(gateway):
    rpc = gateway.rpc()
    parts = [b'{"jsonrpc":"2.0",', b'"id":11,', b'"method":"worker:info"}']
    rpc.ws.send_frame(0x1, parts[0], fin=False)
    rpc.ws.send_frame(0x0, parts[1], fin=False)
    rpc.ws.send_frame(0x9, b"ping in the middle")  # control frames may interleave
    rpc.ws.send_frame(0x0, parts[2], fin=True)
    assert json.loads(rpc.ws.recv())["id"] == 11
    rpc.close()


def test_two_pages_of_one_user_share_the_worker(gateway):
    cookie = gateway.session()
    a, b = gateway.rpc(cookie), gateway.rpc(cookie)
    pa, pb = a.call("worker:info")["pid"], b.call("worker:info")["pid"]
    assert pa == pb
    # Interleaved requests each come back on their own page only.
    for i in range(50):
        a.send({"jsonrpc": "2.0", "id": f"a{i}", "method": "worker:info"})
        b.send({"jsonrpc": "2.0", "id": f"b{i}", "method": "worker:info"})
    got_a = [json.loads(a.ws.recv())["id"] for _ in range(50)]
    got_b = [json.loads(b.ws.recv())["id"] for _ in range(50)]
    assert got_a == [f"a{i}" for i in range(50)]
    assert got_b == [f"b{i}" for i in range(50)]
    # A page closing ends only its own worker connection.
    a.ws.send_close()
    a.close()
    assert b.call("worker:info")["pid"] == pb
    b.close()


def test_two_pages_mirror_workspace_state(gateway):
    rpc_a, rpc_b = gateway.rpc(), gateway.rpc()
    rpc_a.call("workspace:state")
    with open(os.path.join(gateway.home, "a.txt"), "w") as f:
        f.write("hello\n")
    rpc_a.call("project:load", {"root": gateway.home})
    rpc_a.call("file:open", {"path": "a.txt"})
    # The other page sees the file appear in the shared state (after project:load's own update).
    update = rpc_b.wait_notification(
        "state:updated", lambda p: any(f["path"].endswith("/a.txt") for f in p["openFiles"]))
    assert update["root"] == os.path.realpath(gateway.home)


def test_file_listing(gateway):
    with open(os.path.join(gateway.home, "listed.txt"), "w") as f:
        f.write("x" * 1024)
    rpc = gateway.rpc()
    result = rpc.call("fs:list_directory", {"path": gateway.home})
    assert "listed.txt" in [e["name"] for e in result["entries"]]
    content = rpc.call("fs:read_file", {"path": os.path.join(gateway.home, "listed.txt")})
    assert content["content"] == "x" * 1024


def test_terminal_scrollback_after_reconnect(gateway):
    cookie = gateway.session()
    rpc = gateway.rpc(cookie)
    tid = rpc.call("terminal:create", {"cols": 80, "rows": 24, "command": ["/bin/sh", "-c",
                                                                            "echo helios-$((6*7)); exec cat"]})["terminalId"]
    rpc.close()
    again = gateway.rpc(cookie)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        scrollback = again.call("terminal:attach", {"terminalId": tid})["scrollback"]
        if "helios-42" in scrollback:
            break
        time.sleep(0.05)
    assert "helios-42" in scrollback
    again.call("terminal:close", {"terminalId": tid})


def test_worker_killed_page_told_and_next_connection_brings_a_new_one(gateway):
    cookie = gateway.session()
    rpc = gateway.rpc(cookie)
    other = gateway.rpc(cookie)
    pid = rpc.call("worker:info")["pid"]
    os.kill(pid, signal.SIGKILL)
    for page in (rpc, other):
        lost = json.loads(page.ws.recv(timeout=10))
        assert lost == {"jsonrpc": "2.0", "method": "gateway:worker_lost", "params": {}}
        with pytest.raises(WsClosed) as closed:
            page.ws.recv(timeout=10)
        assert closed.value.code == 1011
        page.close()
    assert gateway.wait_log(f"Worker (pid {pid}) was killed by signal KILL")
    again = gateway.rpc(cookie)
    new_pid = again.call("worker:info")["pid"]
    assert new_pid != pid
    assert gateway.metrics()["helios_gateway_worker_starts_total"] == 2
    assert gateway.metrics()["helios_gateway_workers_lost_total"] == 2
    again.close()


def test_worker_exiting_on_its_own_is_reaped_and_rearmed(make_gateway):
    g = make_gateway("--worker-args=--idle-timeout=1")
    rpc = g.rpc()
    pid = rpc.call("worker:info")["pid"]
    rpc.ws.send_close()
    rpc.close()
    # Idle for a second with no connection, the worker exits (status 0) and is reaped.
    assert g.wait_log(f"Worker (pid {pid}) exited with status 0", timeout=10)
    assert not helios.alive(pid)
    again = g.rpc()
    assert again.call("worker:info")["pid"] != pid
    again.close()


def test_gateway_restart_keeps_the_running_worker(make_gateway):
    g = make_gateway(name="gw")
    cookie = g.session()
    rpc = g.rpc(cookie)
    pid = rpc.call("worker:info")["pid"]
    # SIGTERM: the page is told the gateway is going away (1001); the worker keeps running.
    g.signal(signal.SIGTERM)
    with pytest.raises(WsClosed) as closed:
        rpc.ws.recv(timeout=10)
    assert closed.value.code == 1001
    assert g.wait() == 0
    assert helios.alive(pid)
    assert "keeps serving" in g.read_log()

    g2 = make_gateway(name="gw")  # same runtime directory
    assert g2.wait_log(f"Worker (pid {pid}) from an earlier run is serving")
    rpc2 = g2.rpc()
    assert rpc2.call("worker:info")["pid"] == pid
    rpc2.close()
    # When that worker ends, the new gateway takes the socket over and starts the next one.
    os.kill(pid, signal.SIGTERM)
    assert g2.wait_log(f"Worker (pid {pid}) from an earlier run has exited", timeout=10)
    helios.reap([pid])
    rpc3 = g2.rpc()
    new_pid = rpc3.call("worker:info")["pid"]
    assert new_pid != pid
    rpc3.close()


def test_sigterm_with_pages_open_exits_cleanly(gateway):
    pages = [gateway.rpc() for _ in range(3)]
    for p in pages:
        p.call("worker:info")
    gateway.signal(signal.SIGTERM)
    for p in pages:
        assert p.ws.expect_close() == 1001
    assert gateway.wait() == 0
    log = gateway.read_log()
    assert "still open at exit" not in log


def test_healthz_and_metrics(gateway):
    resp = gateway.request("GET", "/healthz")
    assert resp.status == 200 and resp.body == b"ok\n"
    rpc = gateway.rpc()
    rpc.call("worker:info")
    m = gateway.metrics()
    assert m["helios_gateway_logins_total{result=\"ok\"}"] == 1
    assert m["helios_gateway_sessions"] == 1
    assert m["helios_gateway_open_websockets"] == 1
    assert m["helios_gateway_worker_starts_total"] == 1
    assert m["helios_gateway_workers_running"] == 1
    assert m["helios_gateway_bytes_total{direction=\"to_worker\"}"] > 0
    assert m["helios_gateway_bytes_total{direction=\"to_browser\"}"] > 0
    text = gateway.request("GET", "/metrics", {"Authorization": "Bearer " + gateway.metrics_token})
    assert text.header("content-type").startswith("application/openmetrics-text")
    assert text.body.endswith(b"# EOF\n")
    rpc.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the refusal is of root")
@pytest.mark.parametrize("args", [[], ["--listen", "127.0.0.1:0"], ["--launcher", "/nonexistent.sock", "--auth", "pam"]])
def test_gateway_refuses_to_run_as_root(make_gateway, args):
    """As root the gateway would serve /root and root shells: it says so in one line and exits 1,
    before it listens or starts anything."""
    g = make_gateway(start=False)
    out = subprocess.run(g.command() + args, capture_output=True, text=True, timeout=10,
                         env=dict(os.environ, HOME=g.home))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not run as root" in lines[0], out.stderr
    assert out.stdout == ""
    assert not os.path.exists(os.path.join(g.runtime, "worker.sock"))
