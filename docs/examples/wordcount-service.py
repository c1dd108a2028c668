#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A complete Helios service in Python 3 with the standard library only.

It serves `wc:*` on the user's bus:
  wc:count {text}            -> {lines, words, bytes}
  wc:stream {text, chunk?}   -> {streamId}; then wc:chunk {streamId, index, words} for every
                                `chunk` lines (default 1), to the asking client alone, and
                                wc:done {streamId, chunks}.
  wc:ping (a notification)   -> wc:pong {} to every other connection.

Run it either way:
  wordcount-service.py --connect /path/to/worker.sock   joins the bus over the worker's socket
                                                        and sends bus:serve itself;
  wordcount-service.py                                  speaks on stdin/stdout, as the worker
                                                        starts a service from its manifest.
"""

import json
import os
import socket
import sys

TOPICS = ["wc:*"]
MAX_LINE = 16 * 1024 * 1024


class Bus:
    """One NDJSON JSON-RPC 2.0 connection: a message per line, UTF-8."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile
        self.next_id = 1

    def send(self, msg):
        self.wfile.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        self.wfile.flush()

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def messages(self):
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            if line.strip():
                yield json.loads(line)


def count(text):
    return {"lines": text.count("\n"), "words": len(text.split()), "bytes": len(text.encode())}


def handle(bus, msg, state):
    """Answer one request; a raised ValueError becomes a -32602 error."""
    method, params = msg.get("method"), msg.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be an object")
    if method == "wc:count":
        text = params.get("text")
        if not isinstance(text, str):
            raise ValueError("'text' must be a string")
        return count(text)
    if method == "wc:stream":
        text, chunk = params.get("text"), params.get("chunk", 1)
        if not isinstance(text, str) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError("'text' must be a string and 'chunk' a positive integer")
        state["streams"] += 1
        sid = state["streams"]
        # The token of the client that asked: a notification carrying it goes to that client alone.
        to = {"busClient": params["busClient"]} if "busClient" in params else {}
        lines = text.split("\n")
        state["later"].append(lambda: stream(bus, sid, lines, chunk, to))
        return {"streamId": sid}
    return None


def stream(bus, sid, lines, chunk, to):
    n = 0
    for i in range(0, len(lines), chunk):
        words = sum(len(line.split()) for line in lines[i : i + chunk])
        bus.notify("wc:chunk", {"streamId": sid, "index": n, "words": words, **to})
        n += 1
    bus.notify("wc:done", {"streamId": sid, "chunks": n, **to})


def serve(bus):
    state = {"streams": 0, "later": []}
    for msg in bus.messages():
        if not isinstance(msg, dict) or "method" not in msg:
            continue  # answers to our own requests (bus:serve) need no handling here
        mid = msg.get("id")
        if mid is None:
            if msg["method"] == "wc:ping":
                bus.notify("wc:pong", {})
            continue
        try:
            result = handle(bus, msg, state)
        except ValueError as e:
            bus.send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": f"Invalid params: {e}"}})
            continue
        if result is None:
            bus.send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
            continue
        bus.send({"jsonrpc": "2.0", "id": mid, "result": result})
        # Notifications about a request go after its answer.
        for job in state["later"]:
            job()
        state["later"].clear()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--connect":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(sys.argv[2])
        bus = Bus(sock.makefile("rb"), sock.makefile("wb"))
        bus.send({"jsonrpc": "2.0", "id": "serve", "method": "bus:serve", "params": {"topics": TOPICS}})
        for msg in bus.messages():
            if msg.get("id") == "serve":
                if "error" in msg:
                    sys.exit(f"bus:serve refused: {msg['error']['message']}")
                break
    elif len(sys.argv) == 1:
        bus = Bus(os.fdopen(0, "rb"), os.fdopen(1, "wb"))
    else:
        sys.exit(f"usage: {sys.argv[0]} [--connect SOCKET]")
    serve(bus)


if __name__ == "__main__":
    main()
