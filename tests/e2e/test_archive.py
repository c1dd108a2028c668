"""Folders downloaded as zip files: fs:archive_begin, then fs:archive_read piece by piece until done.
The archive unzips to the same tree, never follows a symbolic link (in or out of the workspace),
streams a folder larger than the worker could hold in bounded memory, and one abandoned (cancelled,
its connection closed) is gone with everything it held open."""

import base64
import io
import os
import time
import zipfile

import pytest

from helios import RpcError

NOT_FOUND = -32001
DENIED = -32002
TOO_LARGE = -32004
WRONG_TYPE = -32006


def fail(client, method, params):
    with pytest.raises(RpcError) as e:
        client.call(method, params)
    return e.value


def download(client, path, sink=None):
    """The whole archive, piece by piece; (bytes, pieces, last answer)."""
    begun = client.call("fs:archive_begin", {"path": path})
    data, pieces = io.BytesIO() if sink is None else sink, 0
    while True:
        piece = client.call("fs:archive_read", {"archiveId": begun["archiveId"]}, timeout=60)
        assert piece["offset"] == (data.tell() if sink is None else piece["offset"])
        chunk = base64.b64decode(piece["data"], validate=True)
        assert len(chunk) <= 512 * 1024 + 128 * 1024
        data.write(chunk)
        pieces += 1
        if piece["done"]:
            return begun, data, pieces, piece


def tree(root):
    """{relative path: bytes or None for a folder}, symlinks left out."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs:
            p = os.path.join(d, n)
            if not os.path.islink(p):
                out[os.path.relpath(p, root) + "/"] = None
        for n in files:
            p = os.path.join(d, n)
            if not os.path.islink(p):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = f.read()
    return out


def unzipped(data, top):
    out = {}
    with zipfile.ZipFile(io.BytesIO(data.getvalue())) as z:
        assert z.testzip() is None
        for info in z.infolist():
            assert info.filename.startswith(top + "/"), info.filename
            rel = info.filename[len(top) + 1:]
            if rel == "":
                continue
            out[rel] = None if info.is_dir() else z.read(info)
    return out


def make_tree(root):
    os.makedirs(os.path.join(root, "src", "deep", "deeper"))
    os.makedirs(os.path.join(root, "empty"))
    files = {
        "README.md": b"# Project\n",
        "src/main.c": b"int main(void) { return 0; }\n",
        "src/deep/deeper/data.bin": bytes(range(256)) * 40,
        "src/caf\u00e9 \u00fcber.txt".encode().decode(): "\u00e9\u20ac\n".encode(),
        "empty.txt": b"",
        "src/random.bin": os.urandom(1536 * 1024),  # several pieces, incompressible
    }
    for rel, data in files.items():
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)


def test_archive_unzips_to_the_same_tree(client, worker):
    root = worker.path("proj")
    make_tree(root)
    begun, data, pieces, last = download(client, os.path.realpath(root))
    assert begun["name"] == "proj.zip" and begun["path"] == os.path.realpath(root)
    assert pieces >= 3
    assert unzipped(data, "proj") == tree(root)
    assert last["files"] == 6 and last["skipped"] == 0
    # Finished: the archive is gone.
    assert fail(client, "fs:archive_read", {"archiveId": begun["archiveId"]}).code == NOT_FOUND


def test_symlinks_are_never_followed(client, worker, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("top secret\n")
    root = worker.path("proj")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "sub", "real.txt"), "w") as f:
        f.write("real\n")
    os.symlink(str(outside / "secret"), os.path.join(root, "secret-link"))
    os.symlink(str(outside), os.path.join(root, "sub", "outside-dir"))
    os.symlink("/etc", os.path.join(root, "etc"))
    os.symlink("real.txt", os.path.join(root, "sub", "inside-link"))
    _, data, _, last = download(client, os.path.realpath(root))
    got = unzipped(data, "proj")
    assert got == {"sub/": None, "sub/real.txt": b"real\n"}
    assert b"top secret" not in data.getvalue()
    assert last["skipped"] == 4
    # The folder itself must be inside the workspace, whatever a symlink to it says.
    os.symlink(str(outside), worker.path("out"))
    assert fail(client, "fs:archive_begin", {"path": worker.path("out")}).code == DENIED
    assert fail(client, "fs:archive_begin", {"path": str(outside)}).code == DENIED
    assert fail(client, "fs:archive_begin", {"path": os.path.join(root, "sub", "real.txt")}).code == WRONG_TYPE
    assert fail(client, "fs:archive_begin", {"path": worker.path("nope")}).code == NOT_FOUND
    assert fail(client, "fs:archive_begin", {"path": "relative"}).code == -32602


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def test_huge_folder_streams_in_bounded_memory(make_worker):
    """192 MiB of incompressible files (more than the worker's message limit many times over) go
    through a reader that takes its time, and the worker's peak memory grows by a few pieces' worth.
    Under AddressSanitizer, its quarantine (which keeps freed memory resident) is made small, so that
    the bound holds there too."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    worker = make_worker(env={"ASAN_OPTIONS": (asan + ":" if asan else "") +
                              "quarantine_size_mb=1:thread_local_quarantine_size_kb=64"})
    client = worker.connect()
    root = worker.path("big")
    os.makedirs(root)
    block = os.urandom(1024 * 1024)
    for i in range(48):
        with open(os.path.join(root, f"part{i:02}.bin"), "wb") as f:
            for k in range(4):
                f.write(block[k:] + block[:k])
    client.call("fs:stat", {"path": root})
    pid = worker.pid
    before = status(pid, "VmHWM")

    class Counter:
        def __init__(self):
            self.n = 0

        def write(self, b):
            self.n += len(b)

    sink = Counter()
    begun = client.call("fs:archive_begin", {"path": os.path.realpath(root)})
    pieces = 0
    while True:
        piece = client.call("fs:archive_read", {"archiveId": begun["archiveId"]}, timeout=60)
        assert piece["offset"] == sink.n
        sink.write(base64.b64decode(piece["data"]))
        pieces += 1
        if pieces == 3:
            time.sleep(1)  # a slow reader: the worker makes nothing meanwhile
            assert status(pid, "VmHWM") - before < 32 * 1024
        if piece["done"]:
            break
    assert sink.n > 192 * 1024 * 1024
    assert piece["files"] == 48
    grown = status(pid, "VmHWM") - before
    print(f"peak memory grew by {grown} KiB over {pieces} pieces")
    assert grown < 32 * 1024, f"peak memory grew by {grown} KiB"
    client.close()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_abandoned_archives_are_cleaned_up(worker, tmp_path):
    root = worker.path("proj")
    make_tree(root)
    root = os.path.realpath(root)
    c = worker.connect()
    c.call("fs:stat", {"path": root})
    pid = worker.pid
    baseline = open_fds(pid)

    # At most two at once in a worker.
    a = c.call("fs:archive_begin", {"path": root})["archiveId"]
    b = c.call("fs:archive_begin", {"path": root})["archiveId"]
    e = fail(c, "fs:archive_begin", {"path": root})
    assert e.code == TOO_LARGE and e.data["limit"] == 2
    c.call("fs:archive_read", {"archiveId": a})
    assert open_fds(pid) > baseline
    # Another connection can neither read nor cancel them.
    with worker.connect() as other:
        assert fail(other, "fs:archive_read", {"archiveId": a}).code == NOT_FOUND
        assert fail(other, "fs:archive_cancel", {"archiveId": b}).code == NOT_FOUND
    # Cancelled: gone.
    assert c.call("fs:archive_cancel", {"archiveId": b}) == {}
    assert fail(c, "fs:archive_read", {"archiveId": b}).code == NOT_FOUND
    # The connection goes in the middle of one: it goes too, with every descriptor it held.
    c.close()
    deadline = time.monotonic() + 5
    # Everything the worker held for c goes: its archive's folders and files, and c's own socket.
    while open_fds(pid) > baseline - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds(pid) == baseline - 1
    with worker.connect() as d:
        ids = [d.call("fs:archive_begin", {"path": root})["archiveId"] for _ in range(2)]
        for i in ids:
            d.call("fs:archive_cancel", {"archiveId": i})


def test_archive_not_read_is_dropped(make_worker):
    """A page that begins a download and stops reading (its connection still open) does not keep
    the folder open: after --archive-idle-timeout the archive is gone and its slot free."""
    worker = make_worker("--archive-idle-timeout=2s")
    root = worker.path("proj")
    make_tree(root)
    root = os.path.realpath(root)
    with worker.connect() as c:
        c.call("fs:stat", {"path": root})
        baseline = open_fds(worker.pid)
        ids = [c.call("fs:archive_begin", {"path": root})["archiveId"] for _ in range(2)]
        c.call("fs:archive_read", {"archiveId": ids[0]})
        assert open_fds(worker.pid) > baseline
        # Still read now and then: kept.
        time.sleep(1.2)
        c.call("fs:archive_read", {"archiveId": ids[0]})
        deadline = time.monotonic() + 10
        while open_fds(worker.pid) > baseline and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds(worker.pid) == baseline
        for i in ids:
            assert fail(c, "fs:archive_read", {"archiveId": i}).code == NOT_FOUND
        assert c.call("fs:archive_begin", {"path": root})["archiveId"] > ids[1]
