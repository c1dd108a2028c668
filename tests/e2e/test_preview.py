"""Previews of a user's web server: the worker's preview:ports and preview:connect on its socket, and the
gateway's preview listener in front of them (tickets, its own cookie, what reaches the app and what
does not), with a real gateway, a real worker and real servers on loopback standing in for the app."""

import asyncio
import json
import os
import socket
import threading
import time
import http.server
from urllib.parse import urlparse

import pytest
import websockets

import helios


# ---- apps in the workspace: servers on loopback the test runs ----

class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it saw: method, path, headers, body."""
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        seen = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                "bodyLength": len(body), "body": body[:64].decode(errors="replace"),
                "bodySum": sum(body) % 65521}
        out = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = handle_any

    def log_message(self, *args):
        pass


@pytest.fixture
def http_app():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def ws_app():
    """A WebSocket echo server that also says which request headers it saw."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state = {}

    async def echo(ws, path):
        await ws.send(json.dumps({"path": path, "headers": [[k, v] for k, v in ws.request_headers.raw_items()]}))
        async for msg in ws:
            await ws.send(msg)

    async def main():
        server = await websockets.serve(echo, "127.0.0.1", 0, max_size=None)
        state["port"] = server.sockets[0].getsockname()[1]
        state["server"] = server
        ready.set()
        await server.wait_closed()

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    ready.wait(5)
    yield state["port"]
    loop.call_soon_threadsafe(state["server"].close)
    t.join(5)


class TcpApp:
    """A raw TCP server: echoes, or accepts and never reads (sink=False, read=False)."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1", read=True):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.read = read
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.read:
                threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    @staticmethod
    def echo(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    c.sendall(b"<eof>")
                    c.close()
                    return
                c.sendall(d)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which holds the socket
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
        for c in self.conns:
            c.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the worker: preview:ports and preview:connect ----

def connect_tunnel(worker, port, rid=1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(worker.sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "preview:connect",
                          "params": {"port": port}}).encode() + b"\n")
    line = b""
    while not line.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            break
        line += d
    return s, json.loads(line) if line else None


def recv_all(s, timeout=10):
    """Everything until the peer closes (or resets, or the timeout passes)."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return out
        if not d:
            return out
        out += d


def test_ports_lists_loopback_and_wildcard_listeners(client):
    v4 = TcpApp()
    v6 = TcpApp(socket.AF_INET6, "::1")
    wild = TcpApp(socket.AF_INET, "0.0.0.0")
    try:
        ports = {p["port"]: p for p in client.call("preview:ports", {})["ports"]}
        assert ports[v4.port]["ipv4"] and not ports[v4.port]["ipv6"]
        assert ports[v6.port]["ipv6"]
        assert wild.port in ports
        listed = [p["port"] for p in client.call("preview:ports", {})["ports"]]
        assert listed == sorted(listed)
    finally:
        v4.close(), v6.close(), wild.close()
    assert v4.port not in {p["port"] for p in client.call("preview:ports", {})["ports"]}


def test_connect_tunnels_both_ways_with_half_close(worker):
    app = TcpApp()
    try:
        s, answer = connect_tunnel(worker, app.port)
        assert answer == {"jsonrpc": "2.0", "id": 1, "result": {}}
        payload = os.urandom(3 * 1024 * 1024)
        threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)), daemon=True).start()
        # The app echoes, then answers our end of stream with "<eof>" and closes: both ends passed on.
        assert recv_all(s) == payload + b"<eof>"
        s.close()
    finally:
        app.close()


def test_connect_bytes_sent_with_the_request_go_first(worker):
    app = TcpApp()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(worker.sock)
        s.sendall(b'{"jsonrpc":"2.0","id":"a","method":"preview:connect","params":{"port":%d}}\nearly bytes'
                  % app.port)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b'{"jsonrpc":"2.0","id":"a","result":{}}\nearly bytes<eof>'
    finally:
        app.close()


def test_connect_reaches_ipv6_loopback(worker):
    app = TcpApp(socket.AF_INET6, "::1")
    try:
        s, answer = connect_tunnel(worker, app.port)
        assert "result" in answer
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
    finally:
        app.close()


@pytest.mark.parametrize("port,code", [(0, -32602), (65536, -32602), ("80", -32602), (-1, -32602),
                                       (1.5, -32602), (None, -32602)])
def test_connect_bad_port_is_an_error_then_close(worker, port, code):
    s, answer = connect_tunnel(worker, port)
    assert answer["error"]["code"] == code
    assert recv_all(s) == b""


def test_connect_refused_is_an_error_then_close(worker):
    s, answer = connect_tunnel(worker, free_port())
    assert answer["error"]["code"] == -32001
    assert answer["error"]["data"]["errno"] == "ECONNREFUSED"
    assert recv_all(s) == b""


def test_connect_later_on_a_connection_is_refused_and_changes_nothing(client):
    app = TcpApp()
    try:
        client.call("worker:info", {})
        with pytest.raises(helios.RpcError) as e:
            client.call("preview:connect", {"port": app.port})
        assert e.value.code == -32600
        assert client.call("worker:info", {})["name"] == "helios-worker"
    finally:
        app.close()


def test_tunnel_is_bounded_when_the_app_does_not_read(worker):
    """An app that never reads: the worker stops reading the client after its high-water mark, so the
    client can hand over only a bounded amount (socket buffers plus the tunnel's 256 KiB + 64 KiB)."""
    app = TcpApp(read=False)
    try:
        s, answer = connect_tunnel(worker, app.port)
        assert "result" in answer
        s.setblocking(False)
        sent, chunk, deadline = 0, b"x" * 65536, time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.05)
        assert sent < 24 * 1024 * 1024, sent
        # And the worker still serves everyone else.
        with worker.connect() as c:
            assert c.call("worker:info", {})["name"] == "helios-worker"
    finally:
        app.close()


def test_tunnels_are_capped_per_workspace(worker):
    app = TcpApp()
    socks = []
    try:
        for _ in range(64):
            s, answer = connect_tunnel(worker, app.port)
            assert "result" in answer, answer
            socks.append(s)
        s, answer = connect_tunnel(worker, app.port)
        assert answer["error"]["code"] == -32000
        socks[0].close()
        deadline = time.monotonic() + 5
        while True:
            s, answer = connect_tunnel(worker, app.port)
            if "result" in answer or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "result" in answer
    finally:
        for s in socks:
            s.close()
        app.close()


def test_an_open_tunnel_keeps_the_worker_up(make_worker):
    w = make_worker("--idle-timeout", "1")
    app = TcpApp()
    try:
        s, answer = connect_tunnel(w, app.port)
        assert "result" in answer
        time.sleep(2.5)  # past the idle timeout: the tunnel counts as a client
        s.sendall(b"still there")
        assert s.recv(11) == b"still there"
        assert w.proc.poll() is None
        s.close()
        w.proc.wait(timeout=10)  # and once it has closed, the worker goes idle and exits
        assert w.proc.returncode == 0
    finally:
        app.close()


# ---- the gateway's preview listener ----

@pytest.fixture
def pv(make_gateway):
    return make_gateway("--preview-listen=127.0.0.1:0", "--header-timeout=1s")


def ticket_url(g, cookie, port, origin=None):
    resp = g.request("POST", f"/api/preview?port={port}", {"Origin": origin or g.origin, "Content-Length": "0"},
                     cookie=cookie)
    assert resp.status == 200, resp
    return resp.json()["url"]


def preview_cookie(g, cookie, port):
    """Exchange a ticket; returns (host, preview port, "helios_preview=...")."""
    u = urlparse(ticket_url(g, cookie, port))
    resp = helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}")
    assert resp.status == 303, resp
    assert resp.header("location") == f"/preview/{port}/"
    set_cookie = resp.header("set-cookie")
    assert f"Path=/preview/{port}/" in set_cookie and "HttpOnly" in set_cookie
    return u.hostname, u.port, set_cookie.split(";", 1)[0]


def test_http_request_through_without_helios_cookies(pv, http_app):
    ide = pv.session()
    host, port, pc = preview_cookie(pv, ide, http_app)
    assert port != pv.port
    resp = helios.http_request(host, port, "GET", f"/preview/{http_app}/some/page?q=1",
                               {"Cookie": f"{ide}; theme=dark; {pc}", "X-Custom": "yes"})
    assert resp.status == 200, resp
    seen = resp.json()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/some/page?q=1"
    assert headers["cookie"] == "theme=dark"
    assert "helios_session" not in json.dumps(seen) and "helios_preview" not in json.dumps(seen)
    assert ide.split("=", 1)[1] not in json.dumps(seen) and pc.split("=", 1)[1] not in json.dumps(seen)
    assert headers["connection"] == "close"
    assert headers["x-forwarded-prefix"] == f"/preview/{http_app}"
    assert headers["x-custom"] == "yes"
    # Only Helios' cookies: the header goes entirely.
    seen = helios.http_request(host, port, "GET", f"/preview/{http_app}/", {"Cookie": f"{pc}; {ide}"}).json()
    assert "cookie" not in {k.lower() for k, v in seen["headers"]}


def test_post_body_through(pv, http_app):
    host, port, pc = preview_cookie(pv, pv.session(), http_app)
    body = os.urandom(2 * 1024 * 1024)
    resp = helios.http_request(host, port, "POST", f"/preview/{http_app}/upload", {"Cookie": pc}, body=body)
    seen = resp.json()
    assert seen["method"] == "POST" and seen["bodyLength"] == len(body) and seen["bodySum"] == sum(body) % 65521


def test_websocket_through(pv, ws_app):
    ide = pv.session()
    host, port, pc = preview_cookie(pv, ide, ws_app)

    async def run():
        async with websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/chat", max_size=None,
                                      extra_headers={"Cookie": f"{ide}; {pc}"}) as ws:
            hello = json.loads(await ws.recv())
            assert hello["path"] == "/chat"
            headers = {k.lower(): v for k, v in hello["headers"]}
            assert "cookie" not in headers
            for size in (5, 70000, 3 * 1024 * 1024):
                msg = os.urandom(size)
                await ws.send(msg)
                assert await ws.recv() == msg
            await ws.send("text")
            assert await ws.recv() == "text"

    asyncio.run(run())


def test_without_a_cookie_or_with_another_ports_refused(pv, http_app):
    ide = pv.session()
    host, port, pc = preview_cookie(pv, ide, http_app)
    for cookie in [None, ide, "helios_preview=" + "A" * 43, pc.replace(pc[-4:], "AAAA")]:
        h = {"Cookie": cookie} if cookie else {}
        assert helios.http_request(host, port, "GET", f"/preview/{http_app}/", h).status == 401, cookie
    # The cookie of one port opens no other.
    assert helios.http_request(host, port, "GET", f"/preview/{free_port()}/", {"Cookie": pc}).status == 401


def test_ticket_refused_when_missing_reused_forged_or_expired(make_gateway, http_app):
    g = make_gateway("--preview-listen=127.0.0.1:0", "--preview-ticket-lifetime=1s")
    ide = g.session()
    u = urlparse(ticket_url(g, ide, http_app))
    for path in ["/preview-login", "/preview-login?ticket=", "/preview-login?ticket=" + "A" * 43,
                 "/preview-login?ticket=" + u.query.split("=", 1)[1][:-1]]:
        assert helios.http_request(u.hostname, u.port, "GET", path).status == 403, path
    assert helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}").status == 303
    assert helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}").status == 403  # used
    assert helios.http_request(u.hostname, u.port, "POST", f"{u.path}?{u.query}").status == 405
    u = urlparse(ticket_url(g, ide, http_app))
    time.sleep(1.3)
    assert helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}").status == 403  # expired


def test_logout_ends_tickets_and_preview_cookies(pv, http_app):
    ide = pv.session()
    host, port, pc = preview_cookie(pv, ide, http_app)
    u = urlparse(ticket_url(pv, ide, http_app))
    assert helios.http_request(host, port, "GET", f"/preview/{http_app}/", {"Cookie": pc}).status == 200
    assert pv.request("POST", "/logout", {"Origin": pv.origin, "Content-Length": "0"}, cookie=ide).status in (
        200, 204)
    assert helios.http_request(host, port, "GET", f"/preview/{http_app}/", {"Cookie": pc}).status == 401
    assert helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}").status == 403


def test_tickets_only_for_the_page_itself(pv, http_app):
    ide = pv.session()
    preview_origin = f"http://127.0.0.1:{urlparse(ticket_url(pv, ide, http_app)).port}"
    for origin in [None, preview_origin, "http://evil.example", "null"]:
        h = {"Content-Length": "0"}
        if origin:
            h["Origin"] = origin
        assert pv.request("POST", f"/api/preview?port={http_app}", h, cookie=ide).status == 403, origin
    assert pv.request("POST", f"/api/preview?port={http_app}", {"Origin": pv.origin, "Content-Length": "0"}
                      ).status == 401
    assert pv.request("GET", f"/api/preview?port={http_app}", {"Origin": pv.origin}, cookie=ide).status == 405
    for port in ["0", "65536", "x", ""]:
        assert pv.request("POST", f"/api/preview?port={port}", {"Origin": pv.origin, "Content-Length": "0"},
                          cookie=ide).status == 400, port


def test_ide_refuses_preview_origin_and_preview_cookie(pv, http_app):
    ide = pv.session()
    host, port, pc = preview_cookie(pv, ide, http_app)
    # The previewed page's origin differs from the IDE's by its port alone: /ws refuses it.
    ws = pv.ws(ide, origin=f"http://{host}:{port}")
    assert ws.status == 403
    assert pv.ws(ide).status == 101
    # A preview cookie is no session of the IDE, under either name.
    value = pc.split("=", 1)[1]
    for cookie in [pc, "helios_session=" + value]:
        assert pv.request("GET", "/api/session", cookie=cookie).status == 401, cookie
        assert pv.ws(cookie).status == 401


def test_previews_off_unless_configured(gateway):
    ide = gateway.session()
    assert gateway.request("POST", "/api/preview?port=8000", {"Origin": gateway.origin, "Content-Length": "0"},
                           cookie=ide).status == 404


def test_nothing_listening_is_502(pv):
    port_nothing = free_port()
    host, port, pc = preview_cookie(pv, pv.session(), port_nothing)
    resp = helios.http_request(host, port, "GET", f"/preview/{port_nothing}/", {"Cookie": pc})
    assert resp.status == 502 and b"Nothing is listening" in resp.body


def test_paths(pv, http_app):
    host, port, pc = preview_cookie(pv, pv.session(), http_app)
    resp = helios.http_request(host, port, "GET", f"/preview/{http_app}?a=b", {"Cookie": pc})
    assert resp.status == 308 and resp.header("location") == f"/preview/{http_app}/?a=b"
    for path in ["/", "/preview/", "/preview/0/", "/preview/070/", "/preview/65536/", "/preview/1x/",
                 "/previewx/1/", "/preview/-1/"]:
        assert helios.http_request(host, port, "GET", path, {"Cookie": pc}).status == 404, path


def raw(host, port, data, timeout=5.0):
    return helios.raw_request(host, port, data, timeout)


def test_malformed_and_oversized_heads(pv, http_app):
    host, port, pc = preview_cookie(pv, pv.session(), http_app)
    ok = f"GET /preview/{http_app}/ HTTP/1.1\r\nHost: x\r\nCookie: {pc}\r\n".encode()
    cases = {
        b"garbage\r\n\r\n": 400,
        b"GET  / HTTP/1.1\r\n\r\n": 400,
        b"GET / HTTP/2.0\r\n\r\n": 505,
        ok + b" folded\r\n\r\n": 400,
        ok + b"No colon\r\n\r\n": 400,
        ok + b"Bad\x01: x\r\n\r\n": 400,
        ok + b"X: a\x00b\r\n\r\n": 400,
        ok + b"X\x00Y: z\r\n\r\n": 400,
        b"G\x00T /preview/%d/ HTTP/1.1\r\nCookie: %s\r\n\r\n" % (http_app, pc.encode()): 400,
        ok + b"Transfer-Encoding: chunked\r\n\r\n": 501,
        ok + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx": 400,
        ok + b"Content-Length: -1\r\n\r\n": 400,
        ok + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n": 431,
        ok + b"X: " + b"a" * 9000 + b"\r\n\r\n": 431,
        ok + b"\r\nGET /preview/%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % http_app: 400,
    }
    for data, status in cases.items():
        assert helios.status_of(raw(host, port, data)) == status, data[:80]
    # Still serving.
    assert helios.status_of(raw(host, port, ok + b"\r\n")) == 200


def test_slow_head_timed_out(pv, http_app):
    host, port, pc = preview_cookie(pv, pv.session(), http_app)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET /preview/")
        start = time.monotonic()
        out = recv_all(s, timeout=5)
        assert helios.status_of(out) == 408
        assert time.monotonic() - start < 3


class KeepAliveApp(TcpApp):
    """An app that ignores Connection: close: it answers every request head it reads with that head, and
    keeps the connection."""

    def __init__(self):
        super().__init__(read=False)

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    @staticmethod
    def answer(c):
        buf = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head))
        except OSError:
            pass


def test_a_kept_alive_connections_next_request_does_not_pass(pv):
    """The app is told Connection: close; one that keeps the connection anyway never gets a second
    request of it (which would pass unchecked, the IDE's cookie in it): the connection closes instead."""
    app = KeepAliveApp()
    try:
        ide = pv.session()
        host, port, pc = preview_cookie(pv, ide, app.port)
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(f"GET /preview/{app.port}/a HTTP/1.1\r\nHost: x\r\nCookie: {pc}\r\n\r\n".encode())
            first, deadline = b"", time.monotonic() + 5
            while b"GET /a HTTP/1.1" not in first and time.monotonic() < deadline:
                first += s.recv(65536)  # the app's head and body may come in two pieces
            assert b"GET /a HTTP/1.1" in first
            try:
                s.sendall(f"GET /preview/{app.port}/b HTTP/1.1\r\nHost: x\r\nCookie: {ide}\r\n\r\n".encode())
            except OSError:
                pass
            rest = recv_all(s, timeout=3)
        assert b"/b" not in rest and b"helios_session" not in first + rest
    finally:
        app.close()


def test_connections_capped_per_user(make_gateway, ws_app):
    g = make_gateway("--preview-listen=127.0.0.1:0", "--preview-connections-per-user=2")
    ide = g.session()
    host, port, pc = preview_cookie(g, ide, ws_app)

    async def run():
        a = await websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/", extra_headers={"Cookie": pc})
        b = await websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/", extra_headers={"Cookie": pc})
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/", extra_headers={"Cookie": pc})
        assert e.value.status_code == 429
        await a.close()
        await b.close()
        await asyncio.sleep(0.3)
        c = await websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/", extra_headers={"Cookie": pc})
        await c.close()

    asyncio.run(run())


# ---- TLS: the preview listener speaks it with the IDE's certificate ----

@pytest.fixture
def tls_pv(make_gateway, tmp_path):
    cert, key = helios.make_self_signed(str(tmp_path))
    return make_gateway("--preview-listen=127.0.0.1:0", "--header-timeout=2s", tls=(cert, key))


def test_tls_preview_http_and_websocket(tls_pv, http_app, ws_app):
    g = tls_pv
    ide = g.session()
    u = urlparse(ticket_url(g, ide, http_app))
    assert u.scheme == "https"
    resp = helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}", context=g.ssl_context)
    assert resp.status == 303
    set_cookie = resp.header("set-cookie")
    assert "Secure" in set_cookie
    pc = set_cookie.split(";", 1)[0]
    body = os.urandom(1024 * 1024)
    resp = helios.http_request(u.hostname, u.port, "POST", f"/preview/{http_app}/x", {"Cookie": f"{ide}; {pc}"},
                               body=body, context=g.ssl_context)
    seen = resp.json()
    assert seen["path"] == "/x" and seen["bodyLength"] == len(body) and seen["bodySum"] == sum(body) % 65521
    assert "cookie" not in {k.lower() for k, v in seen["headers"]}

    u = urlparse(ticket_url(g, ide, ws_app))
    pc = helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}",
                             context=g.ssl_context).header("set-cookie").split(";", 1)[0]

    async def run():
        async with websockets.connect(f"wss://{u.hostname}:{u.port}/preview/{ws_app}/", ssl=g.ssl_context,
                                      max_size=None, extra_headers={"Cookie": pc}) as ws:
            await ws.recv()
            msg = os.urandom(2 * 1024 * 1024)
            await ws.send(msg)
            assert await ws.recv() == msg

    asyncio.run(run())


def test_tls_preview_refuses_plain_http_and_silent_clients(tls_pv, http_app):
    g = tls_pv
    u = urlparse(ticket_url(g, g.session(), http_app))
    out = raw(u.hostname, u.port, b"GET /preview/1/ HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
    assert helios.status_of(out) is None  # no plaintext answer on the TLS port
    start = time.monotonic()
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        assert recv_all(s, timeout=10) == b""  # a client that never says hello is closed
    assert time.monotonic() - start < 8
    # And a proper client still gets through.
    assert helios.http_request(u.hostname, u.port, "GET", "/", context=g.ssl_context).status == 404


def test_connections_capped_in_all(make_gateway, http_app):
    g = make_gateway("--preview-listen=127.0.0.1:0", "--preview-max-connections=2", "--header-timeout=5s")
    host, port, pc = preview_cookie(g, g.session(), http_app)
    held = [socket.create_connection((host, port), timeout=5) for _ in range(2)]
    for s in held:
        s.sendall(b"GET /preview/")  # never finished
    time.sleep(0.2)
    with socket.create_connection((host, port), timeout=5) as s:
        start = time.monotonic()
        assert recv_all(s, timeout=4) == b""  # closed at once, not after the header timeout
        assert time.monotonic() - start < 2
    for s in held:
        s.close()
    time.sleep(0.2)
    assert helios.http_request(host, port, "GET", f"/preview/{http_app}/", {"Cookie": pc}).status == 200


def test_gateway_stops_cleanly_with_previews_open(make_gateway, ws_app, http_app):
    g = make_gateway("--preview-listen=127.0.0.1:0")
    ide = g.session()
    host, port, pc = preview_cookie(g, ide, ws_app)
    slow = socket.create_connection((host, port), timeout=5)
    slow.sendall(b"GET /preview/")

    async def run():
        ws = await websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/", extra_headers={"Cookie": pc})
        await ws.recv()
        assert g.stop() == 0
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)

    asyncio.run(run())
    slow.close()


def test_logout_closes_open_previews(pv, ws_app):
    ide = pv.session()
    host, port, pc = preview_cookie(pv, ide, ws_app)

    async def run():
        ws = await websockets.connect(f"ws://{host}:{port}/preview/{ws_app}/", extra_headers={"Cookie": pc})
        await ws.recv()
        await ws.send("still here")
        assert await ws.recv() == "still here"
        assert pv.request("POST", "/logout", {"Origin": pv.origin, "Content-Length": "0"}, cookie=ide).status in (
            200, 204)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)

    asyncio.run(run())


class CookieSettingApp(TcpApp):
    """An app whose answers try to set Helios' cookies (an informational head first, lines ending in LF
    alone in one of them), besides a cookie of its own."""

    def __init__(self):
        super().__init__(read=False)

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    @staticmethod
    def answer(c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            body = b"hello"
            c.sendall(b"HTTP/1.1 103 Early Hints\r\nSet-Cookie: helios_session=early; Path=/\r\nLink: </a.css>\r\n\r\n"
                      b"HTTP/1.1 200 OK\n"
                      b"Set-Cookie: helios_session=evil; Path=/\n"
                      b"set-cookie:__Host-helios_session=evil; Path=/; Secure\n"
                      b"Set-Cookie: HELIOS_PREVIEW=x; Path=/preview/\n"
                      b"Set-Cookie \t: helios_session=evil; Path=/\n"
                      b"Set-Cookie: theme=dark; Path=/\n"
                      b"X-Note: Set-Cookie: helios_session=in-another-header\n"
                      b"Content-Length: 5\n\n" + body)
            c.close()
        except OSError:
            pass


def test_app_cannot_set_helios_cookies(pv):
    app = CookieSettingApp()
    try:
        host, port, pc = preview_cookie(pv, pv.session(), app.port)
        out = raw(host, port, f"GET /preview/{app.port}/ HTTP/1.1\r\nHost: x\r\nCookie: {pc}\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\n"), out
        assert out.endswith(b"\n\nhello")
        set_cookies = [line for line in out.split(b"\n") if line.lower().startswith(b"set-cookie")]
        assert set_cookies == [b"Set-Cookie: theme=dark; Path=/"], out
        assert b"X-Note: Set-Cookie: helios_session=in-another-header" in out
    finally:
        app.close()


def test_ide_believes_no_second_session_cookie(pv):
    """A previewed page on another port of the IDE's host name may add a session cookie of its choosing
    for a narrower path (browsers send it first): with two, the IDE believes neither."""
    mine, planted = pv.session(), pv.session()
    assert pv.request("GET", "/api/session", cookie=mine).status == 200
    assert pv.request("GET", "/api/session", cookie=f"{planted}; {mine}").status == 401
    assert pv.ws(f"{planted}; {mine}").status == 401
    assert pv.ws(f"other=1; {mine}; theme=2").status == 101


class FixedAnswerApp(CookieSettingApp):
    """Reads a request head, answers with fixed bytes and closes."""

    def __init__(self, answer):
        self.fixed = answer
        super().__init__()

    def answer(self, c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            c.sendall(self.fixed)
            c.close()
        except OSError:
            pass


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2\n\n\n\n\n\n", b"HTTP/1.1 2xx OK\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\n   \n\t\n \n", b"\n" * 1000,
                                    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n helios_session=evil\r\n\r\n"])
def test_app_answers_that_are_no_http_heads_are_cut_off(pv, answer):
    app = FixedAnswerApp(answer)
    try:
        host, port, pc = preview_cookie(pv, pv.session(), app.port)
        out = raw(host, port, f"GET /preview/{app.port}/ HTTP/1.1\r\nHost: x\r\nCookie: {pc}\r\n\r\n".encode())
        assert out == b"", out[:200]
        assert helios.http_request(host, port, "GET", "/preview/1/", {"Cookie": pc}).status == 401  # still serving
    finally:
        app.close()
