"""What an admin meets: logins that outlive a restart of the gateway, and its state file."""

import os
import socket
import subprocess
import time

import pytest

import helios


def test_sessions_survive_a_restart_and_ended_ones_stay_ended(make_gateway, tmp_path):
    state = tmp_path / "gw" / "state-dir"
    g = make_gateway(f"--state-dir={state}")
    kept, logged_out, revoked = g.session(), g.session(), g.session()
    g.rpc(kept).call("worker:info")
    assert g.request("POST", "/logout", cookie=logged_out, body=b"").status == 200
    rid = g.request("GET", "/api/session", cookie=revoked).json()["id"]
    assert g.request("POST", f"/api/sessions/revoke?id={rid}", cookie=kept, body=b"").status == 200

    saved = state / "sessions"
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600"
    text = saved.read_text()
    assert len(text.splitlines()) == 2  # the header and the one live session
    for cookie in (kept, logged_out, revoked):
        assert cookie.split("=", 1)[1] not in text  # only digests: the file opens nothing

    assert g.stop() == 0
    g.start()
    assert g.wait_log("Restored 1 session"), g.read_log()
    assert g.request("GET", "/api/session", cookie=kept).status == 200
    assert g.rpc(kept).call("worker:info")
    for cookie in (logged_out, revoked):
        assert g.request("GET", "/api/session", cookie=cookie).status == 401
        assert g.ws(cookie).status == 401


def test_a_saved_session_past_its_idle_time_is_dropped_at_start(make_gateway, tmp_path):
    state = tmp_path / "gw" / "state-dir"
    g = make_gateway(f"--state-dir={state}", "--session-idle-timeout=2s")
    cookie = g.session()
    assert g.stop() == 0
    import time
    time.sleep(2.5)
    g.start()
    assert g.wait_log("Restored 0 sessions"), g.read_log()
    assert g.request("GET", "/api/session", cookie=cookie).status == 401


def test_a_state_file_others_could_write_is_not_believed(make_gateway, tmp_path):
    state = tmp_path / "gw" / "state-dir"
    g = make_gateway(f"--state-dir={state}")
    cookie = g.session()
    assert g.stop() == 0
    os.chmod(state / "sessions", 0o666)
    g.start()
    assert g.wait_log("is not a private file"), g.read_log()
    assert g.request("GET", "/api/session", cookie=cookie).status == 401


def test_without_a_state_directory_a_restart_ends_sessions(make_gateway):
    g = make_gateway()
    cookie = g.session()
    assert g.stop() == 0
    g.start()
    assert g.request("GET", "/api/session", cookie=cookie).status == 401


# ---- settings that do nothing say so ----

def check_config(*args):
    out = subprocess.run([helios.GATEWAY, "--check-config", *args], capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout


def test_check_config_reports_ignored_settings_and_bad_files(tmp_path):
    cert, key = helios.make_self_signed(str(tmp_path))
    conf = tmp_path / "helios.conf"
    conf.write_text("listen = 0.0.0.0:443\nauth = file\nusers_file = /nonexistent/users\n"
                    f"worker = /bin/true\ncert = {cert}\nkey = {key}\n"
                    f"web_root = {helios.WEB_ROOT}\nmetrics_token_file = {tmp_path}/nothing\n")
    # As the unit runs it: the command line sets auth and launcher.
    rc, out = check_config("-c", str(conf), "--auth=pam", "--launcher=/run/helios/launcher.sock")
    lines = out.splitlines()
    assert f"ignored: auth: {conf}:2 is replaced by the command line's --auth" in lines, out
    assert any(l.startswith("ignored under systemd: listen: ") and "helios-gateway.socket" in l
               for l in lines), out
    assert "ignored: worker: with a launcher, helios-launcher starts the workers" in lines, out
    assert "ignored: users_file: it is read only with auth = file" in lines, out
    assert any(l.startswith(f"error: {tmp_path}/nothing: ") for l in lines), out
    assert rc == 1 and lines[-1] == "1 problem.", out

    # A key of another certificate, and a users file that is missing where it is used.
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = helios.make_self_signed(str(other))
    conf.write_text(f"auth = file\nusers_file = {tmp_path}/users\ncert = {cert}\nkey = {other_key}\n"
                    f"web_root = {helios.WEB_ROOT}\n")
    rc, out = check_config("-c", str(conf))
    assert "error: cert, key: the key does not belong to the certificate" in out.splitlines(), out
    assert f"error: {tmp_path}/users: No such file or directory" in out.splitlines(), out
    assert rc == 1 and out.splitlines()[-1] == "2 problems.", out

    conf.write_text(f"cert = {cert}\nkey = {key}\nweb_root = {helios.WEB_ROOT}\n")
    rc, out = check_config("-c", str(conf))
    assert rc == 0 and "error" not in out and "ignored:" not in out, out

    # Invalid values are refused as at start.
    conf.write_text("max_sessions = lots\n")
    rc, _ = check_config("-c", str(conf))
    assert rc == 1


def test_start_warns_about_every_ignored_setting(make_gateway):
    port = free_port()
    g = make_gateway("--session-idle-timeout=2h", start=False,
                     config="listen = 127.0.0.1:9\nsession_idle_timeout = 1h\n"
                            "auth = token\nusers_file = /etc/helios/users\nmax_sessions = 100\n")
    orig = g.command
    g.command = lambda: ["systemd-socket-activate", "-l", f"127.0.0.1:{port}"] + \
        [c for c in orig() if c not in ("127.0.0.1:0", "--listen")]
    g.start(expect_url=False)
    deadline = time.monotonic() + 10
    while True:
        try:
            helios.raw_request("127.0.0.1", port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Connection: close\r\n\r\n")
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    log = g.read_log()
    assert "Setting 'listen' is ignored: the listening sockets come from systemd" in log, log
    assert (f"Setting 'session_idle_timeout' is ignored: {g.config_path}:2 is replaced by the command "
            "line's --session-idle-timeout.") in log, log
    assert "Setting 'users_file' is ignored: it is read only with auth = file." in log, log
    assert "Setting 'max_sessions' is ignored" not in log, log


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the admin's view: sessions and logout over the admin socket ----

ADMIN_GROUP = "helios-e2e-adm"


def admin_group():
    import grp
    subprocess.run(["groupadd", "-f", ADMIN_GROUP], capture_output=True)
    return grp.getgrnam(ADMIN_GROUP).gr_gid


def admin(sock, *args, as_ids=None):
    cmd = [helios.GATEWAY, *args[:1], "--socket", str(sock), *args[1:]]
    if as_ids:
        uid, gid, groups = as_ids
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
               f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout, out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users and make a group")
def test_admin_lists_and_ends_sessions_over_its_socket(make_gateway, tmp_path):
    gid = admin_group()
    sock_dir = tmp_path / "gw" / "admin"
    sock_dir.mkdir(parents=True)
    sock_dir.chmod(0o755)
    sock = sock_dir / "admin.sock"
    g = make_gateway(f"--admin-socket={sock}", f"--admin-group={ADMIN_GROUP}", start=False)
    # The gateway's account is a member of the group it gives the socket to.
    orig = g.command
    g.command = lambda: [f"--groups={gid}" if c == "--clear-groups" else c
                         for c in helios.as_test_account(orig(), os.path.dirname(g.base))]
    g.start()
    for d in (tmp_path, tmp_path / "gw"):  # passable for the group member below
        d.chmod(0o755)
    user = helios.e2e_account().pw_name
    a, b = g.session(), g.session()
    page = g.rpc(a)
    page.call("worker:info")
    st = os.stat(sock)
    assert oct(st.st_mode & 0o777) == "0o660" and st.st_gid == gid

    rc, out, err = admin(sock, "sessions")
    assert rc == 0, err
    rows = [l.split() for l in out.splitlines()[1:]]
    assert out.splitlines()[0].split()[:3] == ["USER", "SESSION", "FROM"]
    assert sorted(r[5] for r in rows) == ["0", "1"] and {r[0] for r in rows} == {user}, out
    assert all(r[2] == "127.0.0.1" and r[3].endswith("Z") for r in rows), out
    id_b = g.request("GET", "/api/session", cookie=b).json()["id"]
    assert id_b in [r[1] for r in rows]

    # One session ends; the other and its page live on.
    rc, out, err = admin(sock, "logout", "--session", id_b)
    assert rc == 0 and out.strip() == "Ended 1 session.", (out, err)
    assert g.request("GET", "/api/session", cookie=b).status == 401
    assert page.call("worker:info")

    # A member of admin_group may look; someone else cannot even connect.
    rc, out, err = admin(sock, "sessions", "--user", user, as_ids=(65534, 65534, [gid]))
    assert rc == 0 and len(out.splitlines()) == 2, (out, err)
    rc, out, err = admin(sock, "sessions", as_ids=(65534, 65534, []))
    assert rc == 1 and "Cannot reach the gateway's admin socket" in err, (out, err)
    rc, out, err = admin(sock, "logout", "nobody-here")
    assert rc == 1 and "no sessions" in err

    # All of a user's sessions end, and their pages close as revoked.
    rc, out, err = admin(sock, "logout", user)
    assert rc == 0 and out.strip() == "Ended 1 session.", (out, err)
    with pytest.raises(helios.WsClosed) as closed:
        page.ws.recv(timeout=10)
    assert closed.value.code == 1008
    assert g.request("GET", "/api/session", cookie=a).status == 401
    assert "The admin (uid 0) ended 1 session of" in g.read_log()


def test_admin_socket_refuses_garbage(make_gateway, tmp_path):
    sock = tmp_path / "gw" / "run" / "admin.sock"
    g = make_gateway()
    g.session()
    for line in (b"x" * 300, b"sessions\x00\n", b"logout-session ../../etc\n", b"frobnicate\n"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(line)
            answer = b""
            try:
                while chunk := s.recv(4096):
                    answer += chunk
            except ConnectionResetError:
                # The overlong line: answered and closed with the rest of it unread.
                assert len(line) > 256 and answer in (b"", b"error: request too long\n")
                continue
        assert answer.startswith(b"error: "), (line, answer)
    # A client that says nothing is let go.
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        assert s.recv(10) == b""
    assert g.request("GET", "/healthz").status == 200


def test_no_library_line_per_connection_at_the_default_level(make_gateway):
    g = make_gateway(env={"HELIOS_LOG_LEVEL": "info"})
    for _ in range(3):
        assert g.request("GET", "/healthz").status == 200
    g.rpc().call("worker:info")
    assert g.raw(b"GARBAGE\r\n\r\n") is not None
    assert g.stop() == 0
    log = g.read_log()
    assert "libwebsockets" not in log, log
    assert "Serving" in log
