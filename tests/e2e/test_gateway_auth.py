"""Logging in and out, sessions and their ends, throttling, the users file and the configuration."""

import base64
import os
import signal
import subprocess
import time

import pytest

import helios
from helios import cookie_from, WsClosed


def passwd(users_file, user, password=None, delete=False):
    args = [helios.GATEWAY, "passwd", "--users-file", str(users_file)]
    if delete:
        args.append("--delete")
    out = subprocess.run(args + [user], input=(password + "\n").encode() if password else b"",
                         capture_output=True, timeout=30)
    if os.geteuid() == 0 and os.path.exists(users_file):
        # Rewritten by root here; the gateway runs as its own account and must be able to read it.
        os.chown(users_file, helios.gateway_uid(), -1)
    return out


# ---- token login ----

def test_login_sets_a_strict_httponly_session_cookie(gateway):
    resp = gateway.login()
    assert resp.status == 200
    assert resp.json() == {"user": gateway.worker_user if hasattr(gateway, "worker_user") else resp.json()["user"]}
    cookie = resp.header("set-cookie")
    name, _, rest = cookie.partition("=")
    value = rest.split(";", 1)[0]
    attrs = [a.strip() for a in cookie.split(";")[1:]]
    assert name == "helios_session"
    assert len(value) == 43  # 256 bits, base64url
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs  # plain HTTP on loopback
    assert resp.header("cache-control") == "no-store"
    session = gateway.request("GET", "/api/session", cookie=cookie_from(resp))
    assert session.status == 200 and session.json()["current"] is True


def test_token_as_a_basic_password_works_too(gateway):
    creds = base64.b64encode(f"anyone:{gateway.token}".encode()).decode()
    resp = gateway.request("POST", "/login", {"Authorization": f"Basic {creds}"}, body=b"")
    assert resp.status == 200


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer wrong", "Basic !!!", "Digest x",
                                           "Basic " + base64.b64encode(b"nocolon").decode()])
def test_bad_logins(gateway, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    resp = gateway.request("POST", "/login", headers, body=b"")
    assert resp.status in (400, 401)
    assert "set-cookie" not in resp.headers


def test_login_from_a_foreign_origin_refused(gateway):
    resp = gateway.login(headers={"Origin": "http://evil.example"})
    assert resp.status == 403
    assert gateway.login(headers={"Origin": gateway.origin}).status == 200


def test_each_login_is_a_new_session(gateway):
    a, b = gateway.session(), gateway.session()
    assert a != b
    listing = gateway.request("GET", "/api/sessions", cookie=a).json()["sessions"]
    assert len(listing) == 2
    assert sum(s["current"] for s in listing) == 1


def test_logout_ends_the_session(gateway):
    cookie = gateway.session()
    resp = gateway.request("POST", "/logout", cookie=cookie, body=b"")
    assert resp.status == 200
    assert "Max-Age=0" in resp.header("set-cookie")
    assert gateway.request("GET", "/api/session", cookie=cookie).status == 401
    assert gateway.ws(cookie).status == 401
    assert gateway.metrics()["helios_gateway_sessions"] == 0


def test_revocation_one_by_one(gateway):
    a, b, c = gateway.session(), gateway.session(), gateway.session()
    page_a, page_c = gateway.rpc(a), gateway.rpc(c)
    page_a.call("worker:info")
    listing = gateway.request("GET", "/api/sessions", cookie=b).json()["sessions"]
    id_a = next(s["id"] for s in listing if not s["current"] and
                gateway.request("GET", "/api/session", cookie=a).json()["id"] == s["id"])
    resp = gateway.request("POST", f"/api/sessions/revoke?id={id_a}", cookie=b, body=b"")
    assert resp.status == 200
    # a's page is closed as a policy matter; a's cookie is dead; b and c are untouched.
    with pytest.raises(WsClosed) as closed:
        page_a.ws.recv(timeout=10)
    assert closed.value.code == 1008
    assert gateway.request("GET", "/api/session", cookie=a).status == 401
    assert gateway.request("GET", "/api/session", cookie=b).status == 200
    assert page_c.call("worker:info")
    assert gateway.request("POST", "/api/sessions/revoke?id=0123456789abcdef", cookie=b, body=b"").status == 404
    assert gateway.request("POST", f"/api/sessions/revoke?id={id_a}", body=b"").status == 401


def test_forged_and_tampered_cookies(gateway):
    real = gateway.session()
    name, value = real.split("=", 1)
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
    for cookie in [f"{name}={tampered}", f"{name}={value[:20]}", f"{name}={value}x", f"{name}= {value}",
                   f"{name}={'A' * 43}", f"__Host-{name}={value}", f"{name}=" + "%41" * 43]:
        assert gateway.request("GET", "/api/session", cookie=cookie).status == 401, cookie
    assert gateway.request("GET", "/api/session", cookie=f"x=1; {real}; y=2").status == 200


def test_idle_timeout(make_gateway):
    g = make_gateway("--session-idle-timeout=2s")
    active, idle = g.session(), g.session()
    page = g.rpc(active)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        page.call("worker:info")  # messages from the page count as use
        time.sleep(0.3)
    assert g.request("GET", "/api/session", cookie=idle).status == 401
    assert g.request("GET", "/api/session", cookie=active).status == 200
    page.close()


def test_absolute_lifetime_closes_pages(make_gateway):
    g = make_gateway("--session-lifetime=2s")
    cookie = g.session()
    page = g.rpc(cookie)
    page.call("worker:info")
    started = time.monotonic()
    with pytest.raises(WsClosed) as closed:
        while True:
            page.call("worker:info", timeout=10)
            time.sleep(0.2)
    assert closed.value.code == 1008
    assert closed.value.reason == "expired"
    assert 1.5 < time.monotonic() - started < 5
    assert g.request("GET", "/api/session", cookie=cookie).status == 401


def test_sessions_per_user_are_capped_oldest_first(make_gateway):
    g = make_gateway("--max-sessions-per-user=3")
    cookies = [g.session() for _ in range(4)]
    assert g.request("GET", "/api/session", cookie=cookies[0]).status == 401
    for c in cookies[1:]:
        assert g.request("GET", "/api/session", cookie=c).status == 200


# ---- throttling ----

def test_ten_thousand_failed_logins(make_gateway):
    import http.client
    g = make_gateway("--login-burst=5", "--login-max-delay=2s")
    page = g.rpc()  # an existing session is not disturbed
    conn = http.client.HTTPConnection(g.host, g.port, timeout=10)
    statuses = {}
    retry_after = set()
    rss_before = helios.rss_kib(g.pid)
    for i in range(10000):
        conn.request("POST", "/login", body=b"", headers={"Authorization": f"Bearer wrong-{i}"})
        r = conn.getresponse()
        r.read()
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.status == 429:
            retry_after.add(int(r.getheader("Retry-After")))
        if r.getheader("Connection") == "close":
            conn.close()
            conn = http.client.HTTPConnection(g.host, g.port, timeout=10)
    conn.close()
    # The burst is checked and refused, then one try each time the wait is over (at most 2 s); the rest
    # is turned away without a check.
    assert statuses.get(401, 0) <= 20, statuses
    assert statuses.get(429, 0) >= 9990, statuses
    assert retry_after and max(retry_after) <= 2
    m = g.metrics()
    assert m['helios_gateway_logins_total{result="failed"}'] == statuses.get(401, 0)
    assert m['helios_gateway_logins_total{result="throttled"}'] == statuses[429]
    assert helios.rss_growth_kib(g.pid, rss_before) < 8 * 1024
    assert page.call("worker:info")
    # The right token is also turned away while the address is throttled...
    assert g.login().status == 429
    # ...and accepted once the delay is over.
    time.sleep(2.1)
    assert g.login().status == 200


def test_throttling_by_address_and_account_together_behind_a_proxy(make_gateway, tmp_path):
    users = tmp_path / "users"
    for user, password in (("alice", "correct horse"), ("bob", "battery staple"), ("carol", "carol's")):
        assert passwd(users, user, password).returncode == 0
    g = make_gateway("--auth=file", f"--users-file={users}", "--trusted-proxies=127.0.0.0/8",
                     "--login-burst=3", "--login-address-burst=8", "--login-account-burst=5",
                     "--login-max-delay=60s")

    def login(user, password, addr):
        return g.login(user=user, password=password, headers={"X-Forwarded-For": addr}).status

    # One student's typos behind a NAT slow that student from there, not everyone behind it...
    assert [login("carol", "typo", "198.51.100.1") for _ in range(5)] == [401, 401, 401, 429, 429]
    assert login("bob", "battery staple", "198.51.100.1") == 200
    assert login("carol", "carol's", "198.51.100.2") == 200
    # ...but one address failing against many accounts is throttled by address (the looser bound).
    assert [login(f"user{i}", "x", "198.51.100.1") for i in range(6)] == [401] * 5 + [429]
    assert login("bob", "battery staple", "198.51.100.1") == 429
    assert login("bob", "battery staple", "198.51.100.3") == 200

    # An account attacked from many addresses is slowed for those addresses...
    assert [login("alice", "wrong", f"203.0.113.{i}") for i in range(7)] == [401] * 7
    assert login("alice", "wrong", "203.0.113.1") == 429
    assert login("alice", "correct horse", "203.0.113.2") == 429
    # ...but cannot be locked out: its owner, from an address that has not failed, gets in.
    assert login("alice", "correct horse", "192.0.2.77") == 200
    # Unknown and known names fail alike.
    assert login("nobody", "x", "192.0.2.1") == 401
    # Distinct addresses and names, each checked in turn (20 checks a second): the table stays bounded
    # (tests/unit/test-throttle.c fills it past its bound).
    rss_before = helios.rss_kib(g.pid)
    import http.client
    conn = http.client.HTTPConnection(g.host, g.port, timeout=30)
    for i in range(300):
        creds = base64.b64encode(f"u{i}:p".encode()).decode()
        conn.request("POST", "/login", body=b"", headers={
            "Authorization": f"Basic {creds}", "X-Forwarded-For": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"})
        r = conn.getresponse()
        r.read()
        assert r.status in (401, 429, 503)
    conn.close()
    assert helios.rss_growth_kib(g.pid, rss_before) < 16 * 1024
    assert g.request("GET", "/healthz").status == 200


# ---- the users file ----

def test_file_login_passwd_and_reload(make_gateway, tmp_path):
    users = tmp_path / "users"
    r = passwd(users, "alice", "first password")
    assert r.returncode == 0, r.stderr
    line = users.read_text().strip()
    assert line.startswith("alice:$y$")  # yescrypt
    assert oct(os.stat(users).st_mode & 0o777) == "0o600"
    g = make_gateway("--auth=file", f"--users-file={users}")
    assert g.request("GET", "/api/session").json()["login"] == "password"
    ok = g.login(user="alice", password="first password")
    assert ok.status == 200 and ok.json() == {"user": "alice"}
    assert g.login(user="alice", password="wrong").status == 401
    assert g.login(user="mallory", password="first password").status == 401
    assert g.login(user="../etc", password="x").status == 401

    # Change the password: the running gateway uses the new one after SIGHUP.
    assert passwd(users, "alice", "second password").returncode == 0
    assert passwd(users, "carol", "carol's").returncode == 0
    helios.own_to_gateway(users)  # the gateway does not run as root
    g.signal(signal.SIGHUP)
    assert g.wait_log("Configuration reloaded."), g.read_log()
    assert g.login(user="alice", password="first password").status == 401
    assert g.login(user="alice", password="second password").status == 200
    assert g.login(user="carol", password="carol's").status == 200
    # Sessions made before the reload live on.
    assert g.request("GET", "/api/session", cookie=cookie_from(ok)).status == 200

    assert passwd(users, "carol", delete=True).returncode == 0
    assert "carol" not in users.read_text()
    assert passwd(users, "carol", delete=True).returncode != 0
    assert passwd(users, "bad/name", "x").returncode != 0


def test_broken_users_file_on_reload_keeps_the_old_one(make_gateway, tmp_path):
    users = tmp_path / "users"
    passwd(users, "alice", "pw-alice")
    g = make_gateway("--auth=file", f"--users-file={users}")
    users.write_text("this is not a users file\n")
    g.signal(signal.SIGHUP)
    assert g.wait_log("Reload failed")
    assert g.login(user="alice", password="pw-alice").status == 200


# ---- configuration ----

def test_config_file_and_command_line_override(make_gateway, tmp_path):
    g = make_gateway("--max-sessions-per-user=2", config="# settings\nmax_sessions_per_user = 1\n"
                                                         "session_lifetime = 1h\n\n; more\nheader_timeout=5s\n")
    a, b = g.session(), g.session()
    assert g.request("GET", "/api/session", cookie=a).status == 200  # 2 from the command line, not 1
    assert g.request("GET", "/api/session", cookie=b).status == 200
    # The lifetime from the file (1h) comes before the default idle timeout (12h).
    expires = g.request("GET", "/api/session", cookie=b).json()["expires"]
    assert abs(expires / 1000 - (time.time() + 3600)) < 60


def test_reload_applies_new_settings(make_gateway):
    g = make_gateway(config="session_idle_timeout = 1h\n")
    cookie = g.session()
    with open(g.config_path, "w") as f:
        f.write("session_idle_timeout = 1s\n")
    g.signal(signal.SIGHUP)
    assert g.wait_log("Configuration reloaded.")
    time.sleep(1.5)
    assert g.request("GET", "/api/session", cookie=cookie).status == 401


@pytest.mark.parametrize("args, config, message", [
    (["--auth=pam"], None, "needs the privileged helios-launcher"),
    (["--auth=nope"], None, "invalid auth"),
    (["--max-message-size=1"], None, "out of range"),
    ([], "no_such_setting = 1\n", "unknown setting"),
    ([], "listen\n", "expected 'key = value'"),
    (["--cert=/nonexistent.pem"], None, "both cert and key"),
    (["--listen=999.1.1.1:80"], None, "Cannot listen"),
    (["--web-root=/nonexistent"], None, "Cannot open the web root"),
])
def test_bad_configuration_is_refused_at_start(make_gateway, args, config, message):
    g = make_gateway(*args, config=config, start=False)
    g.start(expect_url=False)
    assert g.wait() == 1
    assert message in g.read_log(), g.read_log()


def test_help_and_version():
    out = subprocess.run([helios.GATEWAY, "--help"], capture_output=True, timeout=10)
    assert out.returncode == 0 and b"--max-message-size" in out.stdout
    out = subprocess.run([helios.GATEWAY, "--version"], capture_output=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith(b"helios-gateway ")
    out = subprocess.run([helios.GATEWAY, "passwd", "--help"], capture_output=True, timeout=10)
    assert out.returncode == 0 and b"--delete" in out.stdout


def test_runtime_directory_owned_by_someone_else_is_refused(make_gateway, tmp_path):
    rt = tmp_path / "gw" / "run"
    rt.mkdir(parents=True)
    os.chmod(rt, 0o755)  # open to others: not private
    g = make_gateway(start=False)
    g.start(expect_url=False)
    assert g.wait() == 1
    assert "private runtime directory" in g.read_log()
