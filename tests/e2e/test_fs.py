"""The file-system service as a client sees it: fs:* methods over the worker's socket, the
workspace boundary (nothing outside the roots is read, written or even looked at, whatever paths
and symlinks say), and file:changed_on_disk notifications for changes made outside Helios."""

import base64
import os
import stat
import subprocess
import time

import pytest

from helios import RpcError

NOT_FOUND = -32001
DENIED = -32002
CONFLICT = -32003
TOO_LARGE = -32004
EXISTS = -32005
WRONG_TYPE = -32006
INVALID_PARAMS = -32602


def fail(client, method, params):
    """Call a method that must fail; return the RpcError."""
    with pytest.raises(RpcError) as e:
        client.call(method, params)
    return e.value


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def temp_files(directory):
    return [n for n in os.listdir(directory) if n.startswith(".helios-")]


@pytest.fixture
def outside(tmp_path):
    """A directory next to the worker's home, outside its workspace, with a secret in it."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("top secret\n")
    return d


# --- Reading and writing ---------------------------------------------------------------------


def test_write_then_read_round_trip(client, worker):
    res = client.call("fs:write_file", {"path": "hello.txt", "content": "héllo\nwörld\n"})
    path = worker.path("hello.txt")
    assert res["path"] == path
    assert res["size"] == len("héllo\nwörld\n".encode())
    assert read_bytes(path) == "héllo\nwörld\n".encode()

    got = client.call("fs:read_file", {"path": path})
    assert got == {"path": path, "content": "héllo\nwörld\n", "encoding": "utf-8",
                   "size": res["size"], "mtime": res["mtime"], "tag": res["tag"]}
    st = os.stat(path)
    assert abs(got["mtime"] - st.st_mtime_ns // 1_000_000) <= 1
    assert client.call("fs:stat", {"path": "hello.txt"})["tag"] == res["tag"]


def test_read_chooses_base64_for_binary(client, worker):
    write_bytes(worker.path("bin"), b"\x00\x01\xfe\xff")
    write_bytes(worker.path("nul.txt"), b"text\x00with nul")
    write_bytes(worker.path("latin1.txt"), "café".encode("latin-1"))

    for name, data in [("bin", b"\x00\x01\xfe\xff"), ("nul.txt", b"text\x00with nul"),
                       ("latin1.txt", "café".encode("latin-1"))]:
        got = client.call("fs:read_file", {"path": name})
        assert got["encoding"] == "base64"
        assert base64.b64decode(got["content"], validate=True) == data
        assert got["size"] == len(data)

    # Asked for text that is not: refused with the reason, not mangled.
    e = fail(client, "fs:read_file", {"path": "latin1.txt", "encoding": "utf-8"})
    assert e.code == INVALID_PARAMS and "UTF-8" in e.data["reason"]
    e = fail(client, "fs:read_file", {"path": "nul.txt", "encoding": "utf-8"})
    assert e.code == INVALID_PARAMS and "NUL" in e.data["reason"]

    # Text may be asked for as base64.
    write_bytes(worker.path("t.txt"), b"plain")
    got = client.call("fs:read_file", {"path": "t.txt", "encoding": "base64"})
    assert got["encoding"] == "base64" and got["content"] == base64.b64encode(b"plain").decode()


def test_base64_round_trip_of_every_byte_value(client, worker):
    data = bytes(range(256)) * 3 + bytes(range(255, -1, -1))
    res = client.call("fs:write_file", {"path": "all.bin", "encoding": "base64",
                                        "content": base64.b64encode(data).decode()})
    assert res["size"] == len(data)
    assert read_bytes(worker.path("all.bin")) == data
    got = client.call("fs:read_file", {"path": "all.bin"})
    assert got["encoding"] == "base64"
    assert base64.b64decode(got["content"]) == data


@pytest.mark.parametrize("bad", ["AAE", "AAF=", "A===", "AA==\n", "AA AA", "AA-_", "é==="])
def test_invalid_base64_is_refused_and_nothing_written(client, worker, bad):
    e = fail(client, "fs:write_file", {"path": "x.bin", "content": bad, "encoding": "base64"})
    assert e.code == INVALID_PARAMS
    assert not os.path.exists(worker.path("x.bin"))
    assert temp_files(worker.home) == []


def test_saves_sent_together_are_answered_in_order_from_their_own_content(client, worker):
    # A large save first, so that those after it wait their turn and are handled from their params
    # later; the content of each (text, base64, invalid base64) is read only then, off the loop.
    big = os.urandom(3 << 20)
    saves = [
        ("big.bin", {"content": base64.b64encode(big).decode(), "encoding": "base64"}),
        ("a.txt", {"content": "ä" * 70_000}),
        ("b.bin", {"content": base64.b64encode(b"\x00\xff" * 40_000).decode(), "encoding": "base64"}),
        ("bad.bin", {"content": "AAE", "encoding": "base64"}),
        ("c.txt", {"content": ""}),
    ]
    ids = []
    for name, params in saves:
        ids.append(client.next_id)
        client.send({"jsonrpc": "2.0", "id": client.next_id, "method": "fs:write_file",
                     "params": {"path": name, **params}})
        client.next_id += 1
    # And the same in a batch, whose members run one after the other.
    client.send([{"jsonrpc": "2.0", "id": "batch-" + name, "method": "fs:write_file",
                  "params": {"path": "batch-" + name, **params}} for name, params in saves])
    answers = [client.wait_response(i, timeout=30) for i in ids]
    batch = client.wait_response(None, timeout=30)
    by_id = {a["id"]: a for a in batch}
    for (name, params), answer, batched in zip(saves, answers, [by_id["batch-" + n] for n, _ in saves]):
        for prefix, a in (("", answer), ("batch-", batched)):
            if name == "bad.bin":
                assert a["error"]["code"] == INVALID_PARAMS, a
                assert not os.path.exists(worker.path(prefix + name))
                continue
            assert "result" in a, a
            want = (base64.b64decode(params["content"]) if params.get("encoding") == "base64"
                    else params["content"].encode())
            assert a["result"]["size"] == len(want)
            assert read_bytes(worker.path(prefix + name)) == want
    assert temp_files(worker.home) == []


def test_atomic_write_keeps_mode_and_leaves_no_temp_files(client, worker):
    path = worker.path("run.sh")
    write_bytes(path, b"#!/bin/sh\necho old\n")
    os.chmod(path, 0o751)
    with open(path, "rb") as reader:
        for i in range(5):
            client.call("fs:write_file", {"path": "run.sh", "content": f"#!/bin/sh\necho {i}\n"})
        # Replaced by a rename, not rewritten in place: a reader of the old file still sees it whole.
        assert reader.read() == b"#!/bin/sh\necho old\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o751
    assert read_bytes(path) == b"#!/bin/sh\necho 4\n"
    assert sorted(os.listdir(worker.home)) == ["run.sh"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file: nothing to refuse")
def test_read_only_file_is_not_replaced(client, worker):
    path = worker.path("ro.txt")
    write_bytes(path, b"keep me")
    os.chmod(path, 0o444)
    e = fail(client, "fs:write_file", {"path": "ro.txt", "content": "overwritten"})
    assert e.code == DENIED and e.data["errno"] == "EACCES"
    assert read_bytes(path) == b"keep me"


def test_new_file_mode_follows_umask(client, worker):
    old = os.umask(0o022)  # the worker inherited the test's umask when it started
    os.umask(old)
    client.call("fs:write_file", {"path": "new.txt", "content": "x"})
    assert stat.S_IMODE(os.stat(worker.path("new.txt")).st_mode) == 0o666 & ~old


def test_expected_tag_conflict_after_outside_append(client, worker):
    path = worker.path("notes.txt")
    write_bytes(path, b"line 1\n")
    tag = client.call("fs:read_file", {"path": "notes.txt"})["tag"]

    subprocess.run(["sh", "-c", 'echo "line 2" >> notes.txt'], cwd=worker.home, check=True)

    e = fail(client, "fs:write_file", {"path": "notes.txt", "content": "mine\n", "expectedTag": tag})
    assert e.code == CONFLICT
    current = client.call("fs:stat", {"path": "notes.txt"})["tag"]
    assert e.data == {"path": path, "tag": current}
    assert current != tag
    assert read_bytes(path) == b"line 1\nline 2\n", "the outside change survives"

    res = client.call("fs:write_file", {"path": "notes.txt", "content": "mine\n", "expectedTag": current})
    assert read_bytes(path) == b"mine\n"
    assert res["tag"] != current


def test_expected_tag_of_a_removed_file(client, worker):
    write_bytes(worker.path("gone.txt"), b"x")
    tag = client.call("fs:stat", {"path": "gone.txt"})["tag"]
    os.unlink(worker.path("gone.txt"))
    e = fail(client, "fs:write_file", {"path": "gone.txt", "content": "y", "expectedTag": tag})
    assert e.code == CONFLICT and e.data == {"path": worker.path("gone.txt"), "tag": None}
    assert not os.path.exists(worker.path("gone.txt"))


def test_write_errors(client, worker):
    e = fail(client, "fs:write_file", {"path": "no/such/dir/f", "content": "x"})
    assert e.code == NOT_FOUND and e.data["errno"] == "ENOENT"
    os.mkdir(worker.path("d"))
    e = fail(client, "fs:write_file", {"path": "d", "content": "x"})
    assert e.code == WRONG_TYPE and e.data["errno"] == "EISDIR"
    e = fail(client, "fs:write_file", {"path": worker.home, "content": "x"})
    assert e.code == WRONG_TYPE
    write_bytes(worker.path("file"), b"x")
    e = fail(client, "fs:write_file", {"path": "file/child", "content": "x"})
    assert e.code == WRONG_TYPE and e.data["errno"] == "ENOTDIR"
    assert temp_files(worker.home) == [] and temp_files(worker.path("d")) == []


def test_write_through_symlink_inside_writes_the_target(client, worker):
    os.mkdir(worker.path("real"))
    write_bytes(worker.path("real/file.txt"), b"old")
    os.symlink("real/file.txt", worker.path("alias"))
    os.symlink(worker.path("real"), worker.path("dirlink"))  # absolute, but inside

    client.call("fs:write_file", {"path": "alias", "content": "via link"})
    assert os.path.islink(worker.path("alias"))
    assert read_bytes(worker.path("real/file.txt")) == b"via link"

    client.call("fs:write_file", {"path": "dirlink/file.txt", "content": "via dir link"})
    assert read_bytes(worker.path("real/file.txt")) == b"via dir link"
    assert temp_files(worker.path("real")) == [] and temp_files(worker.home) == []


def test_read_errors(client, worker):
    e = fail(client, "fs:read_file", {"path": "missing.txt"})
    assert e.code == NOT_FOUND and e.data == {"errno": "ENOENT", "path": worker.path("missing.txt")}
    os.mkdir(worker.path("d"))
    e = fail(client, "fs:read_file", {"path": "d"})
    assert e.code == WRONG_TYPE and e.data["errno"] == "EISDIR"


def test_read_fifo_is_refused_without_blocking(client, worker):
    os.mkfifo(worker.path("pipe"))
    e = fail(client, "fs:read_file", {"path": "pipe"})
    assert e.code == WRONG_TYPE
    assert client.call("fs:stat", {"path": "pipe"})["type"] == "other"
    e = fail(client, "fs:write_file", {"path": "pipe", "content": "x"})
    assert e.code == WRONG_TYPE


def test_read_never_opens_a_fifo(client, worker):
    """Opening a FIFO is an act of its own: a writer waiting for a reader goes ahead. fs:read_file
    refuses one by looking at it, so a waiting writer keeps waiting."""
    fifo = worker.path("pipe")
    os.mkfifo(fifo)
    writer = subprocess.Popen(["/usr/bin/python3", "-c", "import os, sys; os.open(sys.argv[1], os.O_WRONLY)",
                               fifo])
    try:
        deadline = time.monotonic() + 10
        while True:
            with open(f"/proc/{writer.pid}/wchan") as f:
                if f.read() == "wait_for_partner":
                    break
            if time.monotonic() > deadline:
                pytest.skip("cannot see the writer wait for a reader")
            time.sleep(0.01)
        for _ in range(3):
            assert fail(client, "fs:read_file", {"path": "pipe"}).code == WRONG_TYPE
        time.sleep(0.2)
        assert writer.poll() is None, "the worker opened the FIFO"
    finally:
        # Be the reader it waits for.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.wait(timeout=10)
        os.close(fd)


def test_too_large_for_one_message(make_worker):
    w = make_worker("--max-message-size", "64K")
    write_bytes(w.path("big.txt"), b"a" * 100_000)
    write_bytes(w.path("fits.txt"), b"a" * 50_000)
    write_bytes(w.path("fits-as-text.bin"), b"\xff" * 50_000)  # base64 needs 66,668 bytes
    with w.connect() as c:
        # All on one connection: a refusal leaves it usable.
        err = fail(c, "fs:read_file", {"path": "big.txt"})
        assert err.code == TOO_LARGE and err.data["size"] == 100_000 and err.data["limit"] < 65536
        err = fail(c, "fs:read_file", {"path": "fits.txt", "encoding": "base64"})
        assert err.code == TOO_LARGE
        err = fail(c, "fs:read_file", {"path": "fits-as-text.bin"})
        assert err.code == TOO_LARGE
        assert len(c.call("fs:read_file", {"path": "fits.txt"})["content"]) == 50_000


# --- Metadata, directories, renames, deletion --------------------------------------------------


def test_stat(client, worker, outside):
    write_bytes(worker.path("f"), b"12345")
    os.chmod(worker.path("f"), 0o640)
    os.mkdir(worker.path("d"))
    os.symlink("f", worker.path("l"))
    os.symlink("nowhere", worker.path("dangling"))
    os.symlink(str(outside), worker.path("out"))

    f = client.call("fs:stat", {"path": "f"})
    assert f["type"] == "file" and f["size"] == 5 and f["mode"] == 0o640 and f["path"] == worker.path("f")
    assert isinstance(f["mtime"], int) and isinstance(f["tag"], str)
    assert client.call("fs:stat", {"path": "d"})["type"] == "dir"
    assert client.call("fs:stat", {"path": worker.home})["type"] == "dir"
    link = client.call("fs:stat", {"path": "l"})
    assert link["type"] == "symlink" and link["target"] == "file"
    assert "target" not in client.call("fs:stat", {"path": "dangling"})
    out = client.call("fs:stat", {"path": "out"})
    assert out["type"] == "symlink" and "target" not in out, "nothing is said about what lies outside"
    e = fail(client, "fs:stat", {"path": "missing"})
    assert e.code == NOT_FOUND


def test_list_directory(client, worker):
    for name in ["b.txt", "a.txt", "Z.txt"]:
        write_bytes(worker.path(name), name.encode())
    os.mkdir(worker.path("sub"))
    os.symlink("a.txt", worker.path("link"))

    res = client.call("fs:list_directory", {"path": "."})
    assert res["path"] == worker.home
    assert [e["name"] for e in res["entries"]] == ["Z.txt", "a.txt", "b.txt", "link", "sub"]
    by_name = {e["name"]: e for e in res["entries"]}
    assert by_name["a.txt"]["type"] == "file" and by_name["a.txt"]["size"] == 5
    assert by_name["sub"]["type"] == "dir" and by_name["link"]["type"] == "symlink"
    assert "truncated" not in res

    assert client.call("fs:list_directory", {"path": "sub"})["entries"] == []
    assert fail(client, "fs:list_directory", {"path": "a.txt"}).code == WRONG_TYPE
    assert fail(client, "fs:list_directory", {"path": "missing"}).code == NOT_FOUND


def test_list_directory_stays_within_message_limit(make_worker):
    w = make_worker("--max-message-size", "8K")
    for i in range(200):
        write_bytes(w.path(f"file-with-a-rather-long-name-{i:04}.txt"), b"")
    with w.connect() as c:
        res = c.call("fs:list_directory", {"path": "."})
        assert res["truncated"] is True
        assert 0 < len(res["entries"]) < 200
        names = [e["name"] for e in res["entries"]]
        assert names == sorted(names)


def test_create_directory(client, worker):
    assert client.call("fs:create_directory", {"path": "d"}) == {"path": worker.path("d")}
    assert os.path.isdir(worker.path("d"))
    e = fail(client, "fs:create_directory", {"path": "d"})
    assert e.code == EXISTS and e.data["errno"] == "EEXIST"
    e = fail(client, "fs:create_directory", {"path": "x/y/z"})
    assert e.code == NOT_FOUND

    client.call("fs:create_directory", {"path": "x/y/z", "recursive": True})
    assert os.path.isdir(worker.path("x/y/z"))
    client.call("fs:create_directory", {"path": "x/y/z", "recursive": True})  # exists: fine

    write_bytes(worker.path("file"), b"")
    assert fail(client, "fs:create_directory", {"path": "file", "recursive": True}).code == EXISTS
    assert fail(client, "fs:create_directory", {"path": "file"}).code == EXISTS
    assert fail(client, "fs:create_directory", {"path": "file/sub", "recursive": True}).code == WRONG_TYPE
    assert fail(client, "fs:create_directory", {"path": worker.home}).code == EXISTS


def test_rename(client, worker):
    write_bytes(worker.path("a"), b"A")
    write_bytes(worker.path("b"), b"B")
    os.mkdir(worker.path("dir"))

    res = client.call("fs:rename", {"from": "a", "to": "dir/a2"})
    assert res == {"from": worker.path("a"), "to": worker.path("dir/a2")}
    assert read_bytes(worker.path("dir/a2")) == b"A" and not os.path.exists(worker.path("a"))

    e = fail(client, "fs:rename", {"from": "dir/a2", "to": "b"})
    assert e.code == EXISTS and e.data["path"] == worker.path("b")
    assert read_bytes(worker.path("b")) == b"B" and read_bytes(worker.path("dir/a2")) == b"A"

    client.call("fs:rename", {"from": "dir/a2", "to": "b", "overwrite": True})
    assert read_bytes(worker.path("b")) == b"A"

    assert fail(client, "fs:rename", {"from": "missing", "to": "c"}).code == NOT_FOUND
    assert fail(client, "fs:rename", {"from": "b", "to": "nodir/c"}).code == NOT_FOUND
    assert fail(client, "fs:rename", {"from": "dir", "to": "dir/inside"}).code == INVALID_PARAMS
    e = fail(client, "fs:rename", {"from": worker.home, "to": "elsewhere"})
    assert e.code == DENIED


def test_rename_moves_symlinks_not_their_targets(client, worker, outside):
    os.symlink(str(outside), worker.path("out"))
    client.call("fs:rename", {"from": "out", "to": "out2"})
    assert os.readlink(worker.path("out2")) == str(outside)
    assert sorted(os.listdir(outside)) == ["secret"]


def test_delete(client, worker):
    write_bytes(worker.path("f"), b"")
    os.mkdir(worker.path("empty"))
    os.makedirs(worker.path("full/deeper"))
    write_bytes(worker.path("full/deeper/f"), b"")

    assert client.call("fs:delete", {"path": "f"}) == {"path": worker.path("f")}
    client.call("fs:delete", {"path": "empty"})
    e = fail(client, "fs:delete", {"path": "full"})
    assert e.data["errno"] == "ENOTEMPTY"
    assert os.path.exists(worker.path("full/deeper/f"))
    client.call("fs:delete", {"path": "full", "recursive": True})
    assert os.listdir(worker.home) == []

    assert fail(client, "fs:delete", {"path": "f"}).code == NOT_FOUND
    e = fail(client, "fs:delete", {"path": worker.home, "recursive": True})
    assert e.code == DENIED and os.path.isdir(worker.home)
    e = fail(client, "fs:delete", {"path": ".", "recursive": True})
    assert e.code == DENIED


def test_recursive_delete_never_follows_symlinks(client, worker, outside):
    os.makedirs(worker.path("tree/sub"))
    os.symlink(str(outside), worker.path("tree/abs-link"))
    os.symlink("../../../outside", worker.path("tree/sub/rel-link"))
    os.symlink(str(outside / "secret"), worker.path("tree/file-link"))
    client.call("fs:delete", {"path": "tree", "recursive": True})
    assert not os.path.lexists(worker.path("tree"))
    assert (outside / "secret").read_text() == "top secret\n"

    # Deleting a link to a directory removes the link only.
    os.symlink(str(outside), worker.path("dirlink"))
    client.call("fs:delete", {"path": "dirlink", "recursive": True})
    assert sorted(os.listdir(outside)) == ["secret"]


# --- Parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method, params", [
    ("fs:read_file", {}),
    ("fs:read_file", {"path": 7}),
    ("fs:read_file", {"path": ""}),
    ("fs:read_file", {"path": "x", "encoding": "latin-1"}),
    ("fs:read_file", {"path": "x", "encoding": 1}),
    ("fs:read_file", ["x"]),
    ("fs:read_file", {"path": "a" * 256}),
    ("fs:read_file", {"path": "/" + "a/" * 2100}),
    ("fs:write_file", {"path": "x"}),
    ("fs:write_file", {"path": "x", "content": 5}),
    ("fs:write_file", {"path": "x", "content": "", "expectedTag": 1}),
    ("fs:stat", {"path": None}),
    ("fs:list_directory", {"path": ["."]}),
    ("fs:create_directory", {"path": "d", "recursive": "yes"}),
    ("fs:rename", {"from": "a"}),
    ("fs:rename", {"from": "a", "to": ""}),
    ("fs:rename", {"from": "a", "to": "b", "overwrite": 1}),
    ("fs:delete", {"path": "x", "recursive": 0}),
])
def test_invalid_params(client, worker, method, params):
    e = fail(client, method, params)
    assert e.code == INVALID_PARAMS
    assert os.listdir(worker.home) == []
    # The connection (and worker) is fine afterwards.
    assert client.call("fs:stat", {"path": "."})["type"] == "dir"


# --- The workspace boundary ----------------------------------------------------------------------


def escape_paths(worker, outside):
    home = worker.home
    rel = os.path.relpath(str(outside), home)  # "../outside"
    return [
        rel + "/secret",
        f"{home}/../outside/secret",
        f"{home}/sub/../../outside/secret",
        str(outside / "secret"),
        "/etc/passwd",
        "/../../etc/passwd",
    ]


def test_paths_outside_the_roots_are_refused(client, worker, outside):
    os.mkdir(worker.path("sub"))
    for p in escape_paths(worker, outside):
        assert fail(client, "fs:read_file", {"path": p}).code == DENIED, p
        assert fail(client, "fs:stat", {"path": p}).code == DENIED, p
        assert fail(client, "fs:write_file", {"path": p, "content": "pwned"}).code == DENIED, p
        assert fail(client, "fs:delete", {"path": p}).code == DENIED, p
        assert fail(client, "fs:rename", {"from": p, "to": "stolen"}).code == DENIED, p
        assert fail(client, "fs:list_directory", {"path": os.path.dirname(p)}).code == DENIED, p
        assert fail(client, "fs:create_directory", {"path": p + ".d", "recursive": True}).code == DENIED, p
    write_bytes(worker.path("mine"), b"mine")
    assert fail(client, "fs:rename", {"from": "mine", "to": str(outside / "mine")}).code == DENIED
    assert fail(client, "fs:rename", {"from": "mine", "to": "../outside/mine"}).code == DENIED
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "top secret\n"
    assert os.path.exists(worker.path("mine"))


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_symlinks_pointing_out_are_refused(client, worker, outside, kind):
    def target(p):
        return os.path.relpath(str(p), worker.home) if kind == "relative" else str(p)

    os.symlink(target(outside / "secret"), worker.path("file-link"))
    os.symlink(target(outside), worker.path("dir-link"))
    os.symlink(target(outside / "new-file"), worker.path("dangling-out"))

    for p in ["file-link", "dir-link/secret"]:
        assert fail(client, "fs:read_file", {"path": p}).code == DENIED, p
        assert fail(client, "fs:write_file", {"path": p, "content": "pwned"}).code == DENIED, p
    # Writing through a link that leads out must not create the file out there either.
    assert fail(client, "fs:write_file", {"path": "dangling-out", "content": "pwned"}).code == DENIED
    assert fail(client, "fs:write_file", {"path": "dir-link/new", "content": "pwned"}).code == DENIED
    assert fail(client, "fs:list_directory", {"path": "dir-link"}).code == DENIED
    assert fail(client, "fs:stat", {"path": "dir-link/secret"}).code == DENIED
    assert fail(client, "fs:create_directory", {"path": "dir-link/made"}).code == DENIED
    assert fail(client, "fs:create_directory", {"path": "dir-link/a/b", "recursive": True}).code == DENIED
    assert fail(client, "fs:delete", {"path": "dir-link/secret"}).code == DENIED
    assert fail(client, "fs:rename", {"from": "dir-link/secret", "to": "stolen"}).code == DENIED
    write_bytes(worker.path("mine"), b"mine")
    assert fail(client, "fs:rename", {"from": "mine", "to": "dir-link/mine"}).code == DENIED

    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "top secret\n"
    # The links themselves are inside and may be looked at.
    assert client.call("fs:stat", {"path": "dir-link"})["type"] == "symlink"


def test_symlink_in_a_parent_component(client, worker, outside):
    os.makedirs(worker.path("a/b"))
    os.symlink("../../../outside", worker.path("a/b/up"))
    assert os.path.exists(worker.path("a/b/up/secret")), "the link really leads out"
    for p in ["a/b/up/secret", worker.path("a/b/up/secret")]:
        assert fail(client, "fs:read_file", {"path": p}).code == DENIED, p
        assert fail(client, "fs:write_file", {"path": p, "content": "pwned"}).code == DENIED, p
    # Paths are normalized before they are resolved: ".." takes back the name before it, link or not.
    assert fail(client, "fs:read_file", {"path": "a/b/up/../outside/secret"}).code == NOT_FOUND
    assert (outside / "secret").read_text() == "top secret\n"


def test_symlinks_inside_the_roots_are_followed(client, worker):
    os.makedirs(worker.path("proj/src"))
    write_bytes(worker.path("proj/src/main.c"), b"int main;")
    os.symlink("proj/src", worker.path("src-rel"))
    os.symlink(worker.path("proj/src"), worker.path("src-abs"))
    os.symlink("../src/main.c", worker.path("proj/src/self"))  # ".." from where the link is
    for p in ["src-rel/main.c", "src-abs/main.c", "proj/src/self", "src-rel/self"]:
        assert client.call("fs:read_file", {"path": p})["content"] == "int main;", p
    names = [e["name"] for e in client.call("fs:list_directory", {"path": "src-abs"})["entries"]]
    assert names == ["main.c", "self"]


def test_several_roots(make_worker, tmp_path):
    a, b = tmp_path / "root-a", tmp_path / "root-b"
    a.mkdir()
    b.mkdir()
    (b / "other.txt").write_text("in b")
    os.symlink(str(b / "other.txt"), str(a / "to-b"))
    w = make_worker("--root", str(a), "--root", str(b))
    with w.connect() as c:
        # Relative paths start at the first root (no project loaded).
        assert c.call("fs:write_file", {"path": "x.txt", "content": "x"})["path"] == str(a / "x.txt")
        assert c.call("fs:read_file", {"path": str(b / "other.txt")})["content"] == "in b"
        assert c.call("fs:read_file", {"path": "to-b"})["content"] == "in b"
        assert fail(c, "fs:read_file", {"path": w.path("anything")}).code == DENIED
        assert fail(c, "fs:list_directory", {"path": str(tmp_path)}).code == DENIED


# --- Change notifications -----------------------------------------------------------------------


def load_project(client, root):
    """Load a project the way a client does: the workspace service serves project:load and
    publishes project:loaded, which starts the watch."""
    client.call("project:load", {"root": root})


def wait_change(client, path, kind, timeout=1.0):
    return client.wait_notification(
        "file:changed_on_disk", lambda p: p["path"] == path and p["kind"] == kind, timeout=timeout)


def changes(client, duration=0.3):
    return [n["params"] for n in client.collect_notifications(duration)
            if n["method"] == "file:changed_on_disk"]


def test_outside_append_arrives_within_a_second(client, worker):
    write_bytes(worker.path("log.txt"), b"one\n")
    load_project(client, worker.home)
    changes(client, 0.1)
    start = time.monotonic()
    subprocess.run(["sh", "-c", "echo two >> log.txt"], cwd=worker.home, check=True)
    wait_change(client, worker.path("log.txt"), "modified")
    assert time.monotonic() - start < 1.0
    assert changes(client) == [], "one append is one notification"


def test_created_deleted_moved(client, worker):
    load_project(client, worker.home)
    write_bytes(worker.path("n.txt"), b"x")
    wait_change(client, worker.path("n.txt"), "created")
    os.rename(worker.path("n.txt"), worker.path("m.txt"))
    moved = wait_change(client, worker.path("m.txt"), "moved")
    assert moved["oldPath"] == worker.path("n.txt")
    os.unlink(worker.path("m.txt"))
    wait_change(client, worker.path("m.txt"), "deleted")


def test_directory_created_outside_then_file_inside(client, worker):
    load_project(client, worker.home)
    subprocess.run(["sh", "-c", "mkdir -p newdir && echo hi > newdir/inner.txt"], cwd=worker.home,
                   check=True)
    wait_change(client, worker.path("newdir/inner.txt"), "created")
    subprocess.run(["sh", "-c", "echo more >> newdir/inner.txt"], cwd=worker.home, check=True)
    wait_change(client, worker.path("newdir/inner.txt"), "modified")


def test_no_notification_for_own_changes(client, worker):
    write_bytes(worker.path("existing.txt"), b"x")
    load_project(client, worker.home)
    changes(client, 0.1)
    client.call("fs:write_file", {"path": "existing.txt", "content": "new"})
    client.call("fs:write_file", {"path": "created.txt", "content": "new"})
    client.call("fs:create_directory", {"path": "d/e", "recursive": True})
    client.call("fs:rename", {"from": "created.txt", "to": "d/e/moved.txt"})
    client.call("fs:delete", {"path": "d", "recursive": True})
    assert changes(client) == []
    subprocess.run(["sh", "-c", "echo outside >> existing.txt"], cwd=worker.home, check=True)
    wait_change(client, worker.path("existing.txt"), "modified")


def test_git_and_node_modules_are_not_watched(client, worker):
    os.makedirs(worker.path(".git/objects"))
    os.makedirs(worker.path("web/node_modules/pkg"))
    load_project(client, worker.home)
    changes(client, 0.1)
    write_bytes(worker.path(".git/objects/ab"), b"x")
    write_bytes(worker.path("web/node_modules/pkg/index.js"), b"x")
    assert changes(client) == []
    write_bytes(worker.path("web/app.js"), b"x")
    wait_change(client, worker.path("web/app.js"), "created")


def test_watch_limit_is_reported(make_worker):
    w = make_worker("--max-watches", "5")
    for i in range(10):
        os.makedirs(w.path(f"d{i}"))
    with w.connect() as c:
        load_project(c, w.home)
        err = c.wait_notification("fs:watch_error", timeout=2.0)
        assert err["errno"] == "ENOSPC" and err["limit"] == 5
        assert err["path"].startswith(w.home) and err["message"]


# --- Interrupted saves ---------------------------------------------------------------------------


def test_killed_saves_leave_nothing_behind(make_worker):
    """kill -9 while a large save is under way, again and again: the file is the old content or the
    new, whole, and no temporary file is left, before any request and after a listing."""
    w = make_worker()
    path = w.path("big.txt")
    old = b"the original\n" * 1000
    write_bytes(path, old)
    new = ("0123456789abcdef" * (12 << 16)).encode()  # 12 MiB
    request = (b'{"jsonrpc":"2.0","id":1,"method":"fs:write_file","params":{"path":"big.txt","content":"'
               + new + b'"}}\n')
    with w.connect() as c:
        start = time.monotonic()
        c.send_raw(request)
        assert "result" in c.recv(timeout=60)
        duration = time.monotonic() - start
    write_bytes(path, old)
    kills = 0
    for i in range(9):
        with w.connect() as c:
            c.send_raw(request)
            # Spread over the save: receiving, parsing, writing, syncing.
            time.sleep(duration * (0.3 + 0.1 * i))
            kills += w.proc.poll() is None
            w.kill()
        w.start()
        content = read_bytes(path)
        assert content in (old, new), len(content)
        assert temp_files(w.home) == [], i
        with w.connect() as c:
            listing = c.call("fs:list_directory", {"path": w.home})
            assert [e["name"] for e in listing["entries"]] == ["big.txt"]
        write_bytes(path, old)
    assert kills == 9


STALE = ".helios-0123456789abcdef.tmp"


def leave_temp(directory, name=STALE, age=60):
    """A temporary file as a save cut short leaves it, written age seconds ago."""
    p = os.path.join(directory, name)
    write_bytes(p, b"half a save")
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def test_leftover_temporary_files_are_removed(make_worker):
    """Where a save that was cut short left a named temporary file (a file system without O_TMPFILE,
    or a kill between naming it and the rename), the worker removes it when it lists or saves in
    that directory, or scans the project: its own name pattern, its uid, older than the worker."""
    w = make_worker()
    for d in ("a", "b", "proj/deep/er", "proj/.git"):
        os.makedirs(w.path(d))
    stale_a = leave_temp(w.path("a"))
    not_ours = [leave_temp(w.path("a"), name) for name in (".helios-xyz.tmp", ".helios-0123456789abcdeg.tmp",
                                                           "helios-0123456789abcdef.tmp")]
    linked = leave_temp(w.path("a"), ".helios-1111111111111111.tmp")
    os.link(linked, w.path("a", "keep"))  # has another name: not a leftover of ours
    stale_b = leave_temp(w.path("b"))
    stale_deep = leave_temp(w.path("proj/deep/er"))
    with w.connect() as c:
        # Written after the worker started: it may be a save in progress.
        fresh = leave_temp(w.path("a"), ".helios-2222222222222222.tmp", age=-1)
        names = [e["name"] for e in c.call("fs:list_directory", {"path": w.path("a")})["entries"]]
        assert STALE not in names and not os.path.exists(stale_a)
        for p in not_ours + [linked, fresh]:
            assert os.path.exists(p), p
        assert os.path.exists(stale_b)
        c.call("fs:write_file", {"path": w.path("b", "f"), "content": "x"})
        assert not os.path.exists(stale_b)
        assert os.path.exists(stale_deep)
        c.call("project:load", {"root": w.path("proj")})
        deadline = time.monotonic() + 5
        while os.path.exists(stale_deep) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not os.path.exists(stale_deep)
