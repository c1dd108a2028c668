"""What an admin meets: logins that outlive a restart of the gateway, and its state file."""

import os

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
