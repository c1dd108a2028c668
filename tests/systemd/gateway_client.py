"""Runs inside the test container: a browser's part against helios-gateway, printing one JSON object.

  gateway_client.py BASE get PATH                          {"status", "headers", "body"}
  gateway_client.py BASE login USER PASSWORD | --token T   {"status", "cookie"}
  gateway_client.py BASE rpc COOKIE METHOD [PARAMS]        {"response", "seconds"} or, when the gateway
                                                           closes the page instead, {"closed": [CODE, REASON]}
  gateway_client.py BASE hold COOKIE                       a page kept open until the process ends
  gateway_client.py BASE logout COOKIE                     {"status", "headers", "body"}
"""

import asyncio
import base64
import http.client
import json
import sys
import time
import urllib.parse


def request(base, method, path, headers=None):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(method, path, body=b"" if method == "POST" else None, headers=headers or {})
    r = c.getresponse()
    out = {"status": r.status, "headers": dict(r.getheaders()),
           "body": r.read().decode(errors="replace")}
    c.close()
    return out


async def rpc(base, cookie, method, params):
    import websockets

    start = time.monotonic()
    url = base.replace("http", "ws", 1) + "/ws"
    async with websockets.connect(url, origin=base, extra_headers={"Cookie": cookie},
                                  open_timeout=30) as ws:
        msg = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            msg["params"] = params
        try:
            await ws.send(json.dumps(msg))
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if m.get("id") == 1:
                    return {"response": m, "seconds": time.monotonic() - start}
        except websockets.exceptions.ConnectionClosed as e:
            return {"closed": [e.code, e.reason]}


async def hold(base, cookie):
    import websockets

    url = base.replace("http", "ws", 1) + "/ws"
    async with websockets.connect(url, origin=base, extra_headers={"Cookie": cookie}, open_timeout=30) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "worker:info"}))
        while True:
            # Notifications and the answer are read and dropped; the page stays open.
            await ws.recv()


def main():
    base, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == "get":
        out = request(base, "GET", args[0], {"Cookie": args[1]} if len(args) > 1 else None)
    elif mode == "login":
        if args[0] == "--token":
            auth = "Bearer " + args[1]
        else:
            auth = "Basic " + base64.b64encode(f"{args[0]}:{args[1]}".encode()).decode()
        r = request(base, "POST", "/login", {"Authorization": auth})
        cookie = {k.lower(): v for k, v in r["headers"].items()}.get("set-cookie", "").split(";")[0]
        out = {"status": r["status"], "cookie": cookie}
    elif mode == "hold":
        asyncio.run(hold(base, args[0]))
        return
    elif mode == "logout":
        out = request(base, "POST", "/logout", {"Cookie": args[0]})
    elif mode == "rpc":
        params = json.loads(args[2]) if len(args) > 2 else None
        out = asyncio.run(rpc(base, args[0], args[1], params))
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
