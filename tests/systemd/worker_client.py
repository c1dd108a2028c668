"""Runs inside the test container, as whichever account the test chose: talks to a worker (NDJSON
JSON-RPC 2.0 on a Unix stream socket) or to helios-launcher (one packet per message), and prints one
JSON object on standard output.

  worker_client.py SOCKET call METHOD [PARAMS]    {"response": ..., "seconds": connect to answer}
  worker_client.py SOCKET run [INTERPRETER...] [-- ARG...]
                                                  the script on standard input, run in a terminal of
                                                  the worker as INTERPRETER SCRIPT ARG...:
                                                  {"output", "exitCode", "signal"}
  worker_client.py SOCKET launcher FIELD...       {"reply": [FIELD...]} or {"closed": true}

A connection that is refused prints {"errno": "EACCES", ...} and exits 1.
"""

import errno
import json
import os
import socket
import sys
import time


class Worker:
    def __init__(self, path, timeout):
        self.deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.notifications = []

    def send(self, method, params=None):
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.next_id += 1
        self.sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        return msg["id"]

    def read_message(self):
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the worker")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the worker closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, params=None):
        """The response to one request; notifications that arrive meanwhile are kept."""
        want = self.send(method, params)
        while True:
            m = self.read_message()
            if m.get("id") == want and "method" not in m:
                return m
            self.notifications.append(m)

    def result(self, method, params=None):
        m = self.call(method, params)
        if "error" in m:
            raise RuntimeError(f"{method}: {m['error']}")
        return m["result"]

    def notification(self):
        if self.notifications:
            return self.notifications.pop(0)
        return self.read_message()


def run_script(w, interpreter, args):
    """Write the script into the user's home through the worker's own file service, run it in one of
    the worker's terminals (a PTY, its own session, everything the sandbox imposes on what a user
    types), and collect what the terminal shows until it exits."""
    home = w.result("worker:info")["home"]
    path = f"{home}/.helios-test-script-{os.getpid()}"
    w.result("fs:write_file", {"path": path, "content": sys.stdin.read()})
    try:
        tid = w.result("terminal:create", {"cols": 200, "rows": 50,
                                           "command": list(interpreter) + [path] + list(args)})["terminalId"]
        out = []
        while True:
            n = w.notification()
            params = n.get("params") or {}
            if params.get("terminalId") != tid:
                continue
            if n.get("method") == "terminal:data_out":
                out.append(params["data"])
            elif n.get("method") == "terminal:exit":
                w.result("terminal:close", {"terminalId": tid})
                return {"output": "".join(out), "exitCode": params.get("exitCode"),
                        "signal": params.get("signal")}
    finally:
        w.call("fs:delete", {"path": path})


def launcher(path, fields, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    s.connect(path)
    s.send(b"".join(f.encode() + b"\0" for f in fields))
    reply = s.recv(8192)
    if not reply:
        return {"closed": True}
    return {"reply": reply.decode(errors="replace").split("\0")[:-1]}


def main():
    path, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    timeout = float(os.environ.get("HELIOS_TEST_TIMEOUT", "30"))
    try:
        if mode == "launcher":
            out = launcher(path, args, timeout)
        else:
            start = time.monotonic()
            w = Worker(path, timeout)
            if mode == "call":
                params = json.loads(args[1]) if len(args) > 1 else None
                response = w.call(args[0], params)
                out = {"response": response, "seconds": time.monotonic() - start}
            elif mode == "run":
                interpreter, script_args = (args[:args.index("--")], args[args.index("--") + 1:]) \
                    if "--" in args else (args, [])
                out = run_script(w, interpreter or ["/bin/sh"], script_args)
            else:
                sys.exit(f"unknown mode {mode}")
    except OSError as e:
        if e.errno is None:
            raise
        print(json.dumps({"errno": errno.errorcode.get(e.errno, str(e.errno)), "message": str(e)}))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
