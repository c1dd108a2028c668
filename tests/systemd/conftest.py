import os
import time

import pytest

import machine as machine_mod

BUILD_DIR = os.environ.get("HELIOS_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")


@pytest.fixture(scope="session")
def machine():
    """One container for the whole suite (booting is cheap, but each test would still pay for it),
    with Helios installed and set up the way the README tells an admin to."""
    reason = machine_mod.cannot_run_reason()
    if reason:
        pytest.skip(f"no container: {reason}")
    machine_mod.clean_stale(BUILD_DIR)
    m = machine_mod.Machine(BUILD_DIR, os.path.join(BUILD_DIR, "meson-logs", "systemd"))
    try:
        m.start()
    except machine_mod.CannotRun as e:
        pytest.skip(f"no container: {e}")
    try:
        # What `meson install` leaves to the admin (a package would do it in its postinst).
        m.exec("systemd-sysusers", "helios.conf")
        m.exec("systemd-tmpfiles", "--create", "helios.conf")
        m.systemctl("daemon-reload")
        # The container boots into basic.target; logins are allowed (pam_nologin) once this has run,
        # as multi-user.target does on a real machine.
        m.systemctl("start", "systemd-user-sessions.service")
        yield m
    finally:
        # The container's whole journal, for whoever reads a failure.
        with open(os.path.join(m.log_dir, "journal.txt"), "w") as f:
            f.write(m.exec("journalctl", "--no-pager", "-o", "short-monotonic", check=False).stdout)
        t = time.monotonic()
        m.stop()
        m.timings["stop"] = time.monotonic() - t
        machine_mod.FIGURES.update({f"container {k}": f"{v:.3f} s" for k, v in m.timings.items()})


@pytest.fixture(scope="session")
def users(machine):
    """Accounts inside the container: name -> password. mary-jane has the '-' that systemd escapes in
    instance names made from paths; bob is another user who must not reach their workers."""
    made = {}
    for name in ("alice", "mary-jane", "bob"):
        made[name] = machine_mod.random_password()
        machine.add_user(name, made[name])
    return made


def pytest_terminal_summary(terminalreporter):
    for k, v in machine_mod.FIGURES.items():
        terminalreporter.write_line(f"{k}: {v}")
