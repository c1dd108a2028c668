"""The Debian package under a real systemd: install, a student at work, upgrade, remove, purge.

tools/package builds the package twice from this tree, once with meson.build's version and once with a
higher one (lintian checks the first: an error fails the build). A container that boots without Helios
installs the first with apt; a student logs in over PAM through the gateway and keeps a page open while
apt upgrades to the second; nginx is put in front of it as docs/admin.md says, and taken away again;
then apt removes and purges it. After the purge, what is left of Helios is exactly what the admin chose
to keep, and the students' own files:

- no file or directory with "helios" in its name anywhere the container wrote (the overlay's upper
  layer: /etc, /usr, /lib, /var, homes), nor in /run, /tmp, /var/tmp or /dev/shm, except the admin's
  own /etc/helios/tls/privkey.pem (and the directories holding it) and /etc/sysusers.d/helios.conf
  (the account's number, chosen by the test), the student's
  ~/.local/state/helios (her journal of unsaved edits) and the tests' helpers;
- no unit, enablement link or deb-systemd-helper state, no process, no listening socket;
- the helios-gateway account and group stay, locked, owning no file (README, *Installing*,
  "Removing").

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

    def __init__(self, box, user, password, base=BASE, env=None):
        cmd = ["nsenter", "--target", str(box.leader), "--all", "--",
               "/usr/bin/python3", f"{HELPER_DIR}/page.py", base, user]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=dict(machine_mod.CLEAN_ENV, **(env or {})))
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
    # The container's processes are the host's too, with their real uids: the account systemd-sysusers
    # would number from the system range may be the number of a host account that something on the
    # host signals or removes with all its processes. So the admin's way of choosing the number, a
    # sysusers.d file of the same name in /etc, gives it one no host account has.
    box.exec("mkdir", "-p", "/etc/sysusers.d")
    box.write("/etc/sysusers.d/helios.conf",
              f'u helios-gateway {box._free_uid()} "Helios gateway" /nonexistent /usr/sbin/nologin\n')
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
                 "/usr/lib/tmpfiles.d/helios.conf", "/usr/share/helios/web/index.html",
                 "/usr/share/doc/helios/admin.md.gz"):
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
    assert page.do("login")["login"] == 200
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
    # Sessions are kept in the state directory (README, "Logging in"): the page reopens with the
    # cookie it had. Until the launcher has confirmed the account again the answer is 503 with
    # Retry-After, which the web app retries.
    reopened = page.do("open")
    for _ in range(20):
        if reopened != {"open": 503}:
            break
        time.sleep(0.5)
        reopened = page.do("open")
    assert reopened == {"open": "ok"}, f"{reopened}: the session did not outlive the gateway's restart"
    pid = box.show("helios-gateway.service", "MainPID")["MainPID"]
    assert pid not in ("0", gateway_pid)
    assert box.exec("readlink", f"/proc/{pid}/exe").stdout.strip() == "/usr/bin/helios-gateway"
    FIGURES["session across the upgrade"] = "kept"

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


# ---- the admin guide's nginx example ----

def admin_guide_nginx_blocks():
    """The code blocks of docs/admin.md's *nginx in front*, as an admin copies them: the socket's
    drop-in, the settings and nginx's site."""
    with open(os.path.join(SOURCE_DIR, "docs", "admin.md")) as f:
        text = f.read()
    section = text[text.index("## nginx in front"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"^( *)```(\w+)\n(.*?)^\1```", section, re.M | re.S)
    out = [(lang, "".join(line[len(indent):] + "\n" for line in body.splitlines())) for indent, lang, body in blocks]
    assert [lang for lang, _ in out] == ["ini", "ini", "nginx"], out
    return [body for _, body in out]


def test_nginx_in_front_as_the_admin_guide_says(box):
    """docs/admin.md's configuration, word for word but for the certificate (a self-signed one for
    ide.example.org): nginx (installed in the container only, from tools/test-debs) in front of the
    packaged gateway over its Unix socket, trusted_proxies = unix."""
    debs = os.path.join(BUILD_DIR, "test-debs")
    found = sorted(f for f in os.listdir(debs) if f.endswith(".deb")) if os.path.isdir(debs) else []
    assert sorted(f.split("_")[0] for f in found) == ["nginx", "nginx-common"], \
        f"nginx's packages are not in {debs}: run tools/setup (tools/test-debs)"
    socket_dropin, settings, site = admin_guide_nginx_blocks()
    conf_before = box.exec("cat", "/etc/helios/helios.conf").stdout
    os.makedirs(box.path("/root/nginx-debs"))
    for f in found:
        subprocess.run(["cp", os.path.join(debs, f), box.path(f"/root/nginx-debs/{f}")], check=True)
    try:
        box.sh("dpkg -i /root/nginx-debs/*.deb", env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=120)
        box.exec("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                 "/CN=ide.example.org", "-addext", "subjectAltName=DNS:ide.example.org",
                 "-keyout", "/etc/ssl/private/ide-test.key", "-out", "/etc/ssl/certs/ide-test.pem")
        site = site.replace("/etc/letsencrypt/live/ide.example.org/fullchain.pem", "/etc/ssl/certs/ide-test.pem")
        site = site.replace("/etc/letsencrypt/live/ide.example.org/privkey.pem", "/etc/ssl/private/ide-test.key")
        box.write("/etc/nginx/sites-available/helios", site)
        box.exec("ln", "-s", "../sites-available/helios", "/etc/nginx/sites-enabled/helios")
        box.exec("nginx", "-t")
        box.systemctl("reload-or-restart", "nginx.service")
        box.sh("echo '127.0.0.1 ide.example.org' >> /etc/hosts")
        box.sh("cat >> /etc/helios/helios.conf", input=settings)
        box.exec("mkdir", "-p", "/etc/systemd/system/helios-gateway.socket.d")
        box.write("/etc/systemd/system/helios-gateway.socket.d/override.conf", socket_dropin)
        box.systemctl("daemon-reload")
        box.systemctl("restart", "helios-gateway.socket")
        st = box.exec("stat", "-c", "%a %U %G %F", "/run/helios/gateway.sock").stdout.split(" ", 3)
        assert st == ["660", "root", "www-data", "socket\n"], st

        since = box.exec("date", "+@%s").stdout.strip()
        page = Page(box, STUDENT, STATE["password"], base="https://ide.example.org",
                    env={"SSL_CERT_FILE": "/etc/ssl/certs/ide-test.pem"})
        try:
            login = page.do("login")
            assert login["login"] == 200
            # HTTPS as nginx said: the cookie is Secure, with the __Host- prefix.
            assert login["set_cookie"].startswith("__Host-") and "; Secure" in login["set_cookie"], login
            assert page.do("open") == {"open": "ok"}
            assert page.call("worker:info")["uid"] == int(box.exec("id", "-u", STUDENT).stdout)
        finally:
            page.kill()
        # A client's own X-Forwarded-For is replaced by nginx; the gateway believes nginx's.
        r = box.exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "/etc/ssl/certs/ide-test.pem",
                     "-d", "", "-u", f"{STUDENT}:wrong", "-H", "X-Forwarded-For: 10.9.9.9",
                     "https://ide.example.org/login")
        assert r.stdout == "401"
        log = box.exec("journalctl", "-u", "helios-gateway.service", "--since", since, "-o", "cat").stdout
        assert f"for {STUDENT} from 127.0.0.1" in log and "Failed login" in log, log
        assert "from unix" not in log and "10.9.9.9" not in log, log
        # The gateway's socket is nginx's alone: the student cannot reach it and claim an address.
        r = box.exec("/usr/bin/python3", "-c", "import socket; socket.socket(socket.AF_UNIX).connect('/run/helios/gateway.sock')",
                     user=STUDENT, check=False)
        assert "PermissionError" in r.stderr, r.stderr
    finally:
        # The admin takes it all back: nginx, the socket's drop-in, the settings.
        box.exec("dpkg", "--purge", "nginx", "nginx-common", check=False, timeout=120)
        box.exec("rm", "-rf", "/root/nginx-debs", "/etc/nginx", "/etc/ssl/private/ide-test.key",
                 "/etc/ssl/certs/ide-test.pem", "/etc/systemd/system/helios-gateway.socket.d", check=False)
        box.sh("sed -i '/ide.example.org/d' /etc/hosts", check=False)
        box.write("/etc/helios/helios.conf", conf_before)
        box.systemctl("daemon-reload")
        box.systemctl("restart", "helios-gateway.socket")
    assert box.exec("curl", "-s", "http://127.0.0.1:8080/healthz").stdout.strip() == "ok"


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

    kept = {"/etc/helios", "/etc/helios/tls", "/etc/helios/tls/privkey.pem", "/etc/sysusers.d/helios.conf"}
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
