"""What the tests of helios-launcher share: real accounts (useradd, chpasswd), PAM services written to
/etc/pam.d, the launcher started in embedded mode, and a gateway running as the gateway's account that
logs people in through it. Everything here needs root."""

import contextlib
import os
import signal
import subprocess
import time

import helios

LAUNCHER = os.environ.get("HELIOS_LAUNCHER") or os.path.join(helios.BUILD_DIR, "launcher", "helios-launcher")

# A PAM stack that checks the password in /etc/shadow and nothing else, without pam_unix's delay on
# failure.
PAM_UNIX = "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"


def shadow_tool(cmd, check=True, **kw):
    """useradd and friends, retried while another test suite holds the lock on /etc/passwd."""
    for _ in range(50):
        out = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if out.returncode == 0 or "lock" not in out.stderr:
            break
        time.sleep(0.1)
    if check:
        assert out.returncode == 0, (cmd, out.stderr)
    return out


def useradd(name, home=None, system=False):
    """An account with a group of its own: a system one without a home, or a person's with home
    created (it must be under /home for the sandbox to show it)."""
    import pwd
    cmd = ["useradd", "--user-group", "--shell", "/bin/sh"]
    if system:
        cmd += ["--system", "--no-create-home"]
    else:
        cmd += ["--create-home", "--home-dir", home]
    shadow_tool(cmd + [name])
    return pwd.getpwnam(name)


def userdel(name):
    shadow_tool(["userdel", name], check=False)
    shadow_tool(["groupdel", name], check=False)


def set_passwords(passwords):
    """passwords: {user: password}, set in one chpasswd."""
    shadow_tool(["chpasswd"], input="".join(f"{u}:{p}\n" for u, p in passwords.items()))


@contextlib.contextmanager
def pam_service_files(files):
    """files: {service name: text}, present in /etc/pam.d for the duration of the block."""
    for name, text in files.items():
        with open(f"/etc/pam.d/{name}", "w") as f:
            f.write(text)
    try:
        yield
    finally:
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/etc/pam.d/{name}")


@contextlib.contextmanager
def as_user(pw):
    """Run the block with pw's effective ids: sockets connected inside carry them (SO_PEERCRED)."""
    os.setegid(pw.pw_gid)
    os.seteuid(pw.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


class Launcher:
    """helios-launcher in embedded mode, serving gateway_user on base/launcher.sock, checking passwords
    with pam_service."""

    def __init__(self, base, gateway_user, pam_service, args=()):
        self.base = base
        self.gateway_user = gateway_user
        self.pam_service = pam_service
        self.runtime = os.path.join(base, "run")
        self.sock = os.path.join(base, "launcher.sock")
        self.log = os.path.join(base, "launcher.log")
        self.args = list(args)
        # The login records of the sessions a gateway opens go to files of the test's own, never to the
        # machine's utmp and wtmp.
        self.records = [name for name in ("utmp", "wtmp") if f"--{name}" not in self.args]
        for name in self.records:
            self.args += [f"--{name}", os.path.join(base, name)]
        self.proc = None

    def start(self, env_extra=None, log_level="debug", cgroup=None):
        """cgroup: a cgroup v2 directory the launcher starts in (as a service with Delegate=yes would)."""
        env = dict(os.environ, HELIOS_LOG_LEVEL=log_level)
        for k in ("LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"):
            env.pop(k, None)
        env.update(env_extra or {})
        for name in self.records:
            open(os.path.join(self.base, name), "ab").close()
        self.proc = subprocess.Popen(
            [LAUNCHER, "--mode=embedded", "--runtime-dir", self.runtime, "--listen", self.sock,
             "--gateway-user", self.gateway_user, "--pam-service", self.pam_service, "--worker", helios.WORKER,
             *self.args],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"), start_new_session=True,
            preexec_fn=(lambda: join_cgroup(cgroup)) if cgroup else None)
        deadline = time.monotonic() + 10
        # Listening comes after the socket has its group and mode.
        while not helios.is_listening(self.sock):
            assert self.proc.poll() is None, self.read_log()
            assert time.monotonic() < deadline, self.read_log()
            time.sleep(0.01)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def assert_clean(self):
        """Stop it and fail on an unclean exit, a sanitizer's report or a handle left open."""
        status = self.stop()
        log = self.read_log()
        assert status == 0, log[-3000:]
        for pattern in helios.SANITIZER_REPORTS:
            assert pattern not in log, log[-5000:]
        assert "still open at exit" not in log, log[-3000:]

    def helpers(self):
        """Pids of PAM helpers running now: the launcher's children re-executed with --pam-helper (each
        runs PAM in a child of its own, not counted)."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if b"--pam-helper" not in f.read():
                            continue
                    if int(helios.read_status(entry)["PPid"]) == self.proc.pid and helios.alive(int(entry)):
                        out.append(int(entry))
                except OSError:
                    pass
        return out


class LauncherGateway(helios.Gateway):
    """helios-gateway as the gateway's account, logging in with PAM through helios-launcher."""

    def __init__(self, base, account, launcher_sock, args=()):
        super().__init__(base, args=("--auth", "pam", "--launcher", launcher_sock, *args))
        self.account = account

    def command(self):
        return ["setpriv", f"--reuid={self.account.pw_uid}", f"--regid={self.account.pw_gid}",
                "--init-groups", *super().command()]

    def assert_clean(self):
        status = self.stop()
        log = self.read_log()
        assert status == 0, log[-3000:]
        for pattern in helios.SANITIZER_REPORTS:
            assert pattern not in log, log[-5000:]
        assert "still open at exit" not in log, log[-3000:]


def user_pids(uid, executable=None):
    """Live processes running as uid (of that executable's name only, when given)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            if executable is not None:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if os.path.basename(f.read().split(b"\0")[0]) != executable:
                        continue
            if helios.alive(int(entry)):
                out.append(int(entry))
        except OSError:
            pass
    return out


def worker_pids(uid):
    return user_pids(uid, b"helios-worker")


def stop_workers(uids, timeout=10):
    """SIGTERM the workers of these users and wait for them to exit, as at an idle exit: a worker built
    with a sanitizer reports its leaks then, on the standard error it shares with the launcher. Returns
    the pids that did not exit in time."""
    pids = [p for uid in uids for p in worker_pids(uid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(helios.alive(p) for p in pids) and time.monotonic() < deadline:
        helios.reap(pids)
        time.sleep(0.02)
    return [p for p in pids if helios.alive(p)]


def kill_workers(uids, everything=False):
    """SIGKILL the workers of these users (every process of theirs when everything), and wait for them
    to be gone: workers outlive the launcher on purpose."""
    def left(uid):
        return user_pids(uid) if everything else worker_pids(uid)

    for uid in uids:
        for pid in left(uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(left(u) for u in uids) and time.monotonic() < deadline:
        for uid in uids:
            helios.reap(left(uid))
        time.sleep(0.02)


def join_cgroup(directory):
    with open(os.path.join(directory, "cgroup.procs"), "w") as f:
        f.write("0")


def cgroup2_mount():
    """Where the cgroup v2 hierarchy is mounted (its root), or None."""
    with open("/proc/self/mountinfo") as f:
        found = None
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if right.split()[0] == "cgroup2" and fields[3] == "/":
                if found is None or fields[4] == "/sys/fs/cgroup":
                    found = fields[4]
        return found


def worker_cgroup_dirs(names):
    """The cgroups helios-embedded may have made for these users: <mount>/<its cgroup>/helios/USER."""
    mount = cgroup2_mount()
    if not mount:
        return []
    out = []
    for dirpath, dirnames, _ in os.walk(mount):
        if os.path.basename(dirpath) == "helios":
            out += [os.path.join(dirpath, n) for n in dirnames if n in names]
        if dirpath.count("/") - mount.count("/") >= 3:
            dirnames[:] = []
    return out


def remove_worker_cgroups(names):
    """Kill what is left in these users' worker cgroups and remove them (a launcher stopped while its
    workers ran leaves them, as it leaves the workers)."""
    for d in worker_cgroup_dirs(names):
        with contextlib.suppress(OSError):
            with open(os.path.join(d, "cgroup.kill"), "w") as f:
                f.write("1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
