"""TLS with a self-signed certificate made by the openssl command line: HTTPS and HTTP/2 by ALPN, a
Secure __Host- cookie, and the whole JSON-RPC path over wss://."""

import asyncio
import json
import re
import socket
import ssl
import time

import pytest
import websockets

import helios
from helios import cookie_from


@pytest.fixture
def tls_gateway(make_gateway, tmp_path):
    cert, key = helios.make_self_signed(str(tmp_path))
    g = make_gateway(tls=(cert, key))
    return g


def test_url_is_https_and_cookie_is_secure(tls_gateway):
    g = tls_gateway
    assert g.url.startswith("https://127.0.0.1:")
    resp = g.login(context=g.ssl_context)
    assert resp.status == 200
    cookie = resp.header("set-cookie")
    attrs = [a.strip() for a in cookie.split(";")]
    assert attrs[0].startswith("__Host-helios_session=")
    assert "Secure" in attrs and "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs
    page = g.request("GET", "/", context=g.ssl_context)
    assert page.status == 200
    assert page.header("strict-transport-security") == "max-age=31536000"
    # The plain cookie name means nothing under TLS.
    plain = "helios_session=" + cookie_from(resp).split("=", 1)[1]
    assert g.request("GET", "/api/session", cookie=plain, context=g.ssl_context).status == 401
    assert g.request("GET", "/api/session", cookie=cookie_from(resp), context=g.ssl_context).status == 200


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind, flags=0, stream=0, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def tls_connection(g, alpn):
    ctx = ssl.create_default_context(cafile=g.tls[0])
    ctx.check_hostname = False
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection((g.host, g.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_http2_is_not_offered(tls_gateway):
    """HTTP/2 WebSockets (RFC 8441) skip checks an HTTP/1.1 upgrade gets, and the library keeps every
    unanswered PING (README): ALPN selects HTTP/1.1 or nothing, never h2."""
    g = tls_gateway
    with tls_connection(g, ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert s.version() in ("TLSv1.2", "TLSv1.3")
    with tls_connection(g, ["h2"]) as s:
        assert s.selected_alpn_protocol() is None


@pytest.mark.parametrize("alpn", [["h2"], []])
def test_http2_preface_gets_no_http2(tls_gateway, alpn):
    """A client that speaks HTTP/2 anyway (prior knowledge) gets an HTTP/1.1 error or a closed
    connection: no SETTINGS, no PING answers, nothing kept for it."""
    g = tls_gateway
    with tls_connection(g, alpn) as s:
        s.sendall(H2_PREFACE + h2_frame(0x4) + b"".join(h2_frame(0x6, payload=i.to_bytes(8, "big"))
                                                        for i in range(1000)))
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
    assert out == b"" or re.match(rb"HTTP/1\.[01] 4", out), out[:64]
    assert g.request("GET", "/healthz", context=g.ssl_context).status == 200


def test_old_tls_refused(tls_gateway):
    g = tls_gateway
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    except ValueError:
        pytest.skip("this Python cannot offer TLS 1.1")
    with socket.create_connection((g.host, g.port)) as raw:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="localhost")


def test_plain_http_on_the_tls_port_is_refused(tls_gateway):
    raw = tls_gateway.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    assert not raw.startswith(b"HTTP/1.1 200")


def test_jsonrpc_over_wss(tls_gateway):
    g = tls_gateway
    cookie = cookie_from(g.login(context=g.ssl_context))

    async def run():
        async with websockets.connect(f"wss://127.0.0.1:{g.port}/ws", ssl=g.ssl_context,
                                      origin=f"https://127.0.0.1:{g.port}", extra_headers={"Cookie": cookie}) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "worker:info"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))
    resp = asyncio.run(run())
    assert resp["result"]["name"] == "helios-worker"

    async def foreign():
        async with websockets.connect(f"wss://127.0.0.1:{g.port}/ws", ssl=g.ssl_context,
                                      origin=f"http://127.0.0.1:{g.port}", extra_headers={"Cookie": cookie}):
            pass
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
        asyncio.run(foreign())  # the same host over plain http is another origin
    assert refused.value.status_code == 403


def test_bad_certificate_refused_at_start(make_gateway, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    g = make_gateway(tls=(str(bogus), str(bogus)), start=False)
    g.start(expect_url=False)
    assert g.wait() == 1
    assert "certificate and key" in g.read_log()


@pytest.mark.parametrize("frame", [dict(opcode=0x1, payload=b"hello", rsv=0b010),
                                   dict(opcode=0x9, payload=b"ping", fin=False),
                                   dict(opcode=0x3, payload=b"reserved")])
def test_invalid_frames_close_1002_over_tls(make_gateway, tmp_path, frame):
    cert, key = helios.make_self_signed(str(tmp_path))
    g = make_gateway(tls=(cert, key), worker=helios.ECHO_WORKER)
    cookie = g.session(context=g.ssl_context)
    bystander, ws = g.ws(cookie), g.ws(cookie)
    assert ws.status == 101
    ws.send_frame(0x1, b"x" * 200, chunk=3)
    assert ws.recv(timeout=10) == "x" * 200
    ws.send_frame(**frame)
    assert ws.expect_close(timeout=5) == 1002
    bystander.send_text("still here")
    assert bystander.recv(timeout=10) == "still here"


def test_at_the_unauthenticated_cap_the_oldest_tls_connection_gives_way(make_gateway, tmp_path):
    """Under TLS the library reads the headers, after a handshake it gives 15 s: a crowd of connections
    that never start one would hold every slot. At the cap the oldest goes instead of the newcomer."""
    cert, key = helios.make_self_signed(str(tmp_path))
    g = make_gateway("--max-unauthenticated=5", tls=(cert, key))
    crowd = [socket.create_connection((g.host, g.port), source_address=("127.0.0.2", 0)) for _ in range(5)]
    time.sleep(0.3)
    assert g.request("GET", "/healthz", context=g.ssl_context).status == 200
    # The request made room by closing the oldest. Two more of the crowd push out at least one more
    # (two, if the request's own connection was not let go yet), always the oldest.
    crowd += [socket.create_connection((g.host, g.port), source_address=("127.0.0.3", 0)) for _ in range(2)]
    time.sleep(0.3)
    for s in crowd[:2]:
        s.settimeout(5)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
    for s in crowd[3:]:
        s.settimeout(0.2)
        with pytest.raises(TimeoutError):
            s.recv(100)
    assert g.request("GET", "/healthz", context=g.ssl_context).status == 200
    for s in crowd:
        s.close()


def test_bad_frame_in_the_tail_of_a_tls_record_closes_1002(make_gateway, tmp_path):
    """libwebsockets reads a TLS record in buffers of 4 KiB and then just the few bytes left in it: a
    frame header in those is checked all the same."""
    cert, key = helios.make_self_signed(str(tmp_path))
    g = make_gateway(tls=(cert, key), worker=helios.ECHO_WORKER)
    ws = g.ws(g.session(context=g.ssl_context))
    assert ws.status == 101
    first = helios.frame_bytes(0x1, b"a" * 4088)
    assert len(first) == 4096
    ws.send_raw(first + helios.frame_bytes(0x1, b"hi", rsv=0b010))  # one record
    got = []
    with pytest.raises(helios.WsClosed) as closed:
        while True:
            got.append(ws.recv(timeout=5))
    assert closed.value.code == 1002
    assert "hi" not in got


@pytest.mark.parametrize("per_address", [[44, 43, 43], [64, 64, 2]])
def test_idle_tls_connections_do_not_hold_up_others(make_gateway, tmp_path, per_address):
    """Connections that never send a ClientHello each hold some of the library's state until the
    handshake timeout. 130 of them from three addresses (or 64 from one, its whole share) leave room:
    a client from elsewhere is answered while they wait, and they can only push out their own."""
    cert, key = helios.make_self_signed(str(tmp_path))
    g = make_gateway(tls=(cert, key))
    idle = []
    for n, source in zip(per_address, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]):
        idle += [socket.create_connection((g.host, g.port), source_address=(source, 0)) for _ in range(n)]
    time.sleep(0.5)
    for _ in range(3):
        assert g.request("GET", "/healthz", context=g.ssl_context, timeout=3).status == 200
    cookie = g.session(context=g.ssl_context)
    ws = g.ws(cookie)
    assert ws.status == 101
    ws.close_socket()
    for s in idle:
        s.close()


# ---- certificates: reload, cert = auto, and files that cannot be used ----

def peer_cert(g):
    """The certificate (DER) a new TLS connection to g is shown."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((g.host, g.port), timeout=10) as s, ctx.wrap_socket(s) as t:
        return t.getpeercert(binary_form=True)


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_sighup_loads_a_renewed_certificate_for_new_connections(make_gateway, tmp_path):
    import os
    import signal
    first = tmp_path / "first"
    first.mkdir()
    cert, key = helios.make_self_signed(str(first))
    g = make_gateway(tls=(cert, key))
    page = g.rpc(g.session())
    assert peer_cert(g) == der_of(cert)

    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_cert, new_key = helios.make_self_signed(str(renewed), name="renewed.example")
    expected = der_of(new_cert)
    for src, dst in ((new_key, key), (new_cert, cert)):
        os.replace(src, dst)
        helios.own_to_gateway(dst)
    g.signal(signal.SIGHUP)
    assert g.wait_log(f"TLS certificate {cert} loaded"), g.read_log()
    assert peer_cert(g) == expected
    assert page.call("worker:info")  # a page open before keeps its connection

    # A broken renewal is refused with one line; the current certificate stays.
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    g.signal(signal.SIGHUP)
    assert g.wait_log("holds no unencrypted PEM private key; keeping the current ones"), g.read_log()
    assert peer_cert(g) == expected


def test_a_key_of_another_certificate_is_one_clear_error(make_gateway, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cert, _ = helios.make_self_signed(str(a))
    _, other_key = helios.make_self_signed(str(b))
    g = make_gateway(tls=(cert, other_key), start=False)
    g.start(expect_url=False)
    assert g.wait() == 1
    errors = [l for l in g.read_log().splitlines() if "TLS certificate and key" in l]
    assert len(errors) == 1 and errors[0].endswith("the key does not belong to the certificate."), g.read_log()
    missing = make_gateway(f"--cert={tmp_path / 'none.pem'}", f"--key={other_key}", name="gw2", start=False)
    missing.start(expect_url=False)
    assert missing.wait() == 1
    assert "the certificate file does not exist." in missing.read_log()


def test_cert_auto_makes_a_self_signed_certificate_once(make_gateway, tmp_path):
    import os
    state = tmp_path / "gw" / "state"
    g = make_gateway("--cert=auto", f"--state-dir={state}", start=False)
    g.start(expect_url=False)
    assert g.wait_log("Serving"), g.read_log()
    g.read_url()
    assert g.base_url.startswith("https://")
    cert, key = state / "tls" / "cert.pem", state / "tls" / "key.pem"
    assert f"Made a self-signed TLS certificate {cert}" in g.read_log()
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    made = der_of(cert)
    assert peer_cert(g) == made
    assert g.stop() == 0
    g.start()
    assert peer_cert(g) == made  # kept, not made again
    assert f"Using the self-signed TLS certificate {cert}" in g.read_log()


def test_cert_auto_without_a_state_directory_is_refused(make_gateway):
    g = make_gateway("--cert=auto", start=False)
    g.start(expect_url=False)
    assert g.wait() == 1
    assert "cert = auto keeps its certificate in state_dir" in g.read_log()
