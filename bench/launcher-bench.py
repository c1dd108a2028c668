#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Cold start and memory of sandboxed workers started by helios-launcher in embedded mode.

Run as root (it creates accounts with useradd and removes them afterwards):

    bench/launcher-bench.py --launcher build/launcher/helios-launcher --worker build/worker/helios-worker

Measures, in one run:
  cold start   first connection to a user's socket with no worker running → first answer
               (the launcher forks, enters the sandbox, execs the worker, which answers);
  warm         the same request to the running worker, on a new connection (the floor);
  idle PSS     of one sandboxed worker that has answered one request;
  N users      N accounts' workers alive at once: total PSS, and the launcher's own RSS.
"""

import argparse
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PREFIX = "helios-b-"


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def add_user(name, group=None):
    if group is None:
        try:
            pwd.getpwnam(name)
            return
        except KeyError:
            pass
        run("useradd", "--create-home", "--shell", "/bin/bash", "--key", "UID_MIN=20000", name)
    else:
        try:
            grp.getgrnam(name)
        except KeyError:
            run("groupadd", "--system", name)
        try:
            pwd.getpwnam(name)
        except KeyError:
            run("useradd", "--system", "--gid", name, "--no-create-home", "--shell", "/usr/sbin/nologin", name)


def del_user(name):
    subprocess.run(["userdel", "--remove", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["groupdel", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def workspace_pss_kib(pid):
    """PSS of every process of pid's user: the worker and what runs beside it for its workspace (its
    supervisor and init, pasta)."""
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    total += pss_kib(int(entry)) or 0
            except OSError:
                pass
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class LauncherClient:
    """The gateway's side of common/launcher-protocol.h, as the gateway account."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self.next_id = 1

    def worker(self, user):
        rid = str(self.next_id)
        self.next_id += 1
        self.sock.send(b"\0".join([rid.encode(), b"worker", user.encode()]) + b"\0")
        fields = self.sock.recv(4096).split(b"\0")[:-1]
        if fields[0].decode() != rid or fields[1] != b"ok":
            raise RuntimeError(f"launcher: worker({user}): {fields!r}")
        return fields[2].decode()


def ask_info(path):
    """Connect, send worker:info, return (seconds to the answer, the answer's pid)."""
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"worker:info"}\n')
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("worker closed the connection")
        data += chunk
    elapsed = time.perf_counter() - t0
    s.close()
    return elapsed, json.loads(data)["result"]["pid"]


def is_listening(path):
    """True once a Unix socket bound to path listens (__SO_ACCEPTCON in /proc/net/unix): the launcher
    binds, gives the socket its group and mode, then listens."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split(None, 7)
            if len(fields) == 8 and fields[7].rstrip("\n") == path and int(fields[3], 16) & 0x10000:
                return True
    return False


def kill_user_processes(uids):
    """SIGKILL every process running as one of these uids: the bench accounts' workers, which outlive
    the launcher by design, and anything they started."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in uids:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


def wait_gone(pid, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return
        except OSError:  # gone, between any two looks
            return
        time.sleep(0.002)
    raise RuntimeError(f"worker {pid} did not exit")


def client_main(args, sock_path, users, gw_uid, gw_gid, out):
    """Runs as the gateway account in a child process; prints its figures as JSON to out."""
    os.setgroups([gw_gid])
    os.setresgid(gw_gid, gw_gid, gw_gid)
    os.setresuid(gw_uid, gw_uid, gw_uid)
    lc = LauncherClient(sock_path)

    first = users[0]
    path = lc.worker(first)
    cold, warm = [], []
    pid = None
    for _ in range(args.rounds):
        if pid is not None:
            os.write(out, (json.dumps({"stop": pid}) + "\n").encode())
            os.read(args.ack_fd, 16)  # the parent stopped it and saw it gone
            # The launcher re-arms the socket once it has reaped the worker.
            time.sleep(0.05)
        t, pid = ask_info(path)
        cold.append(t)
        for _ in range(5):
            warm.append(ask_info(path)[0])
    os.write(out, (json.dumps({"cold": cold, "warm": warm, "pid": pid}) + "\n").encode())

    pids = []
    for u in users:
        pids.append(ask_info(lc.worker(u))[1])
    os.write(out, (json.dumps({"pids": pids}) + "\n").encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--launcher", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--keep-users", action="store_true", help="leave the accounts for the next run")
    ap.add_argument("--launcher-arg", action="append", default=[],
                    help="one more argument for the launcher, e.g. --outbound-network=no (repeatable)")
    args = ap.parse_args()
    # The launcher starts the worker from the user's home: both paths must not depend on ours.
    args.launcher = os.path.abspath(args.launcher)
    args.worker = os.path.abspath(args.worker)
    if os.geteuid() != 0:
        sys.exit("launcher-bench: run as root (it creates accounts and starts the privileged launcher)")

    gateway = PREFIX + "gw"
    users = [f"{PREFIX}{i:03d}" for i in range(args.users)]
    print(f"Creating {len(users)} accounts…", file=sys.stderr)
    add_user(gateway, group=True)
    for u in users:
        add_user(u)
    gw = pwd.getpwnam(gateway)

    runtime = tempfile.mkdtemp(prefix="helios-bench-")
    os.chmod(runtime, 0o755)
    sock_path = os.path.join(runtime, "launcher.sock")
    log_path = os.path.join(runtime, "launcher.log")
    uids = {pwd.getpwnam(u).pw_uid for u in users}
    env = dict(os.environ, HELIOS_LOG_LEVEL="notice")
    launcher = subprocess.Popen(
        [args.launcher, "--mode=embedded", "--runtime-dir", runtime, "--listen", sock_path,
         "--gateway-user", gateway, "--worker", args.worker, "--max-users", str(len(users) + 8),
         *args.launcher_arg],
        env=env, stdin=subprocess.DEVNULL, stderr=open(log_path, "wb"))

    def fail(why):
        with open(log_path, errors="replace") as f:
            sys.stderr.write(f.read()[-3000:])
        sys.exit(f"launcher-bench: {why}")

    try:
        end = time.monotonic() + 10
        while not is_listening(sock_path):
            if time.monotonic() > end or launcher.poll() is not None:
                fail("the launcher did not start")
            time.sleep(0.01)

        r, w = os.pipe()
        ack_r, ack_w = os.pipe()
        args.ack_fd = ack_r
        child = os.fork()
        if child == 0:
            os.close(r)
            try:
                client_main(args, sock_path, users, gw.pw_uid, gw.pw_gid, w)
                os._exit(0)
            except Exception as e:  # reported by the parent as a failed run
                print(f"launcher-bench client: {e}", file=sys.stderr)
                os._exit(1)
        os.close(w)
        results = {}
        with os.fdopen(r) as f:
            for line in f:
                msg = json.loads(line)
                if "stop" in msg:
                    # SIGTERM, as an idle exit would end it: a worker killed soon after its start
                    # counts as failing, and the launcher holds back one that keeps failing.
                    os.kill(msg["stop"], signal.SIGTERM)
                    wait_gone(msg["stop"])
                    os.write(ack_w, b"k")
                    continue
                if "pid" in msg:
                    results["idle_pss"] = pss_kib(msg["pid"])
                    results["idle_workspace_pss"] = workspace_pss_kib(msg["pid"])
                results.update(msg)
        _, status = os.waitpid(child, 0)
        if status != 0:
            fail("the client failed")

        med = lambda xs: statistics.median(xs) * 1e3
        cold, warm = results["cold"], results["warm"]
        pss = [pss_kib(p) for p in results["pids"]]
        pss = [p for p in pss if p is not None]
        print(f"cold start (connect → first answer), median of {len(cold)}: {med(cold):.2f} ms "
              f"(min {min(cold) * 1e3:.2f}, max {max(cold) * 1e3:.2f})")
        print(f"warm (new connection → answer), median of {len(warm)}: {med(warm):.3f} ms; "
              f"cold/warm {statistics.median(cold) / statistics.median(warm):.0f}x")
        print(f"idle sandboxed worker: PSS {results['idle_pss']} KiB; its workspace's processes together "
              f"{results['idle_workspace_pss']} KiB")
        print(f"{len(pss)} workers alive at once: total PSS {sum(pss) / 1024:.1f} MiB, "
              f"median {statistics.median(pss)} KiB each; launcher RSS {rss_kib(launcher.pid)} KiB")
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(10)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
        kill_user_processes(uids)
        shutil.rmtree(runtime, ignore_errors=True)
        if not args.keep_users:
            for u in users + [gateway]:
                del_user(u)


if __name__ == "__main__":
    main()
