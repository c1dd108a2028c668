"""Entry point of the systemd suite under meson: exit 77 (skipped) with the reason when this host
cannot boot a container at all, else run the tests with pytest. A run in which every test skipped
is reported as skipped too, never as passed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

reason = machine.cannot_run_reason()
if reason:
    print(f"SKIP: cannot boot a container here: {reason}")
    sys.exit(77)

import signal  # noqa: E402

import pytest  # noqa: E402

# meson's timeout sends SIGTERM: turn it into an interruption, so that the container is still
# stopped and its mounts and cgroups removed.
signal.signal(signal.SIGTERM, signal.default_int_handler)


class Outcomes:
    def __init__(self):
        self.counts = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1


outcomes = Outcomes()
# Test files named on the command line are run instead of the whole directory.
args = sys.argv[1:]
where = [] if any(not a.startswith("-") for a in args) else [os.path.dirname(os.path.abspath(__file__))]
status = pytest.main(["-q", "-rs", "-p", "no:cacheprovider"] + where + args, plugins=[outcomes])
if status == 0 and not outcomes.counts.get("passed"):
    print("SKIP: no test ran")
    sys.exit(77)
sys.exit(status)
