"""The gateway as a systemd service sees it: a listening socket passed by socket activation, and the
READY/STATUS/WATCHDOG/RELOADING/STOPPING notifications. And a real browser on the page."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import helios


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_listening_socket_from_systemd(make_gateway):
    port = free_port()
    g = make_gateway(start=False)
    # systemd-socket-activate binds the address and execs the gateway with it as fd 3.
    g.command_prefix = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}"]
    orig = g.command
    g.command = lambda: g.command_prefix + [c for c in orig() if not c.startswith("127.0.0.1:0")
                                            and c != "--listen"]
    g.start(expect_url=False)
    # Like systemd, systemd-socket-activate starts the service on the first connection.
    deadline = time.monotonic() + 10
    while True:
        try:
            first = helios.raw_request("127.0.0.1", port,
                                       b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert helios.status_of(first) == 200
    g.read_url()
    assert g.port == port
    assert "sockets from systemd" in g.read_log()
    rpc = g.rpc()
    info = rpc.call("worker:info")
    with open(f"/proc/{info['pid']}/environ", "rb") as f:
        env = f.read().split(b"\0")
    # The worker sees its own LISTEN_* only, not the gateway's.
    assert b"LISTEN_FDS=1" in env and f"LISTEN_PID={info['pid']}".encode() in env
    rpc.close()


class Notifications:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.seen = []

    def collect(self, until, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen += self.sock.recv(4096).decode().split("\n")
            except socket.timeout:
                pass
            if until(self.seen):
                return self.seen
        raise TimeoutError(f"notifications so far: {self.seen}")


def test_service_notifications(make_gateway, tmp_path):
    notify = Notifications(str(tmp_path / "notify"))
    g = make_gateway(env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"})
    seen = notify.collect(lambda s: "READY=1" in s and s.count("WATCHDOG=1") >= 3)
    assert any(line.startswith("STATUS=") and "connection" in line for line in seen)
    rpc = g.rpc()
    info = rpc.call("worker:info")
    with open(f"/proc/{info['pid']}/environ", "rb") as f:
        env = f.read()
    assert b"NOTIFY_SOCKET" not in env and b"WATCHDOG_USEC" not in env
    notify.collect(lambda s: any("1 page" in line for line in s if line.startswith("STATUS=")))
    notify.seen.clear()
    g.signal(signal.SIGHUP)
    seen = notify.collect(lambda s: "RELOADING=1" in s and "READY=1" in s)
    assert seen.index("RELOADING=1") < seen.index("READY=1")
    g.signal(signal.SIGTERM)
    notify.collect(lambda s: "STOPPING=1" in s)
    assert g.wait() == 0
    rpc.close()


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_asking_for_http2_gets_http1(make_gateway, tmp_path):
    """HTTP/2 is not offered (README): curl --http2 falls back to HTTP/1.1 and everything works."""
    cert, key = helios.make_self_signed(str(tmp_path))
    g = make_gateway(tls=(cert, key))
    base = f"https://127.0.0.1:{g.port}"
    jar = str(tmp_path / "cookies")

    def curl(*args):
        out = subprocess.run(["curl", "-s", "--http2", "--cacert", cert, "-w", "\n%{http_version} %{http_code}",
                              *args], capture_output=True, timeout=30)
        body, _, tail = out.stdout.rpartition(b"\n")
        return body, tail.decode()

    body, tail = curl("-c", jar, "-d", "", "-H", f"Authorization: Bearer {g.token}", f"{base}/login")
    assert tail == "1.1 200", (body, tail)
    body, tail = curl("-b", jar, f"{base}/api/session")
    assert tail == "1.1 200" and b'"current":true' in body
    js = next(n for n in os.listdir(os.path.join(helios.WEB_ROOT, "assets")) if n.endswith(".js"))
    body, tail = curl(f"{base}/assets/{js}")
    with open(os.path.join(helios.WEB_ROOT, "assets", js), "rb") as f:
        assert body == f.read() and tail == "1.1 200"
    body, tail = curl("-b", jar, "-d", "", f"{base}/logout")
    assert tail == "1.1 200"
    body, tail = curl("-b", jar, f"{base}/api/session")
    assert tail == "1.1 401"
