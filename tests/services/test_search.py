"""The search service (services/search/helios-search.py) as the worker runs it: a subprocess whose
standard input and output are one end of a socket pair speaking NDJSON JSON-RPC. The test plays the
worker: it answers the service's workspace:state requests with the project root and reads the
notifications the service addresses to the asking connection.

Every behaviour runs twice, once with ripgrep on PATH and once without it (the Python fallback)."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

SERVICE = os.path.join(os.path.dirname(__file__), "..", "..", "services", "search", "helios-search.py")
RG = shutil.which("rg")


class Service:
    def __init__(self, root, use_rg, env_extra=None):
        self.root = root
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        if use_rg:
            env["PATH"] = os.path.dirname(RG)
        else:
            env["PATH"] = "/nonexistent"
        env.update(env_extra or {})
        self.proc = subprocess.Popen(["/usr/bin/python3", SERVICE], stdin=theirs, stdout=theirs, env=env)
        theirs.close()
        self.sock = ours
        self.messages = []  # (arrival number, message), in order of arrival
        self.arrived = 0
        self.cond = threading.Condition()
        self.closed = False
        self.send_lock = threading.Lock()
        self.roots_asked = 0
        self.next_id = 1
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("method") in ("workspace:state", "bus:subscribe", "bus:serve") and self.closed:
                    continue
                if msg.get("method") == "workspace:state" and "id" in msg:
                    self.roots_asked += 1
                    self.answer({"jsonrpc": "2.0", "id": msg["id"], "result": {"root": self.root}})
                elif msg.get("method") in ("bus:subscribe", "bus:serve") and "id" in msg:
                    self.answer({"jsonrpc": "2.0", "id": msg["id"], "result": {}})
                else:
                    with self.cond:
                        self.arrived += 1
                        self.messages.append((self.arrived, msg))
                        self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, msg):
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def answer(self, msg):
        try:
            self.send(msg)
        except OSError:
            pass  # the test closed its side already

    def send_raw(self, data):
        with self.send_lock:  # the reader thread answers the service's own requests meanwhile
            self.sock.sendall(data)

    def request(self, method, params, connection=None):
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        if connection is not None:
            msg["connection"] = connection
        self.send(msg)
        return self.wait(lambda m: m.get("id") == rid)

    def wait(self, pred, timeout=20, seq=False):
        """Takes the first message pred accepts, in order of arrival."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, (n, m) in enumerate(self.messages):
                    if pred(m):
                        del self.messages[i]
                        return (n, m) if seq else m
                if self.closed:
                    raise EOFError("service closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no such message")
                self.cond.wait(left)

    def search(self, params, connection=None):
        """Runs a search:text to its end: (matches, done, results notifications)."""
        answer = self.request("search:text", params, connection)
        assert "result" in answer, answer
        sid = answer["result"]["searchId"]
        matches, notes = [], []
        while True:
            m = self.wait(lambda m: m.get("params", {}).get("searchId") == sid)
            if connection is not None:
                assert m.get("connection") == connection
            if m["method"] == "search:results":
                notes.append(m)
                matches += m["params"]["matches"]
            else:
                assert m["method"] == "search:done"
                return matches, m["params"], notes

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # a close alone waits for the reader's recv()
        except OSError:
            pass
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def write(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def paths(matches):
    return sorted({m["path"] for m in matches})


def key(m):
    return (m["path"], m["line"], m["column"])


MODES = [pytest.param(False, id="python"),
         pytest.param(True, id="rg", marks=pytest.mark.skipif(RG is None, reason="ripgrep is not installed"))]


@pytest.fixture(params=MODES)
def service(request, tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    s = Service(str(root), request.param)
    yield s
    s.close()


def test_gitignore(service):
    r = service.root
    write(r, ".gitignore", "*.log\n/build/\nout/\n!keep.log\ndocs/**/gen\n# comment\n\\#hash\n")
    write(r, "a.txt", "needle\n")
    write(r, "x.log", "needle\n")
    write(r, "keep.log", "needle\n")
    write(r, "build/b.txt", "needle\n")
    write(r, "src/build/c.txt", "needle\n")  # /build/ is anchored: this one stays
    write(r, "src/out/d.txt", "needle\n")  # out/ is not anchored: ignored at any depth
    write(r, "docs/a/b/gen/e.txt", "needle\n")
    write(r, "docs/gen.txt", "needle\n")
    write(r, "#hash", "needle\n")
    write(r, "sub/.gitignore", "*.md\n!important.md\nlocal/\n")
    write(r, "sub/n.md", "needle\n")
    write(r, "sub/important.md", "needle\n")
    write(r, "sub/local/f.txt", "needle\n")
    write(r, "other/n.md", "needle\n")  # sub/.gitignore applies below sub only
    write(r, "dironly/file", "needle\n")
    write(r, "x/dironly", "needle\n")
    with open(os.path.join(r, ".gitignore"), "a") as f:
        f.write("dironly/\n")  # a directory-only pattern leaves the file x/dironly alone
    write(r, ".git/config", "needle\n")
    write(r, ".hidden", "needle\n")
    matches, done, _ = service.search({"query": "needle"})
    assert paths(matches) == [".hidden", "a.txt", "docs/gen.txt", "keep.log", "other/n.md",
                              "src/build/c.txt", "sub/important.md", "x/dironly"]
    assert done["files"] == 8 and done["matches"] == 8 and done["truncated"] is False


def test_binary_and_huge_skipped(service):
    r = service.root
    write(r, "text.txt", "needle here\n")
    write(r, "bin.dat", b"needle\0binary\n")
    write(r, "huge.txt", "needle\n" + "x" * (1024 * 1024 + 10) + "\n")
    write(r, "big-but-fine.txt", "needle\n" + "y" * (1024 * 1024 - 100) + "\n")
    matches, done, _ = service.search({"query": "needle"})
    assert paths(matches) == ["big-but-fine.txt", "text.txt"]


def test_match_fields(service):
    r = service.root
    write(r, "a.txt", "first\n  café Needle needle\r\nlast needle")
    matches, done, _ = service.search({"query": "needle"})
    got = sorted((m["path"], m["line"], m["column"], m["length"], m["text"]) for m in matches)
    assert got == [("a.txt", 2, 7, 6, "  café Needle needle"), ("a.txt", 2, 14, 6, "  café Needle needle"),
                   ("a.txt", 3, 5, 6, "last needle")]
    matches, _, _ = service.search({"query": "Needle", "caseSensitive": True})
    assert [(m["line"], m["column"]) for m in matches] == [(2, 7)]
    # Columns are UTF-16 code units, as the editor's offsets: an astral character counts two.
    write(r, "b.txt", "\U0001F600needle\n")
    matches, _, _ = service.search({"query": "needle", "include": ["b.txt"]})
    assert [(m["column"], m["text"]) for m in matches] == [(2, "\U0001F600needle")]


def test_regex_include_exclude(service):
    r = service.root
    write(r, "src/a.c", "int foo123 = 1;\n")
    write(r, "src/b.h", "int foo9;\n")
    write(r, "vendor/c.c", "int foo5;\n")
    write(r, "d.py", "foo77\n")
    matches, _, _ = service.search({"query": r"foo\d+", "regex": True})
    assert paths(matches) == ["d.py", "src/a.c", "src/b.h", "vendor/c.c"]
    matches, _, _ = service.search({"query": r"foo\d+", "regex": True, "include": ["*.c"]})
    assert paths(matches) == ["src/a.c", "vendor/c.c"]
    matches, _, _ = service.search({"query": r"foo\d+", "regex": True, "exclude": ["vendor"]})
    assert paths(matches) == ["d.py", "src/a.c", "src/b.h"]
    matches, _, _ = service.search({"query": "foo", "include": ["src/**"], "exclude": ["*.h"]})
    assert paths(matches) == ["src/a.c"]


def test_long_line_trimmed(service):
    r = service.root
    write(r, "long.txt", "a" * 5000 + "needle" + "b" * 5000 + "\n")
    matches, _, _ = service.search({"query": "needle"})
    (m,) = matches
    assert m["column"] == 5000 and len(m["text"]) <= 400
    assert m["text"][m["column"] - m["textColumn"] :].startswith("needle")


def test_streaming_and_bounds(service):
    r = service.root
    for i in range(50):
        write(r, "d%02d/f.txt" % i, "needle\n" * 100)
    matches, done, notes = service.search({"query": "needle"})
    assert len(matches) == 2000 and done["matches"] == 2000 and done["truncated"] is True
    assert len(notes) >= 20  # streamed in batches of at most 100
    assert all(len(n["params"]["matches"]) <= 100 for n in notes)
    matches, done, _ = service.search({"query": "needle", "maxResults": 250})
    assert len(matches) == 250 and done["truncated"] is True
    matches, done, _ = service.search({"query": "needle", "maxResults": 10 ** 9, "include": ["d0*/**"]})
    assert len(matches) == 1000 and done == {"searchId": done["searchId"], "files": 10, "matches": 1000,
                                             "truncated": False}


def test_cancel(service):
    r = service.root
    for i in range(400):
        write(r, "f%03d.txt" % i, ("needle " + "z" * 60 + "\n") * 2000)
    answer = service.request("search:text", {"query": "needle", "maxResults": 10000}, "c1")
    sid = answer["result"]["searchId"]
    assert service.request("search:cancel", {"searchId": sid}, "c1")["result"] == {}
    n, done = service.wait(lambda m: m.get("method") == "search:done", seq=True)
    assert done["params"]["searchId"] == sid and done["params"].get("cancelled") is True
    assert done["params"]["matches"] < 10000
    # Nothing of that search follows its end; a cancel of a finished search is refused.
    time.sleep(0.3)
    assert [m for k, m in service.messages if k > n] == []
    assert service.request("search:cancel", {"searchId": sid}, "c1")["error"]["code"] == -32001


def test_cancel_only_own_connection(service):
    r = service.root
    for i in range(200):
        write(r, "f%03d.txt" % i, "needle\n" * 5000)
    sid = service.request("search:text", {"query": "needle", "maxResults": 10000}, "c1")["result"]["searchId"]
    assert service.request("search:cancel", {"searchId": sid}, "c2")["error"]["code"] == -32001
    done = service.wait(lambda m: m.get("method") == "search:done")
    assert done["connection"] == "c1" and "cancelled" not in done["params"]


def test_concurrent_searches_bounded(service):
    r = service.root
    for i in range(200):
        write(r, "f%03d.txt" % i, "needle\n" * 5000)
    answers = [service.request("search:text", {"query": "needle", "maxResults": 10000}, "c1") for _ in range(5)]
    assert [("result" in a) for a in answers[:4]] == [True] * 4
    assert answers[4]["error"]["code"] == -32004
    # Another connection is not turned away by the first one's searches.
    other = service.request("search:text", {"query": "needle", "maxResults": 1}, "c2")
    assert "result" in other
    for a in answers[:4]:
        service.request("search:cancel", {"searchId": a["result"]["searchId"]}, "c1")


def test_symlinks_not_followed(service, tmp_path):
    r = service.root
    outside = tmp_path / "outside"
    outside.mkdir()
    write(str(outside), "secret.txt", "needle secret\n")
    os.symlink(str(outside), os.path.join(r, "escape"))
    os.symlink(str(outside / "secret.txt"), os.path.join(r, "link.txt"))
    write(r, "inside.txt", "needle\n")
    matches, _, _ = service.search({"query": "needle"})
    assert paths(matches) == ["inside.txt"]
    files = service.request("search:files", {"query": "secret"})["result"]["files"]
    assert files == []


def test_fuzzy_files(service):
    r = service.root
    for rel in ["src/main.c", "src/util/string_map.c", "src/smart_alloc.c", "docs/some_manual.md",
                "tests/test_main.py", "README.md", "src/domain.c", "web/src/MainView.tsx"]:
        write(r, rel, "")
    files = service.request("search:files", {"query": "main"})["result"]["files"]
    assert files[0] == "src/main.c"
    assert set(files) >= {"src/main.c", "tests/test_main.py", "web/src/MainView.tsx", "src/domain.c"}
    files = service.request("search:files", {"query": "smc"})["result"]["files"]
    assert files[0] == "src/util/string_map.c"  # word starts s_m + .c
    files = service.request("search:files", {"query": "mv"})["result"]["files"]
    assert files[0] == "web/src/MainView.tsx"  # camel case
    files = service.request("search:files", {"query": "zzz"})["result"]["files"]
    assert files == []
    files = service.request("search:files", {"query": "c", "maxResults": 2})["result"]["files"]
    assert len(files) == 2


def test_file_list_cache_invalidated(service):
    r = service.root
    write(r, "alpha.txt", "")
    assert service.request("search:files", {"query": "alpha"})["result"]["files"] == ["alpha.txt"]
    write(r, "alphabet.txt", "")
    assert service.request("search:files", {"query": "alpha"})["result"]["files"] == ["alpha.txt"]
    service.send({"jsonrpc": "2.0", "method": "file:changed_on_disk",
                  "params": {"path": os.path.join(r, "alphabet.txt"), "kind": "created"}})
    assert service.request("search:files", {"query": "alpha"})["result"]["files"] == ["alpha.txt", "alphabet.txt"]


def test_root_follows_the_workspace(service, tmp_path):
    write(service.root, "one.txt", "needle\n")
    other = tmp_path / "other"
    other.mkdir()
    write(str(other), "two.txt", "needle\n")
    matches, _, _ = service.search({"query": "needle"})
    assert paths(matches) == ["one.txt"]
    service.root = str(other)
    matches, _, _ = service.search({"query": "needle"})
    assert paths(matches) == ["two.txt"]
    assert service.request("search:files", {"query": "one"})["result"]["files"] == []


def test_protocol_errors(service):
    service.send_raw(b"{not json\n")
    assert service.wait(lambda m: True)["error"]["code"] == -32700
    service.send_raw(b"[1,2]\n")
    assert service.wait(lambda m: True)["error"]["code"] == -32600
    service.send_raw(b"42\n")
    assert service.wait(lambda m: True)["error"]["code"] == -32600
    assert service.request("search:nope", {})["error"]["code"] == -32601
    assert service.request("fs:read_file", {"path": "/etc/passwd"})["error"]["code"] == -32601
    for params in [{}, {"query": ""}, {"query": 5}, {"query": "x", "regex": "yes"},
                   {"query": "x", "maxResults": 0}, {"query": "x", "maxResults": "9"},
                   {"query": "x", "include": [1]}, {"query": "(", "regex": True}, {"query": "x" * 1001},
                   {"query": "x", "exclude": ["a"] * 65}]:
        assert service.request("search:text", params)["error"]["code"] == -32602, params
    assert service.request("search:files", {"query": " "})["error"]["code"] == -32602
    assert service.request("search:cancel", {"searchId": 3})["error"]["code"] == -32602
    service.send({"jsonrpc": "2.0", "id": 9, "method": "search:text", "params": [1]})
    assert service.wait(lambda m: m.get("id") == 9)["error"]["code"] == -32602
    # Notifications are never answered, not even unknown ones; the service still serves.
    service.send({"jsonrpc": "2.0", "method": "search:text", "params": {"query": "x"}})
    service.send({"jsonrpc": "2.0", "method": "nothing"})
    write(service.root, "a.txt", "x\n")
    matches, _, _ = service.search({"query": "x"})
    assert paths(matches) == ["a.txt"]


def test_oversized_line(service):
    service.send_raw(b'{"a":"' + b"x" * (17 * 1024 * 1024) + b'"}\n')
    assert service.wait(lambda m: True, timeout=60)["error"]["code"] == -32004
    write(service.root, "a.txt", "x\n")
    matches, _, _ = service.search({"query": "x"})
    assert len(matches) == 1


def test_no_project(tmp_path):
    s = Service("", False)
    try:
        assert s.request("search:text", {"query": "x"})["error"]["code"] == -32001
        assert s.request("search:files", {"query": "x"})["error"]["code"] == -32001
    finally:
        s.close()


def test_exits_when_input_closes(service):
    service.sock.shutdown(socket.SHUT_WR)
    assert service.proc.wait(timeout=10) == 0


@pytest.mark.skipif(RG is None, reason="ripgrep is not installed")
def test_rg_and_python_agree(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    r = str(root)
    write(r, ".gitignore", "gen/\n*.tmp\n!/keep.tmp\n")
    write(r, "keep.tmp", "Alpha beta alpha\n")
    write(r, "x.tmp", "alpha\n")
    write(r, "gen/y.txt", "alpha\n")
    write(r, "src/z.c", "/* alpha */ ALPHA\talphabet\nnone\n\nalpha at end alpha")
    write(r, "src/deep/.gitignore", "*.c\n")
    write(r, "src/deep/w.c", "alpha\n")
    write(r, "src/deep/w.h", "x alpha y\n")
    write(r, "bin", b"alpha\0")
    write(r, "utf.txt", "ünïcödé alpha ü alpha\n")
    results = []
    for use_rg in (False, True):
        s = Service(r, use_rg)
        try:
            got = []
            for params in [{"query": "alpha"}, {"query": "alpha", "caseSensitive": True},
                           {"query": r"al\w+", "regex": True}, {"query": "alpha", "include": ["*.c", "*.h"]},
                           {"query": "alpha", "exclude": ["src"]}]:
                matches, done, _ = s.search(params)
                del done["searchId"]
                got.append((sorted(map(json.dumps, matches)), done))
            got.append(s.request("search:files", {"query": "t"})["result"])
            results.append(got)
        finally:
            s.close()
    assert results[0] == results[1]
