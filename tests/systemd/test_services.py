"""helios-launcher and helios-gateway under a real systemd: their sockets, their sandboxes, and PAM
inside the launcher's sandbox."""

import json
import os
import re
import secrets
import time

import pytest

from machine import FIGURES, HELPER_DIR, instance

BUILD_DIR = os.environ.get("HELIOS_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
LAUNCHER_SOCK = "/run/helios/launcher.sock"
BASE = "http://127.0.0.1:8080"


def unit_section(text, section):
    """The lines of one [section] of a unit file."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
        elif inside and line.strip() and not line.startswith("#"):
            out.append(line)
    return out


def installed_unit(machine, name):
    for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        if os.path.exists(machine.path(f"{d}/{name}")):
            with open(machine.path(f"{d}/{name}")) as f:
                return f.read()
    raise AssertionError(f"{name} is not installed")


def gateway_client(machine, *args):
    r = machine.exec("/usr/bin/python3", f"{HELPER_DIR}/gateway_client.py", BASE, *args)
    return json.loads(r.stdout)


# ---- PAM inside the launcher's sandbox ----

def run_as_launcher(machine, command, stdin=None):
    """Run command as a oneshot service with every [Service] setting of helios-launcher.service but
    what it runs: what the launcher's sandbox lets it do. Returns (exit status, its journal)."""
    service = [line for line in unit_section(installed_unit(machine, "helios-launcher.service"), "Service")
               if not line.startswith(("Type=", "ExecStart=", "Restart="))]
    name = f"helios-as-launcher-{secrets.token_hex(4)}.service"
    text = ("[Service]\nType=oneshot\n" + "\n".join(service + machine.service_environment) +
            f"\nExecStart={command}\n")
    if stdin is not None:
        text += f"StandardInput=data\nStandardInputText={stdin}\n"
    machine.write(f"/run/systemd/system/{name}", text)
    try:
        machine.systemctl("daemon-reload")
        machine.systemctl("start", name, check=False)
        status = int(machine.show(name, "ExecMainStatus")["ExecMainStatus"])
        log = machine.exec("journalctl", "-u", name, "-o", "cat", "--no-pager").stdout
        return status, log
    finally:
        machine.systemctl("reset-failed", name, check=False)
        machine.exec("rm", f"/run/systemd/system/{name}")
        machine.systemctl("daemon-reload")


def pam_check(machine, user, password):
    """PAM for a login, as helios-launcher does it, inside its sandbox."""
    return run_as_launcher(machine, f"{HELPER_DIR}/pam-check helios {user}", stdin=password)


def test_launcher_sandbox_may_start_workers_over_dbus(machine, users):
    """StartUnit on the system bus from inside the launcher's sandbox: root without CAP_SYS_ADMIN, no
    writable file system, only local sockets. The service manager accepts a root caller."""
    unit = f"helios-worker@{instance('mary-jane')}.socket"
    machine.systemctl("reset-failed", unit, check=False)
    assert machine.show(unit, "ActiveState")["ActiveState"] == "inactive"
    try:
        status, log = run_as_launcher(
            machine, "/usr/bin/busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
            # ExecStart= decodes C escapes: the unit's backslash is written doubled.
            "org.freedesktop.systemd1.Manager StartUnit ss " + unit.replace("\\", "\\\\") + " replace")
        assert status == 0 and "/org/freedesktop/systemd1/job/" in log, log
        # StartUnit returns with the job queued, not done.
        deadline = time.monotonic() + 10
        while machine.show(unit, "ActiveState")["ActiveState"] != "active":
            assert time.monotonic() < deadline, f"{unit} did not start"
            time.sleep(0.05)
        info = machine.client("/run/helios/workers/mary-jane.sock", "call", "worker:info")
        assert info["response"]["result"]["home"] == "/home/mary-jane"
    finally:
        machine.systemctl("stop", unit, f"helios-worker@{instance('mary-jane')}.service")


def test_pam_works_inside_the_launcher_sandbox(machine, users):
    assert os.path.exists(machine.path("/etc/pam.d/helios"))
    status, log = pam_check(machine, "alice", users["alice"])
    assert status == 0 and "accepted" in log, log
    status, log = pam_check(machine, "mary-jane", users["mary-jane"])
    assert status == 0, log
    status, log = pam_check(machine, "alice", users["bob"])
    assert status == 1 and "Authentication failure" in log, log
    status, log = pam_check(machine, "nobody-here", "x")
    assert status == 1, log
    # /run/nologin (an admin's maintenance window, or a boot not finished) refuses logins.
    machine.write("/run/nologin", "Maintenance until noon.\n")
    try:
        status, log = pam_check(machine, "alice", users["alice"])
        assert status == 1 and "Maintenance until noon." in log, log
    finally:
        machine.exec("rm", "/run/nologin")
    # The account phase runs too: a locked account is refused even with its password.
    machine.exec("usermod", "--expiredate", "1", "bob")
    try:
        status, log = pam_check(machine, "bob", users["bob"])
        assert status == 1, log
    finally:
        machine.exec("usermod", "--expiredate", "", "bob")


# ---- helios-launcher ----

def test_launcher_socket_is_for_the_gateway_only(machine, users):
    machine.systemctl("start", "helios-launcher.socket")
    try:
        st = machine.exec("stat", "-c", "%a %U %G %F", LAUNCHER_SOCK).stdout.strip()
        assert st == "660 root helios-gateway socket"
        # Refused by the file's mode before anything is started.
        out = machine.client(LAUNCHER_SOCK, "launcher", "1", "worker", "bob", user="bob", check=False)
        assert out.get("errno") == "EACCES", out
        assert machine.show("helios-launcher.service", "ActiveState")["ActiveState"] == "inactive"
    finally:
        machine.systemctl("stop", "helios-launcher.socket", "helios-launcher.service")


@pytest.fixture
def launcher(machine, users):
    for u in users:
        machine.systemctl("reset-failed", f"helios-worker@{instance(u)}.socket", f"helios-worker@{instance(u)}.service",
                          check=False)
    machine.systemctl("start", "helios-launcher.socket")
    yield
    machine.systemctl("stop", "helios-launcher.socket", "helios-launcher.service", check=False)
    for u in users:
        machine.systemctl("stop", f"helios-worker@{instance(u)}.socket", f"helios-worker@{instance(u)}.service", check=False)


@pytest.mark.parametrize("user", ["alice", "mary-jane"])
def test_launcher_starts_workers_under_systemd(machine, users, launcher, user):
    assert machine.show(f"helios-worker@{instance(user)}.socket", "ActiveState")["ActiveState"] == "inactive"
    t = time.monotonic()
    out = machine.client(LAUNCHER_SOCK, "launcher", "7", "worker", user)
    assert out.get("reply") == ["7", "ok", f"/run/helios/workers/{user}.sock"], out
    info = machine.client(f"/run/helios/workers/{user}.sock", "call", "worker:info")
    total = time.monotonic() - t
    assert info["response"]["result"]["uid"] == int(machine.exec("id", "-u", user).stdout)
    FIGURES[f"cold start of {user} through helios-launcher (request to first worker answer)"] = \
        f"{total * 1000:.1f} ms"
    assert machine.show(f"helios-worker@{instance(user)}.socket", "ActiveState")["ActiveState"] == "active"

    # The launcher runs as root with only what the unit leaves it.
    pid = int(machine.show("helios-launcher.service", "MainPID")["MainPID"])
    status = machine.exec("cat", f"/proc/{pid}/status").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^CapBnd:\s+0*20000000$", status, re.M), status  # CAP_AUDIT_WRITE only


def test_launcher_checks_passwords_and_refuses_root(machine, users, launcher):
    out = machine.client(LAUNCHER_SOCK, "launcher", "1", "auth", "alice", users["alice"])
    assert out.get("reply") == ["1", "ok"], out
    out = machine.client(LAUNCHER_SOCK, "launcher", "2", "auth", "alice", "wrong")
    assert out.get("reply") == ["2", "error", "denied"], out
    out = machine.client(LAUNCHER_SOCK, "launcher", "3", "worker", "root")
    assert out.get("reply") == ["3", "error", "refused"], out
    # Root itself is not the gateway: the launcher serves the gateway's uid only.
    out = machine.client(LAUNCHER_SOCK, "launcher", "4", "worker", "alice", user="root", check=False)
    assert "reply" not in out, out
    log = machine.exec("journalctl", "-u", "helios-launcher.service", "-o", "cat", "--no-pager").stdout
    assert "alice" in log


def test_launcher_sets_the_admins_sandbox_settings_on_each_unit(machine, users, launcher):
    """/etc/helios/sandbox.conf for everyone, sandbox.d/USER.conf for one user: the launcher sets them on
    the user's service before it starts the socket."""
    machine.exec("mkdir", "-p", "/etc/helios/sandbox.d")
    machine.write("/etc/helios/sandbox.conf", "cpu_weight = 80\n")
    machine.write("/etc/helios/sandbox.d/bob.conf", "memory_max = 3G\ntasks_max = 100\n")
    try:
        for i, user in enumerate(("alice", "bob")):
            out = machine.client(LAUNCHER_SOCK, "launcher", str(i + 1), "worker", user)
            assert out.get("reply", [None, None])[1] == "ok", out
            machine.client(f"/run/helios/workers/{user}.sock", "call", "worker:info")
        assert machine.show("helios-worker@bob.service", "MemoryMax", "TasksMax", "CPUWeight") == \
            {"MemoryMax": str(3 << 30), "TasksMax": "100", "CPUWeight": "80"}
        assert machine.show("helios-worker@alice.service", "MemoryMax", "TasksMax", "CPUWeight") == \
            {"MemoryMax": str(2 << 30), "TasksMax": "512", "CPUWeight": "80"}
        # A file in error: no workspace rather than one with other bounds.
        machine.write("/etc/helios/sandbox.d/bob.conf", "memory_max = plenty\n")
        machine.systemctl("stop", "helios-worker@bob.socket", "helios-worker@bob.service")
        out = machine.client(LAUNCHER_SOCK, "launcher", "3", "worker", "bob")
        assert out.get("reply") == ["3", "error", "failed"], out
        log = machine.exec("journalctl", "-u", "helios-launcher.service", "-o", "cat", "--no-pager").stdout
        assert "invalid value 'plenty' for memory_max" in log
    finally:
        machine.exec("rm", "-rf", "/etc/helios/sandbox.conf", "/etc/helios/sandbox.d")
        for user in ("alice", "bob"):
            machine.systemctl("stop", f"helios-worker@{user}.socket", f"helios-worker@{user}.service", check=False)
            machine.systemctl("revert", f"helios-worker@{user}.service", check=False)


# ---- helios-gateway ----

@pytest.fixture
def gateway(machine):
    yield
    machine.systemctl("stop", "helios-gateway.socket", "helios-gateway.service", check=False)
    machine.exec("rm", "-rf", "/etc/systemd/system/helios-gateway.service.d", "/etc/helios")
    machine.systemctl("daemon-reload")
    machine.systemctl("reset-failed", check=False)


def test_gateway_unit_serves_the_page_under_its_sandbox(machine, gateway):
    """The gateway's sandbox with the login method that needs no launcher (a token): the socket
    activates it, it reports ready, reads a root-owned file of its group, serves the installed web
    app and answers a login. The full unit (PAM through the launcher) is the next test."""
    token = secrets.token_urlsafe(24)
    machine.exec("install", "-d", "-m", "0750", "-g", "helios-gateway", "/etc/helios")
    machine.exec("install", "-m", "0640", "-g", "helios-gateway", "/dev/stdin", "/etc/helios/token",
                 input=token)
    machine.exec("mkdir", "-p", "/etc/systemd/system/helios-gateway.service.d")
    with open(machine.path("/etc/systemd/system/helios-gateway.service.d/50-token.conf"), "w") as f:
        f.write("[Service]\nExecStart=\n"
                "ExecStart=/usr/local/bin/helios-gateway --auth=token --token-file=/etc/helios/token\n")
    machine.systemctl("daemon-reload")
    machine.systemctl("start", "helios-gateway.socket")
    assert machine.show("helios-gateway.service", "ActiveState")["ActiveState"] == "inactive"

    t = time.monotonic()
    r = gateway_client(machine, "get", "/healthz")
    FIGURES["gateway cold start under systemd (first /healthz)"] = f"{(time.monotonic() - t) * 1000:.1f} ms"
    assert r["status"] == 200 and r["body"].strip() == "ok", r
    r = gateway_client(machine, "get", "/")
    assert r["status"] == 200 and "<!doctype html" in r["body"].lower(), r
    headers = {k.lower(): v for k, v in r["headers"].items()}
    assert "default-src 'self'" in headers.get("content-security-policy", ""), headers
    assert gateway_client(machine, "login", "--token", token)["status"] == 200
    assert gateway_client(machine, "login", "--token", "wrong" + token)["status"] == 401

    props = machine.show("helios-gateway.service", "ActiveState", "SubState", "MainPID", "StatusText")
    assert props["ActiveState"] == "active" and props["StatusText"], props
    status = machine.exec("cat", f"/proc/{props['MainPID']}/status").stdout
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    # Reload rereads the configuration without a restart.
    machine.systemctl("reload", "helios-gateway.service")
    assert machine.show("helios-gateway.service", "MainPID")["MainPID"] == props["MainPID"]
    assert gateway_client(machine, "get", "/healthz")["status"] == 200


def test_gateway_logs_in_with_pam_and_reaches_the_worker(machine, users, launcher, gateway):
    machine.systemctl("start", "helios-gateway.socket")
    r = gateway_client(machine, "login", "mary-jane", "wrong")
    assert r["status"] == 401, r
    r = gateway_client(machine, "login", "mary-jane", users["mary-jane"])
    assert r["status"] == 200 and r["cookie"], r
    t = time.monotonic()
    out = gateway_client(machine, "rpc", r["cookie"], "worker:info")
    FIGURES["first request after login, browser side (gateway, launcher, worker cold)"] = \
        f"{(time.monotonic() - t) * 1000:.1f} ms"
    assert out["response"]["result"]["uid"] == int(machine.exec("id", "-u", "mary-jane").stdout)


@pytest.mark.parametrize("unit", ["service", "socket"])
def test_a_masked_workspace_is_said_and_not_started(machine, users, launcher, gateway, unit):
    """systemctl mask helios-worker@bob.service (or .socket): the launcher answers "masked", the page is
    closed with 4010 and its reason, and each of the two logs one line naming bob and why."""
    machine.systemctl("start", "helios-gateway.socket")
    r = gateway_client(machine, "login", "bob", users["bob"])
    assert r["status"] == 200, r
    machine.systemctl("stop", "helios-worker@bob.socket", "helios-worker@bob.service", check=False)
    machine.systemctl("mask", f"helios-worker@bob.{unit}")
    try:
        out = machine.client(LAUNCHER_SOCK, "launcher", "1", "worker", "bob")
        assert out.get("reply") == ["1", "error", "masked"], out
        out = gateway_client(machine, "rpc", r["cookie"], "worker:info")
        assert out.get("closed") == [4010, "workspace disabled"], out
        assert machine.show("helios-worker@bob.socket", "ActiveState")["ActiveState"] == "inactive"
        log = machine.exec("journalctl", "-u", "helios-launcher.service", "-o", "cat", "--no-pager").stdout
        assert "No workspace for bob: helios-worker@bob.service is masked." in log, log[-2000:]
        log = machine.exec("journalctl", "-u", "helios-gateway.service", "-o", "cat", "--no-pager").stdout
        assert "No workspace for bob: workspace disabled (close 4010)." in log, log[-2000:]
    finally:
        machine.systemctl("unmask", f"helios-worker@bob.{unit}")
    out = gateway_client(machine, "rpc", r["cookie"], "worker:info")
    assert out["response"]["result"]["uid"] == int(machine.exec("id", "-u", "bob").stdout), out


@pytest.mark.parametrize("mode, text", [
    ("0666", "max_terminals = 8\n"),
    ("0644", "max_terminals = lots\n"),
], ids=["writable-by-others", "bad-value"])
def test_a_worker_that_refuses_to_start_is_said_until_the_admin_fixes_it(machine, users, launcher, gateway,
                                                                          mode, text):
    """A worker.d/bob.conf that the worker refuses makes every start of helios-worker@bob.service fail,
    while its socket starts fine: systemd stops starting the service and fails the socket
    (service-start-limit-hit), the launcher then
    answers "failed", the page is closed with 4013 and the logs say why. Once the admin fixes the file and
    runs systemctl reset-failed, bob gets in (well before the launcher's hold of 30 s would pass)."""
    conf = "/etc/helios/worker.d/bob.conf"
    machine.systemctl("start", "helios-gateway.socket")
    r = gateway_client(machine, "login", "bob", users["bob"])
    assert r["status"] == 200, r
    machine.systemctl("stop", "helios-worker@bob.socket", "helios-worker@bob.service", check=False)
    machine.exec("mkdir", "-p", "/etc/helios/worker.d")
    machine.write(conf, text, mode=mode)
    try:
        out = gateway_client(machine, "rpc", r["cookie"], "worker:info")
        assert out.get("closed") == [4013, "workspace failed to start"], out
        assert machine.show("helios-worker@bob.socket", "Result")["Result"] == "service-start-limit-hit"
        # Asked again, as the page's "Try again" does, the launcher says so again.
        out = machine.client(LAUNCHER_SOCK, "launcher", "1", "worker", "bob")
        assert out.get("reply") == ["1", "error", "failed"], out
        log = machine.exec("journalctl", "-u", "helios-launcher.service", "-o", "cat", "--no-pager").stdout
        assert "helios-worker@bob.socket failed (service-start-limit-hit)" in log, log[-2000:]
        assert "No workspace for bob: its worker service keeps failing to start." in log, log[-2000:]
        log = machine.exec("journalctl", "-u", "helios-worker@bob.service", "-o", "cat", "--no-pager").stdout
        assert conf in log, log[-2000:]
        log = machine.exec("journalctl", "-u", "helios-gateway.service", "-o", "cat", "--no-pager").stdout
        assert "No workspace for bob: workspace failed to start (close 4013)." in log, log[-2000:]
        machine.write(conf, "max_terminals = 8\n", mode="0644")
        # The socket holds the failed state (a glob would also name the service, which systemd may
        # have unloaded by now: then reset-failed exits 1).
        machine.systemctl("reset-failed", "helios-worker@bob.socket")
        out = gateway_client(machine, "rpc", r["cookie"], "worker:info")
        assert out["response"]["result"]["uid"] == int(machine.exec("id", "-u", "bob").stdout), out
    finally:
        machine.exec("rm", "-f", conf)


def test_admin_group_works_under_the_shipped_unit(machine, users, gateway):
    """admin_group in helios.conf and the gateway's account in that group is all it takes: the socket is
    the group's, a member who is not root lists the sessions, someone else cannot connect. No drop-in."""
    machine.exec("groupadd", "-f", "helios-admins")
    machine.exec("usermod", "-aG", "helios-admins", "helios-gateway")
    machine.exec("usermod", "-aG", "helios-admins", "bob")
    machine.exec("install", "-d", "-m", "0755", "/etc/helios")
    machine.write("/etc/helios/helios.conf", "admin_group = helios-admins\n")
    try:
        machine.systemctl("start", "helios-gateway.socket")
        assert gateway_client(machine, "get", "/healthz")["status"] == 200
        st = machine.exec("stat", "-c", "%a %G", "/run/helios-gateway/admin.sock", check=False)
        log = machine.exec("journalctl", "-u", "helios-gateway.service", "-o", "cat", "--no-pager").stdout
        assert st.stdout.split() == ["660", "helios-admins"], (st.stderr, log.splitlines()[-12:])
        r = machine.exec("/usr/local/bin/helios-gateway", "sessions", user="bob", check=False)
        assert r.returncode == 0 and r.stdout.split()[:3] == ["USER", "SESSION", "FROM"], (r.stdout, r.stderr)
        r = machine.exec("/usr/local/bin/helios-gateway", "sessions", user="alice", check=False)
        assert r.returncode != 0 and "Cannot reach the gateway's admin socket" in r.stderr, r.stderr
    finally:
        machine.systemctl("stop", "helios-gateway.socket", "helios-gateway.service", check=False)
        machine.exec("gpasswd", "-d", "bob", "helios-admins", check=False)
        machine.exec("gpasswd", "-d", "helios-gateway", "helios-admins", check=False)
        machine.exec("groupdel", "helios-admins", check=False)


def test_admin_sees_sessions_that_outlive_a_restart_and_ends_them(machine, users, launcher, gateway):
    """An admin's view under the units: the launcher's status line, `helios-gateway sessions` over the
    admin socket as root, a login that survives `systemctl restart`, and `helios-gateway logout`."""
    machine.systemctl("start", "helios-gateway.socket")
    r = gateway_client(machine, "login", "alice", users["alice"])
    assert r["status"] == 200, r
    cookie = r["cookie"]
    assert gateway_client(machine, "rpc", cookie, "worker:info")["response"]["result"]["home"] == "/home/alice"
    status = machine.show("helios-launcher.service", "StatusText")["StatusText"]
    assert "logins checked" in status, status

    out = machine.exec("/usr/local/bin/helios-gateway", "sessions").stdout
    assert any(l.split()[0] == "alice" for l in out.splitlines()[1:]), out
    st = machine.exec("stat", "-c", "%a %U", "/var/lib/helios/sessions").stdout.split()
    assert st == ["600", "helios-gateway"], st

    machine.systemctl("restart", "helios-gateway.service")
    # The restarted gateway asks the launcher about the account first (503 meanwhile, which the web app
    # retries); then the same cookie opens the page.
    assert gateway_client(machine, "get", "/api/session", cookie)["status"] == 200
    deadline = time.monotonic() + 15
    while True:
        r = machine.exec("/usr/bin/python3", f"{HELPER_DIR}/gateway_client.py", BASE, "rpc", cookie,
                         "worker:info", check=False)
        if r.returncode == 0 or "HTTP 503" not in r.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["response"]["result"]["home"] == "/home/alice"

    out = machine.exec("/usr/local/bin/helios-gateway", "logout", "alice").stdout
    assert out.strip() == "Ended 1 session.", out
    machine.systemctl("restart", "helios-gateway.service")
    assert gateway_client(machine, "get", "/api/session", cookie)["status"] == 401


# ---- PAM login sessions of web logins ----

def helios_sessions(machine):
    """logind's sessions of service helios that are open (not still opening, not on their way out):
    [{property: value}]."""
    out = []
    for line in machine.exec("loginctl", "list-sessions", "--no-legend").stdout.splitlines():
        sid = line.split()[0]
        r = machine.exec("loginctl", "show-session", sid, check=False)
        props = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        if props.get("Service") == "helios" and props.get("State") in ("online", "active"):
            out.append(props)
    return out


def wait_until(pred, timeout=20, what=""):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Page:
    """A browser page kept open inside the container (a transient service), closed by stopping it."""

    count = 0

    def __init__(self, machine, cookie):
        Page.count += 1
        self.machine = machine
        self.unit = f"helios-test-page-{Page.count}.service"
        machine.exec("systemd-run", "--quiet", "--unit", self.unit, "/usr/bin/python3",
                     f"{HELPER_DIR}/gateway_client.py", BASE, "hold", cookie)

    def close(self):
        self.machine.systemctl("stop", self.unit, check=False)
        self.machine.systemctl("reset-failed", self.unit, check=False)


def web_login(machine, users, user):
    r = gateway_client(machine, "login", user, users[user])
    assert r["status"] == 200, r
    return r["cookie"]


def test_web_logins_are_login_sessions(machine, users, launcher, gateway):
    """loginctl, who and last show a web login with a page open as a remote session of service helios;
    it ends when its last page has been closed for login_session_grace, at logout and at
    `helios-gateway logout`; two logins are two sessions; the workspace stays outside them."""
    machine.exec("install", "-d", "-m", "0755", "/etc/helios")
    machine.write("/etc/helios/helios.conf", "login_session_grace = 1s\n")
    machine.systemctl("start", "helios-gateway.socket")
    pages = []
    try:
        c1 = web_login(machine, users, "alice")
        assert helios_sessions(machine) == []  # a login without a page has none
        pages.append(Page(machine, c1))
        [s] = wait_until(lambda: helios_sessions(machine), what="alice's session")
        assert s["Name"] == "alice" and s["Remote"] == "yes" and s["RemoteHost"] == "127.0.0.1", s
        assert s["TTY"].startswith("web/"), s
        # The session's leader is helios-session, moved into the session's scope; the workspace is not.
        leader = s["Leader"]
        assert machine.exec("cat", f"/proc/{leader}/comm").stdout.strip() == "helios-session"
        assert f"session-{s['Id']}.scope" in machine.exec("cat", f"/proc/{leader}/cgroup").stdout
        worker_cgroup = machine.show("helios-worker@alice.service", "ControlGroup")["ControlGroup"]
        assert worker_cgroup.endswith("/helios-worker@alice.service"), worker_cgroup
        who = machine.exec("who").stdout
        assert re.search(rf"^alice\s+{re.escape(s['TTY'])}\s.*\(127\.0\.0\.1\)$", who, re.M), who
        last = machine.exec("last", "-w").stdout
        assert re.search(rf"^alice\s+{re.escape(s['TTY'])}\s+127\.0\.0\.1\s.*still logged in", last, re.M), last

        # A second login of alice: a second session.
        c2 = web_login(machine, users, "alice")
        pages.append(Page(machine, c2))
        wait_until(lambda: len(helios_sessions(machine)) == 2, what="two sessions")

        # The first login's page closes: its session ends after the grace.
        pages[0].close()
        [left] = wait_until(lambda: (lambda l: l if len(l) == 1 else None)(helios_sessions(machine)),
                            what="the first session to end")
        assert left["Id"] != s["Id"]
        assert s["TTY"] not in machine.exec("who").stdout
        time.sleep(1.1)  # last reads a logout of this very second as "still running"
        last = machine.exec("last", "-w").stdout
        ended = [l for l in last.splitlines() if l.startswith("alice") and l.split()[1] == s["TTY"]]
        # The newest record of that line (earlier tests logged in on it too) has its logout.
        assert ended and re.search(r" - \d\d:\d\d\s+\(00:0\d\)$", ended[0]), last

        # Logout ends the other one at once.
        assert gateway_client(machine, "logout", c2)["status"] == 200
        wait_until(lambda: helios_sessions(machine) == [], timeout=5, what="the logged-out session to end")

        # helios-gateway logout USER ends that user's sessions.
        pages.append(Page(machine, web_login(machine, users, "bob")))
        pages.append(Page(machine, web_login(machine, users, "alice")))
        wait_until(lambda: len(helios_sessions(machine)) == 2, what="bob's and alice's sessions")
        out = machine.exec("/usr/local/bin/helios-gateway", "logout", "bob").stdout
        # Every login of bob's ends (earlier tests may have left some without pages).
        assert re.fullmatch(r"Ended \d+ sessions?\.", out.strip()), out
        wait_until(lambda: [x["Name"] for x in helios_sessions(machine)] == ["alice"], timeout=5,
                   what="bob's session to end")
        status = machine.show("helios-launcher.service", "StatusText")["StatusText"]
        assert "1 sessions" in status, status
    finally:
        for p in pages:
            p.close()
    wait_until(lambda: helios_sessions(machine) == [], what="every session to end")
