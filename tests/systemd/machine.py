"""A real systemd, booted in systemd-nspawn, with Helios installed in it.

The container's root file system is an overlay whose lower layer is the host's own root: it already
holds systemd and every library Helios was built against, so nothing is downloaded and the container
is ready as fast as its systemd boots. Everything the tests change (Helios itself, accounts, /etc)
lands in an upper layer on a tmpfs that is thrown away afterwards. A debootstrap root would need the
Debian mirror, about a minute and 600 MB more, and would boot no faster.

Without a service manager on the host, nspawn puts the container in cgroups below its own; we give it
its own cgroup directories first, so that concurrent containers never share one and cleaning up
removes only what this run made.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid


def instance(user):
    """The unit instance of a user's workspace: the name escaped as systemd-escape does it. Valid user
    names hold only [a-z0-9_-], of which only '-' is escaped."""
    return user.replace("-", "\\x2d")

HERE = os.path.dirname(os.path.abspath(__file__))
# Where the in-container helpers are installed inside the container.
HELPER_DIR = "/usr/local/lib/helios-test"
CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "TERM": "dumb",
}


# Figures measured by the tests (boot time, cold starts), printed at the end of the run.
FIGURES = {}


class CannotRun(Exception):
    """This host cannot run the container at all (not a failure of Helios)."""


def cannot_run_reason():
    """Why containers cannot run here, or None. Only what no test could work around."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, mounts and cgroups)"
    for tool in ("systemd-nspawn", "nsenter", "setpriv"):
        if not shutil.which(tool):
            return f"{tool} is not installed (tools/setup installs systemd-container and util-linux)"
    if not os.path.exists("/usr/lib/systemd/systemd") and not os.path.exists("/lib/systemd/systemd"):
        return "systemd is not installed: nothing to boot"
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            subprocess.run(["modprobe", "overlay"], capture_output=True)
            with open("/proc/filesystems") as f2:
                if "overlay" not in f2.read():
                    return "the kernel has no overlay file system"
    return None


def _mount(*args):
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise CannotRun(f"mount {' '.join(args)}: {r.stderr.strip()}")


def _umount(path):
    subprocess.run(["umount", path], capture_output=True)
    if os.path.ismount(path):
        subprocess.run(["umount", "--lazy", path], capture_output=True)


def _cgroup_parents():
    """The hierarchies nspawn puts its payload in, when no service manager runs on the host."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split(" - ")[0].split()[4]: line.split(" - ")[1].split()[0] for line in f}
    if mounts.get("/sys/fs/cgroup") == "cgroup2":
        return ["/sys/fs/cgroup"]
    return [p for p in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified") if p in mounts]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def clean_stale(build_dir):
    """What a run that was killed before its cleanup left: its container's cgroups, mounts and
    directory, all named helios-test-PID after a PID that is gone. Nothing else is touched."""
    def stale(name):
        pid = name[12:].split("-")[0]  # helios-test-PID or helios-test-PID-WHAT
        return name.startswith("helios-test-") and pid.isdigit() and not _pid_alive(int(pid))

    for parent in _cgroup_parents():
        for name in os.listdir(parent):
            if stale(name) and os.path.isdir(os.path.join(parent, name)):
                m = Machine.__new__(Machine)
                m.cgroups = [os.path.join(parent, name)]
                m._remove_cgroups()
    # nspawn removes its directory for files passed into the container when it exits, unless killed.
    propagate = "/run/systemd/nspawn/propagate"
    if os.path.isdir(propagate):
        for name in os.listdir(propagate):
            if stale(name) and not os.path.ismount(os.path.join(propagate, name)):
                shutil.rmtree(os.path.join(propagate, name), ignore_errors=True)
    top = os.path.join(os.path.abspath(build_dir), "systemd-test")
    if os.path.isdir(top):
        for name in os.listdir(top):
            if stale(name):
                base = os.path.join(top, name)
                for mnt in (os.path.join(base, "root"), base):
                    if os.path.ismount(mnt):
                        _umount(mnt)
                if not os.path.ismount(base):
                    shutil.rmtree(base, ignore_errors=True)


class Machine:
    """One booted container. exec() runs a command inside, as root unless told otherwise."""

    def __init__(self, build_dir, log_dir, what=None, meson_install=True):
        """what: a word naming a second container of the same run; meson_install: False boots one
        without Helios (the package tests install it with apt)."""
        self.build_dir = os.path.abspath(build_dir)
        self.log_dir = log_dir
        self.name = f"helios-test-{os.getpid()}" + (f"-{what}" if what else "")
        self.meson_install = meson_install
        self.base = os.path.join(self.build_dir, "systemd-test", self.name)
        self.root = os.path.join(self.base, "root")
        self.nspawn = None
        self.leader = None
        self.cgroups = []
        self.timings = {}

    # ---- setting up ----

    def start(self):
        try:
            self._mount_root()
            self._install()
            self._boot()
        except BaseException:
            self.stop()
            raise
        return self

    def _mount_root(self):
        os.makedirs(self.base, exist_ok=True)
        # tmpfs for the upper layer: fast, gone at unmount, and a different file system from the lower
        # layer, which overlayfs needs when the lower layer is the root that holds this directory.
        _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", self.base)
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.base, d))
        _mount("-t", "overlay", "overlay", "-o",
               f"lowerdir=/,upperdir={self.base}/upper,workdir={self.base}/work", self.root)

    def _install(self):
        t = time.monotonic()
        meson = shutil.which("meson")
        if not meson:
            raise CannotRun("meson is not on PATH")
        if self.meson_install:
            r = subprocess.run([meson, "install", "-C", self.build_dir, "--no-rebuild", "--quiet",
                                "--destdir", self.root], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"meson install failed:\n{r.stdout}\n{r.stderr}")
            self.timings["install"] = time.monotonic() - t

        helpers = self.path(HELPER_DIR)
        os.makedirs(helpers, exist_ok=True)
        for f in ("worker_client.py", "gateway_client.py", "editor.py", "page.py"):
            shutil.copy(os.path.join(HERE, f), helpers)
        # Built helpers (test programs, not part of Helios), when the build has them.
        for var in ("HELIOS_PAM_CHECK",):
            if os.path.exists(os.environ.get(var, "")):
                shutil.copy(os.environ[var], helpers)

        # A sanitizer build's services: LeakSanitizer stops the world with ptrace(), which the units'
        # system call filters rightly refuse (the end-to-end suites check leaks outside systemd);
        # every other finding ends the process, so that a test sees it.
        self.service_environment = []
        if self.meson_install and self._build_option("b_sanitize") not in (None, "none"):
            self.service_environment = [
                'Environment="ASAN_OPTIONS=detect_leaks=0:abort_on_error=1"',
                'Environment="UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"']
            for unit in ("helios-worker@.service", "helios-gateway.service", "helios-launcher.service"):
                # Beside the vendor units, not in /etc: the admin tests' `systemctl revert` must not
                # take it away.
                d = self.path(f"/usr/lib/systemd/system/{unit}.d")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "50-sanitizers.conf"), "w") as f:
                    f.write("[Service]\n" + "\n".join(self.service_environment) + "\n")

        # Its own identity: the journal refuses to share the host's machine id, and the hostname says
        # where a shell is.
        with open(self.path("/etc/machine-id"), "w") as f:
            f.write(uuid.uuid4().hex + "\n")
        with open(self.path("/etc/hostname"), "w") as f:
            f.write(self.name + "\n")

    def _build_option(self, name):
        try:
            with open(os.path.join(self.build_dir, "meson-info", "intro-buildoptions.json")) as f:
                return {o["name"]: o["value"] for o in json.load(f)}.get(name)
        except FileNotFoundError:
            return None

    def _boot(self):
        os.makedirs(self.log_dir, exist_ok=True)
        self.log_path = os.path.join(self.log_dir, "nspawn.log")
        args = ["systemd-nspawn", "--directory", self.root, "--boot", "--machine", self.name,
                "--register=no", "--console=passive", "--private-network"]
        preexec = None
        if os.path.isdir("/run/systemd/system"):
            # A host booted with systemd gives the container a transient scope of its own.
            pass
        else:
            args.append("--keep-unit")
            for parent in _cgroup_parents():
                d = os.path.join(parent, self.name)
                os.mkdir(d)
                self.cgroups.append(d)
            cgroups = list(self.cgroups)

            def preexec():
                os.setsid()
                for d in cgroups:
                    with open(os.path.join(d, "cgroup.procs"), "w") as f:
                        f.write("0")
        # The host's own services (databases, whatever its packages enable) have no business here:
        # basic.target brings journald, D-Bus and the sockets, which is all Helios needs.
        args += ["systemd.unit=basic.target"]

        t = time.monotonic()
        log = open(self.log_path, "w")
        self.nspawn = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       preexec_fn=preexec, start_new_session=preexec is None)
        log.close()
        deadline = time.monotonic() + 60
        while self.leader is None:
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd-nspawn did not start a systemd:\n{self.read_log()}")
            self.leader = self._find_leader()
            if self.leader is None or not os.path.exists(f"/proc/{self.leader}/root/run/systemd/private"):
                self.leader = None
                time.sleep(0.02)
        r = self.exec("systemctl", "is-system-running", "--wait", timeout=120)
        self.timings["boot"] = time.monotonic() - t
        self.state = r.stdout.strip()

    def _find_leader(self):
        """The container's PID 1 as the host sees it: nspawn's child running systemd."""
        try:
            with open(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children") as f:
                children = f.read().split()
        except FileNotFoundError:
            return None
        for c in children:
            try:
                with open(f"/proc/{c}/comm") as f:
                    if f.read().strip() == "systemd":
                        return int(c)
            except FileNotFoundError:
                pass
        return None

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except (AttributeError, FileNotFoundError):
            return ""

    # ---- tearing down ----

    def stop(self):
        if self.nspawn and self.nspawn.poll() is None:
            # SIGTERM asks the container's systemd to power off; a container that hangs is killed.
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()
        self._remove_cgroups()
        for m in (self.root, self.base):
            if os.path.ismount(m):
                _umount(m)
        if os.path.isdir(self.base) and not os.path.ismount(self.base):
            shutil.rmtree(self.base, ignore_errors=True)

    def _remove_cgroups(self):
        """Kill anything left in the cgroups this run made, then remove them, deepest first. Nothing
        outside them is touched."""
        for top in self.cgroups:
            for _ in range(50):
                pids = []
                for dirpath, _, files in os.walk(top):
                    if "cgroup.procs" in files:
                        with open(os.path.join(dirpath, "cgroup.procs")) as f:
                            pids += [int(p) for p in f.read().split()]
                if not pids:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError as e:
                    print(f"cannot remove {dirpath}: {e}", file=sys.stderr)
        self.cgroups = []

    # ---- using it ----

    def path(self, p):
        """A path inside the container, as the host reaches it before and after boot."""
        return os.path.join(self.root, p.lstrip("/"))

    def exec(self, *argv, user=None, input=None, check=True, timeout=60, env=None):
        """Run argv inside the container (all its namespaces, its root). user: run as that account,
        with its groups, through setpriv (no PAM, no login session: like a service, not a login)."""
        cmd = ["nsenter", "--target", str(self.leader), "--all", "--"]
        if user is not None:
            cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        cmd += list(argv)
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           env=dict(CLEAN_ENV, **(env or {})), timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited with {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def write(self, path, text, mode="0644"):
        """Write a file inside the running container (/run and /tmp are its own, not the overlay's)."""
        self.exec("install", "-m", mode, "/dev/stdin", path, input=text)

    def sh(self, script, **kw):
        return self.exec("/bin/sh", "-c", script, **kw)

    def systemctl(self, *args, **kw):
        return self.exec("systemctl", "--no-pager", *args, **kw)

    def show(self, unit, *props):
        """systemctl show as a dict."""
        r = self.systemctl("show", unit, *[f"--property={p}" for p in props])
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def client(self, socket_path, *args, user="helios-gateway", input=None, check=True, timeout=60):
        """worker_client.py inside the container, by default as the gateway's account; its JSON."""
        r = self.exec("/usr/bin/python3", f"{HELPER_DIR}/worker_client.py", socket_path, *args,
                      user=user, input=input, check=False, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"worker_client {' '.join(args)} as {user} exited with "
                                 f"{r.returncode}:\n{r.stdout}{r.stderr}")
        try:
            return json.loads(r.stdout) if r.stdout.strip() else {"error": r.stderr.strip(),
                                                                   "returncode": r.returncode}
        except json.JSONDecodeError:
            raise AssertionError(f"worker_client printed no JSON:\n{r.stdout}{r.stderr}")

    def add_user(self, name, password=None, groups=()):
        """A normal account inside the container, with a uid no account of the host has: the host sees
        the container's processes with their real uids, and anything on the host that signals every
        process of one of its own accounts must not hit these."""
        self.exec("useradd", "--create-home", "--shell", "/bin/bash", "--uid", str(self._free_uid()), name)
        if password is not None:
            self.exec("chpasswd", input=f"{name}:{password}\n")
        for g in groups:
            self.exec("usermod", "--append", "--groups", g, name)
        return int(self.exec("id", "-u", name).stdout)

    def _free_uid(self):
        used = set()
        for path in ("/etc/passwd", self.path("/etc/passwd")):
            with open(path) as f:
                used |= {int(line.split(":")[2]) for line in f if line.count(":") >= 6}
        uid = 41000 + os.getpid() % 1000 * 8
        while uid in used:
            uid += 1
        return uid


def random_password():
    return secrets.token_urlsafe(12)
