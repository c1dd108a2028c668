"""Test clients and process fixtures for Helios end-to-end tests.

Everything here talks to real processes over real sockets: a JSON-RPC 2.0 client speaking
newline-delimited JSON to a worker's Unix socket, and a helper that starts helios-worker under
systemd-socket-activate, the way systemd hands a worker its socket.
"""

import collections
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import time

BUILD_DIR = os.environ.get("HELIOS_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
WORKER = os.environ.get("HELIOS_WORKER") or os.path.join(BUILD_DIR, "worker", "helios-worker")


def become_subreaper():
    """Orphaned grandchildren (shells of killed workers) get reaped by us, not left as zombies."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class RpcError(Exception):
    def __init__(self, error):
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")
        super().__init__(f"{self.code} {self.message} {self.data!r}")


class Client:
    """A JSON-RPC client on one connection. Notifications that arrive while waiting for a response
    are kept, in order, for wait_notification()."""

    def __init__(self, path, timeout=10.0):
        self.path = str(path)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self.buf = b""
        self.notifications = collections.deque()
        self.responses = {}
        self.next_id = 1

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send(self, message):
        self.send_raw(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def recv_line(self, timeout=None):
        """One raw line (without LF); raises TimeoutError, or EOFError when the worker closes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the worker")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("worker closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self, timeout=None):
        line = self.recv_line(timeout)
        assert b"\n" not in line
        return json.loads(line)

    def _route(self, msg):
        if isinstance(msg, dict) and "method" in msg and "id" not in msg:
            self.notifications.append(msg)
            return None
        return msg

    def request(self, method, params=None, timeout=None):
        """Send a request and return the whole response object."""
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.wait_response(rid, timeout)

    def wait_response(self, rid, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while rid not in self.responses:
            msg = self._route(self.recv(max(0.0, deadline - time.monotonic())))
            if msg is None:
                continue
            key = msg.get("id") if isinstance(msg, dict) else None
            self.responses[key] = msg
        return self.responses.pop(rid)

    def call(self, method, params=None, timeout=None):
        """Send a request; return its result or raise RpcError."""
        resp = self.request(method, params if params is not None else {}, timeout)
        assert resp.get("jsonrpc") == "2.0", resp
        if "error" in resp:
            raise RpcError(resp["error"])
        return resp["result"]

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def wait_notification(self, method, pred=None, timeout=5.0):
        """Return the params of the first notification of this method (matching pred), consuming it
        and every earlier notification of the same method."""
        deadline = time.monotonic() + timeout
        while True:
            # Notifications of other methods stay queued for later waits.
            kept = collections.deque()
            found = None
            while self.notifications:
                n = self.notifications.popleft()
                if found is not None or n["method"] != method:
                    kept.append(n)
                elif pred is None or pred(n.get("params")):
                    found = n
            self.notifications = kept
            if found is not None:
                return found.get("params")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} notification")
            msg = self._route(self.recv(left))
            if msg is not None:
                self.responses[msg.get("id") if isinstance(msg, dict) else None] = msg

    def collect_notifications(self, duration):
        """Read for `duration` seconds and return every notification seen (queued ones included)."""
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                msg = self._route(self.recv(left))
            except TimeoutError:
                break
            if msg is not None:
                self.responses[msg.get("id") if isinstance(msg, dict) else None] = msg
        out = list(self.notifications)
        self.notifications.clear()
        return out


def is_listening(path):
    """True once a Unix socket bound to path accepts connections. systemd-socket-activate binds
    (the file appears) before it listens; a client in between is refused. /proc/net/unix tells
    without connecting, which would start the worker."""
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                fields = line.split(None, 7)
                # Num RefCount Protocol Flags Type St Inode Path; __SO_ACCEPTCON in Flags: listening.
                if len(fields) == 8 and fields[7].rstrip("\n") == path and int(fields[3], 16) & 0x10000:
                    return True
    except OSError:
        return os.path.exists(path)  # cannot tell: the file is the best sign there is
    return False


def read_status(pid):
    """Fields of /proc/PID/status as a dict of strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


# What the worker inherits from the test environment, besides what each Worker sets.
PASS_ENV = ("HOME", "XDG_STATE_HOME", "SHELL", "USER", "LOGNAME", "LANG", "LC_ALL",
            "HELIOS_LOG_LEVEL", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")

# Lines a sanitizer writes when it finds something; any of them in a worker's log fails the test.
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


class Worker:
    """helios-worker started under systemd-socket-activate with a private home and state directory.

    The socket exists from start(); the worker process itself starts on the first connection, as
    with systemd. kill() and start() again simulate a crash and the socket bringing it back."""

    def __init__(self, base, args=(), env=None):
        self.base = base
        self.home = os.path.join(base, "home")
        self.state = os.path.join(base, "state")
        self.sock = os.path.join(base, "worker.sock")
        self.log = os.path.join(base, "worker.log")
        os.makedirs(self.home, exist_ok=True)
        self.args = list(args)
        self.env = dict(env or {})
        self.proc = None

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        env = dict(os.environ)
        env.update({"HOME": self.home, "XDG_STATE_HOME": self.state, "SHELL": "/bin/bash",
                    "HELIOS_LOG_LEVEL": "debug"})
        env.update(self.env)
        # systemd-socket-activate hands the worker only PATH and LISTEN_*: name everything else.
        passed = []
        for var in sorted(set(PASS_ENV) | set(self.env)):
            if var in env:
                passed += ["-E", var]
        self.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", self.sock, *passed, WORKER, *self.args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"), start_new_session=True)
        deadline = time.monotonic() + 10
        while not is_listening(self.sock):
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-socket-activate exited: {self.read_log()}")
            if time.monotonic() > deadline:
                raise TimeoutError("worker socket did not appear")
            time.sleep(0.01)
        return self

    def connect(self, timeout=10.0):
        return Client(self.sock, timeout)

    @property
    def pid(self):
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def assert_clean(self):
        """Fail if a sanitizer, or the worker itself, reported a leak or an error in its log."""
        log = self.read_log()
        for pattern in SANITIZER_REPORTS:
            assert pattern not in log, f"sanitizer report in {self.log}:\n{log[-4000:]}"
        # The worker names every libuv handle still open when its loop ends: a leak of its own.
        assert "still open at exit" not in log, log[-4000:]

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def path(self, *parts):
        return os.path.join(self.home, *parts)
