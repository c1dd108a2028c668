"""The workspace service through the real worker: shared buffers, notifications, saves and conflicts,
and unsaved edits that survive kill -9."""

import os
import subprocess
import time

import pytest

from helios import RpcError

EMOJI = "\U0001F600"


@pytest.fixture
def ws(worker):
    """The worker, with the home directory loaded as the project."""
    with worker.connect() as c:
        c.call("project:load", {"root": worker.home})
    return worker


@pytest.fixture
def c1(ws):
    c = ws.connect()
    yield c
    c.close()


@pytest.fixture
def c2(ws):
    c = ws.connect()
    yield c
    c.close()


def make_file(worker, name, text):
    path = worker.path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return os.path.realpath(path)


def read_file(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def open_files(state):
    return {f["path"]: f for f in state["openFiles"]}


def wait_state(client, pred, timeout=5.0):
    """The first state:updated that satisfies pred."""
    return client.wait_notification("state:updated", pred, timeout)


def test_two_clients_share_one_buffer(ws, c1, c2):
    path = make_file(ws, "a.txt", f"hello {EMOJI} world\n")
    opened = c1.call("file:open", {"path": path})
    assert opened["path"] == path
    assert opened["content"] == f"hello {EMOJI} world\n"
    assert opened["encoding"] == "utf-8"
    assert opened["version"] == 1 and opened["dirty"] is False
    c2.call("file:open", {"path": "a.txt"})  # relative to the project: the same buffer

    # The emoji is UTF-16 units 6 and 7.
    res = c1.call("file:edit", {"path": path, "version": 1,
                                "changes": [{"from": 6, "to": 8, "insert": "there"}]})
    assert res == {"version": 2}

    edited = c2.wait_notification("file:edited")
    assert edited == {"path": path, "version": 2,
                      "changes": [{"from": 6, "to": 8, "insert": "there"}]}
    for c in (c1, c2):
        st = wait_state(c, lambda p: open_files(p).get(path, {}).get("version") == 2)
        assert open_files(st)[path]["dirty"] is True
    # The editing client is not sent its own edit back.
    assert not [n for n in c1.collect_notifications(0.3) if n["method"] == "file:edited"]

    live = c2.call("file:open", {"path": path})
    assert live["content"] == "hello there world\n"
    assert live["version"] == 2 and live["dirty"] is True
    # Nothing reached the disk.
    assert read_file(path) == f"hello {EMOJI} world\n"


def test_stale_and_invalid_edits_are_refused(ws, c1, c2):
    path = make_file(ws, "b.txt", "abc")
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 3, "to": 3, "insert": "d"}]})
    with pytest.raises(RpcError) as e:
        c2.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "X"}]})
    assert e.value.code == -32003
    assert e.value.data["reason"] == "stale version" and e.value.data["version"] == 2
    with pytest.raises(RpcError) as e:
        c2.call("file:edit", {"path": path, "version": 2, "changes": [
            {"from": 0, "to": 0, "insert": "ok"}, {"from": 50, "to": 60, "insert": ""}]})
    assert e.value.code == -32602
    assert c2.call("file:open", {"path": path})["content"] == "abcd"


def test_save_then_read_back(ws, c1):
    path = make_file(ws, "s.txt", "one\n")
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 3, "insert": "two"}]})
    res = c1.call("file:save", {"path": path})
    assert res["version"] == 2 and isinstance(res["tag"], str)
    assert read_file(path) == "two\n"
    st = wait_state(c1, lambda p: open_files(p).get(path, {}).get("dirty") is False
                    and open_files(p)[path]["version"] == 2)
    assert open_files(st)[path]["diskChanged"] is False


def test_save_refused_after_outside_change_then_forced(ws, c1):
    path = make_file(ws, "c.txt", "mine\n")
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "my "}]})
    subprocess.run(["sh", "-c", 'echo theirs >> "$0"', path], check=True)
    # The dirty buffer keeps the user's text and is flagged.
    wait_state(c1, lambda p: open_files(p).get(path, {}).get("diskChanged") is True)
    with pytest.raises(RpcError) as e:
        c1.call("file:save", {"path": path})
    assert e.value.code == -32003
    assert e.value.data["path"] == path
    assert read_file(path) == "mine\ntheirs\n"
    res = c1.call("file:save", {"path": path, "force": True})
    assert res["version"] == 2
    assert read_file(path) == "my mine\n"
    st = c1.call("workspace:state")
    assert open_files(st)[path]["dirty"] is False and open_files(st)[path]["diskChanged"] is False


def test_close_dirty_needs_discard(ws, c1, c2):
    path = make_file(ws, "d.txt", "x")
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 1, "to": 1, "insert": "y"}]})
    with pytest.raises(RpcError) as e:
        c2.call("file:close", {"path": path})
    assert e.value.code == -32020
    assert path in open_files(c2.call("workspace:state"))
    assert c2.call("file:close", {"path": path, "discard": True}) == {}
    for c in (c1, c2):
        wait_state(c, lambda p: path not in open_files(p))
    assert read_file(path) == "x"
    assert c1.call("file:open", {"path": path})["content"] == "x"


def test_unsaved_edits_survive_kill9(ws, c1):
    path = make_file(ws, "k.txt", "before\n")
    other = make_file(ws, "clean.txt", "untouched\n")
    c1.call("file:open", {"path": other})
    c1.call("file:open", {"path": path})
    version = 1
    for i, word in enumerate(["first ", "second ", f"{EMOJI} "]):
        c1.call("file:edit", {"path": path, "version": version,
                              "changes": [{"from": 0, "to": 0, "insert": word}]})
        version += 1
    expected = f"{EMOJI} second first before\n"
    c1.close()

    ws.kill()
    ws.start()
    with ws.connect() as c:
        st = c.call("workspace:state")
        files = open_files(st)
        assert st["root"] == os.path.realpath(ws.home)
        assert files[path]["dirty"] is True and files[path]["version"] == version
        assert files[path]["diskChanged"] is False
        assert files[other]["dirty"] is False
        buf = c.call("file:open", {"path": path})
        assert buf["content"] == expected and buf["dirty"] is True
        assert read_file(path) == "before\n"
        # The restored buffer is based on what is on disk: a plain save goes through.
        c.call("file:save", {"path": path})
        assert read_file(path) == expected
    assert "Restored unsaved changes" in ws.read_log()


def test_clean_buffer_follows_outside_change(ws, c1, c2):
    path = make_file(ws, "r.txt", "old\n")
    c1.call("file:open", {"path": path})
    c2.call("file:open", {"path": path})
    time.sleep(0.05)
    with open(path, "w", encoding="utf-8") as f:
        f.write("new content\n")
    for c in (c1, c2):
        ev = c.wait_notification("file:edited", lambda p: p["path"] == path)
        assert ev["version"] == 2
        assert ev["changes"] == [{"from": 0, "to": 4, "insert": "new content\n"}]
    buf = c1.call("file:open", {"path": path})
    assert buf["content"] == "new content\n" and buf["version"] == 2 and buf["dirty"] is False


def test_revert(ws, c1, c2):
    path = make_file(ws, "v.txt", "disk\n")
    c1.call("file:open", {"path": path})
    c2.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 4, "insert": "memory"}]})
    res = c2.call("file:revert", {"path": path})
    assert res["content"] == "disk\n" and res["version"] == 3 and res["dirty"] is False
    # Every mirror follows, the reverting client's too.
    for c in (c1, c2):
        ev = c.wait_notification("file:edited", lambda p: p["version"] == 3)
        assert ev["changes"] == [{"from": 0, "to": 7, "insert": "disk\n"}]
    assert open_files(c1.call("workspace:state"))[path]["dirty"] is False


def test_state_directory_is_private(ws, c1):
    path = make_file(ws, "p.txt", "p")
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "q"}]})
    state_dir = c1.call("worker:info")["stateDir"]
    assert os.stat(state_dir).st_mode & 0o777 == 0o700
    names = os.listdir(state_dir)
    # Journal files are named by a hash, never by the path.
    assert names and not any("p.txt" in n for n in names)
    for n in names:
        assert os.stat(os.path.join(state_dir, n)).st_mode & 0o777 == 0o600


# --- Renames and deletions through fs: the buffers follow, every connection is told ---------------


def edit(client, path, version, text, at=0):
    return client.call("file:edit", {"path": path, "version": version,
                                     "changes": [{"from": at, "to": at, "insert": text}]})["version"]


def test_open_buffer_follows_a_rename(ws, c1, c2):
    path = make_file(ws, "old.txt", "text\n")
    new = os.path.join(os.path.dirname(path), "new.txt")
    c1.call("file:open", {"path": path})
    c2.call("file:open", {"path": path})
    version = edit(c1, path, 1, "unsaved ")

    assert c1.call("fs:rename", {"from": path, "to": new}) == {"from": path, "to": new}
    # Every connection hears of it, the one that renamed and the other.
    for c in (c1, c2):
        ev = c.wait_notification("file:renamed", lambda p: p["oldPath"] == path)
        assert ev == {"path": new, "oldPath": path, "version": version}
        st = wait_state(c, lambda p: new in open_files(p))
        assert path not in open_files(st)
        assert open_files(st)[new]["dirty"] is True and open_files(st)[new]["diskChanged"] is False
    buf = c2.call("file:open", {"path": new})
    assert buf["content"] == "unsaved text\n" and buf["dirty"] is True and buf["version"] == version
    # The old name is not open any more, and editing goes on under the new one from either connection.
    with pytest.raises(RpcError) as e:
        c1.call("file:edit", {"path": path, "version": version, "changes": [{"from": 0, "to": 0, "insert": "x"}]})
    assert e.value.code == -32001
    edit(c2, new, version, "!", at=len("unsaved text"))
    c1.call("file:save", {"path": new})
    assert read_file(new) == "unsaved text!\n"
    assert not os.path.exists(path)


def test_buffers_follow_a_folder_move_and_a_restart(ws, c1, c2):
    a = make_file(ws, "proj/a.txt", "a\n")
    b = make_file(ws, "proj/sub/b.txt", "b\n")
    other = make_file(ws, "project-notes.txt", "not below proj\n")
    for p in (a, b, other):
        c1.call("file:open", {"path": p})
    va = edit(c1, a, 1, "edited ")
    home = os.path.realpath(ws.home)
    os.makedirs(os.path.join(home, "archive"))
    dest = os.path.join(home, "archive", "proj2")

    c1.call("fs:rename", {"from": os.path.join(home, "proj"), "to": dest})
    moved = {c2.wait_notification("file:renamed", lambda p, o=o: p["oldPath"] == o)["path"] for o in (a, b)}
    assert moved == {os.path.join(dest, "a.txt"), os.path.join(dest, "sub", "b.txt")}
    st = wait_state(c2, lambda p: os.path.join(dest, "a.txt") in open_files(p)
                    and os.path.join(dest, "sub", "b.txt") in open_files(p))
    files = open_files(st)
    assert set(files) == {os.path.join(dest, "a.txt"), os.path.join(dest, "sub", "b.txt"), other}
    assert files[os.path.join(dest, "a.txt")]["dirty"] is True

    # The journal moved too: a killed worker brings the buffer back under its new name.
    c1.close()
    c2.close()
    ws.kill()
    ws.start()
    with ws.connect() as c:
        files = open_files(c.call("workspace:state"))
        assert a not in files and files[os.path.join(dest, "a.txt")]["dirty"] is True
        buf = c.call("file:open", {"path": os.path.join(dest, "a.txt")})
        assert buf["content"] == "edited a\n" and buf["version"] == va
        c.call("file:save", {"path": os.path.join(dest, "a.txt")})
        assert read_file(os.path.join(dest, "a.txt")) == "edited a\n"
        assert not os.path.exists(os.path.join(home, "proj"))


def test_rename_over_an_open_file(ws, c1):
    src = make_file(ws, "src.txt", "source\n")
    clean = make_file(ws, "clean.txt", "clean\n")
    dirty = make_file(ws, "dirty.txt", "dirty\n")
    for p in (src, clean, dirty):
        c1.call("file:open", {"path": p})
    edit(c1, src, 1, "my ")
    edit(c1, dirty, 1, "mine ")

    # Over a clean buffer: it gives way to the one that moved there.
    c1.call("fs:rename", {"from": src, "to": clean, "overwrite": True})
    st = wait_state(c1, lambda p: src not in open_files(p))
    assert open_files(st)[clean]["dirty"] is True
    assert c1.call("file:open", {"path": clean})["content"] == "my source\n"

    # Over a buffer with unsaved edits: neither is lost; both stay, flagged.
    c1.call("fs:rename", {"from": clean, "to": dirty, "overwrite": True})
    st = wait_state(c1, lambda p: open_files(p).get(clean, {}).get("diskChanged") is True
                    and open_files(p).get(dirty, {}).get("diskChanged") is True)
    assert c1.call("file:open", {"path": clean})["content"] == "my source\n"
    assert c1.call("file:open", {"path": dirty})["content"] == "mine dirty\n"


def test_deleted_open_file_says_so(ws, c1, c2):
    path = make_file(ws, "gone/doomed.txt", "x\n")
    c1.call("file:open", {"path": path})
    c2.call("fs:delete", {"path": os.path.dirname(path), "recursive": True})
    for c in (c1, c2):
        st = wait_state(c, lambda p: open_files(p).get(path, {}).get("diskChanged") is True)
        assert open_files(st)[path]["dirty"] is False
    # The text is still there, and can be saved again.
    assert c1.call("file:open", {"path": path})["content"] == "x\n"
