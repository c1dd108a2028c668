"""Previews with many users: each user's preview reaches only their own workspace's loopback. Two real
accounts log in with PAM through helios-launcher (embedded mode, each worker in its own network
namespace); a server one of them starts in a terminal is reached through that user's preview, and never
through the other's, whatever the other presents."""

import json
import os
import shutil
import tempfile
import time
from urllib.parse import urlparse

import pytest

import helios
from launcher_fixtures import (PAM_UNIX, Launcher, LauncherGateway, kill_workers, pam_service_files,
                               remove_worker_cgroups, set_passwords, stop_workers, useradd, userdel)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: accounts, PAM files, setuid")

TAG = os.getpid() % 100000
GW = f"helios-t-pgw{TAG}"
NAMES = [f"helios-t-p{TAG}a", f"helios-t-p{TAG}b"]
PAM_SERVICE = f"helios-test-preview-{TAG}"
APP_PORT = 8000


@pytest.fixture
def site():
    base = tempfile.mkdtemp(prefix="helios-preview-", dir="/home")
    os.chmod(base, 0o755)
    tmp = tempfile.mkdtemp(prefix="helios-preview-", dir="/tmp")
    os.chmod(tmp, 0o755)
    for n in [GW, *NAMES]:
        userdel(n)
    made = []
    try:
        gw = useradd(GW, system=True)
        made.append(gw)
        users = [useradd(n, home=os.path.join(base, n)) for n in NAMES]
        made += users
        passwords = {n: f"pw {TAG} {n} {os.urandom(4).hex()}" for n in NAMES}
        set_passwords(passwords)
        with pam_service_files({PAM_SERVICE: PAM_UNIX}):
            lc = Launcher(os.path.join(tmp, "launcher"), GW, PAM_SERVICE)
            os.makedirs(lc.base)
            os.chmod(lc.base, 0o755)
            lc.start(log_level="info")
            g = None
            try:
                d = os.path.join(tmp, "gateway")
                os.makedirs(d)
                os.chmod(d, 0o755)
                g = LauncherGateway(d, gw, lc.sock, args=("--preview-listen=127.0.0.1:0",)).start()
                yield g, passwords
            finally:
                if g is not None:
                    g.assert_clean()
                stop_workers([pw.pw_uid for pw in users])
                kill_workers([pw.pw_uid for pw in users])
                lc.stop()
    finally:
        kill_workers([pw.pw_uid for pw in made], everything=True)
        remove_worker_cgroups(NAMES)
        for n in [GW, *NAMES]:
            userdel(n)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def call(ws, rid, method, params):
    ws.send_text(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    while True:
        msg = json.loads(ws.recv(timeout=15))
        if msg.get("id") == rid:
            return msg


def preview(g, cookie, port):
    """The user's preview cookie for port: (host, preview port, "helios_preview=...")."""
    resp = g.request("POST", f"/api/preview?port={port}", {"Origin": g.origin, "Content-Length": "0"}, cookie=cookie)
    assert resp.status == 200, resp
    u = urlparse(resp.json()["url"])
    resp = helios.http_request(u.hostname, u.port, "GET", f"{u.path}?{u.query}")
    assert resp.status == 303, resp
    return u.hostname, u.port, resp.header("set-cookie").split(";", 1)[0]


def test_a_users_preview_reaches_only_their_own_workspace(site):
    g, passwords = site
    a, b = NAMES
    # Many users and previews on the IDE's host name: the admin is told what that shares.
    assert "Previews share the IDE's host name" in g.read_log()
    cookie_a = helios.cookie_from(g.login(user=a, password=passwords[a]))
    cookie_b = helios.cookie_from(g.login(user=b, password=passwords[b]))
    assert cookie_a and cookie_b

    # A starts a server in a terminal of their workspace, serving a file only A has.
    ws = g.ws(cookie_a)
    assert ws.status == 101, ws.response
    home = call(ws, 1, "worker:info", {})["result"]["home"]
    assert call(ws, 2, "fs:write_file", {"path": f"{home}/secret-{a}.txt", "content": f"only {a}\n"}).get("result")
    r = call(ws, 3, "terminal:create", {"cols": 80, "rows": 24, "cwd": home,
                                        "command": ["python3", "-m", "http.server", str(APP_PORT), "--bind", "127.0.0.1"]})
    assert "result" in r, r
    deadline = time.monotonic() + 20
    while APP_PORT not in [p["port"] for p in call(ws, 4, "preview:ports", {})["result"]["ports"]]:
        assert time.monotonic() < deadline, "A's server never listened"
        time.sleep(0.2)

    host, port, pc_a = preview(g, cookie_a, APP_PORT)
    resp = helios.http_request(host, port, "GET", f"/preview/{APP_PORT}/secret-{a}.txt", {"Cookie": pc_a})
    assert resp.status == 200 and resp.body == f"only {a}\n".encode(), resp

    # B's own preview of the same port reaches B's workspace, where nothing listens.
    ws_b = g.ws(cookie_b)
    assert APP_PORT not in [p["port"] for p in call(ws_b, 1, "preview:ports", {})["result"]["ports"]]
    host, port, pc_b = preview(g, cookie_b, APP_PORT)
    resp = helios.http_request(host, port, "GET", f"/preview/{APP_PORT}/secret-{a}.txt", {"Cookie": pc_b})
    assert resp.status == 502 and f"only {a}".encode() not in resp.body, resp
    # B's IDE session is no preview credential, nor is a forged preview cookie.
    for cookie in [cookie_b, f"{cookie_b}; {pc_b.replace(pc_b.split('=', 1)[1], pc_b.split('=', 1)[1][::-1])}"]:
        resp = helios.http_request(host, port, "GET", f"/preview/{APP_PORT}/secret-{a}.txt", {"Cookie": cookie})
        assert resp.status == 401 and f"only {a}".encode() not in resp.body
    # A's preview still works, and A logging out ends it.
    assert helios.http_request(host, port, "GET", f"/preview/{APP_PORT}/", {"Cookie": pc_a}).status == 200
    g.request("POST", "/logout", {"Origin": g.origin, "Content-Length": "0"}, cookie=cookie_a)
    assert helios.http_request(host, port, "GET", f"/preview/{APP_PORT}/", {"Cookie": pc_a}).status == 401
