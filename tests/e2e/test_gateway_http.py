"""Plain HTTP: the web app's files and their headers, the way out of the web root that must not exist,
and requests built to hurt (oversized, slow, bodies nobody asked for, too many connections)."""

import gzip
import os
import socket
import time

import pytest

import helios
from helios import status_of


def assets(gateway):
    names = os.listdir(os.path.join(helios.WEB_ROOT, "assets"))
    js = next(n for n in names if n.endswith(".js"))
    css = next(n for n in names if n.endswith(".css"))
    return js, css


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_security_headers(resp):
    csp = resp.header("content-security-policy")
    assert csp and "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, resp.headers
    assert "unsafe-inline" not in csp
    for k, v in SECURITY_HEADERS.items():
        assert resp.header(k) == v, (k, resp.headers)


# ---- the web app ----

def test_index_is_never_cached_and_carries_security_headers(gateway):
    resp = gateway.request("GET", "/")
    assert resp.status == 200
    assert resp.header("content-type") == "text/html; charset=utf-8"
    assert resp.header("cache-control") == "no-cache"
    assert resp.header("etag")
    assert_security_headers(resp)
    assert gateway.request("GET", "/index.html").body == resp.body


def test_hashed_assets_are_immutable_with_right_types(gateway):
    js, css = assets(gateway)
    r = gateway.request("GET", f"/assets/{js}")
    assert r.status == 200
    assert r.header("content-type") == "text/javascript; charset=utf-8"
    assert r.header("cache-control") == "public, max-age=31536000, immutable"
    assert_security_headers(r)
    r = gateway.request("GET", f"/assets/{css}")
    assert r.header("content-type") == "text/css; charset=utf-8"
    page = gateway.request("GET", "/").body.decode()
    assert f"assets/{js}" in page and f"assets/{css}" in page


def test_precompressed_gzip_when_accepted(gateway):
    js, _ = assets(gateway)
    plain = gateway.request("GET", f"/assets/{js}")
    assert plain.header("content-encoding") is None
    assert plain.header("vary") == "Accept-Encoding"
    zipped = gateway.request("GET", f"/assets/{js}", {"Accept-Encoding": "br, gzip;q=0.8"})
    assert zipped.header("content-encoding") == "gzip"
    assert zipped.header("vary") == "Accept-Encoding"
    assert gzip.decompress(zipped.body) == plain.body
    assert zipped.header("etag") != plain.header("etag")
    refused = gateway.request("GET", f"/assets/{js}", {"Accept-Encoding": "gzip;q=0, identity"})
    assert refused.header("content-encoding") is None


def test_etag_revalidation_and_head(gateway):
    first = gateway.request("GET", "/")
    again = gateway.request("GET", "/", {"If-None-Match": first.header("etag")})
    assert again.status == 304 and again.body == b""
    assert again.header("etag") == first.header("etag")
    head = gateway.request("HEAD", "/")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == str(len(first.body))


def test_missing_file_is_404_with_headers(gateway):
    resp = gateway.request("GET", "/no/such/file.js")
    assert resp.status == 404
    assert_security_headers(resp)


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "/..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/.%2e/.%2e/etc/passwd",
    "//etc/passwd", "/assets/..\\..\\etc\\passwd", "/%252e%252e/etc/passwd", "/secret.txt",
])
def test_no_way_out_of_the_web_root(make_gateway, tmp_path, path):
    # A web root with a secret next to it and a symlink pointing at it.
    root = tmp_path / "web"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<p>hi</p>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    os.symlink(tmp_path / "secret.txt", root / "secret.txt")
    os.symlink("/etc/passwd", root / "assets" / "passwd")
    g = make_gateway(f"--web-root={root}")
    raw = g.raw(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    assert b"TOP SECRET" not in raw and b"root:" not in raw
    assert status_of(raw) in (400, 404, None), raw[:200]
    for p in ("/assets/passwd", "/secret.txt"):
        assert g.request("GET", p).status == 404
    assert g.request("GET", "/").body == b"<p>hi</p>"


def test_hidden_files_refused(gateway):
    assert gateway.request("GET", "/.git/config").status == 400
    assert gateway.request("GET", "/assets/.env").status == 400


def test_methods(gateway):
    assert gateway.request("DELETE", "/").status == 405
    r = gateway.request("PUT", "/index.html", body=b"")
    assert r.status in (405, 413)
    r = gateway.request("GET", "/login")
    assert r.status == 405 and r.header("allow") == "POST"


# ---- requests built to hurt ----

def test_oversized_headers_431(gateway):
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n"
    assert status_of(gateway.raw(big)) == 431
    many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(100)) + b"\r\n"
    assert status_of(gateway.raw(many)) == 431
    cookie = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + b"c=" + b"d" * 9000 + b"\r\n\r\n"
    assert status_of(gateway.raw(cookie)) == 431
    assert gateway.metrics()["helios_gateway_oversized_headers_total"] == 3
    assert gateway.request("GET", "/healthz").status == 200


def read_response(s):
    """One whole response (headers and a Content-Length body) from a kept-alive connection: (status,
    rest of the stream read so far)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(rest) < length:
        rest += s.recv(65536)
    return status_of(head), rest[length:]


def read_to_end(s):
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


@pytest.mark.parametrize("second", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(100)),
], ids=["one long header", "headers without end"])
def test_oversized_headers_on_a_kept_alive_connection_end_it(gateway, second):
    """Requests after the first are read by libwebsockets, which holds them to the limit but has no way
    to answer 431 (README): the connection ends without an answer."""
    with socket.create_connection((gateway.host, gateway.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(s)[0] == 200
        # A second request of ordinary size is served on the same connection...
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"p" * 7000 + b"\r\n\r\n")
        assert read_response(s)[0] == 200
        # ...an oversized third ends the connection, unanswered.
        s.sendall(second)
        assert read_to_end(s) == b""
    assert gateway.request("GET", "/healthz").status == 200


def test_slow_drip_headers_408(make_gateway):
    g = make_gateway("--header-timeout=1500ms")
    s = socket.create_connection((g.host, g.port))
    s.settimeout(10)
    started = time.monotonic()
    answer = b""
    try:
        for ch in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            s.send(bytes([ch]))
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - started
    assert status_of(answer) == 408
    assert 1.4 < elapsed < 6
    # Meanwhile everyone else was served.
    assert g.request("GET", "/healthz").status == 200
    assert g.metrics()["helios_gateway_header_timeouts_total"] == 1


def test_request_bodies_refused(gateway):
    assert status_of(gateway.raw(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello")) == 413
    assert status_of(gateway.raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello")) == 413
    assert status_of(gateway.raw(b"POST /logout HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")) == 413
    assert status_of(gateway.raw(b"POST /logout HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) == 411
    assert gateway.request("GET", "/healthz").status == 200


def test_garbage_requests_do_not_disturb(gateway):
    page = gateway.rpc()
    for junk in [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
                 b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", os.urandom(512) + b"\r\n\r\n",
                 b"GET /index.html%00.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"\r\n\r\n"]:
        raw = gateway.raw(junk, timeout=3)
        # Refused (or the connection dropped): never a file.
        assert status_of(raw) in (None, 400, 403, 404, 505), raw[:100]
    # An HTTP version from the future is answered as HTTP/1.0 or refused.
    assert status_of(gateway.raw(b"GET /healthz HTTP/9.9\r\n\r\n", timeout=3)) in (None, 200, 400, 403, 505)
    assert gateway.request("GET", "/healthz").status == 200
    assert page.call("worker:info")


def test_unauthenticated_connection_cap(make_gateway):
    """Idle connections that never send a request fill the cap; a new client still gets through
    (the oldest idler gives way) and pages with a session keep working."""
    g = make_gateway("--max-unauthenticated=20", "--header-timeout=60s")
    cookie = g.session()
    page = g.rpc(cookie)
    idlers = [socket.create_connection((g.host, g.port)) for _ in range(40)]
    time.sleep(0.5)
    m = g.metrics()
    assert m["helios_gateway_unauthenticated_connections"] <= 20
    assert m["helios_gateway_header_timeouts_total"] >= 20
    assert g.request("GET", "/healthz").status == 200
    assert page.call("worker:info")["name"] == "helios-worker"
    # The evicted idlers were told why.
    told = 0
    for s in idlers[:20]:
        s.settimeout(2)
        try:
            if status_of(s.recv(4096)) == 408:
                told += 1
        except OSError:
            pass
        s.close()
    assert told >= 19
    for s in idlers[20:]:
        s.close()
    page.close()


def connect_from(g, source, n):
    """n idle connections to the gateway from the loopback address source."""
    return [socket.create_connection((g.host, g.port), source_address=(source, 0)) for _ in range(n)]


def still_open(s):
    """Nothing was said and the connection is up (a closed one reads as b"" or a reset)."""
    s.settimeout(0.2)
    try:
        return s.recv(4096) == b"never"
    except TimeoutError:
        return True
    except OSError:
        return False


def get_from(g, source, path="/healthz"):
    import http.client
    conn = http.client.HTTPConnection(g.host, g.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + g.metrics_token})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_one_address_gets_only_its_share_of_unauthenticated_slots(make_gateway):
    g = make_gateway("--max-unauthenticated=20", "--max-unauthenticated-per-address=5", "--header-timeout=60s")
    crowd = connect_from(g, "127.0.0.1", 40)
    others = connect_from(g, "127.0.0.2", 5) + connect_from(g, "127.0.0.3", 5) + connect_from(g, "127.0.0.4", 5)
    time.sleep(0.5)
    # The crowd pushed out only its own: its oldest were told 408, its newest five are still waiting...
    told = sum(status_of(s.recv(4096)) == 408 for s in crowd[:35])
    assert told == 35
    assert all(still_open(s) for s in crowd[35:])
    # ...and every other address kept its connections, though 55 arrived for 20 slots.
    assert all(still_open(s) for s in others)
    status, body = get_from(g, "127.0.0.5", "/metrics")
    assert status == 200
    assert b"helios_gateway_unauthenticated_connections 20" in body
    assert get_from(g, "127.0.0.6")[0] == 200
    for s in crowd + others:
        s.close()


def test_trusted_proxy_is_not_capped_per_address(make_gateway):
    g = make_gateway("--max-unauthenticated=20", "--max-unauthenticated-per-address=5", "--header-timeout=60s",
                     "--trusted-proxies=127.0.0.1")
    proxied = connect_from(g, "127.0.0.1", 12)
    time.sleep(0.3)
    assert all(still_open(s) for s in proxied)
    for s in proxied:
        s.close()


def test_total_connection_cap(make_gateway):
    g = make_gateway("--max-connections=10", "--max-unauthenticated=10")
    socks = [socket.create_connection((g.host, g.port)) for _ in range(10)]
    time.sleep(0.3)
    extra = g.raw(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    # At the cap the oldest header-phase connection makes room, or a 503 says to come back.
    assert status_of(extra) in (200, 503)
    for s in socks:
        s.close()
    time.sleep(0.3)
    assert g.request("GET", "/healthz").status == 200


# ---- health and metrics ----

def test_healthz_says_nothing_else(gateway):
    r = gateway.request("GET", "/healthz")
    assert r.status == 200 and r.body == b"ok\n"
    assert r.header("cache-control") == "no-store"


def test_metrics_only_with_the_token(make_gateway, tmp_path):
    """Every local process reaches a loopback listener (every student's sandbox): loopback is no proof of
    anything, the token is asked of everyone."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text("m3tr1cs-s3cr3t-t0k3n\n")
    g = make_gateway(f"--metrics-token-file={token_file}", "--trusted-proxies=127.0.0.1")
    assert g.request("GET", "/metrics").status == 403
    assert g.request("GET", "/metrics", {"Authorization": "Bearer wrong-token-wrong"}).status == 403
    assert g.request("GET", "/metrics", {"Authorization": "Basic bTN0cjFjcy1zM2NyM3QtdDBrM24="}).status == 403
    ok = g.request("GET", "/metrics", {"Authorization": "Bearer m3tr1cs-s3cr3t-t0k3n"})
    assert ok.status == 200 and b"helios_gateway_connections_total" in ok.body
    remote = {"X-Forwarded-For": "203.0.113.9"}
    assert g.request("GET", "/metrics", remote).status == 403
    ok = g.request("GET", "/metrics", {**remote, "Authorization": "Bearer m3tr1cs-s3cr3t-t0k3n"})
    assert ok.status == 200


def test_metrics_without_a_token_file_are_served_to_nobody(make_gateway):
    g = make_gateway(start=False)
    g.metrics_token = None
    g.start()
    r = g.request("GET", "/metrics")
    assert r.status == 403 and b"metrics_token_file" in r.body
    assert g.request("GET", "/metrics", {"Authorization": "Bearer "}).status == 403
    assert g.request("GET", "/healthz").status == 200


def request_with_host(g, host, path="/healthz", extra=b""):
    return status_of(g.raw(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() +
                           b"\r\nConnection: close\r\n" + extra + b"\r\n"))


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/", "/index.html", "/api/session", "/ws",
                                  "/nonexistent"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.2", "10.0.0.1",
                                  "localhost.attacker.example", "127.0.0.1.nip.io", "[::1]", "", "a:b:c",
                                  "127.0.0.1:{port}@evil"])
def test_other_host_names_get_421_on_every_path(make_gateway, path, host):
    """A page on another site can rebind its own DNS name to this machine: requests naming a host this
    server does not answer to are refused, before anything else is looked at."""
    g = make_gateway()
    assert request_with_host(g, host.format(port=g.port), path) in (400, 421)


def test_other_host_names_cannot_open_the_websocket(make_gateway):
    g = make_gateway()
    cookie = g.session()
    ws = g.ws(cookie, headers={"Host": "attacker.example"})
    assert ws.status in (400, 421)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "localhost."])
def test_the_listening_address_and_localhost_are_answered(make_gateway, host):
    g = make_gateway()
    assert request_with_host(g, host.format(port=g.port)) == 200


def test_server_names_and_allowed_origins_are_answered(make_gateway):
    g = make_gateway("--server-names=ide.example.org", "--server-names=other.example",
                     "--allowed-origins=https://lab.example.net:8443")
    for host in ["ide.example.org", "IDE.example.org:443", "other.example", "lab.example.net:8443"]:
        assert request_with_host(g, host) == 200, host
    assert request_with_host(g, "example.org") == 421


def test_a_wildcard_listen_answers_the_address_reached(make_gateway):
    g = make_gateway("--listen=0.0.0.0:0", start=False)
    g.args.remove("--listen=0.0.0.0:0")
    orig = g.command
    g.command = lambda: [c if c != "127.0.0.1:0" else "0.0.0.0:0" for c in orig()]
    g.start()
    assert request_with_host(g, f"127.0.0.1:{g.port}") == 200
    assert request_with_host(g, "localhost") == 200
    assert request_with_host(g, "127.0.0.2") == 421  # not the address this connection reached
    assert request_with_host(g, "attacker.example") == 421


def test_unix_socket_listener(make_gateway, tmp_path):
    path = str(tmp_path / "gateway.sock")
    g = make_gateway(f"--listen=unix:{path}", start=False)
    g.start(expect_url=False)
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert status_of(data) == 200
    assert g.stop() == 0
    assert not os.path.exists(path)


def test_behind_a_trusted_tls_proxy(make_gateway):
    """A reverse proxy on loopback terminates TLS for https://ide.example.org: its X-Forwarded-Proto and
    X-Forwarded-Host make the cookie Secure and the page's origin https://ide.example.org. The same
    headers from anyone else change nothing."""
    g = make_gateway("--trusted-proxies=127.0.0.1", "--server-names=ide.example.org")
    proxy = {"X-Forwarded-For": "198.51.100.20", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "ide.example.org"}
    resp = g.login(headers=proxy)
    assert resp.status == 200
    cookie = resp.header("set-cookie")
    assert cookie.startswith("__Host-helios_session=") and "Secure" in cookie
    assert resp.header("strict-transport-security")
    jar = helios.cookie_from(resp)
    ws = g.ws(jar, origin="https://ide.example.org", headers=proxy)
    assert ws.status == 101
    ws.close_socket()
    assert g.ws(jar, origin=g.origin, headers=proxy).status == 403
    assert "198.51.100.20" in g.read_log()

    plain = make_gateway(name="direct")
    resp = plain.login(headers=proxy)
    assert resp.status == 200
    assert resp.header("set-cookie").startswith("helios_session=")
    assert "Secure" not in resp.header("set-cookie")
    jar = helios.cookie_from(resp)
    assert plain.ws(jar, origin="https://ide.example.org", headers=proxy).status == 403
    assert plain.ws(jar).status == 101
