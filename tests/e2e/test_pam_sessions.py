"""PAM login sessions of web logins (helios-launcher's session-open and session-close, each session held
by a helios-session process), in embedded mode: real accounts, a real PAM stack with a session part
(pam_exec records each open and close with the items PAM was given), real utmp and wtmp files read with
who and last. The same under logind is tests/systemd's."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import helios
from launcher_fixtures import (LAUNCHER, Launcher, LauncherGateway, as_user, kill_workers, pam_service_files,
                               remove_worker_cgroups, set_passwords, shadow_tool, useradd, userdel)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: accounts, PAM files, utmp")

TAG = str(os.getpid())
GW, ALICE, BOB = (f"helios-s-{n}{int(TAG) % 100000}" for n in ("gw", "alice", "bob"))
PASSWORDS = {ALICE: "correct horse 3", BOB: "battery staple 4"}
PAM_SVC = f"helios-stest-{TAG}"
PER_USER = 32  # LAUNCHER_SESSIONS_PER_USER


@pytest.fixture(scope="module")
def accounts():
    base = tempfile.mkdtemp(prefix="helios-session-homes-", dir="/home")
    os.chmod(base, 0o755)
    for n in (GW, ALICE, BOB):
        userdel(n)
    try:
        made = {GW: useradd(GW, system=True), ALICE: useradd(ALICE, home=os.path.join(base, ALICE)),
                BOB: useradd(BOB, home=os.path.join(base, BOB))}
        set_passwords(PASSWORDS)
        yield made
    finally:
        for n in (GW, ALICE, BOB):
            userdel(n)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def base():
    d = tempfile.mkdtemp(prefix="helios-session-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Records:
    """The PAM session log that pam_exec writes, and the utmp and wtmp files the launcher is given."""

    def __init__(self, base):
        self.pam_log = os.path.join(base, "pam-sessions.log")
        self.utmp = os.path.join(base, "utmp")
        self.wtmp = os.path.join(base, "wtmp")
        for p in (self.utmp, self.wtmp):
            open(p, "wb").close()
        self.script = os.path.join(base, "pam-session.sh")
        with open(self.script, "w") as f:
            f.write(f'#!/bin/sh\necho "$PAM_TYPE $PAM_USER $PAM_RHOST $PAM_TTY" >> {self.pam_log}\n')
        os.chmod(self.script, 0o755)

    def pam_lines(self):
        try:
            with open(self.pam_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def who(self):
        """who's lines for the open sessions: [(user, line, host)]."""
        out = subprocess.run(["who", self.utmp], capture_output=True, text=True, check=True).stdout
        rows = []
        for line in out.splitlines():
            f = line.split()
            rows.append((f[0], f[1], f[-1].strip("()") if f[-1].startswith("(") else ""))
        return sorted(rows)

    def utmp_records(self):
        """The raw utmp records (glibc's 384-byte struct utmpx): [(type, pid, line, id, user)]."""
        import struct
        fmt = "<h2xi32s4s32s256s52x"
        out = []
        with open(self.utmp, "rb") as f:
            data = f.read()
        for off in range(0, len(data) - len(data) % 384, 384):
            t, pid, line, ut_id, user, _ = struct.unpack_from(fmt, data, off)
            out.append((t, pid, line.rstrip(b"\0").decode(), ut_id.rstrip(b"\0").decode(),
                        user.rstrip(b"\0").decode()))
        return out

    def last(self):
        out = subprocess.run(["last", "-f", self.wtmp, "-w"], capture_output=True, text=True,
                             check=True).stdout
        return [line for line in out.splitlines() if line.strip() and not line.startswith("wtmp begins")]


@pytest.fixture
def records(base):
    return Records(base)


@pytest.fixture
def pam_service(records):
    text = ("auth required pam_unix.so nodelay\n"
            "account required pam_unix.so\n"
            "session optional pam_loginuid.so\n"
            f"session required pam_exec.so {records.script}\n")
    with pam_service_files({PAM_SVC: text}):
        yield PAM_SVC


@pytest.fixture
def make_launcher(base, accounts, pam_service, records):
    made = []

    def make(*args, name="l"):
        d = os.path.join(base, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        lc = Launcher(d, GW, pam_service, ["--utmp", records.utmp, "--wtmp", records.wtmp, *args]).start()
        made.append(lc)
        return lc

    yield make
    for lc in made:
        lc.assert_clean()
        assert session_helpers(lc) == []
    kill_workers([accounts[ALICE].pw_uid, accounts[BOB].pw_uid])
    remove_worker_cgroups([ALICE, BOB])


def session_helpers(lc):
    """Live helios-session processes started by this launcher."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if not f.read().startswith(b"helios-session\0"):
                    continue
            if int(helios.read_status(entry)["PPid"]) == lc.proc.pid and helios.alive(int(entry)):
                out.append(int(entry))
        except (OSError, KeyError):
            pass
    return out


def wait_for(cond, timeout=10, what=""):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Conn:
    """The gateway's side of the launcher protocol, packet by packet."""

    def __init__(self, path, pw):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with as_user(pw):
            self.sock.connect(path)
        self.next_id = 1

    def close(self):
        self.sock.close()

    def request(self, op, *args, timeout=15):
        rid = str(self.next_id)
        self.next_id += 1
        self.sock.send(b"".join(f.encode() + b"\0" for f in (rid, op, *args)))
        self.sock.settimeout(timeout)
        data = self.sock.recv(8192)
        if not data:
            raise EOFError
        reply = [f.decode() for f in data[:-1].split(b"\0")]
        assert reply[0] == rid, reply
        return reply[1:]

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(8192) == b""
        except ConnectionResetError:
            return True


# ---- the launcher's protocol ----

def test_open_and_close_a_session(make_launcher, accounts, records):
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    assert c.request("session-open", "k1", ALICE, "192.0.2.7") == ["ok"]
    assert records.pam_lines() == [f"open_session {ALICE} 192.0.2.7 web/0"]
    assert records.who() == [(ALICE, "web/0", "192.0.2.7")]
    [helper] = session_helpers(lc)
    # USER_PROCESS, by the helper, "w" and the line's number as its id.
    assert records.utmp_records() == [(7, helper, "web/0", "w0", ALICE)]
    # The helper holds the session as root; pam_loginuid made it the user's login, which is what last
    # looks at for a session still open.
    assert helios.read_status(helper)["Uid"].split()[0] == "0"
    with open(f"/proc/{helper}/loginuid") as f:
        assert f.read() == str(accounts[ALICE].pw_uid)
    [entry] = records.last()
    assert entry.split()[:3] == [ALICE, "web/0", "192.0.2.7"] and "still logged in" in entry, entry

    assert c.request("session-close", "k1") == ["ok"]
    wait_for(lambda: not helios.alive(helper), what="the helper's exit")
    wait_for(lambda: records.who() == [], what="the utmp record to go")
    assert records.pam_lines()[-1] == f"close_session {ALICE} 192.0.2.7 web/0"
    # The same record, now DEAD_PROCESS.
    assert [r[:4] for r in records.utmp_records()] == [(8, helper, "web/0", "w0")]
    # last matches the logout record; one that ended this very second reads "still running".
    time.sleep(1.1)
    [entry] = records.last()
    assert entry.split()[:3] == [ALICE, "web/0", "192.0.2.7"], entry
    assert re.search(r" - \d\d:\d\d\s+\(00:0\d\)$", entry), entry
    # Closing again, or a key never opened, is no error.
    assert c.request("session-close", "k1") == ["ok"]
    assert c.request("session-close", "nothing") == ["ok"]
    c.close()


def test_lines_are_reused_and_addresses_may_be_unknown(make_launcher, accounts, records):
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    assert c.request("session-open", "a", ALICE, "") == ["ok"]
    assert c.request("session-open", "b", BOB, "2001:db8::1") == ["ok"]
    assert records.who() == sorted([(ALICE, "web/0", ""), (BOB, "web/1", "2001:db8::1")])
    assert c.request("session-close", "a") == ["ok"]
    wait_for(lambda: len(records.who()) == 1, what="alice's record to go")
    wait_for(lambda: len(session_helpers(lc)) == 1, what="alice's helper to exit")
    assert c.request("session-open", "c", ALICE, "192.0.2.8") == ["ok"]
    assert records.who() == sorted([(ALICE, "web/0", "192.0.2.8"), (BOB, "web/1", "2001:db8::1")])
    c.close()
    wait_for(lambda: records.who() == [], what="every record to go with the connection")


def test_refusals(make_launcher, accounts, records):
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    assert c.request("session-open", "k", "root", "") == ["error", "refused"]
    assert c.request("session-open", "k", GW, "") == ["error", "refused"]
    assert c.request("session-open", "k", "no-such-user-here", "") == ["error", "refused"]
    assert c.request("session-open", "k", "Bad Name", "") == ["error", "refused"]
    assert c.request("session-open", "k", ALICE, "") == ["ok"]
    # One key, one session.
    assert c.request("session-open", "k", ALICE, "") == ["error", "refused"]
    # The account refused by PAM: no session, no record.
    subprocess.run(["chage", "-E", "0", BOB], check=True)
    try:
        assert c.request("session-open", "b", BOB, "") == ["error", "denied"]
    finally:
        subprocess.run(["chage", "-E", "-1", BOB], check=True)
    # A locked password (usermod -L), which pam_unix's account management lets by.
    shadow_tool(["usermod", "-L", BOB])
    try:
        assert c.request("session-open", "b", BOB, "") == ["error", "denied"]
    finally:
        shadow_tool(["usermod", "-U", BOB])
    assert [r[0] for r in records.who()] == [ALICE]
    assert not any(BOB in line for line in records.pam_lines())
    c.close()


@pytest.mark.parametrize("fields", [
    ["session-open", "k/1", ALICE, ""],          # a key outside its alphabet
    ["session-open", "k" * 33, ALICE, ""],       # a key too long
    ["session-open", "k", ALICE, "a b"],         # an address with a space
    ["session-open", "k", ALICE, "1" * 64],      # an address too long
    ["session-open", "k", ALICE],                # a field short
    ["session-open", "k", ALICE, "", "x"],       # a field too many
    ["session-close"],
    ["session-close", ""],
], ids=["key-alphabet", "key-long", "rhost-space", "rhost-long", "short", "extra", "close-short",
        "close-empty"])
def test_malformed_session_requests_close_the_connection(make_launcher, accounts, records, fields):
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    c.sock.send(b"".join(f.encode() + b"\0" for f in ["1", *fields]))
    assert c.closed()
    assert session_helpers(lc) == [] and records.who() == []


def test_sessions_are_bounded_per_user(make_launcher, accounts, records):
    lc = make_launcher("--max-pam-helpers", "64")
    c = Conn(lc.sock, accounts[GW])
    for i in range(PER_USER):
        assert c.request("session-open", f"a{i}", ALICE, "") == ["ok"], i
    assert c.request("session-open", "one-more", ALICE, "") == ["error", "busy"]
    # Another user is not held back by Alice's.
    assert c.request("session-open", "b", BOB, "") == ["ok"]
    assert len(session_helpers(lc)) == PER_USER + 1
    assert len(records.who()) == PER_USER + 1
    assert c.request("session-close", "a0") == ["ok"]
    # The line is free once its helper has gone.
    wait_for(lambda: len(records.who()) == PER_USER, what="a0's record to go")
    wait_for(lambda: c.request("session-open", "again", ALICE, "") == ["ok"], what="room for Alice")
    c.close()
    wait_for(lambda: session_helpers(lc) == [], what="the helpers to exit with the connection")
    assert records.who() == []


def test_a_gateway_gone_leaves_no_session_behind(make_launcher, accounts, records):
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    for k, u in (("a", ALICE), ("b", BOB)):
        assert c.request("session-open", k, u, "192.0.2.9") == ["ok"]
    assert len(session_helpers(lc)) == 2
    c.close()
    wait_for(lambda: session_helpers(lc) == [], what="the helpers to exit")
    assert records.who() == []
    assert sorted(line.split()[0] for line in records.pam_lines()) == ["close_session"] * 2 + ["open_session"] * 2
    assert not any("still logged in" in line for line in records.last())


def test_a_launcher_stopped_or_killed_ends_its_sessions(make_launcher, accounts, records):
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    assert c.request("session-open", "a", ALICE, "") == ["ok"]
    [helper] = session_helpers(lc)
    assert lc.stop() == 0
    assert not helios.alive(helper)
    assert records.who() == []
    c.close()
    # Killed outright: each helper sees the end of its input, and closes its session itself.
    lc.start()
    c = Conn(lc.sock, accounts[GW])
    assert c.request("session-open", "a", ALICE, "") == ["ok"]
    [helper] = session_helpers(lc)
    lc.proc.kill()
    lc.proc.wait()
    wait_for(lambda: not helios.alive(helper), what="the orphaned helper to exit")
    assert records.who() == []
    assert records.pam_lines()[-1].startswith("close_session")
    c.close()
    lc.start()


# ---- through the gateway ----

@pytest.fixture
def make_gateway(make_launcher, accounts, base):
    made = []

    def make(*args, lc=None, name="gw"):
        lc = lc or make_launcher()
        d = os.path.join(base, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        g = LauncherGateway(d, accounts[GW], lc.sock,
                            args=("--login-session-grace", "1s", "--admin-socket", os.path.join(d, "admin.sock"),
                                  "--state-dir", d, *args))
        # The gateway's account keeps its saved logins and its admin socket there.
        for path in (d, g.home):
            os.chown(path, accounts[GW].pw_uid, accounts[GW].pw_gid)
        g.start()
        made.append(g)
        return g, lc

    yield make
    for g in made:
        if g.proc.poll() is None:
            g.assert_clean()


def login(g, user):
    resp = g.login(user=user, password=PASSWORDS[user])
    assert resp.status == 200, resp
    return helios.cookie_from(resp)


def test_a_page_opens_the_session_and_its_close_ends_it_after_the_grace(make_gateway, records):
    g, lc = make_gateway("--login-session-grace", "2s")
    cookie = login(g, ALICE)
    # A login without a page has no session yet.
    time.sleep(0.3)
    assert records.who() == []
    page = g.rpc(cookie)
    page.call("worker:info")
    wait_for(lambda: records.who() == [(ALICE, "web/0", "127.0.0.1")], what="the session")
    # A reload: the page closes and comes back within the grace; the session stays the same one.
    page.close()
    time.sleep(0.5)
    page = g.rpc(cookie)
    page.call("worker:info")
    time.sleep(2.5)
    assert records.who() == [(ALICE, "web/0", "127.0.0.1")]
    assert [line.split()[0] for line in records.pam_lines()] == ["open_session"]
    page.close()
    t0 = time.monotonic()
    wait_for(lambda: records.who() == [], what="the session to end after the grace")
    assert time.monotonic() - t0 >= 1.5
    # The PAM session closes right after the login record.
    wait_for(lambda: [line.split()[0] for line in records.pam_lines()] == ["open_session", "close_session"],
             what="the PAM session to close")


def test_two_logins_two_sessions_and_logout_ends_one(make_gateway, records):
    g, lc = make_gateway("--login-session-grace", "60s")
    c1, c2 = login(g, ALICE), login(g, ALICE)
    p1, p2 = g.rpc(c1), g.rpc(c2)
    wait_for(lambda: len(records.who()) == 2, what="two sessions")
    assert {r[0] for r in records.who()} == {ALICE}
    assert g.request("POST", "/logout", cookie=c1).status == 200
    # At once, not after the grace.
    wait_for(lambda: len(records.who()) == 1, timeout=5, what="the logged-out session to end")
    p2.call("worker:info")
    for p in (p1, p2):
        with contextlib.suppress(Exception):
            p.close()


def test_admin_logout_ends_the_users_sessions(make_gateway, records):
    g, lc = make_gateway("--login-session-grace", "60s")
    pages = [g.rpc(login(g, ALICE)), g.rpc(login(g, BOB))]
    wait_for(lambda: len(records.who()) == 2, what="two sessions")
    out = subprocess.run([helios.GATEWAY, "logout", "--socket", os.path.join(g.base, "admin.sock"), ALICE],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: [r[0] for r in records.who()] == [BOB], timeout=5, what="Alice's session to end")
    for p in pages:
        with contextlib.suppress(Exception):
            p.close()


def test_sessions_come_back_after_a_launcher_restart(make_gateway, records):
    g, lc = make_gateway()
    page = g.rpc(login(g, ALICE))
    page.call("worker:info")
    wait_for(lambda: len(records.who()) == 1, what="the session")
    assert lc.stop() == 0
    assert records.who() == []
    lc.start()
    # The page stayed open: the gateway opens its session again by itself.
    wait_for(lambda: [r[0] for r in records.who()] == [ALICE], what="the session opened again")
    page.call("worker:info")
    page.close()


def test_a_killed_gateway_leaves_no_session_and_a_new_one_opens_them_again(make_gateway, records):
    g, lc = make_gateway()
    cookie = login(g, ALICE)
    page = g.rpc(cookie)
    page.call("worker:info")
    wait_for(lambda: len(records.who()) == 1, what="the session")
    g.kill()
    wait_for(lambda: records.who() == [] and session_helpers(lc) == [], what="the session to end")
    with contextlib.suppress(Exception):
        page.close()
    # The login was saved: a page on the restarted gateway opens a session for it again (once the
    # restarted gateway has checked the account again: 503 until then).
    g.start()
    ws = wait_for(lambda: (lambda w: w if w.status == 101 else None)(g.ws(cookie)), what="a page")
    page = helios.WsRpc(ws)
    page.call("worker:info")
    wait_for(lambda: [r[0] for r in records.who()] == [ALICE], what="the session again")
    page.close()


def test_a_helper_told_to_stop_closes_its_session(make_launcher, accounts, records):
    """What loginctl terminate-session does to the session's leader: SIGTERM. It closes the session as
    if the gateway had, and the launcher forgets it (the key may be opened again)."""
    lc = make_launcher()
    c = Conn(lc.sock, accounts[GW])
    assert c.request("session-open", "k", ALICE, "192.0.2.10") == ["ok"]
    [helper] = session_helpers(lc)
    os.kill(helper, signal.SIGTERM)
    wait_for(lambda: session_helpers(lc) == [], what="the helper to exit")
    assert records.who() == []
    assert records.pam_lines()[-1] == f"close_session {ALICE} 192.0.2.10 web/0"
    assert "ended by itself" in lc.read_log()
    assert c.request("session-open", "k", ALICE, "192.0.2.10") == ["ok"]
    c.close()


SESSION = os.path.join(os.path.dirname(LAUNCHER), "helios-session")


def utmp_record(t, pid, line, ut_id, user):
    """One raw utmp record (glibc's 384-byte struct utmpx)."""
    import struct
    return struct.pack("<h2xi32s4s32s256s52x", t, pid, line.encode(), ut_id.encode(), user.encode(), b"")


@contextlib.contextmanager
def session_helper(pam_service, records, user, line, rhost=""):
    """helios-session run as the launcher runs it: yields once its session is open (its "o" came)."""
    p = subprocess.Popen([SESSION, pam_service, user, line, rhost, records.utmp, records.wtmp],
                         executable=SESSION, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    try:
        assert p.stdout.read(1) == b"o"
        yield p
    finally:
        p.stdin.close()
        assert p.wait(timeout=15) == 0


def test_a_web_line_leaves_the_terminal_of_the_same_number_alone(accounts, pam_service, records):
    """sshd and login(1) take a line's last four characters as its utmp id: "/113" for pts/113. The
    web line of the same number must not take that record over, nor mark it dead when it closes."""
    with open(records.utmp, "wb") as f:
        f.write(utmp_record(7, 4242, "pts/113", "/113", BOB))
    with session_helper(pam_service, records, ALICE, "web/113", "192.0.2.9") as p:
        assert records.who() == sorted([(ALICE, "web/113", "192.0.2.9"), (BOB, "pts/113", "")])
        assert (7, p.pid, "web/113", "w113", ALICE) in records.utmp_records()
    assert records.who() == [(BOB, "pts/113", "")]
    assert (7, 4242, "pts/113", "/113", BOB) in records.utmp_records()


def test_a_helper_closing_late_leaves_the_next_login_on_its_line_alone(accounts, pam_service, records):
    """A helper that closes after its line went to another login (its launcher restarted meanwhile) ends
    neither the other login's utmp record nor, in wtmp, its entry in last."""
    with session_helper(pam_service, records, ALICE, "web/4", "192.0.2.1"):
        with open(records.utmp, "wb") as f:
            f.write(utmp_record(7, 4343, "web/4", "w4", BOB))
    assert records.utmp_records() == [(7, 4343, "web/4", "w4", BOB)]
    assert records.pam_lines()[-1] == f"close_session {ALICE} 192.0.2.1 web/4"
    [entry] = records.last()
    assert entry.split()[:2] == [ALICE, "web/4"] and "still logged in" not in entry, entry


@pytest.mark.parametrize("line", ["web/", "web/0113", "web/1000", "web/a", "web/-1", "pts/1", "web/1 "])
def test_the_helper_refuses_a_line_not_its_own(accounts, pam_service, records, line):
    p = subprocess.run([SESSION, pam_service, ALICE, line, "", records.utmp, records.wtmp],
                       executable=SESSION, stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    assert p.returncode != 0 and b"invalid arguments" in p.stderr
    assert records.pam_lines() == [] and records.utmp_records() == []


def test_a_failing_session_stack_is_retried_ever_more_slowly_and_pages_work(make_launcher, make_gateway, base,
                                                                          records):
    """A session stack that fails (not a denial: PAM_SYSTEM_ERR) leaves the page working without a
    session, and the gateway asks again after 2 s, then 4 s, 8 s...: not a helper every two seconds."""
    failing = f"{PAM_SVC}-fail"
    text = ("auth required pam_unix.so nodelay\naccount required pam_unix.so\n"
            "session required pam_exec.so /bin/false\n")
    with pam_service_files({failing: text}):
        lc = Launcher(os.path.join(base, "lf"), GW, failing,
                      ["--utmp", records.utmp, "--wtmp", records.wtmp])
        os.makedirs(lc.base)
        os.chmod(lc.base, 0o755)
        lc.start()
        try:
            g, _ = make_gateway(lc=lc)
            page = g.rpc(login(g, ALICE))
            t0 = time.monotonic()
            while time.monotonic() - t0 < 7.5:
                page.call("worker:info")
                time.sleep(0.5)
            tries = lc.read_log().count("No session for " + ALICE)
            # At 0, 2 and 6 s; every 2 s would be 4.
            assert 2 <= tries <= 3, tries
            assert records.who() == []
            page.close()
            g.assert_clean()
        finally:
            lc.assert_clean()
