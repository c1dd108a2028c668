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
HELIOS_FS = os.environ.get("HELIOS_FS") or os.path.join(BUILD_DIR, "worker", "helios-fs")
# The manifest Helios ships for running the file system out of the worker's process.
FS_MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "services", "fs",
                           "fs.json.in")


def fs_out_of_process():
    """HELIOS_E2E_FS=out: every worker these tests start serves fs:* by helios-fs, from an
    administrator's manifest replacing the built-in service (the same suites, run a second time)."""
    return os.environ.get("HELIOS_E2E_FS") == "out"


def write_fs_manifest(directory, exec_path=None):
    """The shipped fs manifest, its program this build's helios-fs, as DIR/fs.json."""
    with open(FS_MANIFEST) as f:
        manifest = json.load(f)
    manifest["exec"] = [exec_path or HELIOS_FS]
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "fs.json"), "w") as f:
        json.dump(manifest, f)
    return directory


def reap(pids):
    """Collect these children if they have exited (orphans we adopted as subreaper included)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def alive(pid):
    """Running, not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def become_subreaper():
    """Orphaned grandchildren (shells of killed workers) get reaped by us, not left as zombies."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def take_notification(queue, method, pred=None):
    """Take the first queued notification of method whose params satisfy pred, dropping the earlier
    ones of that method; notifications of other methods stay queued. Returns (found, params)."""
    kept = collections.deque()
    found, params = False, None
    while queue:
        n = queue.popleft()
        if found or n["method"] != method:
            kept.append(n)
        elif pred is None or pred(n.get("params")):
            found, params = True, n.get("params")
    queue.extend(kept)
    return found, params


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
            found, params = take_notification(self.notifications, method, pred)
            if found:
                return params
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
        if fs_out_of_process() and "--admin-services" not in self.args:
            self.args += ["--admin-services", write_fs_manifest(os.path.join(base, "admin-services"))]
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


# ---- the gateway ----

GATEWAY = os.environ.get("HELIOS_GATEWAY") or os.path.join(BUILD_DIR, "gateway", "helios-gateway")
WEB_ROOT = os.environ.get("HELIOS_WEB_ROOT") or os.path.join(BUILD_DIR, "web", "dist")
ECHO_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo-worker.py")


class HttpResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<HttpResponse {self.status} {self.body[:80]!r}>"


def http_request(host, port, method, path, headers=None, body=None, timeout=10.0, context=None):
    """One request on a fresh connection (http.client, TLS when context is given)."""
    import http.client
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        out = {}
        for k, v in resp.getheaders():
            out.setdefault(k.lower(), []).append(v)
        return HttpResponse(resp.status, out, data)
    finally:
        conn.close()


def raw_request(host, port, data, timeout=5.0):
    """Send raw bytes, return everything the server sends until it closes (or the timeout)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(raw):
    """The status code of a raw HTTP response, or None."""
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/"):
        return int(parts[1])
    return None


def cookie_from(resp):
    """The session cookie a login response sets, as "name=value"."""
    for v in resp.headers.get("set-cookie", []):
        return v.split(";", 1)[0]
    return None


TEST_ACCOUNT = "helios-e2e-gw"


def e2e_account():
    """The unprivileged account gateways started by root-run tests serve (made once, kept: test runs
    share it)."""
    import pwd
    try:
        return pwd.getpwnam(TEST_ACCOUNT)
    except KeyError:
        pass
    for _ in range(50):
        out = subprocess.run(["useradd", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                              "--shell", "/bin/sh", TEST_ACCOUNT], capture_output=True, text=True)
        if out.returncode in (0, 9):  # made, or made meanwhile by another test process
            break
        time.sleep(0.1)
    return pwd.getpwnam(TEST_ACCOUNT)


def gateway_uid():
    """The uid a gateway started by these tests runs as."""
    return e2e_account().pw_uid if os.geteuid() == 0 else os.getuid()


def own_to_gateway(path):
    """A file made by a root-run test after its gateway started, given to the account the gateway runs as."""
    if os.geteuid() == 0:
        acct = e2e_account()
        os.chown(path, acct.pw_uid, acct.pw_gid)


def as_test_account(cmd, directory):
    """cmd run as the test account, with directory (and everything in it) its own and reachable."""
    acct = e2e_account()
    for root, dirs, files in os.walk(directory):
        for name in [root] + [os.path.join(root, n) for n in files]:
            try:
                os.lchown(name, acct.pw_uid, acct.pw_gid)
            except FileNotFoundError:
                pass
    # Its parents (pytest's directories are private to root) only need to be passable.
    d = os.path.dirname(os.path.abspath(directory))
    while d != "/":
        mode = os.stat(d).st_mode
        if not mode & 0o001:
            os.chmod(d, (mode & 0o7777) | 0o001)
        d = os.path.dirname(d)
    return ["setpriv", f"--reuid={acct.pw_uid}", f"--regid={acct.pw_gid}", "--clear-groups", *cmd]


class Gateway:
    """helios-gateway in embedded mode: its own runtime directory, a worker HOME in base/home, a
    random port on 127.0.0.1, and the login token read from the URL it prints."""

    def __init__(self, base, args=(), env=None, worker=None, config=None, tls=None):
        self.base = str(base)
        self.home = os.path.join(self.base, "home")
        self.runtime = os.path.join(self.base, "run")
        self.state = os.path.join(self.base, "state")
        self.log = os.path.join(self.base, "gateway.log")
        os.makedirs(self.home, exist_ok=True)
        self.args = list(args)
        self.env = dict(env or {})
        self.worker = worker or WORKER
        self.config = config  # text of a configuration file, or None for none at all
        self.tls = tls        # (cert, key) or None
        self.ssl_context = None
        if tls:
            import ssl
            try:
                self.ssl_context = ssl.create_default_context(cafile=tls[0])
                self.ssl_context.check_hostname = False
            except ssl.SSLError:
                pass  # a test of a bad certificate
        self.proc = None
        self.exit_judged = False
        self.url = None
        self.token = None
        self.host = "127.0.0.1"
        self.port = None
        self.metrics_token = "test-metrics-token-" + os.urandom(8).hex()

    @property
    def config_path(self):
        return os.path.join(self.base, "helios.conf")

    def command(self):
        cmd = [GATEWAY, "--listen", "127.0.0.1:0", "--web-root", WEB_ROOT,
               "--worker", self.worker, "--runtime-dir", self.runtime]
        if self.config is not None:
            with open(self.config_path, "w") as f:
                f.write(self.config)
            cmd += ["--config", self.config_path]
        else:
            cmd += ["--config", "/dev/null"]
        if self.tls:
            cmd += ["--cert", self.tls[0], "--key", self.tls[1]]
        if self.metrics_token and not any(a.startswith("--metrics-token-file") for a in self.args) and \
                "metrics_token_file" not in (self.config or ""):
            # /metrics asks everyone for its token; tests read it with this one.
            path = os.path.join(self.base, "metrics-token")
            with open(path, "w") as f:
                f.write(self.metrics_token + "\n")
            cmd += ["--metrics-token-file", path]
        return cmd + self.args

    def start(self, expect_url=True, timeout=10.0):
        env = dict(os.environ)
        env.update({"HOME": self.home, "XDG_STATE_HOME": self.state, "SHELL": "/bin/bash",
                    "HELIOS_LOG_LEVEL": "debug"})
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.update(self.env)
        cmd = self.command()
        if os.geteuid() == 0 and cmd[0] != "setpriv":
            # helios-gateway refuses to run as root: the tests' own account serves, owning the test's
            # directory (root still reads and writes everything in it).
            cmd = as_test_account(cmd, os.path.dirname(self.base))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=open(self.log, "ab"),
                                     start_new_session=True)
        if expect_url:
            self.read_url(timeout)
        return self

    def read_url(self, timeout=10.0):
        """Read the line the gateway prints once it listens: "Helios for USER: URL#token=..." or
        "Helios: URL"."""
        deadline = time.monotonic() + timeout
        line = b""
        while b"\n" not in line:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"gateway printed no URL: {self.read_log()}")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"gateway exited: {self.read_log()}")
                line += chunk
        self.url = line.split(b"\n", 1)[0].decode().split(": ", 1)[1]
        self.base_url = self.url.split("#", 1)[0]
        self.token = self.url.split("#token=", 1)[1] if "#token=" in self.url else None
        self.port = int(self.base_url.rsplit(":", 1)[1].strip("/"))
        return self.url

    @property
    def origin(self):
        return self.base_url.rstrip("/")

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=15):
        """Wait for the exit and return its status; the test has then judged it itself."""
        self.exit_judged = True
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.read_log():
                return True
            time.sleep(0.02)
        return False

    # -- HTTP --

    def request(self, method, path, headers=None, body=None, cookie=None, timeout=10.0, context=None):
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        return http_request(self.host, self.port, method, path, h, body, timeout, context or self.ssl_context)

    def login(self, token=None, user=None, password=None, headers=None, context=None):
        """POST /login; returns the response (cookie_from() gives the session cookie)."""
        import base64
        h = dict(headers or {})
        if user is not None:
            h["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        else:
            h["Authorization"] = "Bearer " + (token if token is not None else self.token)
        return self.request("POST", "/login", h, body=b"", context=context)

    def session(self, context=None):
        resp = self.login(context=context)
        assert resp.status == 200, resp
        return cookie_from(resp)

    def metrics(self):
        resp = self.request("GET", "/metrics", {"Authorization": "Bearer " + self.metrics_token})
        assert resp.status == 200, resp
        out = {}
        for line in resp.body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def raw(self, data, timeout=5.0):
        return raw_request(self.host, self.port, data, timeout)

    # -- WebSocket --

    def ws(self, cookie=None, origin=True, path="/ws", headers=None, timeout=10.0, early=b""):
        """A raw WebSocket client after the handshake (check .status); over TLS when the gateway has it.
        early: bytes sent right behind the request, before the answer (which no client may do)."""
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        if origin is True:
            h["Origin"] = self.origin
        elif origin:
            h["Origin"] = origin
        return WsClient(self.host, self.port, path, h, timeout, context=self.ssl_context, early=early)

    def rpc(self, cookie=None, **kw):
        """A JSON-RPC client over a fresh, logged-in WebSocket."""
        ws = self.ws(cookie or self.session(), **kw)
        assert ws.status == 101, ws.response
        return WsRpc(ws)

    def worker_pids(self):
        """Pids of the helios-worker processes serving this gateway's socket (children of the gateway
        or survivors of an earlier one), found by their command line and environment."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")[0]
            except OSError:
                continue
            if os.path.basename(cmd.decode(errors="replace")) not in (
                    os.path.basename(self.worker), "python3"):
                continue
            if f"HOME={self.home}".encode() in env and b"LISTEN_FDS=1" in env:
                pids.append(int(entry))
        return pids


class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class WsClient:
    """A small WebSocket client that can also send what a good client never would: unmasked frames,
    reserved bits, invalid UTF-8, bad opcodes. No extensions are negotiated."""

    def __init__(self, host, port, path, headers, timeout=10.0, context=None, early=b"", raw_headers=False):
        """raw_headers: send only the request line, Host and headers (the handshake's own included)."""
        import base64
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if context is not None:
            self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.settimeout(timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
        if not raw_headers:
            lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                      "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + early)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.response = head.decode(errors="replace")
        self.status = status_of(head)
        if self.status != 101:
            # Take the body too, for messages.
            try:
                while True:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    self.buf += chunk
            except OSError:
                pass
            self.body = self.buf

    def close_socket(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0, length=None, chunk=None):
        """length: the length field to claim (the 7-bit code, then its extension); chunk: send the
        frame this many bytes at a time."""
        self.send_raw(frame_bytes(opcode, payload, fin, mask, rsv, length), chunk)

    def send_raw(self, data, chunk=None):
        if not chunk:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i:i + chunk])
            time.sleep(0.01)

    def send_text(self, text):
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text)

    def send_close(self, code=1000):
        import struct
        self.send_frame(0x8, struct.pack("!H", code))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        import struct
        b0, b1 = self._read(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        if b1 & 0x80:
            key = self._read(4)
            payload = _mask_fast(self._read(n), key)
        else:
            payload = self._read(n)
        return bool(b0 & 0x80), b0 & 0x0f, payload

    def recv(self, timeout=None):
        """The next text message (str); answers pings; raises WsClosed on a close frame, EOFError if
        the connection ends without one."""
        import struct
        if timeout is not None:
            self.sock.settimeout(timeout)
        data, first_opcode = b"", None
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise WsClosed(code, payload[2:].decode(errors="replace"))
            if opcode != 0:
                first_opcode = opcode
            data += payload
            if fin:
                assert first_opcode == 0x1, f"unexpected opcode {first_opcode}"
                return data.decode()

    def expect_close(self, timeout=10.0):
        """Read until the server closes; return the close code (None if it just hung up)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.recv(timeout=max(0.01, deadline - time.monotonic()))
        except WsClosed as e:
            return e.code
        except (EOFError, ConnectionResetError):
            return None
        raise TimeoutError("the server did not close")


def frame_bytes(opcode, payload, fin=True, mask=True, rsv=0, length=None):
    """One client frame, masked unless told otherwise; length overrides the length field: a 7-bit code
    (126 and 127 followed by the payload's length in 2 or 8 bytes) or (code, extended value)."""
    import struct
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    code, value = (length if isinstance(length, tuple) else (length, n)) if length is not None else \
        (n if n < 126 else 126 if n < 65536 else 127, n)
    head = bytes([b0, (0x80 if mask else 0) | code])
    if code == 126:
        head += struct.pack("!H", value)
    elif code == 127:
        head += struct.pack("!Q", value)
    if mask:
        key = os.urandom(4)
        payload = _mask_fast(payload, key) if payload else payload
        head += key
    return head + payload


def _mask_fast(data, key):
    """XOR with a 4-byte key, quickly enough for megabytes."""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


class WsRpc:
    """JSON-RPC over a WsClient; notifications are kept for wait_notification()."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1
        self.responses = {}
        self.notifications = collections.deque()

    def close(self):
        self.ws.close_socket()

    def send(self, message):
        self.ws.send_text(json.dumps(message, separators=(",", ":")))

    def _recv_one(self, timeout):
        msg = json.loads(self.ws.recv(timeout=timeout))
        if isinstance(msg, dict) and "method" in msg and "id" not in msg:
            self.notifications.append(msg)
        else:
            self.responses[msg.get("id") if isinstance(msg, dict) else None] = msg

    def request(self, method, params=None, timeout=10.0):
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        deadline = time.monotonic() + timeout
        while rid not in self.responses:
            self._recv_one(max(0.01, deadline - time.monotonic()))
        return self.responses.pop(rid)

    def call(self, method, params=None, timeout=10.0):
        resp = self.request(method, params if params is not None else {}, timeout)
        if "error" in resp:
            raise RpcError(resp["error"])
        return resp["result"]

    def wait_notification(self, method, pred=None, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            found, params = take_notification(self.notifications, method, pred)
            if found:
                return params
            self._recv_one(max(0.01, deadline - time.monotonic()))


def make_self_signed(directory, name="localhost"):
    """A self-signed certificate and key made with the openssl command line."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def rss_kib(pid):
    return int(read_status(pid)["VmRSS"].split()[0])


def sanitized(pid):
    """Built with AddressSanitizer? Its quarantine keeps freed memory resident, so growth of the resident
    set says nothing about the program there."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def rss_growth_kib(pid, before):
    """Resident growth since before, or 0 under AddressSanitizer (see sanitized())."""
    return 0 if sanitized(pid) else rss_kib(pid) - before
