import os
import shutil
import signal
import tempfile
import time

import pytest

import helios

helios.become_subreaper()


def pytest_configure(config):
    """Run as root, the tests' gateways run as an account of their own that must reach the test's
    directory. pytest's shared /tmp/pytest-of-root is made private again by every pytest that starts,
    so a root run keeps its temporary directories in one of its own instead."""
    if os.geteuid() == 0 and config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="helios-e2e-")
        config._helios_basetemp = config.option.basetemp


def pytest_unconfigure(config):
    base = getattr(config, "_helios_basetemp", None)
    if base:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def worker(tmp_path):
    """A started worker (socket ready) with its own empty home; stopped after the test."""
    w = helios.Worker(str(tmp_path)).start()
    yield w
    w.stop()
    w.assert_clean()


@pytest.fixture
def make_worker(tmp_path):
    """Factory for workers with extra command-line arguments."""
    made = []

    def make(*args, name="w", env=None):
        base = os.path.join(str(tmp_path), name)
        os.makedirs(base, exist_ok=True)
        w = helios.Worker(base, args=args, env=env).start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()
    for w in made:
        w.assert_clean()


@pytest.fixture
def client(worker):
    c = worker.connect()
    yield c
    c.close()


def _reap_workers(g):
    """Workers outlive the gateway on purpose; tests end them (and reap them: we are their subreaper)."""
    pids = g.worker_pids()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(helios.alive(p) for p in pids):
        helios.reap(pids)
        time.sleep(0.02)
    for pid in pids:
        if helios.alive(pid):
            os.kill(pid, signal.SIGKILL)
    helios.reap(pids)


@pytest.fixture
def make_gateway(tmp_path):
    """Factory for gateways (helios.Gateway arguments); each is stopped, its workers too, after the
    test. The gateway must have exited cleanly (status 0) unless the test stopped it otherwise."""
    made = []

    def make(*args, name="gw", start=True, **kw):
        g = helios.Gateway(tmp_path / name, args=args, **kw)
        made.append(g)
        return g.start() if start else g

    yield make
    for g in made:
        status = g.stop()
        _reap_workers(g)
        log = g.read_log()
        if not g.exit_judged:
            assert status in (0, None), f"gateway exited with {status}:\n{log[-3000:]}"
        assert "still open at exit" not in log, log[-3000:]
        assert "Sanitizer" not in log and "runtime error:" not in log, log[-5000:]


@pytest.fixture
def gateway(make_gateway):
    """A gateway in embedded token mode with the real worker."""
    return make_gateway()
