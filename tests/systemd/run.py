"""Entry point of the systemd suite under meson: exit 77 (skipped) with the reason when this host
cannot boot a container at all, else run the tests with pytest."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

reason = machine.cannot_run_reason()
if reason:
    print(f"SKIP: cannot boot a container here: {reason}")
    sys.exit(77)

import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", os.path.dirname(os.path.abspath(__file__))]
                     + sys.argv[1:]))
