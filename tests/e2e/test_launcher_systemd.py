"""helios-launcher in systemd mode against a stand-in service manager (fake-systemd.py) on a private
D-Bus: the unit it starts for each user (escaped as systemd escapes), the socket path it answers with,
and what it answers when the job fails, never ends, or ends before its StartUnit reply arrives."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import helios
from launcher_fixtures import Launcher
from test_launcher import ALICE, BOB, GW, PAM_OK, PASSWORDS, accounts, base, gw_conn, pam_services  # noqa: F401

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake-systemd.py")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: accounts, PAM files"),
    pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon"),
]


@pytest.fixture
def bus(tmp_path):
    """A private bus with the stand-in manager on it; yields (address, directory)."""
    address = f"unix:path={tmp_path}/bus"
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={address}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"{tmp_path}/bus"):
        assert daemon.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    fake = subprocess.Popen([sys.executable, FAKE, address, str(tmp_path)], stderr=open(tmp_path / "fake.log", "w"))
    while not os.path.exists(tmp_path / "ready"):
        assert fake.poll() is None, (tmp_path / "fake.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield address, tmp_path
    for p in (fake, daemon):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


@pytest.fixture
def settings_dir(base):  # noqa: F811
    """The launcher's sandbox settings (sandbox.conf, sandbox.d/USER.conf): none unless a test writes them."""
    d = os.path.join(base, "etc")
    os.makedirs(os.path.join(d, "sandbox.d"))
    return d


@pytest.fixture
def launcher(bus, accounts, pam_services, base, settings_dir):  # noqa: F811
    """The launcher's directory is one the gateway's account can traverse."""
    address, _ = bus
    dropins = os.path.join(base, "units")
    os.makedirs(dropins, exist_ok=True)
    lc = Launcher(base, GW, PAM_OK, ["--mode=systemd", "--start-timeout", "1s", "--unit-dropin-dir", dropins,
                                     "--config-dir", settings_dir])
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = address
    try:
        lc.start()
    finally:
        del os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
    yield lc
    assert lc.stop() == 0, lc.read_log()[-3000:]
    log = lc.read_log()
    for pattern in helios.SANITIZER_REPORTS:
        assert pattern not in log, log[-5000:]
    assert "still open at exit" not in log, log[-3000:]


def properties(directory):
    try:
        return (directory / "properties").read_text().splitlines()
    except FileNotFoundError:
        return []


def started(directory):
    try:
        return (directory / "started").read_text().splitlines()
    except FileNotFoundError:
        return []


def test_worker_starts_the_escaped_socket_unit(launcher, accounts, bus):
    _, d = bus
    c = gw_conn(launcher, accounts)
    status, path = c.request("worker", ALICE)
    assert status == "ok"
    assert path == os.path.join(launcher.runtime, "workers", ALICE + ".sock")
    # "-" in a user name is "\x2d" in the unit name; the manager was subscribed before the first start.
    unit = "helios-worker@" + ALICE.replace("-", "\\x2d") + ".socket"
    assert started(d) == [unit + " replace done 1"]
    # Policy before D-Bus: nothing is started for root or an invalid name.
    assert c.request("worker", "root") == ["error", "refused"]
    assert c.request("worker", "../x") == ["error", "refused"]
    assert len(started(d)) == 1
    # Logins do not involve the service manager.
    assert c.request("auth", ALICE, PASSWORDS[ALICE]) == ["ok"]
    assert "Started " + unit in launcher.read_log()


def test_failed_hanging_and_early_jobs(launcher, accounts, bus):
    _, d = bus
    (d / "behaviour").write_text("failed hang early")
    c = gw_conn(launcher, accounts)
    assert c.request("worker", BOB) == ["error", "failed"]
    t0 = time.monotonic()
    assert c.request("worker", BOB) == ["error", "timeout"]
    assert 0.9 < time.monotonic() - t0 < 3
    # JobRemoved before the StartUnit reply still counts.
    assert c.request("worker", BOB)[0] == "ok"
    assert c.request("worker", ALICE)[0] == "ok"
    log = launcher.read_log()
    assert "ended with result 'failed'" in log
    assert "took more than 1000 ms" in log


def test_out_of_order_answers(launcher, accounts, bus):
    _, d = bus
    (d / "behaviour").write_text("hang done")
    c = gw_conn(launcher, accounts)
    c.send("1", "worker", ALICE)
    c.send("2", "worker", BOB)
    # Bob's start is done long before Alice's runs out of time.
    assert c.recv() == ["2", "ok", os.path.join(launcher.runtime, "workers", BOB + ".sock")]
    assert c.recv() == ["1", "error", "timeout"]


def test_settings_are_set_on_the_users_service_before_its_socket_starts(launcher, accounts, bus, settings_dir):
    _, d = bus
    with open(os.path.join(settings_dir, "sandbox.conf"), "w") as f:
        f.write("memory_max = 1G\ncpu_weight = 50\n")
    with open(os.path.join(settings_dir, "sandbox.d", ALICE + ".conf"), "w") as f:
        f.write("memory_max = 4G\ntasks_max = infinity\n")
    c = gw_conn(launcher, accounts)
    assert c.request("worker", ALICE)[0] == "ok"
    assert c.request("worker", BOB)[0] == "ok"
    alice = "helios-worker@" + ALICE.replace("-", "\\x2d")
    bob = "helios-worker@" + BOB.replace("-", "\\x2d")
    # Runtime properties of the service, then the socket's start.
    assert properties(d) == [
        f"{alice}.service 1 MemoryMax={4 << 30} TasksMax={(1 << 64) - 1} CPUWeight=50",
        f"{bob}.service 1 MemoryMax={1 << 30} TasksMax=512 CPUWeight=50",
    ]
    assert started(d) == [f"{alice}.socket replace done 1", f"{bob}.socket replace done 1"]
    assert "is not applied under systemd" not in launcher.read_log()


def test_settings_only_a_unit_file_carries_are_said_not_applied(launcher, accounts, bus, settings_dir):
    with open(os.path.join(settings_dir, "sandbox.d", ALICE + ".conf"), "w") as f:
        f.write("pty_max = 32\nopen_files = 8192\n")
    c = gw_conn(launcher, accounts)
    assert c.request("worker", ALICE)[0] == "ok"
    log = launcher.read_log()
    assert f"pty_max of {ALICE} is not applied under systemd" in log
    # The default is what the unit carries: nothing to say.
    assert "open_files of" not in log


def test_a_settings_file_in_error_starts_nothing(launcher, accounts, bus, settings_dir):
    _, d = bus
    with open(os.path.join(settings_dir, "sandbox.d", ALICE + ".conf"), "w") as f:
        f.write("memory_max = lots\n")
    c = gw_conn(launcher, accounts)
    assert c.request("worker", ALICE) == ["error", "failed"]
    assert properties(d) == [] and started(d) == []
    assert "invalid value 'lots' for memory_max" in launcher.read_log()
