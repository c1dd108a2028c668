"""Isolation under load: many real accounts logged in through the gateway at once, each with several
pages open, all working at the same time. Every frame any page receives is searched for any other
user's name or marker; none may carry one, no answer may go astray, and every request is answered.

The gateway runs as its own account with auth=pam and talks to helios-launcher in embedded mode, which
starts each user's worker in its sandbox on that user's first connection."""

import asyncio
import json
import os
import re
import shutil
import tempfile
import time

import pytest

import helios
from launcher_fixtures import (PAM_UNIX, Launcher, LauncherGateway, kill_workers, pam_service_files,
                               remove_worker_cgroups, set_passwords, stop_workers, useradd, userdel, worker_pids)

websockets = pytest.importorskip("websockets")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: accounts, PAM files, setuid")

USERS = 20
PAGES = 5  # WebSockets per user, opened at once
ROUNDS = 10  # files each page writes and reads back, pipelined
TIMEOUT = 60  # for the whole exchange; a lost answer fails the test instead of hanging it

TAG = os.getpid() % 100000
GW = f"helios-t-igw{TAG}"
NAMES = [f"helios-t-i{TAG}u{i:02d}" for i in range(USERS)]
PAM_SERVICE = f"helios-test-isolation-{TAG}"
# Every user's name and every marker a user's pages send match this, with the user's number in group 1:
# a match with another number in a frame is another user's data.
OWNER = re.compile(rf"(?:helios-t-i|mk){TAG}u(\d\d)")


def password(i):
    return f"pass {TAG} {i} {os.urandom(4).hex()}"


@pytest.fixture(scope="module")
def people():
    """The gateway's account and USERS people with passwords, homes under /home; afterwards every
    process of theirs is killed and the accounts and homes removed."""
    base = tempfile.mkdtemp(prefix="helios-isolation-", dir="/home")
    os.chmod(base, 0o755)
    for n in [GW, *NAMES]:
        userdel(n)  # left over from an interrupted run
    made = []
    try:
        gw = useradd(GW, system=True)
        made.append(gw)
        users = []
        for n in NAMES:
            pw = useradd(n, home=os.path.join(base, n))
            made.append(pw)
            users.append(pw)
        passwords = [password(i) for i in range(USERS)]
        set_passwords(dict(zip(NAMES, passwords)))
        yield gw, users, passwords
    finally:
        kill_workers([pw.pw_uid for pw in made], everything=True)
        remove_worker_cgroups(NAMES)
        for n in [GW, *NAMES]:
            userdel(n)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def site(people):
    """helios-launcher (embedded mode) and a gateway as the gateway's account using it for PAM, in a
    directory the gateway's account can traverse."""
    gw, users, _ = people
    tmp = tempfile.mkdtemp(prefix="helios-isolation-", dir="/tmp")
    os.chmod(tmp, 0o755)
    with pam_service_files({PAM_SERVICE: PAM_UNIX}):
        # Info level: a debug line for every request of a hundred pages would be most of the work.
        lc = Launcher(os.path.join(tmp, "launcher"), GW, PAM_SERVICE)
        os.makedirs(lc.base)
        os.chmod(lc.base, 0o755)
        lc.start(log_level="info")
        g = None
        try:
            d = os.path.join(tmp, "gateway")
            os.makedirs(d)
            os.chmod(d, 0o755)
            # Every user logs in at once from this one address: a classroom behind one NAT.
            g = LauncherGateway(d, gw, lc.sock, args=("--log-level", "info",
                                                      f"--login-checks-per-address={USERS}")).start()
            yield g, lc
        finally:
            if g is not None:
                g.assert_clean()
            # Each worker ends cleanly, and whatever a sanitizer says at exit lands in the launcher's log.
            stuck = stop_workers([pw.pw_uid for pw in users])
            kill_workers([pw.pw_uid for pw in users])
            lc.assert_clean()
            assert not stuck, stuck
            ends = re.findall(r"Worker \(pid \d+\) (exited with status \d+|was killed by signal \w+)", lc.read_log())
            assert ends and set(ends) == {"exited with status 0"}, ends
            shutil.rmtree(tmp, ignore_errors=True)


class Page:
    """One WebSocket of one user: sends requests with ids of its own, reads every frame, checks each
    one for other users' data, and routes answers to their requests and notifications to a list."""

    def __init__(self, user, index, ws, stats):
        self.user = user  # the user's number
        self.index = index
        self.ws = ws
        self.stats = stats
        self.next_id = 1
        self.pending = {}
        self.notifications = []
        self.changed = asyncio.Condition()
        self.foreign = []  # frames that carried another user's data
        self.astray = []  # answers to no request of ours
        self.reader = asyncio.create_task(self.read())

    def marker(self, what):
        return f"mk{TAG}u{self.user:02d}p{self.index}{what}"

    async def read(self):
        async for frame in self.ws:
            self.stats["received"] += 1
            owners = {int(m) for m in OWNER.findall(frame)}
            if owners - {self.user}:
                self.foreign.append(frame)
            msg = json.loads(frame)
            if "id" in msg:
                fut = self.pending.pop(msg["id"], None)
                if fut is None:
                    self.astray.append(msg)
                else:
                    fut.set_result(msg)
            else:
                async with self.changed:
                    self.notifications.append(msg)
                    self.changed.notify_all()

    def send(self, method, params):
        rid = self.next_id
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.stats["sent"] += 1
        return rid, fut, self.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))

    async def call(self, method, params):
        rid, fut, sending = self.send(method, params)
        await sending
        msg = await fut
        assert msg["id"] == rid and msg.get("jsonrpc") == "2.0", msg
        assert "error" not in msg, (method, params, msg)
        return msg["result"]

    async def calls(self, requests):
        """Several requests sent back to back before any answer is awaited."""
        sent = [self.send(m, p) for m, p in requests]
        for _, _, sending in sent:
            await sending
        results = []
        for (rid, fut, _), (method, params) in zip(sent, requests):
            msg = await fut
            assert msg["id"] == rid, msg
            assert "error" not in msg, (method, params, msg)
            results.append(msg["result"])
        return results

    async def wait_for(self, pred):
        """Until pred(notifications) is true."""
        async with self.changed:
            await self.changed.wait_for(lambda: pred(self.notifications))

    def seen(self, method):
        return [n.get("params", {}) for n in self.notifications if n["method"] == method]


async def login(g, name, pw):
    """POST /login with the user's password, again while the launcher answers busy (more logins at once
    than PAM helpers)."""
    for _ in range(100):
        resp = await asyncio.to_thread(g.login, user=name, password=pw)
        if resp.status != 503:
            break
        await asyncio.sleep(0.05)
    assert resp.status == 200, (name, resp)
    return helios.cookie_from(resp)


async def user_session(g, i, pw_entry, password_, barrier, stats):
    """One user: log in, open PAGES WebSockets at once, and have each work through its stream."""
    cookie = await login(g, pw_entry.pw_name, password_)
    uri = f"ws://{g.host}:{g.port}/ws"
    sockets = await asyncio.gather(*(
        websockets.connect(uri, origin=g.origin, extra_headers={"Cookie": cookie}, max_size=1 << 24,
                           open_timeout=20, ping_interval=None)
        for _ in range(PAGES)))
    pages = [Page(i, j, ws, stats) for j, ws in enumerate(sockets)]
    try:
        # Every page of every user is open, and knows the project, before anyone starts: each page then
        # hears of everything its user's other pages do.
        for p in pages:
            info = await p.call("worker:info", {})
            assert info["uid"] == pw_entry.pw_uid and info["home"] == pw_entry.pw_dir, info
            await p.call("project:load", {"root": pw_entry.pw_dir})
        await barrier.wait()
        terminals = await asyncio.gather(*(page_stream(p, pw_entry) for p in pages))

        # Same user, every page: the files each page's terminal wrote, and each terminal's exit.
        # The files are named after their page's marker: another user's would be seen as such.
        wanted = {f"{p.marker('said')}.txt" for p in pages}
        for p in pages:
            await asyncio.wait_for(p.wait_for(lambda ns: wanted <= {
                os.path.basename(n["params"]["path"]) for n in ns if n["method"] == "file:changed_on_disk"}), 20)
            await asyncio.wait_for(p.wait_for(lambda ns: set(terminals) <= {
                n["params"]["terminalId"] for n in ns if n["method"] == "terminal:exit"}), 20)
            # Terminal ids are not unique across users: each page hears of its user's terminals, all of
            # them, and of no others; output only of the one it attached.
            listed = {t["terminalId"] for s in p.seen("state:updated") for t in s.get("terminals", [])}
            assert listed == set(terminals), (p.index, terminals, listed)
            exited = [e["terminalId"] for e in p.seen("terminal:exit")]
            assert sorted(exited) == sorted(terminals), (p.index, terminals, exited)
            shown = {d["terminalId"] for d in p.seen("terminal:data_out")}
            assert shown == {terminals[p.index]}, (p.index, terminals, shown)
        for p, t in zip(pages, terminals):
            await p.call("terminal:close", {"terminalId": t})
        for p in pages:
            info = await p.call("worker:info", {})
            assert info["uid"] == pw_entry.pw_uid, info
    finally:
        for p in pages:
            await p.ws.close()
            await asyncio.gather(p.reader, return_exceptions=True)
    return pages


async def page_stream(p, pw_entry):
    """Files with content unique to this page written and read back, pipelined; then a terminal that
    echoes a marker and writes a file the user's other pages must hear of. Returns the terminal's id."""
    names = [f"p{p.index}-r{r}.txt" for r in range(ROUNDS)]
    contents = [p.marker(f"r{r}-{os.urandom(6).hex()}") + "\n" for r in range(ROUNDS)]
    written = await p.calls([("fs:write_file", {"path": os.path.join(pw_entry.pw_dir, n), "content": c})
                             for n, c in zip(names, contents)] + [("worker:info", {})])
    assert [w["size"] for w in written[:-1]] == [len(c) for c in contents]
    assert written[-1]["uid"] == pw_entry.pw_uid
    read = await p.calls([("fs:read_file", {"path": os.path.join(pw_entry.pw_dir, n)}) for n in names])
    assert [r["content"] for r in read] == contents

    term = (await p.call("terminal:create", {"cols": 80, "rows": 24, "command": "/bin/sh"}))["terminalId"]
    said = p.marker("said")
    # The arithmetic is done by the shell: its output differs from the echo of what was typed.
    await p.call("terminal:data_in", {"terminalId": term,
                                      "data": f"echo {said}-$((6*7)); echo {said} > {said}.txt; exit\n"})
    await asyncio.wait_for(p.wait_for(lambda ns: f"{said}-42" in "".join(
        n["params"]["data"] for n in ns if n["method"] == "terminal:data_out"
        and n["params"]["terminalId"] == term)), 20)
    got = await p.call("fs:read_file", {"path": os.path.join(pw_entry.pw_dir, f"{said}.txt")})
    assert got["content"] == said + "\n"
    return term


def test_users_under_load_never_see_each_other(site, people, capsys):
    g, lc = site
    _, users, passwords = people
    stats = {"sent": 0, "received": 0}

    async def everyone():
        barrier = asyncio.Barrier(USERS)
        return await asyncio.wait_for(asyncio.gather(*(
            user_session(g, i, users[i], passwords[i], barrier, stats) for i in range(USERS))), TIMEOUT)

    t0 = time.monotonic()
    all_pages = asyncio.run(everyone())
    took = time.monotonic() - t0

    for pages in all_pages:
        for p in pages:
            assert not p.foreign, (NAMES[p.user], p.index, p.foreign[:3])
            assert not p.astray, (NAMES[p.user], p.index, p.astray[:3])
            assert not p.pending, (NAMES[p.user], p.index, sorted(p.pending))
    # One worker per user, running as that user, and nothing else's.
    for pw in users:
        assert len(worker_pids(pw.pw_uid)) == 1, pw.pw_name
    with capsys.disabled():
        print(f"\n{USERS} users x {PAGES} pages: {stats['sent']} requests, {stats['received']} frames received "
              f"({stats['sent'] + stats['received']} messages) in {took:.2f} s")
