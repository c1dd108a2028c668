"""Every command README's "Running Helios for many users" gives an admin, run as written (those not
already covered by test_workers.py and test_services.py)."""

import json

import pytest

from machine import FIGURES, HELPER_DIR, instance


def systemctl_edit(machine, unit, text):
    """`systemctl edit UNIT` with an editor that writes text, as an admin would type it. systemctl edit
    wants a terminal: script(1) gives it one."""
    machine.exec("script", "--quiet", "--return", "--command", f"systemctl edit {unit}", "/dev/null", env={
        "SYSTEMD_EDITOR": f"/usr/bin/python3 {HELPER_DIR}/editor.py",
        "HELIOS_EDIT": text})


def test_enable_now_starts_both_sockets(machine):
    machine.systemctl("enable", "--now", "helios-launcher.socket", "helios-gateway.socket")
    try:
        for u in ("helios-launcher.socket", "helios-gateway.socket"):
            assert machine.systemctl("is-enabled", u).stdout.strip() == "enabled"
            assert machine.systemctl("is-active", u).stdout.strip() == "active"
        assert machine.show("helios-gateway.socket", "Listen")["Listen"] == "127.0.0.1:8080 (Stream)"
        assert machine.show("helios-launcher.socket", "Listen")["Listen"] == \
            "/run/helios/launcher.sock (SequentialPacket)"
        # Enabled means started at boot: both are wanted by sockets.target.
        wants = machine.show("sockets.target", "Wants")["Wants"].split()
        assert "helios-gateway.socket" in wants and "helios-launcher.socket" in wants
    finally:
        machine.systemctl("disable", "--now", "helios-launcher.socket", "helios-gateway.socket")


def test_listen_address_drop_in(machine):
    systemctl_edit(machine, "helios-gateway.socket", "[Socket]\nListenStream=\nListenStream=0.0.0.0:443\n")
    try:
        machine.systemctl("restart", "helios-gateway.socket")
        assert machine.show("helios-gateway.socket", "Listen")["Listen"] == "0.0.0.0:443 (Stream)"
        assert ":443" in machine.exec("ss", "-Hltn").stdout
    finally:
        machine.systemctl("stop", "helios-gateway.socket")
        machine.systemctl("revert", "helios-gateway.socket")
    assert machine.show("helios-gateway.socket", "Listen")["Listen"] == "127.0.0.1:8080 (Stream)"


def test_launcher_network_drop_in(machine):
    systemctl_edit(machine, "helios-launcher.service",
                   "[Service]\nRestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6\nIPAddressDeny=\n")
    try:
        p = machine.show("helios-launcher.service", "RestrictAddressFamilies", "IPAddressDeny")
        assert set(p["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
        assert p["IPAddressDeny"] == ""
    finally:
        machine.systemctl("revert", "helios-launcher.service")
    p = machine.show("helios-launcher.service", "RestrictAddressFamilies", "IPAddressDeny")
    assert set(p["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_NETLINK"}
    assert p["IPAddressDeny"] != ""


@pytest.fixture
def alice(machine, users):
    machine.systemctl("reset-failed", "helios-worker@alice.socket", "helios-worker@alice.service", check=False)
    machine.systemctl("start", "helios-worker@alice.socket")
    yield "alice"
    machine.systemctl("stop", "helios-worker@alice.socket", "helios-worker@alice.service")


def test_list_units_shows_workspaces(machine, alice):
    out = machine.systemctl("list-units", "helios-worker@*").stdout
    assert "helios-worker@alice.socket" in out and "listening" in out, out


def test_limits_for_everyone_and_in_total(machine, alice):
    # --runtime lasts until reboot: it lives under /run.
    machine.systemctl("set-property", "--runtime", "helios-worker@alice.service", "CPUWeight=50")
    assert machine.show("helios-worker@alice.service", "CPUWeight")["CPUWeight"] == "50"
    assert machine.exec("test", "-d", "/run/systemd/system.control/helios-worker@alice.service.d",
                        check=False).returncode == 0
    machine.systemctl("revert", "helios-worker@alice.service")
    assert machine.show("helios-worker@alice.service", "CPUWeight")["CPUWeight"] == "100"

    systemctl_edit(machine, "helios-worker@.service", "[Service]\nMemoryMax=4G\n")
    try:
        for user in ("alice", "mary-jane"):
            assert machine.show(f"helios-worker@{instance(user)}.service", "MemoryMax")["MemoryMax"] == str(4 << 30)
    finally:
        machine.systemctl("revert", "helios-worker@.service")
    assert machine.show("helios-worker@alice.service", "MemoryMax")["MemoryMax"] == str(2 << 30)

    machine.systemctl("set-property", "helios.slice", "MemoryMax=64G")
    try:
        assert machine.show("helios.slice", "MemoryMax")["MemoryMax"] == str(64 << 30)
    finally:
        machine.systemctl("revert", "helios.slice")


def test_root_talks_to_a_workspace_with_socat(machine, alice):
    out = machine.sh("echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"worker:info\"}' | "
                     "socat - UNIX-CONNECT:/run/helios/workers/alice.sock")
    assert json.loads(out.stdout)["result"]["home"] == "/home/alice"


def test_restart_brings_unsaved_edits_back(machine, alice):
    """README: restarting a workspace loses nothing the user typed."""
    script = "printf 'one\\n' > ~/notes.txt\n"
    machine.client("/run/helios/workers/alice.sock", "run", input=script)
    c = ["/run/helios/workers/alice.sock", "call"]
    machine.client(*c, "project:load", json.dumps({"root": "/home/alice"}))
    opened = machine.client(*c, "file:open", json.dumps({"path": "notes.txt"}))["response"]["result"]
    # One connection per call: open again on this connection, then edit it.
    edit = {"path": "notes.txt", "version": opened["version"],
            "changes": [{"from": 0, "to": 0, "insert": "zero "}]}
    r = machine.client(*c, "file:edit", json.dumps(edit))["response"]
    assert "result" in r, r
    machine.systemctl("restart", "helios-worker@alice.service")
    state = machine.client(*c, "workspace:state")["response"]["result"]
    files = {f["path"]: f for f in state["openFiles"]}
    assert any(p.endswith("notes.txt") and f["dirty"] for p, f in files.items()), state
    FIGURES["unsaved edits across systemctl restart"] = "kept"
