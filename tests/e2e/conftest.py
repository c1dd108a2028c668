import os

import pytest

import helios

helios.become_subreaper()


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
