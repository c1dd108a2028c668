#!/usr/bin/python3
"""A stand-in worker for gateway tests: socket-activated like helios-worker (the listening socket on
fd 3, LISTEN_FDS=1), it echoes every line back to the connection that sent it. A few plain-text
commands (not JSON, which the gateway never looks at) make it misbehave on purpose:

  big N          answer with one line of N bytes
  flood N SIZE   answer with N lines of SIZE bytes, as fast as the socket takes them
  written        answer with the number of bytes written to this connection so far
  pid            answer with this process's pid
  seen TEXT      answer with how many lines equal to TEXT this worker has received, on any connection

Like helios-worker, it stops reading from a connection while more than 1 MiB of answers wait for it.
"""

import os
import selectors
import socket
import sys

if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
    sys.exit("echo-worker: expected one socket from the activator")

listener = socket.socket(fileno=3)
listener.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
conns = {}  # socket -> {"in": bytes, "out": bytearray, "written": int}
seen = {}   # line -> times received


HIGH_WATER = 1 << 20


def interest(c):
    st = conns[c]
    events = selectors.EVENT_WRITE if st["out"] else 0
    if len(st["out"]) <= HIGH_WATER:
        events |= selectors.EVENT_READ
    sel.modify(c, events or selectors.EVENT_WRITE)


def queue(c, data):
    conns[c]["out"] += data


def handle(c, line):
    st = conns[c]
    seen[line] = seen.get(line, 0) + 1
    if line.startswith(b"big "):
        queue(c, b"b" * int(line.split()[1]) + b"\n")
    elif line.startswith(b"flood "):
        _, n, size = line.split()
        queue(c, (b"f" * int(size) + b"\n") * int(n))
    elif line == b"written":
        queue(c, str(st["written"]).encode() + b"\n")
    elif line.startswith(b"seen "):
        queue(c, str(seen.get(line[5:], 0)).encode() + b"\n")
    elif line == b"pid":
        queue(c, str(os.getpid()).encode() + b"\n")
    else:
        queue(c, line + b"\n")


while True:
    for key, events in sel.select():
        s = key.fileobj
        if s is listener:
            c, _ = listener.accept()
            c.setblocking(False)
            conns[c] = {"in": b"", "out": bytearray(), "written": 0}
            sel.register(c, selectors.EVENT_READ)
            continue
        st = conns[s]
        if events & selectors.EVENT_WRITE and st["out"]:
            try:
                n = s.send(st["out"][:1 << 20])
                del st["out"][:n]
                st["written"] += n
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(s)
                del conns[s]
                s.close()
                continue
        if events & selectors.EVENT_READ and len(st["out"]) <= HIGH_WATER:
            try:
                data = s.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                del conns[s]
                s.close()
                continue
            st["in"] += data
            while b"\n" in st["in"]:
                line, st["in"] = st["in"].split(b"\n", 1)
                handle(s, line)
        interest(s)
