#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Search service benchmark: a generated project of N files (default 100000) in 1000 directories,
with a .gitignore; the service runs as the worker runs it (a socket pair on stdin/stdout), with
ripgrep on PATH and without. Reports medians of time to first search:results and to search:done
for search:text, and of search:files cold (file list built) and warm (cached).

Usage: bench/search-bench.py [--files N] [--runs R] [--dir DIR]"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "services", "search", "helios-search.py")
WORDS = ["alpha", "beta", "gamma", "delta", "render", "buffer", "socket", "parse", "value", "index"]


def generate(root, n):
    with open(os.path.join(root, ".gitignore"), "w") as f:
        f.write("build/\n*.o\n")
    for i in range(n):
        d = os.path.join(root, "mod%03d" % (i % 1000), "sub%d" % (i % 7))
        os.makedirs(d, exist_ok=True)
        w = WORDS[i % len(WORDS)]
        with open(os.path.join(d, "%s_%s_%d.c" % (w, WORDS[(i // 10) % len(WORDS)], i)), "w") as f:
            f.write("".join("int %s_%d_%d(void) { return %d; }\n" % (w, i, k, k) for k in range(20)))
            if i % 997 == 0:
                f.write("/* needle_rare */\n")


class Service:
    def __init__(self, root, use_rg):
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PATH=os.path.dirname(shutil.which("rg")) if use_rg else "/nonexistent")
        self.proc = subprocess.Popen(["/usr/bin/python3", SERVICE], stdin=theirs, stdout=theirs, env=env)
        theirs.close()
        self.sock, self.root, self.buf, self.n = ours, root, b"", 0

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if msg.get("method") in ("workspace:state", "bus:serve", "bus:subscribe") and "id" in msg:
            result = {"root": self.root} if msg["method"] == "workspace:state" else {}
            self.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
            return self.recv()
        return msg

    def send(self, msg):
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def request(self, method, params):
        self.n += 1
        self.send({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params})
        return self.n

    def text(self, query):
        start = time.monotonic()
        self.request("search:text", {"query": query})
        first = None
        while True:
            m = self.recv()
            if m.get("method") == "search:results" and first is None:
                first = time.monotonic() - start
            if m.get("method") == "search:done":
                return first, time.monotonic() - start, m["params"]

    def files(self, query):
        start = time.monotonic()
        rid = self.request("search:files", {"query": query})
        while True:
            m = self.recv()
            if m.get("id") == rid:
                return time.monotonic() - start, m["result"]["files"]

    def close(self):
        self.sock.close()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir")
    args = ap.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="search-bench-")
    root = os.path.join(base, "project")
    if not os.path.isdir(root):
        os.makedirs(root)
        t = time.monotonic()
        generate(root, args.files)
        print("generated %d files in %.1f s" % (args.files, time.monotonic() - t))
    modes = [False] + ([True] if shutil.which("rg") else [])
    for use_rg in modes:
        label = "rg" if use_rg else "python"
        for query in ("needle_rare", "render"):
            firsts, dones = [], []
            for _ in range(args.runs):
                s = Service(root, use_rg)
                first, done, stats = s.text(query)
                s.close()
                firsts.append(first or done)
                dones.append(done)
            print("%-6s search:text %-11s first results %6.3f s  done %6.3f s  (%d matches, truncated %s)"
                  % (label, query, statistics.median(firsts), statistics.median(dones), stats["matches"],
                     stats["truncated"]))
        colds, warms = [], []
        for _ in range(args.runs):
            s = Service(root, use_rg)
            cold, _ = s.files("rbuf")
            warm, got = s.files("dltprs")
            s.close()
            colds.append(cold)
            warms.append(warm)
        print("%-6s search:files cold %6.3f s  warm %6.3f s  (first: %s)"
              % (label, statistics.median(colds), statistics.median(warms), got[0] if got else None))
    if not args.dir:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
