"""fs:upload_begin / chunk / commit / abort through the real worker: a file sent in bounded chunks
appears under its name only when whole, never half-written; bounds, order, ownership, and what a
closed connection or a killed worker leaves (nothing)."""

import base64
import os
import time

import pytest

from helios import RpcError

CHUNK = 1024 * 1024


def b64(data):
    return base64.b64encode(data).decode()


def upload(c, path, data, chunk=CHUNK, overwrite=None):
    params = {"path": path, "size": len(data)}
    if overwrite is not None:
        params["overwrite"] = overwrite
    uid = c.call("fs:upload_begin", params)["uploadId"]
    for off in range(0, len(data), chunk):
        got = c.call("fs:upload_chunk", {"uploadId": uid, "offset": off, "data": b64(data[off:off + chunk])})
        assert got["received"] == min(len(data), off + chunk)
    return c.call("fs:upload_commit", {"uploadId": uid})


def names(directory):
    return sorted(os.listdir(directory))


def test_a_large_file_in_chunks_appears_only_when_complete(worker):
    data = os.urandom(3 * CHUNK + 12345)
    target = worker.path("big.bin")
    with worker.connect() as c:
        uid = c.call("fs:upload_begin", {"path": target, "size": len(data)})["uploadId"]
        for off in range(0, 2 * CHUNK, CHUNK):
            c.call("fs:upload_chunk", {"uploadId": uid, "offset": off, "data": b64(data[off:off + CHUNK])})
        # Two thirds sent: nothing under the name, nothing else in the directory either.
        assert names(worker.home) == []
        for off in range(2 * CHUNK, len(data), CHUNK):
            c.call("fs:upload_chunk", {"uploadId": uid, "offset": off, "data": b64(data[off:off + CHUNK])})
        assert c.call("fs:upload_commit", {"uploadId": uid}) == {"path": os.path.realpath(target), "size": len(data)}
    with open(target, "rb") as f:
        assert f.read() == data
    assert names(worker.home) == ["big.bin"]
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~0o022 or os.stat(target).st_mode & 0o077 == 0


def test_an_empty_file_and_many_at_once(worker):
    with worker.connect() as c:
        upload(c, worker.path("empty"), b"")
        ids = [c.call("fs:upload_begin", {"path": worker.path(f"f{i}"), "size": 1})["uploadId"] for i in range(8)]
        # The ninth at once is refused; finishing one makes room.
        with pytest.raises(RpcError) as e:
            c.call("fs:upload_begin", {"path": worker.path("f8"), "size": 1})
        assert e.value.code == -32004 and e.value.data["limit"] == 8
        for i, uid in enumerate(ids):
            c.call("fs:upload_chunk", {"uploadId": uid, "offset": 0, "data": b64(bytes([i]))})
            c.call("fs:upload_commit", {"uploadId": uid})
        upload(c, worker.path("f8"), b"8")
    assert names(worker.home) == ["empty"] + [f"f{i}" for i in range(9)]


def test_an_existing_name_is_kept_unless_overwrite(worker):
    target = worker.path("a.txt")
    with open(target, "w") as f:
        f.write("old")
    with worker.connect() as c:
        with pytest.raises(RpcError) as e:
            upload(c, target, b"new")
        assert e.value.code == -32005
        upload(c, target, b"new", overwrite=True)
        # A file appearing between begin and commit is not replaced either.
        late = worker.path("late.txt")
        uid = c.call("fs:upload_begin", {"path": late, "size": 2})["uploadId"]
        c.call("fs:upload_chunk", {"uploadId": uid, "offset": 0, "data": b64(b"up")})
        with open(late, "w") as f:
            f.write("theirs")
        with pytest.raises(RpcError) as e:
            c.call("fs:upload_commit", {"uploadId": uid})
        assert e.value.code == -32005
        c.call("fs:upload_abort", {"uploadId": uid})
        with pytest.raises(RpcError) as e:
            upload(c, worker.path(""), b"x", overwrite=True)
        assert e.value.code in (-32602, -32006, -32002)
        os.mkdir(worker.path("d"))
        with pytest.raises(RpcError) as e:
            upload(c, worker.path("d"), b"x", overwrite=True)
        assert e.value.code == -32006
    with open(target) as f:
        assert f.read() == "new"
    with open(late) as f:
        assert f.read() == "theirs"
    assert names(worker.home) == ["a.txt", "d", "late.txt"]


def test_bounds_order_and_encoding(worker):
    with worker.connect() as c:
        with pytest.raises(RpcError) as e:
            c.call("fs:upload_begin", {"path": worker.path("huge"), "size": 1024 ** 3 + 1})
        assert e.value.code == -32602
        uid = c.call("fs:upload_begin", {"path": worker.path("x"), "size": 4})["uploadId"]
        for params, code in [
            ({"offset": 0, "data": b64(b"12345")}, -32004),       # beyond the declared size
            ({"offset": 1, "data": b64(b"1")}, -32602),           # out of order
            ({"offset": 0, "data": "not base64!"}, -32602),
            ({"offset": 0, "data": b64(b"x" * (CHUNK + 3))}, -32004),  # chunk too large
        ]:
            with pytest.raises(RpcError) as e:
                c.call("fs:upload_chunk", {"uploadId": uid, **params})
            assert e.value.code == code, params
        c.call("fs:upload_chunk", {"uploadId": uid, "offset": 0, "data": b64(b"12")})
        with pytest.raises(RpcError) as e:
            c.call("fs:upload_commit", {"uploadId": uid})  # incomplete
        assert e.value.code == -32602
        c.call("fs:upload_abort", {"uploadId": uid})
        with pytest.raises(RpcError) as e:
            c.call("fs:upload_commit", {"uploadId": uid})
        assert e.value.code == -32001
        for path, code in [("relative", -32602), ("/etc/passwd-helios", -32002),
                           (worker.path("no-such-dir", "f"), -32001), (worker.path("..", "escape"), -32002)]:
            with pytest.raises(RpcError) as e:
                c.call("fs:upload_begin", {"path": path, "size": 1})
            assert e.value.code == code, path
    assert names(worker.home) == []


def test_an_upload_is_its_connections_and_goes_with_it(worker):
    with worker.connect() as a, worker.connect() as b:
        uid = a.call("fs:upload_begin", {"path": worker.path("mine"), "size": 2})["uploadId"]
        a.call("fs:upload_chunk", {"uploadId": uid, "offset": 0, "data": b64(b"a")})
        with pytest.raises(RpcError) as e:
            b.call("fs:upload_chunk", {"uploadId": uid, "offset": 1, "data": b64(b"b")})
        assert e.value.code == -32001
        with pytest.raises(RpcError) as e:
            b.call("fs:upload_commit", {"uploadId": uid})
        assert e.value.code == -32001
    # a closed: its slot is free again (once the worker has seen the close), nothing was left behind.
    deadline = time.monotonic() + 5
    with worker.connect() as c:
        ids = []
        while len(ids) < 8:
            try:
                ids.append(c.call("fs:upload_begin", {"path": worker.path(f"g{len(ids)}"), "size": 1})["uploadId"])
            except RpcError as e:
                assert e.code == -32004 and time.monotonic() < deadline, e
                time.sleep(0.05)
    assert names(worker.home) == []


def test_a_killed_worker_leaves_no_half_file(worker):
    with worker.connect() as c:
        uid = c.call("fs:upload_begin", {"path": worker.path("cut.bin"), "size": 2 * CHUNK})["uploadId"]
        c.call("fs:upload_chunk", {"uploadId": uid, "offset": 0, "data": b64(os.urandom(CHUNK))})
        worker.kill()
    assert names(worker.home) == []
    worker.start()
    with worker.connect() as c:
        with pytest.raises(RpcError) as e:
            c.call("fs:upload_commit", {"uploadId": uid})
        assert e.value.code == -32001


def test_read_range_reads_any_file_in_bounded_pieces(worker):
    data = os.urandom(2 * CHUNK + 999)
    target = worker.path("down.bin")
    with open(target, "wb") as f:
        f.write(data)
    got, tags = b"", set()
    with worker.connect() as c:
        off = 0
        while True:
            r = c.call("fs:read_range", {"path": target, "offset": off, "length": CHUNK})
            assert r["size"] == len(data) and r["offset"] == off
            piece = base64.b64decode(r["data"])
            tags.add(r["tag"])
            if not piece:
                break
            got += piece
            off += len(piece)
        assert got == data and len(tags) == 1
        with pytest.raises(RpcError) as e:
            c.call("fs:read_range", {"path": target, "offset": 0, "length": CHUNK + 1})
        assert e.value.code == -32602
        os.mkfifo(worker.path("fifo"))
        os.mkdir(worker.path("dir"))
        os.symlink("/etc/passwd", worker.path("out"))
        for path, code in [(worker.path("dir"), -32006), (worker.path("fifo"), -32602), (worker.path("out"), -32002),
                           (worker.path("missing"), -32001), ("rel", -32602)]:
            with pytest.raises(RpcError) as e:
                c.call("fs:read_range", {"path": path, "offset": 0, "length": 10})
            assert e.value.code == code, path
