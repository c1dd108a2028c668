"""The Debian package under a real systemd: install, a student at work, upgrade, remove, purge.

tools/package builds the package twice from this tree, once with meson.build's version and once with a
higher one (lintian checks the first: an error fails the build). A container that boots without Helios
installs the first with apt; a student logs in over PAM through the gateway and keeps a page open while
apt upgrades to the second; then apt removes and purges it. After the purge, what is left of Helios is
exactly what the admin chose to keep, and the students' own files:

- no file or directory with "helios" in its name anywhere the container wrote (the overlay's upper
  layer: /etc, /usr, /lib, /var, homes), nor in /run, /tmp, /var/tmp or /dev/shm, except the admin's
  own /etc/helios/tls/privkey.pem (and the directories holding it), the student's
  ~/.local/state/helios (her journal of unsaved edits) and the tests' helpers;
- no unit, enablement link or deb-systemd-helper state, no process, no listening socket;
- the helios-gateway account and group stay, locked, owning no file (README, "Removing Helios").

These tests depend on each other, in file order.
"""

import json
import os
import re
import subprocess
import time

import pytest

import machine as machine_mod
from machine import FIGURES, HELPER_DIR

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("HELIOS_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
BASE = "http://127.0.0.1:8080"
STUDENT = "student"

# The gateway keeps sessions in memory (README, "Logging in"): a restart, which an upgrade is, ends
# them, and the open page must log in again. When sessions outlive a gateway restart, set this to
# True: the page then reopens with the cookie it had.
SESSIONS_SURVIVE_GATEWAY_RESTART = False


def project_version():
    r = subprocess.run(["meson", "introspect", "meson.build", "--projectinfo"], cwd=SOURCE_DIR,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["version"]


V1 = project_version()
V2 = V1 + ".1"
STATE = {}


@pytest.fixture(scope="module")
def packages():
    """Both versions, built at once (each build is mostly waiting on the other's compiler). With
    HELIOS_PACKAGES=DIR, the packages already in DIR instead (built by tools/package --version with
    these two versions, as here)."""
    out = os.environ.get("HELIOS_PACKAGES")
    if out:
        return find_debs(out)
    out = os.path.join(BUILD_DIR, "package-test")
    subprocess.run(["rm", "-rf", out], check=True)
    log_dir = os.path.join(BUILD_DIR, "meson-logs", "systemd")
    os.makedirs(log_dir, exist_ok=True)
    t = time.monotonic()
    builds = []
    for version, extra in ((V1, []), (V2, ["--no-lintian"])):
        log = open(os.path.join(log_dir, f"package-{version}.log"), "w")
        builds.append((version, log, subprocess.Popen(
            [os.path.join(SOURCE_DIR, "tools", "package"), "--version", version, "--output", out, *extra],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HELIOS_PACKAGE_JOBS="2"))))
    for version, log, p in builds:
        p.wait()
        log.close()
        with open(log.name) as f:
            text = f.read()
        assert p.returncode == 0, f"tools/package --version {version} failed:\n{text[-4000:]}"
        if version == V1:
            # lintian's verdict, for whoever reads the log: errors failed the build above.
            STATE["lintian"] = [line for line in text.splitlines() if re.match(r"^[EWIPX]: helios", line)]
    FIGURES["two package builds at once"] = f"{time.monotonic() - t:.1f} s"
    return find_debs(out)


def find_debs(out):
    debs = {v: os.path.join(out, f) for v in (V1, V2) for f in os.listdir(out)
            if f.startswith(f"helios_{v}_") and f.endswith(".deb")}
    assert set(debs) == {V1, V2}, os.listdir(out)
    return debs


@pytest.fixture(scope="module")
def box(packages):
    """A container with no Helios in it, its own (the suite's other container has Helios installed
    by meson install)."""
    reason = machine_mod.cannot_run_reason()
    if reason:
        pytest.skip(f"no container: {reason}")
    m = machine_mod.Machine(BUILD_DIR, os.path.join(BUILD_DIR, "meson-logs", "systemd-package"),
                            what="pkg", meson_install=False)
    try:
        m.start()
    except machine_mod.CannotRun as e:
        pytest.skip(f"no container: {e}")
    try:
        # Logins are allowed (pam_nologin) once this has run, as multi-user.target does.
        m.systemctl("start", "systemd-user-sessions.service")
        # A policy-rc.d, as image builders leave one on a host to keep packages from starting
        # services, is not what a Debian machine has: the container's root, an overlay, drops it.
        m.exec("rm", "-f", "/usr/sbin/policy-rc.d")
        os.makedirs(m.log_dir, exist_ok=True)
        open(os.path.join(m.log_dir, "apt.txt"), "w").close()
        os.makedirs(m.path("/root/debs"))
        for v, deb in packages.items():
            subprocess.run(["cp", deb, m.path(f"/root/debs/{os.path.basename(deb)}")], check=True)
        yield m
    finally:
        page = STATE.pop("page", None)
        if page:
            page.kill()
        with open(os.path.join(m.log_dir, "journal.txt"), "w") as f:
            f.write(m.exec("journalctl", "--no-pager", "-o", "short-monotonic", check=False).stdout)
        m.stop()


def apt(box, *args):
    t = time.monotonic()
    r = box.exec("apt-get", "-y", "-q", "--no-install-recommends", *args,
                 env={"DEBIAN_FRONTEND": "noninteractive"}, check=False, timeout=300)
    assert r.returncode == 0, f"apt-get {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    FIGURES[f"apt-get {args[0]}"] = f"{time.monotonic() - t:.1f} s"
    # Whatever the maintainer scripts said goes to the log.
    with open(os.path.join(box.log_dir, "apt.txt"), "a") as f:
        f.write(f"$ apt-get {' '.join(args)}\n{r.stdout}{r.stderr}\n")
    return r


def deb_in_box(version):
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    return f"/root/debs/helios_{version}_{arch}.deb"


def status(box):
    r = box.exec("dpkg-query", "-W", "-f=${Status} ${Version}", "helios", check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def active(box, unit):
    return box.exec("systemctl", "is-active", unit, check=False).stdout.strip()


def upper_layer(box):
    """Every path the container created or changed (the overlay's upper layer), as the container
    sees it."""
    top = os.path.join(box.base, "upper")
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            found.append(os.path.join(dirpath, n)[len(top):])
    return found


class Page:
    """page.py inside the container, as the student's browser tab."""

    def __init__(self, box, user, password):
        cmd = ["nsenter", "--target", str(box.leader), "--all", "--",
               "/usr/bin/python3", f"{HELPER_DIR}/page.py", BASE, user]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=machine_mod.CLEAN_ENV)
        self.p.stdin.write(password + "\n")
        self.p.stdin.flush()

    def do(self, command, timeout=60):
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, f"page.py ended at '{command}'"
        return json.loads(line)

    def call(self, method, params=None):
        out = self.do(f"call {method}" + (f" {json.dumps(params)}" if params is not None else ""))
        assert "response" in out and "result" in out["response"], (method, out)
        return out["response"]["result"]

    def kill(self):
        """Close the tab: page.py ends at the end of its input (killing nsenter would leave it)."""
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


# ---- install ----

def test_container_starts_without_helios(box):
    assert status(box) in (None, "unknown ok not-installed "), status(box)
    for path in ("/etc/helios", "/etc/pam.d/helios", "/usr/bin/helios-gateway", "/usr/libexec/helios",
                 "/usr/local/bin/helios-gateway", "/usr/local/libexec/helios", "/lib/systemd/system/helios.slice",
                 "/usr/share/helios", "/usr/local/share/helios", "/run/helios"):
        assert box.exec("test", "-e", path, check=False).returncode != 0, f"{path} is there before install"
    assert box.exec("getent", "passwd", "helios-gateway", check=False).returncode == 2
    assert box.systemctl("list-unit-files", "helios*", "--no-legend", check=False).stdout.strip() == ""
    STATE["before"] = set(upper_layer(box))


def test_install(box, packages):
    apt(box, "install", deb_in_box(V1))
    assert status(box) == f"install ok installed {V1}"
    assert box.exec("helios-gateway", "--version").stdout.strip().endswith(V1)

    # Everything `meson install` installs is in the package: each program, unit and page by name.
    with open(os.path.join(BUILD_DIR, "meson-info", "intro-installed.json")) as f:
        installed = {os.path.basename(p) for p in json.load(f).values()}
    listed = {os.path.basename(p) for p in box.exec("dpkg", "-L", "helios").stdout.split()}
    listed |= {n[:-3] for n in listed if n.endswith(".gz")}  # man pages are compressed
    assert installed - listed == set(), "meson installs these, the package lacks them"
    for path in ("/etc/pam.d/helios", "/etc/helios/helios.conf", "/usr/lib/sysusers.d/helios.conf",
                 "/usr/lib/tmpfiles.d/helios.conf", "/usr/share/helios/web/index.html"):
        assert box.exec("test", "-f", path, check=False).returncode == 0, path
    conffiles = box.exec("dpkg-query", "-W", "-f=${Conffiles}", "helios").stdout
    assert {"/etc/helios/helios.conf", "/etc/pam.d/helios"} <= set(re.findall(r"(/\S+)", conffiles))
    assert box.exec("man", "-w", "helios.conf").stdout.strip().endswith("helios.conf.5.gz")

    # postinst: the account, /run/helios, the sockets enabled and listening, the services not yet.
    pw = box.exec("getent", "passwd", "helios-gateway").stdout.strip().split(":")
    assert pw[6] == "/usr/sbin/nologin", pw
    assert box.exec("stat", "-c", "%a %U %G", "/run/helios/workers").stdout.split() == \
        ["750", "root", "helios-gateway"]
    for unit in ("helios-gateway.socket", "helios-launcher.socket"):
        assert box.exec("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
        assert active(box, unit) == "active", unit
    assert active(box, "helios-gateway.service") == "inactive"
    assert box.exec("test", "-L", "/etc/systemd/system/sockets.target.wants/helios-gateway.socket",
                    check=False).returncode == 0


# ---- a student at work, across the upgrade ----

def test_student_logs_in_over_pam_and_works(box):
    password = machine_mod.random_password()
    box.add_user(STUDENT, password)
    STATE["password"] = password
    # The admin's edit of the conffile, and a file of their own in /etc/helios.
    box.sh("printf '# kept by the admin\\nsession_idle_timeout = 13h\\n' >> /etc/helios/helios.conf")
    box.exec("install", "-d", "-m", "0750", "-g", "helios-gateway", "/etc/helios/tls")
    box.exec("install", "-m", "0640", "-g", "helios-gateway", "/dev/null", "/etc/helios/tls/privkey.pem")

    page = STATE["page"] = Page(box, STUDENT, password)
    assert page.do("login") == {"login": 200}
    assert page.do("open") == {"open": "ok"}
    info = page.call("worker:info")
    assert info["uid"] == int(box.exec("id", "-u", STUDENT).stdout)
    assert info["version"] == V1
    page.call("project:load", {"root": "."})
    term = page.call("terminal:create", {"cols": 80, "rows": 24})
    STATE.update(worker_pid=info["pid"], terminal=term["terminalId"])
    assert active(box, f"helios-worker@{STUDENT}.service") == "active"


def test_upgrade_with_the_page_open(box):
    page = STATE["page"]
    gateway_pid = box.show("helios-gateway.service", "MainPID")["MainPID"]
    apt(box, "install", deb_in_box(V2))
    assert status(box) == f"install ok installed {V2}"
    assert box.exec("helios-gateway", "--version").stdout.strip().endswith(V2)
    # The admin's edits survive, without a prompt or a .dpkg-dist beside them.
    conf = box.exec("cat", "/etc/helios/helios.conf").stdout
    assert conf.endswith("# kept by the admin\nsession_idle_timeout = 13h\n")
    assert box.sh("ls /etc/helios /etc/pam.d | grep -c dpkg", check=False).stdout.strip() == "0"
    assert box.exec("test", "-f", "/etc/helios/tls/privkey.pem", check=False).returncode == 0

    # The sockets were restarted, and with them the gateway: the page was closed as a server going
    # away (1001), and the next gateway is the new binary.
    closed = page.do("closed 30")
    assert closed["closed"] == 1001, closed
    for unit in ("helios-gateway.socket", "helios-launcher.socket"):
        assert active(box, unit) == "active", unit
    reopened = page.do("open")
    if SESSIONS_SURVIVE_GATEWAY_RESTART:
        assert reopened == {"open": "ok"}, reopened
    else:
        assert reopened == {"open": 401}, \
            f"{reopened}: the session outlived the gateway's restart; set SESSIONS_SURVIVE_GATEWAY_RESTART"
        assert page.do("login") == {"login": 200}
        assert page.do("open") == {"open": "ok"}
    pid = box.show("helios-gateway.service", "MainPID")["MainPID"]
    assert pid not in ("0", gateway_pid)
    assert box.exec("readlink", f"/proc/{pid}/exe").stdout.strip() == "/usr/bin/helios-gateway"
    FIGURES["session across the upgrade"] = \
        "kept" if SESSIONS_SURVIVE_GATEWAY_RESTART else "ended: the page logs in again"

    # The student's worker kept running through it (her terminal too), with the binary it started
    # with; it moves to the new one when it next starts.
    info = page.call("worker:info")
    assert (info["pid"], info["version"]) == (STATE["worker_pid"], V1)
    exe = box.exec("readlink", f"/proc/{info['pid']}/exe").stdout.strip()
    assert exe == "/usr/libexec/helios/helios-worker (deleted)", exe
    terminals = page.call("terminal:list")["terminals"]
    assert [t["terminalId"] for t in terminals if t["alive"]] == [STATE["terminal"]]

    box.systemctl("stop", f"helios-worker@{STUDENT}.service")
    closed = page.do("closed 30")
    assert closed["closed"] == 1011, closed
    assert page.do("open") == {"open": "ok"}
    info = page.call("worker:info")
    assert info["version"] == V2 and info["pid"] != STATE["worker_pid"]
    assert box.exec("readlink", f"/proc/{info['pid']}/exe").stdout.strip() == "/usr/libexec/helios/helios-worker"


# ---- remove, purge ----

def test_remove_stops_everything_and_keeps_the_conffiles(box):
    page = STATE["page"]
    apt(box, "remove", "helios")
    assert status(box) == f"deinstall ok config-files {V2}"
    # The page was closed when the gateway stopped.
    assert page.do("closed 10")["closed"] in (1001, 1006)
    page.kill()
    del STATE["page"]

    for unit in ("helios-gateway.socket", "helios-gateway.service", "helios-launcher.socket",
                 "helios-launcher.service", f"helios-worker@{STUDENT}.socket",
                 f"helios-worker@{STUDENT}.service"):
        assert active(box, unit) in ("inactive", "unknown"), unit
    assert box.exec("pgrep", "-l", "^helios", check=False).stdout.strip() == ""
    r = box.exec("/usr/bin/python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8080), 5)",
                 check=False)
    assert "ConnectionRefusedError" in r.stderr, r.stderr
    for path in ("/usr/bin/helios-gateway", "/usr/libexec/helios", "/lib/systemd/system/helios-gateway.socket",
                 "/run/helios", f"/run/systemd/system/helios-worker@{STUDENT}.service.d"):
        assert box.exec("test", "-e", path, check=False).returncode != 0, f"{path} is left after remove"
    # Conffiles stay until the purge, with the admin's edits.
    assert box.exec("cat", "/etc/helios/helios.conf").stdout.endswith("session_idle_timeout = 13h\n")
    assert box.exec("test", "-f", "/etc/pam.d/helios", check=False).returncode == 0


def test_purge_leaves_only_what_the_admin_keeps(box):
    apt(box, "purge", "helios")
    assert status(box) in (None, "unknown ok not-installed ")
    box.exec("rm", "-rf", "/root/debs")

    kept = {"/etc/helios", "/etc/helios/tls", "/etc/helios/tls/privkey.pem"}
    students = f"/home/{STUDENT}/.local/state/helios"
    left = []
    for path in set(upper_layer(box)) - STATE["before"]:
        if "helios" not in path.lower() or path in kept:
            continue
        if path.startswith(HELPER_DIR) or path == students or path.startswith(students + "/"):
            continue
        left.append(path)
    assert sorted(left) == [], "left after purge"
    FIGURES["kept after purge"] = " ".join(sorted(p for p in set(upper_layer(box)) - STATE["before"]
                                                  if "helios" in p and not p.startswith(HELPER_DIR)))
    r = box.sh("find /run /tmp /var/tmp /dev/shm -xdev -iname '*helios*' 2>/dev/null", check=False)
    assert r.stdout.split() == [], "left after purge"
    assert box.systemctl("list-unit-files", "helios*", "--no-legend", check=False).stdout.strip() == ""
    assert box.systemctl("list-units", "--all", "helios*", "--no-legend", check=False).stdout.strip() == ""
    assert box.exec("ls", "/etc/helios/tls").stdout.split() == ["privkey.pem"]
    # The student's own state (her journal) is hers.
    assert box.exec("test", "-d", students, check=False).returncode == 0

    # The account stays, locked, and owns nothing the container wrote.
    pw = box.exec("getent", "passwd", "helios-gateway").stdout.strip().split(":")
    assert pw[6] == "/usr/sbin/nologin"
    shadow = box.exec("getent", "shadow", "helios-gateway").stdout.strip().split(":")
    assert shadow[1] in ("!", "!*", "*"), shadow
    uid = int(pw[2])
    owned = [p for p in upper_layer(box)
             if os.lstat(os.path.join(box.base, "upper", p.lstrip("/"))).st_uid == uid]
    assert owned == []
    FIGURES["lintian (helios " + V1 + ")"] = "; ".join(STATE.get("lintian") or ["no tags"])
