"""Nobody can crowd others out: caps on connections with a session, the queue of credential checks, a
reverse proxy on a Unix socket, and reloading settings."""

import base64
import http.client
import os
import signal
import socket
import stat
import threading
import time

import helios
from helios import cookie_from
from test_gateway_auth import passwd


def users_file(tmp_path, **users):
    path = tmp_path / "users"
    for user, password in users.items():
        assert passwd(path, user, password).returncode == 0
    return path


def is_closed_by_server(conn):
    """Whether the server has closed this kept-alive connection (EOF or reset waiting to be read)."""
    conn.sock.setblocking(False)
    try:
        return conn.sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        conn.sock.setblocking(True)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---- connections with a session ----

def test_one_users_connections_cannot_crowd_out_others(make_gateway, tmp_path):
    users = users_file(tmp_path, alice="alice's pw", bob="bob's pw")
    g = make_gateway("--auth=file", f"--users-file={users}", "--max-connections=40", "--max-unauthenticated=10",
                     "--max-connections-per-user=8")
    cookie = cookie_from(g.login(user="alice", password="alice's pw"))
    # Alice holds more kept-alive connections with her session than the gateway takes in all.
    conns, statuses = [], []
    for _ in range(45):
        c = http.client.HTTPConnection(g.host, g.port, timeout=10)
        c.request("GET", "/api/session", headers={"Cookie": cookie})
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
        conns.append(c)
    assert statuses == [200] * 45
    time.sleep(0.3)
    closed = [is_closed_by_server(c) for c in conns]
    # Her oldest went first; her newest eight are still served.
    assert all(closed[:37]), closed
    assert not any(closed[37:]), closed
    conns[-1].request("GET", "/api/session", headers={"Cookie": cookie})
    assert conns[-1].getresponse().status == 200
    # Everyone else still gets in.
    assert g.request("GET", "/healthz").status == 200
    ok = g.login(user="bob", password="bob's pw")
    assert ok.status == 200
    assert g.request("GET", "/api/session", cookie=cookie_from(ok)).status == 200
    assert g.metrics()["helios_gateway_session_connections_evicted_total"] >= 37
    for c in conns:
        c.close()


def test_connections_with_a_session_leave_room_for_logins(make_gateway, tmp_path):
    users = users_file(tmp_path, alice="alice's pw", bob="bob's pw", carol="carol's pw")
    g = make_gateway("--auth=file", f"--users-file={users}", "--max-connections=30", "--max-unauthenticated=10",
                     "--max-connections-per-user=100")
    cookies = {u: cookie_from(g.login(user=u, password=f"{u}'s pw")) for u in ("alice", "bob")}
    conns = {"alice": [], "bob": []}
    # Alice takes 16, then Bob 6: together over the 20 the gateway lets sessions hold.
    for user, n in (("alice", 16), ("bob", 6)):
        for _ in range(n):
            c = http.client.HTTPConnection(g.host, g.port, timeout=10)
            c.request("GET", "/api/session", headers={"Cookie": cookies[user]})
            assert c.getresponse().read() and True
            conns[user].append(c)
    time.sleep(0.3)
    # The one holding the most gave way, oldest first; Bob kept all of his.
    assert sum(is_closed_by_server(c) for c in conns["alice"]) == 2
    assert not any(is_closed_by_server(c) for c in conns["bob"])
    # The ten connections kept for those without a session are there: logins and /healthz.
    held = [socket.create_connection((g.host, g.port)) for _ in range(9)]
    assert g.request("GET", "/healthz").status == 200
    assert g.login(user="carol", password="carol's pw").status == 200
    for s in held:
        s.close()
    for c in conns["alice"] + conns["bob"]:
        c.close()


# ---- credential checks wait their turn ----

def concurrent_logins(g, attempts):
    """attempts: [(user, password, client address)], all sent at once; returns the statuses in order."""
    out = [None] * len(attempts)
    start = threading.Barrier(len(attempts))

    def one(i, user, password, addr):
        c = http.client.HTTPConnection(g.host, g.port, timeout=60)
        try:
            start.wait()
            c.request("POST", "/login", body=b"", headers={"Authorization": basic(user, password),
                                                           "X-Forwarded-For": addr})
            r = c.getresponse()
            r.read()
            out[i] = r.status
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i, *a)) for i, a in enumerate(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_failing_logins_from_many_addresses_do_not_turn_others_away(make_gateway, tmp_path):
    users = users_file(tmp_path, bob="bob's pw")
    g = make_gateway("--auth=file", f"--users-file={users}", "--trusted-proxies=127.0.0.0/8")
    # Far more checks at once than run at a time (8) or start in a second (20), from 40 addresses.
    attempts = [(f"user{i}", "wrong", f"198.51.100.{i}") for i in range(40)] + [("bob", "bob's pw", "192.0.2.9")]
    statuses = concurrent_logins(g, attempts)
    assert statuses[:40] == [401] * 40, statuses
    assert statuses[40] == 200
    m = g.metrics()
    assert m['helios_gateway_login_checks_refused_total{reason="queue_full"}'] == 0


def test_credential_checks_are_bounded_and_every_refusal_counted(make_gateway, tmp_path):
    users = users_file(tmp_path, bob="bob's pw")
    g = make_gateway("--auth=file", f"--users-file={users}", "--trusted-proxies=127.0.0.0/8",
                     "--login-checks-per-address=2", "--login-queue=20", "--login-queue-timeout=500ms")
    # One address may have two checks in progress or waiting; the rest from it are turned away.
    statuses = concurrent_logins(g, [("mallory", "x", "203.0.113.5")] * 6)
    assert statuses.count(429) >= 3 and statuses.count(401) >= 1, statuses
    m = g.metrics()
    assert m['helios_gateway_login_checks_refused_total{reason="per_address"}'] == statuses.count(429)
    assert g.wait_log("Credential check refused (too many in progress from the address)")
    # A queue of 20 (+8 running) with a 0.5 s deadline, 60 at once: some wait too long, some find it full.
    statuses = concurrent_logins(g, [(f"u{i}", "x", f"10.0.{i // 200}.{i % 200}") for i in range(60)])
    m = g.metrics()
    full = m['helios_gateway_login_checks_refused_total{reason="queue_full"}']
    late = m['helios_gateway_login_checks_refused_total{reason="timeout"}']
    assert full > 0 and late > 0, (statuses, m)
    assert statuses.count(503) == full + late
    assert g.wait_log("Credential check refused (the queue is full)")
    assert g.wait_log("Credential check refused (waited too long for its turn)")
    assert m["helios_gateway_login_checks_queued"] == 0
    # Once it has drained, logins work again.
    assert g.login(user="bob", password="bob's pw", headers={"X-Forwarded-For": "192.0.2.1"}).status == 200


# ---- a reverse proxy on a Unix socket ----

def unix_request(path, method, target, headers):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    c = http.client.HTTPConnection("localhost")
    c.sock = s
    c.request(method, target, body=b"" if method == "POST" else None, headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_forwarded_for_believed_only_from_a_trusted_unix_socket(make_gateway, tmp_path):
    users = users_file(tmp_path, alice="alice's pw")
    sock = os.path.join(str(tmp_path), "gw", "proxy.sock")
    g = make_gateway("--auth=file", f"--users-file={users}", f"--listen=unix:{sock}", "--trusted-proxies=unix",
                     "--listen-socket-mode=0600", "--login-burst=2", "--login-address-burst=3")
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == helios.gateway_uid()
    assert "trusted_proxies includes a loopback address" not in g.read_log()

    def via_proxy(addr, password="wrong"):
        return unix_request(sock, "POST", "/login", {"Authorization": basic("alice", password),
                                                      "X-Forwarded-For": addr})

    # Over the Unix socket the proxy's X-Forwarded-For is the client: each address has its own count.
    assert [via_proxy("198.51.100.1") for _ in range(3)] == [401, 401, 429]
    assert via_proxy("198.51.100.2", "alice's pw") == 200
    # Over TCP loopback it is not believed: rotating it does not get past the throttle.
    tcp = [g.login(user="alice", password="wrong", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status
           for i in range(4)]
    assert tcp == [401, 401, 429, 429]


def test_trusting_loopback_is_warned_about(make_gateway):
    g = make_gateway("--trusted-proxies=127.0.0.1")
    assert g.wait_log("trusted_proxies includes a loopback address")


# ---- reloading ----

def test_reload_applies_reloadable_settings_and_names_restart_only_ones(make_gateway):
    g = make_gateway(config="login_burst = 100\nmax_header_size = 8K\n")
    cookie = g.session()
    for _ in range(3):
        assert g.login(token="wrong-token-0123456789").status == 401
    with open(g.config_path, "w") as f:
        f.write("login_burst = 1\nmax_header_size = 4K\nworker_args = --nothing\n")
    g.signal(signal.SIGHUP)
    assert g.wait_log("Configuration reloaded."), g.read_log()
    log = g.read_log()
    # Each restart-only setting that changed is named; the reloadable one took effect.
    assert "Setting 'max_header_size' changed; it takes effect only on restart" in log
    assert "Setting 'worker_args' changed; it takes effect only on restart" in log
    assert "'login_burst' changed" not in log
    assert g.login(token="wrong-token-0123456789").status == 401
    assert g.login(token="wrong-token-0123456789").status == 429
    # The running values of the restart-only ones stay: a page still works.
    assert g.rpc(cookie).call("worker:info")
