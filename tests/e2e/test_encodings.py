"""Text files in an 8-bit encoding (ISO-8859-1, Windows-1252): read and written by the fs service in
that encoding, opened by the workspace as editable text and saved back byte for byte, kept through a
killed worker, and never mangled: a character the encoding cannot hold is refused, and nothing is
written. Binary files stay binary."""

import base64
import os

import pytest

from helios import RpcError

INVALID_PARAMS = -32602
WRONG_TYPE = -32006

LATIN1 = "Caf\u00e9 cr\u00e8me, na\u00efve \u00bd\r\nfin\n"
CP1252 = "\u201cQuoted\u201d \u2014 \u20ac5 \u2018ok\u2019 \u2026 \u0152uvre\n"


def fail(client, method, params):
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
def ws(worker):
    with worker.connect() as c:
        c.call("project:load", {"root": worker.home})
    return worker


@pytest.fixture
def c1(ws):
    c = ws.connect()
    yield c
    c.close()


def make(worker, name, data):
    path = worker.path(name)
    write_bytes(path, data)
    return os.path.realpath(path)


# --- The fs service ------------------------------------------------------------------------------


def test_fs_reads_text_in_its_encoding(client, worker):
    make(worker, "l.txt", LATIN1.encode("latin-1"))
    make(worker, "w.txt", CP1252.encode("cp1252"))
    make(worker, "u.txt", "h\u00e9\n".encode())

    got = client.call("fs:read_file", {"path": "l.txt", "encoding": "text"})
    assert got["encoding"] == "iso-8859-1" and got["content"] == LATIN1
    assert got["size"] == len(LATIN1.encode("latin-1"))
    got = client.call("fs:read_file", {"path": "w.txt", "encoding": "text"})
    assert got["encoding"] == "windows-1252" and got["content"] == CP1252
    got = client.call("fs:read_file", {"path": "u.txt", "encoding": "text"})
    assert got["encoding"] == "utf-8" and got["content"] == "h\u00e9\n"
    # Asked for by name.
    got = client.call("fs:read_file", {"path": "w.txt", "encoding": "windows-1252"})
    assert got["content"] == CP1252
    # Without "text" the answer is what it always was: base64.
    assert client.call("fs:read_file", {"path": "l.txt"})["encoding"] == "base64"


@pytest.mark.parametrize("data", [b"\x00\x01\xfe\xff", b"text\x00with nul", b"caf\xe9\x1b[0m",
                                  b"undefined \x81 byte \xe9", b"del \x7f \xe9"])
def test_fs_binary_stays_binary(client, worker, data):
    make(worker, "b.bin", data)
    got = client.call("fs:read_file", {"path": "b.bin", "encoding": "text"})
    assert got["encoding"] == "base64"
    assert base64.b64decode(got["content"], validate=True) == data


def test_fs_refuses_bytes_the_encoding_lacks(client, worker):
    make(worker, "u.bin", b"undefined \x81 byte")
    e = fail(client, "fs:read_file", {"path": "u.bin", "encoding": "windows-1252"})
    assert e.code == INVALID_PARAMS and "Windows-1252" in e.data["reason"]
    make(worker, "n.bin", b"nul \x00 \xe9")
    e = fail(client, "fs:read_file", {"path": "n.bin", "encoding": "iso-8859-1"})
    assert e.code == INVALID_PARAMS and "NUL" in e.data["reason"]


def test_fs_writes_in_the_encoding(client, worker):
    res = client.call("fs:write_file", {"path": "l.txt", "content": LATIN1, "encoding": "iso-8859-1"})
    assert read_bytes(worker.path("l.txt")) == LATIN1.encode("latin-1")
    assert res["size"] == len(LATIN1)
    client.call("fs:write_file", {"path": "w.txt", "content": CP1252, "encoding": "windows-1252"})
    assert read_bytes(worker.path("w.txt")) == CP1252.encode("cp1252")


@pytest.mark.parametrize("encoding,text,bad,offset", [
    ("iso-8859-1", "price: \u20ac5", "U+20AC", 7),        # the euro sign is Windows-1252 only
    ("windows-1252", "ok \U0001F600 \u4e2d", "U+1F600", 3),
    ("windows-1252", "a\u0081b", "U+0081", 1),             # a C1 control Windows-1252 replaced
    ("iso-8859-1", "\u00e9\u00ff\u0100", "U+0100", 2),
])
def test_fs_refuses_what_the_encoding_cannot_hold(client, worker, encoding, text, bad, offset):
    path = make(worker, "keep.txt", b"old \xe9\n")
    tag = client.call("fs:stat", {"path": path})["tag"]
    e = fail(client, "fs:write_file", {"path": path, "content": text, "encoding": encoding,
                                       "expectedTag": tag})
    assert e.code == INVALID_PARAMS
    assert e.data == {"reason": "unencodable", "path": path, "encoding": encoding, "codePoint": bad,
                      "offset": offset}
    assert bad in e.message and "nothing was written" in e.message
    assert read_bytes(path) == b"old \xe9\n"
    assert temp_files(worker.home) == []
    # A new file is not created either.
    fail(client, "fs:write_file", {"path": "new.txt", "content": text, "encoding": encoding})
    assert not os.path.exists(worker.path("new.txt"))


def test_fs_write_names_only_known_encodings(client, worker):
    e = fail(client, "fs:write_file", {"path": "x", "content": "x", "encoding": "text"})
    assert e.code == INVALID_PARAMS


# --- The workspace -------------------------------------------------------------------------------


def test_latin1_buffer_round_trips_byte_exact(ws, c1):
    data = LATIN1.encode("latin-1")
    path = make(ws, "latin.txt", data)
    opened = c1.call("file:open", {"path": path})
    assert opened["encoding"] == "iso-8859-1" and opened["content"] == LATIN1
    # An edit that changes nothing in the end (insert, then take it out) and a save: the same bytes.
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "\u00e9"}]})
    c1.call("file:edit", {"path": path, "version": 2, "changes": [{"from": 0, "to": 1, "insert": ""}]})
    c1.call("file:save", {"path": path})
    assert read_bytes(path) == data
    # A real edit is saved in ISO-8859-1 too.
    c1.call("file:edit", {"path": path, "version": 3, "changes": [{"from": 0, "to": 4, "insert": "Th\u00e9"}]})
    c1.call("file:save", {"path": path})
    assert read_bytes(path) == ("Th\u00e9" + LATIN1[4:]).encode("latin-1")
    assert c1.call("file:open", {"path": path})["encoding"] == "iso-8859-1"


def test_windows1252_buffer_saves_euro_and_curly_quotes(ws, c1):
    data = CP1252.encode("cp1252")
    path = make(ws, "w.txt", data)
    opened = c1.call("file:open", {"path": path})
    assert opened["encoding"] == "windows-1252" and opened["content"] == CP1252
    st = c1.call("workspace:state")
    assert [f for f in st["openFiles"] if f["path"] == path]
    c1.call("file:edit", {"path": path, "version": 1,
                          "changes": [{"from": 0, "to": 0, "insert": "\u2018\u20ac\u2019 "}]})
    c1.call("file:save", {"path": path})
    assert read_bytes(path) == ("\u2018\u20ac\u2019 " + CP1252).encode("cp1252")


def test_unencodable_edit_is_refused(ws, c1):
    data = LATIN1.encode("latin-1")
    path = make(ws, "l.txt", data)
    c1.call("file:open", {"path": path})
    e = fail(c1, "file:edit", {"path": path, "version": 1,
                               "changes": [{"from": 0, "to": 0, "insert": "ok"},
                                           {"from": 0, "to": 0, "insert": "a \u20ac"}]})
    assert e.code == INVALID_PARAMS
    assert e.data == {"path": path, "reason": "unencodable", "encoding": "iso-8859-1",
                      "codePoint": "U+20AC", "change": 1}
    assert "U+20AC" in e.message and "iso-8859-1" in e.message
    # Nothing changed: not the buffer, not its version, not the disk.
    buf = c1.call("file:open", {"path": path})
    assert buf["content"] == LATIN1 and buf["version"] == 1 and buf["dirty"] is False
    c1.call("file:save", {"path": path})
    assert read_bytes(path) == data
    assert temp_files(ws.home) == []


def test_binary_buffer_stays_read_only(ws, c1):
    data = b"\x7fELF\x02\x01\x01\x00\x00\xe9"
    path = make(ws, "prog", data)
    opened = c1.call("file:open", {"path": path})
    assert opened["encoding"] == "base64"
    assert base64.b64decode(opened["content"]) == data
    e = fail(c1, "file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "x"}]})
    assert e.code == WRONG_TYPE
    assert read_bytes(path) == data


def test_unsaved_edit_keeps_its_encoding_through_kill9(ws, c1):
    data = CP1252.encode("cp1252")
    path = make(ws, "k.txt", data)
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "\u20ac "}]})
    c1.close()

    ws.kill()
    ws.start()
    with ws.connect() as c:
        buf = c.call("file:open", {"path": path})
        assert buf["dirty"] is True and buf["encoding"] == "windows-1252"
        assert buf["content"] == "\u20ac " + CP1252
        assert read_bytes(path) == data
        # Still refused after the restart: the journal kept the encoding, not just the text.
        e = fail(c, "file:edit", {"path": path, "version": buf["version"],
                                  "changes": [{"from": 0, "to": 0, "insert": "\u4e2d"}]})
        assert e.code == INVALID_PARAMS and e.data["encoding"] == "windows-1252"
        c.call("file:save", {"path": path})
        assert read_bytes(path) == ("\u20ac " + CP1252).encode("cp1252")


def test_conflict_and_forced_save_keep_the_encoding(ws, c1):
    path = make(ws, "c.txt", "caf\u00e9\n".encode("latin-1"))
    c1.call("file:open", {"path": path})
    c1.call("file:edit", {"path": path, "version": 1, "changes": [{"from": 0, "to": 0, "insert": "\u00bf"}]})
    write_bytes(path, "th\u00e9\n".encode("latin-1"))
    c1.wait_notification("state:updated",
                         lambda p: any(f["path"] == path and f["diskChanged"] for f in p["openFiles"]))
    e = fail(c1, "file:save", {"path": path})
    assert e.code == -32003
    assert read_bytes(path) == "th\u00e9\n".encode("latin-1")
    c1.call("file:save", {"path": path, "force": True})
    assert read_bytes(path) == "\u00bfcaf\u00e9\n".encode("latin-1")


def test_clean_buffer_takes_the_new_encoding_of_its_file(ws, c1):
    path = make(ws, "e.txt", "caf\u00e9\n".encode("latin-1"))
    assert c1.call("file:open", {"path": path})["encoding"] == "iso-8859-1"
    # Rewritten outside in Windows-1252: the clean buffer reloads, and says which encoding it has now.
    write_bytes(path, "\u20ac caf\u00e9\n".encode("cp1252"))
    ev = c1.wait_notification("file:edited", lambda p: p["path"] == path)
    assert ev["encoding"] == "windows-1252"
    buf = c1.call("file:open", {"path": path})
    assert buf["encoding"] == "windows-1252" and buf["content"] == "\u20ac caf\u00e9\n"
    c1.call("file:edit", {"path": path, "version": buf["version"],
                          "changes": [{"from": 0, "to": 0, "insert": "\u2019"}]})
    c1.call("file:save", {"path": path})
    assert read_bytes(path) == "\u2019\u20ac caf\u00e9\n".encode("cp1252")
