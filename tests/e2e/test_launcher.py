"""helios-launcher, the privileged part, driven over its SOCK_SEQPACKET socket as the gateway would:
real accounts (useradd), real passwords (chpasswd), real PAM services in /etc/pam.d, real workers
started as their users in embedded mode."""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import helios
import launcher_fixtures
from launcher_fixtures import (PAM_UNIX, Launcher, LauncherGateway, as_user, cgroup2_mount, kill_workers,
                               pam_service_files, remove_worker_cgroups, set_passwords, shadow_tool, useradd,
                               userdel)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: accounts, PAM files, setuid")

# Names of this run's own: suites running at once (or the same suite in two builds) never share one.
TAG = str(os.getpid())
GW, ALICE, BOB, SYSTEM = (f"helios-t-{n}{int(TAG) % 100000}" for n in ("gw", "alice", "bob", "sys"))
PASSWORDS = {ALICE: "correct horse 1", BOB: "battery staple 2"}
PAM_OK = f"helios-test-{TAG}"
PAM_HANG = f"helios-test-hang-{TAG}"


@pytest.fixture(scope="module")
def accounts():
    """The gateway's account (a system one), two people with passwords, and a system account."""
    base = tempfile.mkdtemp(prefix="helios-launcher-homes-", dir="/home")
    os.chmod(base, 0o755)
    names = [GW, ALICE, BOB, SYSTEM]
    for n in names:
        userdel(n)  # left over from an interrupted run
    try:
        made = {
            GW: useradd(GW, system=True),
            ALICE: useradd(ALICE, home=os.path.join(base, ALICE)),
            BOB: useradd(BOB, home=os.path.join(base, BOB)),
            SYSTEM: useradd(SYSTEM, system=True),
        }
        set_passwords(PASSWORDS)
        yield made
    finally:
        for n in names:
            userdel(n)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pam_services():
    files = {
        PAM_OK: PAM_UNIX,
        # A PAM stack that never answers: the launcher must give up on it, not wait.
        PAM_HANG: "auth required pam_exec.so /bin/sleep 60\naccount required pam_unix.so\n",
    }
    with pam_service_files(files):
        yield PAM_OK, PAM_HANG


class Conn:
    """The gateway's side of the protocol, packet by packet."""

    def __init__(self, path, pw):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(10)
        with as_user(pw):
            self.sock.connect(path)
        self.next_id = 1

    def close(self):
        self.sock.close()

    def send(self, *fields):
        self.sock.send(b"".join((f.encode() if isinstance(f, str) else f) + b"\0" for f in fields))

    def send_raw(self, data):
        self.sock.send(data)

    def recv(self, timeout=10):
        self.sock.settimeout(timeout)
        data = self.sock.recv(8192)
        if not data:
            raise EOFError
        assert data.endswith(b"\0"), data
        return [f.decode() for f in data[:-1].split(b"\0")]

    def request(self, op, *args, timeout=10):
        rid = str(self.next_id)
        self.next_id += 1
        self.send(rid, op, *args)
        reply = self.recv(timeout)
        assert reply[0] == rid, reply
        return reply[1:]

    def closed(self, timeout=5):
        """True when the launcher ended the connection."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(8192) == b""
        except ConnectionResetError:
            return True


@pytest.fixture
def base():
    d = tempfile.mkdtemp(prefix="helios-launcher-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_launcher(base, accounts, pam_services):
    made = []

    def make(*args, name="l", pam_service=PAM_OK):
        d = os.path.join(base, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        lc = Launcher(d, GW, pam_service, args).start()
        made.append(lc)
        return lc

    yield make
    for lc in made:
        lc.assert_clean()
    kill_workers([accounts[ALICE].pw_uid, accounts[BOB].pw_uid])
    remove_worker_cgroups([ALICE, BOB])


@pytest.fixture
def launcher(make_launcher):
    return make_launcher()


def gw_conn(launcher, accounts):
    return Conn(launcher.sock, accounts[GW])


# ---- who may talk to it ----

def test_socket_is_the_gateways_group_only(launcher, accounts):
    st = os.stat(launcher.sock)
    assert st.st_mode & 0o777 == 0o660
    assert st.st_gid == accounts[GW].pw_gid


def test_other_uids_are_closed(launcher, accounts):
    # Root itself is not the gateway; nor is a user who would get past the file mode.
    for pw in (pwd.getpwuid(0), accounts[ALICE]):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(5)
        if pw.pw_uid == 0:
            s.connect(launcher.sock)
        else:
            os.chmod(launcher.sock, 0o666)
            try:
                with as_user(pw):
                    s.connect(launcher.sock)
            finally:
                os.chmod(launcher.sock, 0o660)
        with contextlib.suppress(OSError):
            s.send(b"1\0worker\0" + ALICE.encode() + b"\0")
        try:
            assert s.recv(8192) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert launcher.read_log().count("only the gateway") == 2
    # The gateway is still served.
    c = gw_conn(launcher, accounts)
    assert c.request("worker", ALICE)[0] == "ok"


# ---- what it accepts ----

MALFORMED = [
    b"1\0frobnicate\0" + ALICE.encode() + b"\0",  # unknown operation
    b"1\0worker\0",  # a field missing
    b"1\0auth\0" + ALICE.encode() + b"\0",  # no password
    b"1\0worker\0" + ALICE.encode() + b"\0extra\0",  # a field too many
    b"1\0worker\0" + ALICE.encode(),  # no final NUL
    b"x\0worker\0" + ALICE.encode() + b"\0",  # not a decimal id
    b"12345678901\0worker\0" + ALICE.encode() + b"\0",  # id too long
    b"\0worker\0" + ALICE.encode() + b"\0",  # empty id
    b"1\0worker\0" + b"a" * 300 + b"\0",  # a name over 32 bytes
    b"1\0auth\0" + ALICE.encode() + b"\0" + b"p" * 1025 + b"\0",  # a password over the limit
    b"1\0worker\0" + b"a" * 4990 + b"\0",  # over the packet limit (5000 bytes)
    b"",  # an empty packet
    b"1\0account\0",  # account: the name missing
    b"1\0account\0" + ALICE.encode() + b"\0password\0",  # account: a password is not taken
]


@pytest.mark.parametrize("packet", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_packets_close_the_connection(launcher, accounts, packet):
    c = gw_conn(launcher, accounts)
    c.send_raw(packet)
    assert c.closed()
    # Others are still served.
    assert gw_conn(launcher, accounts).request("worker", ALICE)[0] == "ok"


BAD_NAMES = ["a/b", "..", "../etc", "a@b", "a\\b", "a b", "a\tb", "a\x01b", "a\x7fb", "Alice", "-a", "1a",
             "\u00e9", "a.b", "a" * 33]


def test_invalid_names_are_refused(launcher, accounts):
    c = gw_conn(launcher, accounts)
    for name in BAD_NAMES:
        if len(name.encode()) > 32:
            continue  # too long for the field: closes (above)
        assert c.request("worker", name) == ["error", "refused"], name
        assert c.request("auth", name, "x") == ["error", "refused"], name
    log = launcher.read_log()
    # Logged escaped: no raw control character reaches the log.
    assert "\x01" not in log and "\x7f" not in log and "a\\x01b" in log


def test_root_and_system_accounts_are_refused(launcher, accounts):
    c = gw_conn(launcher, accounts)
    for name in ("root", "nobody", "daemon", SYSTEM, GW):
        assert c.request("auth", name, "whatever") == ["error", "refused"], name
        assert c.request("worker", name) == ["error", "refused"], name
        assert c.request("account", name) == ["error", "refused"], name
    assert c.request("worker", "helios-t-nosuchuser") == ["error", "refused"]
    assert c.request("account", "helios-t-nosuchuser") == ["error", "refused"]
    # A person's account, not locked or expired, is admitted.
    assert c.request("account", ALICE) == ["ok"]


def test_members_of_the_gateways_group_are_refused(launcher, accounts, base):
    # Every worker socket is open to that group: a member would reach everyone's workspace.
    name = f"helios-t-mem{int(TAG) % 100000}"
    userdel(name)
    useradd(name, home=os.path.join(base, name))
    try:
        shadow_tool(["usermod", "-a", "-G", GW, name])
        c = gw_conn(launcher, accounts)
        assert c.request("worker", name) == ["error", "refused"]
        assert c.request("auth", name, "x") == ["error", "refused"]
    finally:
        userdel(name)


# ---- auth ----

def test_right_password(launcher, accounts):
    c = gw_conn(launcher, accounts)
    assert c.request("auth", ALICE, PASSWORDS[ALICE]) == ["ok"]
    assert c.request("auth", BOB, PASSWORDS[BOB]) == ["ok"]
    log = launcher.read_log()
    assert PASSWORDS[ALICE] not in log


def test_wrong_password_denied(launcher, accounts):
    c = gw_conn(launcher, accounts)
    assert c.request("auth", ALICE, PASSWORDS[BOB]) == ["error", "denied"]
    assert c.request("auth", ALICE, "") == ["error", "denied"]
    assert c.request("auth", "helios-t-nosuchuser", "x") == ["error", "denied"]
    log = launcher.read_log()
    assert "PAM denied " + ALICE in log
    assert PASSWORDS[BOB] not in log


def test_pam_hang_times_out_and_others_are_served(make_launcher, accounts):
    lc = make_launcher("--pam-timeout", "1s", pam_service=PAM_HANG)
    c = gw_conn(lc, accounts)
    t0 = time.monotonic()
    c.send("1", "auth", ALICE, PASSWORDS[ALICE])
    # Meanwhile the launcher answers other requests.
    other = gw_conn(lc, accounts)
    assert other.request("worker", ALICE)[0] == "ok"
    assert time.monotonic() - t0 < 0.9
    assert c.recv(timeout=5) == ["1", "error", "timeout"]
    took = time.monotonic() - t0
    assert 0.9 < took < 3, took
    # The helper and the sleep PAM started are gone.
    deadline = time.monotonic() + 3
    while (lc.helpers() or sleeping_children(lc.proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lc.helpers()
    assert not sleeping_children(lc.proc.pid)


def sleeping_children(ppid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"/bin/sleep\x0060"):
                        out.append(int(entry))
            except OSError:
                pass
    return [p for p in out if helios.alive(p)]


def test_login_flood_stays_bounded(make_launcher, accounts):
    lc = make_launcher("--max-pam-helpers", "4")
    c = gw_conn(lc, accounts)
    rss0 = helios.rss_kib(lc.proc.pid)
    answers = {}
    sent = 0
    max_helpers = 0
    names = [f"helios-t-flood{i}" for i in range(1000)]
    # Keep 32 requests in flight, as a gateway under attack would.
    in_flight = 0
    while sent < len(names) or in_flight:
        while sent < len(names) and in_flight < 32:
            c.send(str(sent + 1), "auth", names[sent], "guess")
            sent += 1
            in_flight += 1
        reply = c.recv(timeout=10)
        in_flight -= 1
        outcome = reply[2] if reply[1] == "error" else reply[1]
        answers[outcome] = answers.get(outcome, 0) + 1
        if sent % 50 == 0:
            max_helpers = max(max_helpers, len(lc.helpers()))
    assert sum(answers.values()) == 1000, answers
    assert set(answers) <= {"denied", "busy"}, answers
    assert answers.get("denied", 0) > 0
    assert max_helpers <= 4
    # Still answering, and correctly, afterwards.
    assert c.request("auth", ALICE, PASSWORDS[ALICE]) == ["ok"]
    growth = helios.rss_growth_kib(lc.proc.pid, rss0)
    assert growth < 4096, growth


# ---- workers ----

def worker_client(sock, pw):
    """A client of the worker's socket, connected with pw's ids."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    with as_user(pw):
        s.connect(sock)
    c = helios.Client.__new__(helios.Client)
    c.path, c.timeout, c.sock, c.buf = sock, 10, s, b""
    c.notifications, c.responses, c.next_id = __import__("collections").deque(), {}, 1
    return c


def ask_worker(sock, pw):
    """worker:info over the worker's socket, connected with pw's ids."""
    c = worker_client(sock, pw)
    try:
        return c.call("worker:info")
    finally:
        c.close()


def test_worker_socket_and_identity(launcher, accounts):
    c = gw_conn(launcher, accounts)
    status, path = c.request("worker", ALICE)
    assert status == "ok"
    assert path == os.path.join(launcher.runtime, "workers", ALICE + ".sock")
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o660 and st.st_uid == 0 and st.st_gid == accounts[GW].pw_gid
    d = os.stat(os.path.dirname(path))
    assert d.st_mode & 0o777 == 0o750 and d.st_gid == accounts[GW].pw_gid
    # Asked again: the same socket.
    assert c.request("worker", ALICE) == ["ok", path]

    info = ask_worker(path, accounts[GW])
    assert info["uid"] == accounts[ALICE].pw_uid
    assert info["home"] == accounts[ALICE].pw_dir
    st = helios.read_status(info["pid"])
    assert st["Uid"].split()[:3] == [str(accounts[ALICE].pw_uid)] * 3
    assert st["NoNewPrivs"] == "1"
    assert st["CapEff"] == "0000000000000000"
    assert [int(g) for g in st["Groups"].split()] == [accounts[ALICE].pw_gid]

    # Bob can neither open Alice's socket, nor list the directory.
    with pytest.raises(PermissionError):
        ask_worker(path, accounts[BOB])
    # Bob's own worker is his.
    status, bob_path = c.request("worker", BOB)
    assert ask_worker(bob_path, accounts[GW])["uid"] == accounts[BOB].pw_uid


def test_killed_worker_comes_back(launcher, accounts):
    c = gw_conn(launcher, accounts)
    _, path = c.request("worker", ALICE)
    first = ask_worker(path, accounts[GW])["pid"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            second = ask_worker(path, accounts[GW])["pid"]
            break
        except (ConnectionRefusedError, ConnectionResetError, EOFError, FileNotFoundError):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert second != first and helios.alive(second)


def test_restart_keeps_workers(make_launcher, accounts):
    lc = make_launcher()
    c = gw_conn(lc, accounts)
    _, path = c.request("worker", ALICE)
    pid = ask_worker(path, accounts[GW])["pid"]
    c.close()
    assert lc.stop() == 0
    assert helios.alive(pid)
    lc.start()
    c = gw_conn(lc, accounts)
    assert c.request("worker", ALICE) == ["ok", path]
    assert ask_worker(path, accounts[GW])["pid"] == pid
    assert "from an earlier run" in lc.read_log()


def test_max_users(make_launcher, accounts):
    lc = make_launcher("--max-users", "1")
    c = gw_conn(lc, accounts)
    _, path = c.request("worker", ALICE)
    ask_worker(path, accounts[GW])  # a worker runs: Alice's socket cannot give way
    assert c.request("worker", BOB) == ["error", "full"]


# ---- through the gateway ----

@pytest.fixture
def pam_gateway(make_launcher, accounts, base):
    lc = make_launcher()
    d = os.path.join(base, "gw")
    os.makedirs(d)
    os.chmod(d, 0o755)
    g = LauncherGateway(d, accounts[GW], lc.sock).start()
    yield g, lc
    g.assert_clean()


def test_gateway_logs_in_with_pam_and_reaches_the_users_worker(pam_gateway, accounts):
    g, lc = pam_gateway
    assert helios.read_status(g.pid)["Uid"].split()[0] == str(accounts[GW].pw_uid)
    resp = g.login(user=ALICE, password=PASSWORDS[ALICE])
    assert resp.status == 200, resp
    cookie = helios.cookie_from(resp)
    assert g.request("GET", "/api/session", cookie=cookie).json()["user"] == ALICE
    rpc = g.rpc(cookie)
    info = rpc.call("worker:info")
    assert info["uid"] == accounts[ALICE].pw_uid
    assert info["home"] == accounts[ALICE].pw_dir
    rpc.close()
    # Root and system accounts look like wrong passwords from outside.
    assert g.login(user="root", password="x").status == 401
    assert g.login(user=SYSTEM, password="x").status == 401


def test_gateway_wrong_passwords_are_throttled(pam_gateway, accounts):
    g, lc = pam_gateway
    statuses = [g.login(user=BOB, password="wrong").status for _ in range(7)]
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[-1] == 429, statuses
    assert "PAM denied " + BOB in lc.read_log()


def test_gateway_users_never_see_each_other(pam_gateway, accounts):
    g, lc = pam_gateway
    alice1 = g.rpc(helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE])))
    alice2 = g.rpc(helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE])))
    bob = g.rpc(helios.cookie_from(g.login(user=BOB, password=PASSWORDS[BOB])))
    assert bob.call("worker:info")["uid"] == accounts[BOB].pw_uid
    assert alice1.call("worker:info")["pid"] == alice2.call("worker:info")["pid"]
    assert alice1.call("worker:info")["pid"] != bob.call("worker:info")["pid"]

    term = alice1.call("terminal:create", {"cols": 80, "rows": 24})["terminalId"]
    # Alice's other page hears of it; Bob's does not.
    alice2.wait_notification("state:updated", lambda p: any(
        t.get("terminalId") == term for t in p.get("terminals", [])))
    assert bob.call("workspace:state").get("terminals", []) == []
    time.sleep(0.5)
    bob.call("worker:info")  # drains whatever arrived meanwhile
    assert not bob.notifications, list(bob.notifications)
    alice1.call("terminal:close", {"terminalId": term})
    for c in (alice1, alice2, bob):
        c.close()


def test_metrics_count_the_workers_pages_reach(pam_gateway, accounts):
    g, lc = pam_gateway
    assert g.metrics()["helios_gateway_workers_running"] == 0
    alice1 = g.rpc(helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE])))
    alice2 = g.rpc(helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE])))
    bob = g.rpc(helios.cookie_from(g.login(user=BOB, password=PASSWORDS[BOB])))
    for c in (alice1, alice2, bob):
        c.call("worker:info")
    assert g.metrics()["helios_gateway_workers_running"] == 2  # two users, two workers, three pages
    bob.close()
    deadline = time.monotonic() + 10
    while g.metrics()["helios_gateway_workers_running"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    alice1.close()
    alice2.close()


def test_idle_user_gives_way_at_max_users(make_launcher, accounts):
    lc = make_launcher("--max-users", "1")
    c = gw_conn(lc, accounts)
    _, alice_path = c.request("worker", ALICE)
    # No worker behind Alice's socket yet: it gives way to Bob's, and comes back when asked for.
    status, bob_path = c.request("worker", BOB)
    assert status == "ok"
    assert not os.path.exists(alice_path)
    assert ask_worker(bob_path, accounts[GW])["uid"] == accounts[BOB].pw_uid
    assert c.request("worker", ALICE) == ["error", "full"]


def test_systemd_mode_without_a_bus_fails_cleanly(make_launcher, accounts):
    if os.path.exists("/run/dbus/system_bus_socket"):
        pytest.skip("a system bus is running here: this test is for machines without one")
    lc = make_launcher("--mode=systemd", "--start-timeout", "2s")
    c = gw_conn(lc, accounts)
    assert c.request("worker", ALICE) == ["error", "failed"]
    # Policy is checked before anything is asked of the service manager.
    assert c.request("worker", "root") == ["error", "refused"]
    assert c.request("auth", ALICE, PASSWORDS[ALICE]) == ["ok"]
    assert "system bus" in lc.read_log()


def test_gateway_survives_a_launcher_restart(pam_gateway, accounts):
    g, lc = pam_gateway
    cookie = helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE]))
    rpc = g.rpc(cookie)
    pid = rpc.call("worker:info")["pid"]
    assert lc.stop() == 0
    # Without a launcher: logins cannot be checked (503), the open page keeps its worker.
    assert g.login(user=BOB, password=PASSWORDS[BOB]).status == 503
    assert rpc.call("worker:info")["pid"] == pid
    lc.start()
    # The gateway connects again by itself; the worker that ran on is found again.
    assert g.login(user=BOB, password=PASSWORDS[BOB]).status == 200
    rpc2 = g.rpc(cookie)
    assert rpc2.call("worker:info")["pid"] == pid
    rpc.close()
    rpc2.close()


def test_gateway_stops_cleanly_with_a_login_in_progress(make_launcher, accounts, base):
    lc = make_launcher("--pam-timeout", "30s", pam_service=PAM_HANG)
    d = os.path.join(base, "gw-hang")
    os.makedirs(d)
    os.chmod(d, 0o755)
    g = LauncherGateway(d, accounts[GW], lc.sock).start()
    import http.client
    import threading

    def login():
        # The gateway goes away under it: no answer is the expected one.
        with contextlib.suppress(http.client.HTTPException, OSError):
            g.login(user=ALICE, password=PASSWORDS[ALICE])

    t = threading.Thread(target=login, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while not lc.helpers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lc.helpers()
    assert g.stop() == 0
    log = g.read_log()
    for pattern in helios.SANITIZER_REPORTS:
        assert pattern not in log, log[-5000:]
    assert "still open at exit" not in log, log[-3000:]
    t.join(5)


def test_a_gateway_that_does_not_read_is_not_read(launcher, accounts):
    c = gw_conn(launcher, accounts)
    c.sock.setblocking(False)
    sent = 0
    # Ask until the launcher stops taking requests: it does once its answers pile up unread.
    with contextlib.suppress(BlockingIOError):
        while sent < 20000:
            c.send(str(sent + 1), "worker", ALICE)
            sent += 1
    assert sent < 20000
    rss = helios.rss_kib(launcher.proc.pid)
    c.sock.setblocking(True)
    for i in range(sent):
        assert c.recv() == [str(i + 1), "ok", os.path.join(launcher.runtime, "workers", ALICE + ".sock")]
    assert helios.rss_growth_kib(launcher.proc.pid, rss) < 4096


def test_tells_the_service_manager(accounts, pam_services, base):
    notify = os.path.join(base, "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(notify)
    srv.settimeout(5)
    lc = Launcher(os.path.join(base, "n"), GW, PAM_OK)
    os.makedirs(lc.base)
    os.chmod(lc.base, 0o755)
    lc.start(env_extra={"NOTIFY_SOCKET": notify})
    try:
        def until(pred):
            while True:
                msg = srv.recv(4096).decode()
                if pred(msg):
                    return msg
        until(lambda m: "READY=1" in m)
        c = gw_conn(lc, accounts)
        assert c.request("auth", ALICE, PASSWORDS[ALICE]) == ["ok"]
        _, path = c.request("worker", ALICE)
        until(lambda m: m == "STATUS=1 users, 0 workers running, 1 logins checked, 0 sessions")
        ask_worker(path, accounts[GW])
        until(lambda m: m == "STATUS=1 users, 1 workers running, 1 logins checked, 0 sessions")
    finally:
        assert lc.stop() == 0
        srv.close()
        kill_workers([accounts[ALICE].pw_uid])


# ---- the split: helios-embedded runs in embedded mode only ----

def embedded_children(lc):
    """Pids of helios-embedded processes whose parent is this launcher."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{entry}/exe")
            if os.path.basename(exe) == "helios-embedded" and \
                    int(helios.read_status(entry)["PPid"]) == lc.proc.pid:
                out.append(int(entry))
        except OSError:
            pass
    return out


def ancestors(pid):
    out = []
    while pid > 1:
        pid = int(helios.read_status(pid)["PPid"])
        out.append(pid)
    return out


def lc_pid_not_parent(lc, pid):
    """The launcher is an ancestor only through helios-embedded."""
    chain = ancestors(pid)
    return chain.index(lc.proc.pid) == chain.index(embedded_children(lc)[0]) + 1


def test_embedded_mode_forks_workers_in_helios_embedded(launcher, accounts):
    c = gw_conn(launcher, accounts)
    _, path = c.request("worker", ALICE)
    pid = ask_worker(path, accounts[GW])["pid"]
    spawners = embedded_children(launcher)
    assert len(spawners) == 1
    # The worker descends from the spawner, not from the launcher.
    assert spawners[0] in ancestors(pid) and lc_pid_not_parent(launcher, pid)


def test_systemd_mode_starts_no_spawner(make_launcher, accounts):
    lc = make_launcher("--mode=systemd", "--start-timeout", "2s")
    c = gw_conn(lc, accounts)
    c.request("worker", ALICE)  # fails here without a bus; either way nothing is forked for it
    assert embedded_children(lc) == []
    assert "helios-embedded" not in lc.read_log()


def wait_spawner_reaped(lc, spawner, timeout=10):
    """Until the launcher has reaped a killed helios-embedded. Its /proc entry loses its exe while the
    kernel still tears the process down (long for a sanitizer's build, with its large mappings), and
    its end of the link stays open until then: a request sent meanwhile reaches it and fails, as
    requests in flight do when helios-embedded dies."""
    deadline = time.monotonic() + timeout
    while f"helios-embedded (pid {spawner}) was killed by signal" not in lc.read_log():
        assert time.monotonic() < deadline, lc.read_log()[-3000:]
        time.sleep(0.05)


def test_a_killed_spawner_comes_back_and_finds_the_workers(launcher, accounts):
    c = gw_conn(launcher, accounts)
    _, path = c.request("worker", ALICE)
    pid = ask_worker(path, accounts[GW])["pid"]
    [spawner] = embedded_children(launcher)
    os.kill(spawner, signal.SIGKILL)
    wait_spawner_reaped(launcher, spawner)
    # The next request starts a new one, which leaves the running worker serving.
    assert c.request("worker", ALICE) == ["ok", path]
    assert ask_worker(path, accounts[GW])["pid"] == pid
    assert len(embedded_children(launcher)) == 1
    assert "from an earlier run" in launcher.read_log()


def test_a_spawner_that_cannot_start_stops_the_launcher(accounts, pam_services, base):
    # A runtime directory that is a file: helios-embedded cannot make its sockets there.
    bad = os.path.join(base, "not-a-dir")
    with open(bad, "w"):
        pass
    lc = Launcher(os.path.join(base, "f"), GW, PAM_OK, ["--runtime-dir", bad])
    os.makedirs(lc.base)
    os.chmod(lc.base, 0o755)
    try:
        lc.start()
    except AssertionError:
        pass  # it may be gone before it listens
    assert lc.proc.wait(timeout=10) != 0
    assert "helios-embedded could not start" in lc.read_log()


# ---- bounds: a cgroup per worker, and the admin's settings (sandbox.conf, sandbox.d/USER.conf) ----

CONTROLLERS = {"memory": "memory_max", "pids": "tasks_max", "cpu": "cpu_weight"}


def cgroup_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def available_controllers():
    """The controllers the launcher can have where it runs: its parent's cgroup offers them."""
    mount = cgroup2_mount()
    path = os.path.join(mount, cgroup_of(os.getpid()).lstrip("/"), "cgroup.controllers")
    with open(path) as f:
        return set(f.read().split())


def limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        return {line[:26].strip(): line[26:].split()[:2] for line in f}


def write_settings(d, text, user=None):
    path = os.path.join(d, "sandbox.conf") if user is None else os.path.join(d, "sandbox.d", user + ".conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def settings_dir(base):
    d = os.path.join(base, "etc")
    os.makedirs(d)
    return d


@pytest.mark.skipif(cgroup2_mount() is None, reason="no cgroup v2 hierarchy on this machine")
def test_what_a_workspace_leaves_dies_with_it(launcher, accounts):
    c = gw_conn(launcher, accounts)
    _, path = c.request("worker", ALICE)
    w = worker_client(path, accounts[GW])
    pid = w.call("worker:info")["pid"]
    cg = cgroup_of(pid)
    assert cg.endswith(f"/helios/{ALICE}"), cg
    d = os.path.join(cgroup2_mount(), cg.lstrip("/"))
    # A daemon started in a terminal: it leaves the terminal's session, and closing the terminal or
    # stopping the worker does not end it by itself.
    w.call("terminal:create", {"cols": 80, "rows": 24, "command": [
        "/bin/sh", "-c", "setsid -f sleep 300 </dev/null >/dev/null 2>&1; sleep 300"]})
    deadline = time.monotonic() + 10
    while True:
        # The daemon leads a session of its own; the terminal's sleep is in the terminal's.
        daemons = [p for p in helios_user_sleepers(accounts[ALICE].pw_uid) if os.getsid(p) == p]
        if daemons:
            break
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.05)
    [daemon] = daemons
    assert cgroup_of(daemon) == cg
    w.close()
    os.kill(pid, signal.SIGKILL)
    # The workspace stopped: the daemon goes with it, and so does the cgroup.
    deadline = time.monotonic() + 10
    while helios.alive(daemon) or os.path.exists(d):
        assert time.monotonic() < deadline, (helios.alive(daemon), os.path.exists(d))
        time.sleep(0.02)


def helios_user_sleepers(uid):
    """Pids of sleep processes of uid."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = helios.read_status(entry)
                if st["Name"] == "sleep" and st["Uid"].split()[0] == str(uid):
                    out.append(int(entry))
            except (OSError, KeyError):
                pass
    return out


@pytest.mark.skipif(cgroup2_mount() is None, reason="no cgroup v2 hierarchy on this machine")
def test_missing_controllers_are_said_at_start(launcher, accounts):
    missing = set(CONTROLLERS) - available_controllers()
    # Answered by helios-embedded, which says what it has before it serves.
    gw_conn(launcher, accounts).request("worker", ALICE)
    log = launcher.read_log()
    if missing:
        line = next(ln for ln in log.splitlines() if "are not available" in ln)
        for ctl in missing:
            assert f"{ctl} ({CONTROLLERS[ctl]})" in line
        assert "not enforced in embedded mode" in line
    else:
        assert "with memory, task and CPU bounds" in log


def mounts(pid):
    """The worker's mounts as it sees them: mount point -> super options."""
    out = {}
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            out[left.split()[4]] = right.split()[2]
    return out


def default_route(pid):
    """Whether the network namespace of pid has a default route."""
    with open(f"/proc/{pid}/net/route") as f:
        return any(line.split()[1] == "00000000" for line in list(f)[1:])


def test_per_user_settings_reach_the_worker(make_launcher, accounts, settings_dir):
    write_settings(settings_dir, "# every workspace\nopen_files = 2000\nmemory_max = 1G\npty_max = 64\n")
    write_settings(settings_dir, "open_files = 1500\nmemory_max = 3G\ntasks_max = 100\npty_max = 32\n"
                   "tmp_size = 100M\nshm_size = 8M\noutbound_network = no\n", user=ALICE)
    lc = make_launcher("--config-dir", settings_dir)
    c = gw_conn(lc, accounts)
    _, alice_path = c.request("worker", ALICE)
    _, bob_path = c.request("worker", BOB)
    alice = ask_worker(alice_path, accounts[GW])["pid"]
    bob = ask_worker(bob_path, accounts[GW])["pid"]
    assert limits(alice)["Max open files"] == ["1500", "1500"]
    assert limits(bob)["Max open files"] == ["2000", "2000"]
    # The sandbox's own mounts, as the worker sees them.
    a, b = mounts(alice), mounts(bob)
    assert "max=32" in a["/dev/pts"].split(",") and "max=64" in b["/dev/pts"].split(",")
    assert f"size={100 << 10}k" in a["/tmp"].split(",") and f"size={100 << 10}k" in a["/var/tmp"].split(",")
    assert f"size={8 << 10}k" in a["/dev/shm"].split(",")
    assert f"size={1 << 20}k" in b["/tmp"].split(",")  # the default, 1 GiB
    # Outbound network: Bob's workspace has a way out (pasta's default route), Alice's only loopback.
    assert default_route(bob) and not default_route(alice), lc.read_log()[-3000:]
    log = lc.read_log()
    assert f"Starting the worker of {ALICE} (memory_max={3 << 30} tasks_max=100 cpu_weight=100 " \
           f"open_files=1500 tmp_size={100 << 20} shm_size={8 << 20} pty_max=32 outbound_network=no)" in log
    assert f"Starting the worker of {BOB} (memory_max={1 << 30} tasks_max=512" in log
    if cgroup2_mount() and "memory" in available_controllers():
        d = os.path.join(cgroup2_mount(), cgroup_of(alice).lstrip("/"))
        with open(os.path.join(d, "memory.max")) as f:
            assert f.read().strip() == str(3 << 30)


@pytest.mark.parametrize("text, mode, why", [
    ("memory_max = 2X\n", 0o644, "invalid value"),
    ("fork_bombs = yes\n", 0o644, "unknown setting"),
    ("open_files = 100000\n", 0o664, "nobody else may write"),
])
def test_a_settings_file_in_error_starts_no_worker(make_launcher, accounts, settings_dir, text, mode, why):
    path = write_settings(settings_dir, text, user=ALICE)
    os.chmod(path, mode)
    lc = make_launcher("--config-dir", settings_dir)
    c = gw_conn(lc, accounts)
    _, path = c.request("worker", ALICE)
    with pytest.raises((ConnectionResetError, EOFError, ConnectionRefusedError, BrokenPipeError, OSError)):
        ask_worker(path, accounts[GW])
    assert why in lc.read_log()
    assert "Cannot read the sandbox settings of " + ALICE in lc.read_log()
    # Bob's workspace is not Alice's file's business.
    _, bob_path = c.request("worker", BOB)
    assert ask_worker(bob_path, accounts[GW])["uid"] == accounts[BOB].pw_uid


@pytest.fixture
def delegated_cgroup(accounts):
    """A cgroup of the launcher's own, as systemd's Delegate=yes gives a service; emptied and removed
    afterwards, children first."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy on this machine")
    d = os.path.join(mount, cgroup_of(os.getpid()).lstrip("/"), f"helios-test-{TAG}")
    os.mkdir(d)
    yield d
    for dirpath, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count("/")):
        with contextlib.suppress(OSError):
            with open(os.path.join(dirpath, "cgroup.kill"), "w") as f:
                f.write("1")
        deadline = time.monotonic() + 5
        while os.path.exists(dirpath):
            try:
                os.rmdir(dirpath)
            except OSError:
                assert time.monotonic() < deadline, f"{dirpath} stays"
                time.sleep(0.02)


def test_a_delegated_cgroup_is_taken_over(accounts, pam_services, base, delegated_cgroup):
    lc = Launcher(os.path.join(base, "d"), GW, PAM_OK)
    os.makedirs(lc.base)
    os.chmod(lc.base, 0o755)
    lc.start(cgroup=delegated_cgroup)
    try:
        c = gw_conn(lc, accounts)
        _, path = c.request("worker", ALICE)
        pid = ask_worker(path, accounts[GW])["pid"]
        top = "/" + os.path.relpath(delegated_cgroup, cgroup2_mount())
        # The launcher and helios-embedded moved to a leaf of their own; the worker has its own cgroup.
        assert cgroup_of(lc.proc.pid) == top + "/supervisor"
        assert [cgroup_of(p) for p in embedded_children(lc)] == [top + "/supervisor"]
        assert cgroup_of(pid) == top + f"/helios/{ALICE}"
        with open(os.path.join(delegated_cgroup, "cgroup.procs")) as f:
            assert f.read() == ""
        # A helios-embedded started again (the first one died) keeps to the same tree.
        [spawner] = embedded_children(lc)
        os.kill(spawner, signal.SIGKILL)
        wait_spawner_reaped(lc, spawner)
        _, path = c.request("worker", BOB)
        assert cgroup_of(ask_worker(path, accounts[GW])["pid"]) == top + f"/helios/{BOB}"
        assert [cgroup_of(p) for p in embedded_children(lc)] == [top + "/supervisor"]
        assert not os.path.exists(os.path.join(delegated_cgroup, "supervisor", "supervisor"))
    finally:
        assert lc.stop() == 0, lc.read_log()[-3000:]
        kill_workers([accounts[ALICE].pw_uid, accounts[BOB].pw_uid])


def test_a_shared_cgroup_is_not_taken_over(accounts, pam_services, base, delegated_cgroup):
    # Another process in the launcher's cgroup (an admin's shell, say): it is not moved anywhere.
    other = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: __import__("launcher_fixtures").join_cgroup(
        delegated_cgroup))
    lc = Launcher(os.path.join(base, "s"), GW, PAM_OK)
    os.makedirs(lc.base)
    os.chmod(lc.base, 0o755)
    lc.start(cgroup=delegated_cgroup)
    try:
        c = gw_conn(lc, accounts)
        _, path = c.request("worker", ALICE)
        pid = ask_worker(path, accounts[GW])["pid"]
        top = "/" + os.path.relpath(delegated_cgroup, cgroup2_mount())
        assert cgroup_of(other.pid) == top and cgroup_of(lc.proc.pid) == top
        # The worker runs, in the launcher's cgroup, and the log says why it has none of its own.
        assert cgroup_of(pid) == top
        assert "No cgroup for the workers: " + delegated_cgroup + " holds processes other than Helios' own" \
            in lc.read_log()
    finally:
        assert lc.stop() == 0, lc.read_log()[-3000:]
        kill_workers([accounts[ALICE].pw_uid])
        other.kill()
        other.wait()


def test_helios_embedded_serves_only_a_launcher():
    """Run by hand, without the launcher's socket as fd 3 (or with a socket of another kind), it
    refuses to start rather than wait for requests from whatever fd 3 is."""
    embedded = os.path.join(os.path.dirname(launcher_fixtures.LAUNCHER), "helios-embedded")
    args = [embedded, "--runtime-dir", "/nonexistent", "--worker", "/bin/true", "--gateway-gid", "1"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "started by helios-launcher" in r.stderr
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10, pass_fds=(b.fileno(),),
                           preexec_fn=lambda: os.dup2(b.fileno(), 3))
        assert r.returncode != 0 and "started by helios-launcher" in r.stderr
    finally:
        a.close()
        b.close()


# ---- the account checked again while it has sessions ----

def account_gateway(make_launcher, accounts, base, name, args=()):
    lc = make_launcher()
    d = os.path.join(base, name)
    os.makedirs(d)
    os.chmod(d, 0o755)
    return LauncherGateway(d, accounts[GW], lc.sock, args=args).start(), lc


def wait_closed(page, timeout=10):
    """Keep a page busy until the gateway closes it; returns the WsClosed."""
    from helios import WsClosed
    deadline = time.monotonic() + timeout
    with pytest.raises(WsClosed) as closed:
        while time.monotonic() < deadline:
            page.call("worker:info", timeout=10)
            time.sleep(0.1)
    return closed.value


@pytest.mark.parametrize("disable, enable", [
    (["usermod", "-L"], ["usermod", "-U"]),
    (["chage", "-E", "0"], ["chage", "-E", "-1"]),
], ids=["usermod-L", "chage-E0"])
def test_disabled_account_loses_its_pages_and_sessions(make_launcher, accounts, base, disable, enable):
    g, lc = account_gateway(make_launcher, accounts, base, "gw-" + disable[0],
                            args=("--account-check-interval=1s",))
    try:
        cookie = helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE]))
        other = helios.cookie_from(g.login(user=BOB, password=PASSWORDS[BOB]))
        page, bobs = g.rpc(cookie), g.rpc(other)
        assert page.call("worker:info")["uid"] == accounts[ALICE].pw_uid
        shadow_tool(disable + [ALICE])
        try:
            # The open page is closed with the reason the page shows (not sent to its login), within the
            # interval and a check.
            closed = wait_closed(page)
            assert (closed.code, closed.reason) == (4011, "account locked or expired"), closed
            # The cookie opens nothing any more, and the password no longer logs in.
            ws = g.ws(cookie)
            assert ws.status == 401, ws.response
            assert g.request("GET", "/api/session", cookie=cookie).status == 401
            assert g.login(user=ALICE, password=PASSWORDS[ALICE]).status == 401
            # Another user's page is untouched.
            assert bobs.call("worker:info")["uid"] == accounts[BOB].pw_uid
            assert f"The account {ALICE} may no longer log in" in lc.read_log()
        finally:
            shadow_tool(enable + [ALICE])
        assert g.login(user=ALICE, password=PASSWORDS[ALICE]).status == 200
    finally:
        g.assert_clean()


def test_a_page_connecting_has_the_account_checked(make_launcher, accounts, base):
    # The periodic check is far off: only connecting pages ask.
    g, lc = account_gateway(make_launcher, accounts, base, "gw-connect", args=("--account-check-interval=1h",))
    try:
        cookie = helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE]))
        page = g.rpc(cookie)
        assert page.call("worker:info")
        # Many pages at once are one check (the login's result is fresh: none at all).
        pages = [g.rpc(cookie) for _ in range(20)]
        assert lc.read_log().count("may still log in") == 0
        for p in pages:
            p.close()
        shadow_tool(["usermod", "-L", ALICE])
        try:
            time.sleep(10.5)  # past the time a result is taken as fresh
            # The next page to connect has the account checked again: it and every other page close.
            late = g.ws(cookie)
            closed = wait_closed(page)
            assert (closed.code, closed.reason) == (4011, "account locked or expired"), closed
            if late.status == 101:
                from helios import WsClosed
                with pytest.raises(WsClosed):
                    WsRpcOf(late).call("worker:info", timeout=10)
            assert g.ws(cookie).status == 401
        finally:
            shadow_tool(["usermod", "-U", ALICE])
    finally:
        g.assert_clean()


def WsRpcOf(ws):
    return helios.WsRpc(ws)


# ---- names refused by policy take as long as a wrong password ----

def test_refused_names_answer_as_slowly_as_wrong_passwords(make_launcher, accounts, base):
    g, lc = account_gateway(make_launcher, accounts, base, "gw-timing",
                            args=("--login-burst=1000", "--login-address-burst=1000",
                                  "--login-account-burst=1000"))
    try:
        def timed(user, password):
            t = time.monotonic()
            status = g.login(user=user, password=password).status
            return status, time.monotonic() - t

        wrong, refused = [], []
        for i in range(12):
            s, t = timed(BOB, f"wrong {i}")
            assert s == 401
            wrong.append(t)
            for name in ("root", SYSTEM, "Not-A-Name!"):
                s, t = timed(name, "x")
                assert s == 401
                refused.append(t)
        import statistics
        mw, mr = statistics.median(wrong), statistics.median(refused)
        print(f"median wrong password {mw * 1000:.1f} ms, refused name {mr * 1000:.1f} ms")
        # A refused name is answered no sooner than a wrong password typically is.
        assert mr >= 0.8 * mw, (mw, mr, wrong, refused)
        assert mr <= 1.5 * mw + 0.05, (mw, mr)
    finally:
        g.assert_clean()


# ---- a workspace that cannot start says why ----

def ws_closed(g, cookie, timeout=20):
    """Open a page and keep it busy until the gateway closes it; returns the WsClosed."""
    page = g.rpc(cookie)
    try:
        return wait_closed(page, timeout)
    finally:
        page.close()


@pytest.mark.parametrize("lock, unlock", [
    (["usermod", "-L"], ["usermod", "-U"]),
    (["chage", "-E", "0"], ["chage", "-E", "-1"]),
], ids=["usermod-L", "chage-E0"])
def test_a_locked_account_gets_no_workspace_and_is_told(make_launcher, accounts, base, lock, unlock):
    # The periodic check is far off, and the login's result is fresh: only the launcher's own check at the
    # worker request stands between a page and the workspace.
    g, lc = account_gateway(make_launcher, accounts, base, "gw-lock-" + lock[0],
                            args=("--account-check-interval=1h",))
    try:
        cookie = helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE]))
        shadow_tool(lock + [ALICE])
        try:
            assert gw_conn(lc, accounts).request("worker", ALICE) == ["error", "locked"]
            closed = ws_closed(g, cookie)
            assert (closed.code, closed.reason) == (4011, "account locked or expired"), closed
            assert f"No workspace for {ALICE}: the password is locked or the account expired" in lc.read_log()
            assert f"No workspace for {ALICE}: account locked or expired (close 4011)" in g.read_log()
            # No socket was made for the account, no worker started.
            assert not os.path.exists(os.path.join(lc.runtime, "workers", ALICE + ".sock"))
            assert launcher_fixtures.worker_pids(accounts[ALICE].pw_uid) == []
        finally:
            shadow_tool(unlock + [ALICE])
        assert gw_conn(lc, accounts).request("worker", ALICE)[0] == "ok"
    finally:
        g.assert_clean()


def test_a_missing_home_gets_no_workspace_and_is_told(make_launcher, accounts, base):
    g, lc = account_gateway(make_launcher, accounts, base, "gw-home")
    home = accounts[BOB].pw_dir
    try:
        cookie = helios.cookie_from(g.login(user=BOB, password=PASSWORDS[BOB]))
        os.rename(home, home + ".away")
        try:
            assert gw_conn(lc, accounts).request("worker", BOB) == ["error", "no-home"]
            closed = ws_closed(g, cookie)
            assert (closed.code, closed.reason) == (4012, "home directory missing"), closed
            assert f"No workspace for {BOB}: the home directory does not exist" in lc.read_log()
            assert f"No workspace for {BOB}: home directory missing (close 4012)" in g.read_log()
        finally:
            os.rename(home + ".away", home)
        page = g.rpc(cookie)
        assert page.call("worker:info")["home"] == home
        page.close()
    finally:
        g.assert_clean()


def test_a_worker_that_fails_to_start_is_told_not_retried_in_a_loop(make_launcher, accounts, base):
    # A worker program that exits at once: every start fails, and the activator turns clients away.
    lc = make_launcher("--worker", "/bin/false", name="l-false")
    d = os.path.join(base, "gw-false")
    os.makedirs(d)
    os.chmod(d, 0o755)
    g = LauncherGateway(d, accounts[GW], lc.sock).start()
    try:
        cookie = helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE]))
        closed = ws_closed(g, cookie)
        assert (closed.code, closed.reason) == (4013, "workspace failed to start"), closed
        assert f"No workspace for {ALICE}: failed" in lc.read_log()
        assert f"No workspace for {ALICE}: workspace failed to start (close 4013)" in g.read_log()
        # Five quick exits, then the back-off: not a start per page, not a loop.
        assert lc.read_log().count("Started worker /bin/false") == 5
    finally:
        g.assert_clean()


def test_too_many_workspaces_is_its_own_reason(make_launcher, accounts, base):
    lc = make_launcher("--max-users", "1", name="l-full")
    d = os.path.join(base, "gw-full")
    os.makedirs(d)
    os.chmod(d, 0o755)
    g = LauncherGateway(d, accounts[GW], lc.sock).start()
    try:
        alice = g.rpc(helios.cookie_from(g.login(user=ALICE, password=PASSWORDS[ALICE])))
        assert alice.call("worker:info")["uid"] == accounts[ALICE].pw_uid
        closed = ws_closed(g, helios.cookie_from(g.login(user=BOB, password=PASSWORDS[BOB])))
        assert (closed.code, closed.reason) == (4014, "too many workspaces"), closed
        alice.close()
    finally:
        g.assert_clean()
