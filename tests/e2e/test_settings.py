"""settings:get / settings:set through the real worker: defaults, checks and bounds, the change told
to every connection, and the settings kept in the state directory across a restart of the worker."""

import json
import os

import pytest

from helios import RpcError

DEFAULTS = {"theme": "dark", "fontSize": 13, "tabWidth": 4, "wordWrap": False, "expandedFolders": []}


def settings_file(worker):
    return os.path.join(worker.state, "helios", "settings.json")


def test_defaults_then_a_change_reaches_every_connection_and_survives_a_restart(worker):
    with worker.connect() as a, worker.connect() as b:
        assert a.call("settings:get")["settings"] == DEFAULTS
        change = {"theme": "light", "fontSize": 16, "wordWrap": True, "expandedFolders": [worker.home + "/src"]}
        got = a.call("settings:set", {"settings": change})["settings"]
        assert got == {**DEFAULTS, **change}
        for c in (a, b):
            told = c.wait_notification("settings:changed")
            assert told["settings"] == got
        # Another change merges with what is there.
        got = b.call("settings:set", {"settings": {"tabWidth": 2}})["settings"]
        assert got == {**DEFAULTS, **change, "tabWidth": 2}
        # Setting what is already set writes and tells nothing.
        a.collect_notifications(0.2)
        b.call("settings:set", {"settings": {"tabWidth": 2}})
        assert not [n for n in a.collect_notifications(0.3) if n["method"] == "settings:changed"]
    with open(settings_file(worker)) as f:
        assert json.load(f) == got
    assert os.stat(settings_file(worker)).st_mode & 0o777 == 0o600

    worker.kill()
    worker.start()
    with worker.connect() as c:
        assert c.call("settings:get")["settings"] == got


@pytest.mark.parametrize("change, setting", [
    ({"theme": "solarized"}, "theme"),
    ({"theme": 3}, "theme"),
    ({"fontSize": 7}, "fontSize"),
    ({"fontSize": 33}, "fontSize"),
    ({"fontSize": 12.5}, "fontSize"),
    ({"tabWidth": 0}, "tabWidth"),
    ({"wordWrap": "yes"}, "wordWrap"),
    ({"expandedFolders": "/x"}, "expandedFolders"),
    ({"expandedFolders": ["relative"]}, "expandedFolders"),
    ({"expandedFolders": ["/" + "a" * 4096]}, "expandedFolders"),
    ({"expandedFolders": [f"/d{i}" for i in range(513)]}, "expandedFolders"),
    ({"anything": "else"}, "anything"),
    ({"fontSize": 14, "colour": "red"}, "colour"),
])
def test_anything_but_known_settings_in_range_is_refused_and_nothing_changes(worker, change, setting):
    with worker.connect() as c:
        with pytest.raises(RpcError) as e:
            c.call("settings:set", {"settings": change})
        assert e.value.code == -32602
        assert e.value.data["setting"] == setting
        assert c.call("settings:get")["settings"] == DEFAULTS
    assert not os.path.exists(settings_file(worker))


def test_params_must_be_an_object_of_settings(worker):
    with worker.connect() as c:
        for params in ({}, {"settings": []}, {"settings": "dark"}):
            with pytest.raises(RpcError) as e:
                c.call("settings:set", params)
            assert e.value.code == -32602


def test_the_whole_is_bounded(worker):
    """512 folders of 4096 bytes would be 2 MiB: the whole is refused beyond 64 KiB."""
    folders = [f"/{i:03d}" + "x" * 200 for i in range(400)]
    with worker.connect() as c:
        with pytest.raises(RpcError) as e:
            c.call("settings:set", {"settings": {"expandedFolders": folders}})
        assert e.value.code == -32004 and e.value.data["limit"] == 65536
        ok = c.call("settings:set", {"settings": {"expandedFolders": folders[:100]}})["settings"]
        assert len(ok["expandedFolders"]) == 100


def test_a_damaged_file_gives_the_defaults(worker):
    os.makedirs(os.path.dirname(settings_file(worker)), exist_ok=True)
    for text in ("{not json", '{"theme": "neon"}', "[]", '{"fontSize": 1e9}'):
        with open(settings_file(worker), "w") as f:
            f.write(text)
        worker.kill()
        worker.start()
        with worker.connect() as c:
            assert c.call("settings:get")["settings"] == DEFAULTS
