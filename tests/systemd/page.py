"""Runs inside the test container: one browser page of a student, kept open for as long as the test
wants, driven by commands on standard input, one per line; each answer is one JSON line.

  page.py BASE USER            (the password is the first line of standard input)

  login                        POST /login                    {"login": STATUS, "set_cookie": HEADER}
  open                         GET /ws with the session       {"open": "ok"} or {"open": HTTP STATUS}
  call METHOD [PARAMS]         one request on the open page   {"response": ...} or {"closed": CODE}
  closed TIMEOUT               wait until the page is closed  {"closed": CODE, "reason": ...} or {"closed": null}
  quit

Like the web app, it keeps its cookie across a closed WebSocket, and logs in again only when told.
BASE may be https://NAME: the certificate is checked against SSL_CERT_FILE, and NAME resolved as the
container's /etc/hosts says.
"""

import asyncio
import base64
import http.client
import json
import sys
import urllib.parse


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Page:
    def __init__(self, base, user, password):
        self.base, self.user, self.password = base, user, password
        self.cookie = ""
        self.ws = None
        self.next_id = 1

    def login(self):
        u = urllib.parse.urlsplit(self.base)
        if u.scheme == "https":
            c = http.client.HTTPSConnection(u.hostname, u.port, timeout=30)
        else:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        c.request("POST", "/login", body=b"", headers={"Authorization": "Basic " + auth})
        r = c.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie") or ""
        if r.status == 200:
            self.cookie = cookie.split(";")[0]
        c.close()
        return {"login": r.status, "set_cookie": cookie}

    async def open(self):
        import websockets

        url = self.base.replace("http", "ws", 1) + "/ws"
        # 503 is "try again in a moment" (the gateway checking the account again, say), which the
        # web app retries as it reconnects: so does this page, a few times.
        for _ in range(10):
            try:
                self.ws = await websockets.connect(url, origin=self.base, open_timeout=30, max_size=None,
                                                   extra_headers={"Cookie": self.cookie})
                return {"open": "ok"}
            except websockets.exceptions.InvalidStatusCode as e:
                self.ws = None
                if e.status_code != 503:
                    return {"open": e.status_code}
                await asyncio.sleep(1)
        return {"open": 503}

    async def call(self, method, params):
        import websockets

        if self.ws is None:
            return {"closed": "not open"}
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            msg["params"] = params
        try:
            await self.ws.send(json.dumps(msg))
            while True:
                m = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                if m.get("id") == msg["id"]:
                    return {"response": m}
        except websockets.exceptions.ConnectionClosed as e:
            return {"closed": e.code, "reason": e.reason}

    async def closed(self, timeout):
        import websockets

        if self.ws is None:
            return {"closed": "not open"}
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return {"closed": None}
        except websockets.exceptions.ConnectionClosed as e:
            return {"closed": e.code, "reason": e.reason}


async def main():
    base, user = sys.argv[1], sys.argv[2]
    loop = asyncio.get_running_loop()
    password = (await loop.run_in_executor(None, sys.stdin.readline)).rstrip("\n")
    page = Page(base, user, password)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "login":
            out(page.login())
        elif cmd == "open":
            out(await page.open())
        elif cmd == "call":
            method, _, params = rest.partition(" ")
            out(await page.call(method, json.loads(params) if params else None))
        elif cmd == "closed":
            out(await page.closed(float(rest or "30")))
        else:
            out({"error": f"unknown command {cmd}"})
    if page.ws is not None:
        await page.ws.close()


if __name__ == "__main__":
    asyncio.run(main())
