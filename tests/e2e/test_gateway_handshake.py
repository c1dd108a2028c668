"""The WebSocket opening handshake as RFC 6455 §4.2 and RFC 7692 §7 say, from raw sockets, over plain
HTTP and over TLS alike: versions, keys, subprotocols, permessage-deflate offers, and the close frame
rules the gateway adds to the library's."""

import base64
import os
import struct

import pytest

import helios

GOOD_KEY = base64.b64encode(os.urandom(16)).decode()


@pytest.fixture(params=["plain", "tls"])
def gw(request, make_gateway, tmp_path):
    tls = helios.make_self_signed(str(tmp_path)) if request.param == "tls" else None
    g = make_gateway(worker=helios.ECHO_WORKER, tls=tls)
    g.cookie = g.session()
    return g


def handshake(g, **override):
    """Open /ws with the headers of a good browser handshake, some replaced (None: left out)."""
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": GOOD_KEY,
         "Sec-WebSocket-Version": "13", "Origin": g.origin, "Cookie": g.cookie}
    for k, v in override.items():
        h[k.replace("_", "-")] = v
    return helios.WsClient(g.host, g.port, "/ws", {k: v for k, v in h.items() if v is not None},
                           context=g.ssl_context, raw_headers=True)


def header(ws, name):
    for line in ws.response.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def works(ws):
    ws.send_text("still fine")
    assert ws.recv(timeout=10) == "still fine"


def test_a_good_handshake(gw):
    ws = handshake(gw)
    assert ws.status == 101
    assert header(ws, "Sec-WebSocket-Protocol") is None
    works(ws)


@pytest.mark.parametrize("version", ["12", "8", "99", "", "13, 8", "013", None])
def test_other_versions_get_426_with_the_supported_one(gw, version):
    ws = handshake(gw, Sec_WebSocket_Version=version)
    assert ws.status == 426, ws.response
    assert header(ws, "Sec-WebSocket-Version") == "13"


@pytest.mark.parametrize("key", [
    "", "short", base64.b64encode(os.urandom(15)).decode(), base64.b64encode(os.urandom(17)).decode(),
    GOOD_KEY[:-2], GOOD_KEY.rstrip("=") + "==x", "!" * 22 + "==", GOOD_KEY[:21] + "B==", None])
def test_malformed_keys_get_400(gw, key):
    ws = handshake(gw, Sec_WebSocket_Key=key)
    assert ws.status == 400, (key, ws.response)


def test_our_subprotocol_is_answered(gw):
    ws = handshake(gw, Sec_WebSocket_Protocol="chat, helios")
    assert ws.status == 101
    assert header(ws, "Sec-WebSocket-Protocol") == "helios"
    works(ws)


@pytest.mark.parametrize("offer", ["chat", "chat, superchat", "x" * 200])
def test_unknown_subprotocols_get_an_answer(gw, offer):
    """libwebsockets 4.1 cannot leave the subprotocol out of a 101 (README): the client, which would
    fail a 101 without one, gets a 400 saying why instead of a dropped connection."""
    ws = handshake(gw, Sec_WebSocket_Protocol=offer)
    assert ws.status == 400, ws.response
    assert b"subprotocol" in ws.body
    assert header(ws, "Sec-WebSocket-Protocol") is None


@pytest.mark.parametrize("offer,answer", [
    ("permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits=10", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits=\"8\"", "permessage-deflate"),
    ("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_no_context_takeover", "permessage-deflate; client_no_context_takeover"),
    ("permessage-deflate;server_no_context_takeover;client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"),
])
def test_valid_deflate_offers_are_accepted(gw, offer, answer):
    ws = handshake(gw, Sec_WebSocket_Extensions=offer)
    assert ws.status == 101, ws.response
    assert header(ws, "Sec-WebSocket-Extensions") == answer


@pytest.mark.parametrize("offer", [
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=08",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; unknown_parameter",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
    # Valid, but libwebsockets 4.1 cannot confirm the window in its answer: declined (RFC 7692 §7.1.2.1).
    "permessage-deflate; server_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=10, permessage-deflate",
])
def test_invalid_or_unconfirmable_deflate_offers_are_declined(gw, offer):
    """The connection is made without the extension, and works."""
    ws = handshake(gw, Sec_WebSocket_Extensions=offer)
    assert ws.status == 101, ws.response
    assert header(ws, "Sec-WebSocket-Extensions") is None
    works(ws)


def test_an_overlong_extension_offer_gets_an_answer(gw):
    ws = handshake(gw, Sec_WebSocket_Extensions="permessage-deflate; " + "x" * 300)
    assert ws.status == 400, ws.response


@pytest.mark.parametrize("offer", ["permessage-deflate; server_no_context_takeover",
                                   "permessage-deflate; server_max_window_bits=9",
                                   "permessage-deflate; client_no_context_takeover; client_max_window_bits"])
def test_compressed_messages_flow_after_each_kind_of_offer(gw, offer):
    """A real client (python websockets) that offers these parameters connects, and several messages,
    compressed both ways, arrive intact."""
    import asyncio
    import websockets
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    params = {}
    for p in offer.split(";")[1:]:
        name, _, value = p.strip().partition("=")
        params[name] = int(value) if value else True
    factory = ClientPerMessageDeflateFactory(**params)

    async def run():
        scheme = "wss" if gw.ssl_context else "ws"
        async with websockets.connect(f"{scheme}://127.0.0.1:{gw.port}/ws", ssl=gw.ssl_context,
                                      origin=gw.origin, extra_headers={"Cookie": gw.cookie},
                                      extensions=[factory], compression=None) as ws:
            for i in range(4):
                text = f"message {i} " * 2000
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), 10) == text
    asyncio.run(run())


def test_close_frame_with_a_1_byte_payload_gets_1002(gw):
    ws = handshake(gw)
    works(ws)
    ws.send_frame(0x8, b"\x03")
    assert ws.expect_close(timeout=5) == 1002


def test_close_frame_with_a_code_is_answered_with_it(gw):
    ws = handshake(gw)
    works(ws)
    ws.send_frame(0x8, struct.pack("!H", 1000) + b"bye")
    assert ws.expect_close(timeout=5) == 1000
