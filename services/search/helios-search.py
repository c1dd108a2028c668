#!/usr/bin/python3
"""Helios search service: text search and fuzzy file names in the loaded project.

Speaks newline-delimited JSON-RPC 2.0 on standard input and output (one end of the socket pair the
worker starts it with, see docs/services.md). Serves search:text, search:cancel and search:files.
The project root is asked of the worker (workspace:state) for every search, so it is always the
project the user has loaded and never a path a client names. Standard library only; ripgrep is used
for search:text and for listing files when `rg` is on PATH.
"""

import base64
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import time

MAX_LINE = 16 * 1024 * 1024  # the worker's default message limit
MAX_QUERY = 1000  # bytes of a query
MAX_GLOBS = 64
DEFAULT_RESULTS = 2000
MAX_RESULTS = 10000
DEFAULT_FILES = 50
MAX_FILES = 1000
MAX_FILE_SIZE = 1024 * 1024  # larger files are not searched
BINARY_PROBE = 8192  # a NUL byte in this many first bytes makes a file binary
TEXT_BEFORE = 80  # characters of a long line kept before the match
TEXT_MAX = 400  # characters of line text at most per match
TIME_LIMIT = 30.0  # seconds of one search:text
MAX_ACTIVE_PER_CONNECTION = 4
MAX_ACTIVE = 16
MAX_PENDING_ROOTS = 64  # requests waiting for the worker's workspace:state answer
BATCH_MATCHES = 100  # matches per search:results notification at most
BATCH_SECONDS = 0.05  # a notification leaves at least this often while matches come
FILE_LIST_TTL = 60.0  # seconds a cached file list is trusted without a change notice
MAX_LISTED_FILES = 500000

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
TOO_LARGE = -32004


class ParamError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Output


class Output:
    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, message):
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        with self.lock:
            try:
                self.stream.write(data + b"\n")
                self.stream.flush()
            except (BrokenPipeError, OSError):
                os._exit(0)

    def result(self, rid, result):
        self.send({"jsonrpc": "2.0", "id": rid, "result": result})

    def error(self, rid, code, message, data=None):
        err = {"code": code, "message": message}
        if data is not None:
            err["data"] = data
        self.send({"jsonrpc": "2.0", "id": rid, "error": err})

    def notify(self, method, params, connection):
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        if connection is not None:
            message["connection"] = connection
        self.send(message)


# ---------------------------------------------------------------------------------------------
# .gitignore


def glob_to_regex(glob):
    """Translates a gitignore glob (no leading or trailing slash) to a regex over '/'-paths."""
    out = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = i + 2
                if before_ok and after == n:
                    out.append(".*")
                    i = after
                    continue
                if before_ok and glob.startswith("/", after):
                    out.append("(?:.*/)?")
                    i = after + 1
                    continue
                out.append("[^/]*")
                i = after
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                body = body.replace("\\", "\\\\")
                out.append("(?!/)[" + body + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Pattern:
    __slots__ = ("regex", "negate", "dir_only", "anchored")

    def __init__(self, regex, negate, dir_only, anchored):
        self.regex = regex
        self.negate = negate
        self.dir_only = dir_only
        self.anchored = anchored


def parse_gitignore(text):
    patterns = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        # Trailing spaces are dropped unless escaped.
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line:
            continue
        negate = False
        if line.startswith("!"):
            negate = True
            line = line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        if not line:
            continue
        try:
            regex = re.compile(glob_to_regex(line) + r"\Z", re.DOTALL)
        except re.error:
            continue
        patterns.append(Pattern(regex, negate, dir_only, anchored))
    return patterns


def ignored_by(levels, rel, name, is_dir):
    """levels: [(base, patterns)] from the root down; rel is the path below the root."""
    verdict = None
    for base, patterns in levels:
        sub = rel[len(base) + 1 :] if base else rel
        for p in patterns:
            if p.dir_only and not is_dir:
                continue
            if p.regex.match(sub if p.anchored else name):
                verdict = not p.negate
    return bool(verdict)


def glob_matches(patterns, rel, name, is_dir):
    for p in patterns:
        if p.dir_only and not is_dir:
            continue
        if p.regex.match(rel if p.anchored else name):
            return True
    return False


def walk(root, cancelled=lambda: False, excludes=(), includes=()):
    """Yields (rel, size) for every regular file below root that .gitignore and the globs keep.

    Never follows a symbolic link: links are skipped, files are opened with O_NOFOLLOW later."""
    stack = [("", [])]
    while stack:
        rel_dir, levels = stack.pop()
        if cancelled():
            return
        path = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name == ".gitignore" and not e.is_symlink():
                try:
                    with open(os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as f:
                        text = f.read(MAX_FILE_SIZE).decode("utf-8", "replace")
                    levels = levels + [(rel_dir, parse_gitignore(text))]
                except OSError:
                    pass
                break
        subdirs = []
        for e in entries:
            rel = rel_dir + "/" + e.name if rel_dir else e.name
            try:
                if e.is_symlink():
                    continue
                is_dir = e.is_dir(follow_symlinks=False)
                if not is_dir and not e.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            if is_dir and e.name == ".git":
                continue
            if ignored_by(levels, rel, e.name, is_dir):
                continue
            if glob_matches(excludes, rel, e.name, is_dir):
                continue
            if is_dir:
                subdirs.append(rel)
                continue
            if includes and not glob_matches(includes, rel, e.name, False):
                continue
            try:
                size = e.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            yield rel, size
        for d in reversed(subdirs):
            stack.append((d, levels))


# ---------------------------------------------------------------------------------------------
# search:text


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def make_match(rel, line_no, line, start, end):
    """A match at characters [start, end) of line; long lines are trimmed around the match."""
    line = line.rstrip("\r\n")
    column = utf16_len(line[:start])
    length = utf16_len(line[start:end])
    text = line
    offset = 0
    if len(text) > TEXT_MAX:
        offset = max(0, start - TEXT_BEFORE)
        text = text[offset : offset + TEXT_MAX]
    m = {"path": rel, "line": line_no, "column": column, "length": length, "text": text}
    if offset or len(line) > TEXT_MAX:
        m["textColumn"] = utf16_len(line[:offset])
    return m


class TextSearch:
    def __init__(self, service, sid, connection, root, params):
        self.service = service
        self.sid = sid
        self.connection = connection
        self.root = root
        self.params = params
        self.cancel_event = threading.Event()
        self.proc = None
        self.batch = []
        self.batch_time = time.monotonic()
        self.matches = 0
        self.files = 0
        self.truncated = False
        self.timed_out = False
        self.deadline = time.monotonic() + service.time_limit
        self.batch_lock = threading.Lock()
        self.ended = threading.Event()

    def cancelled(self):
        if time.monotonic() > self.deadline:
            self.timed_out = True
            self.cancel_event.set()
        return self.cancel_event.is_set()

    def cancel(self):
        self.cancel_event.set()
        proc = self.proc
        if proc is not None:
            try:
                proc.kill()
            except OSError:
                pass

    def add(self, match):
        """Adds a match; False when no more are wanted."""
        if self.matches >= self.params["maxResults"]:
            self.truncated = True
            return False
        self.matches += 1
        with self.batch_lock:
            self.batch.append(match)
            if len(self.batch) >= BATCH_MATCHES or self.matches == 1:
                self.flush()
        return True

    def flusher(self):
        """Matches found do not wait for more: they leave at least every BATCH_SECONDS."""
        while not self.ended.wait(BATCH_SECONDS):
            with self.batch_lock:
                if time.monotonic() - self.batch_time >= BATCH_SECONDS:
                    self.flush()

    def flush(self):
        if self.batch and not self.cancel_event.is_set():
            self.service.out.notify("search:results", {"searchId": self.sid, "matches": self.batch},
                                    self.connection)
        self.batch = []
        self.batch_time = time.monotonic()

    def run(self):
        threading.Thread(target=self.flusher, daemon=True).start()
        try:
            if self.service.rg:
                self.run_rg()
            else:
                self.run_python()
        except Exception as e:  # a search that fails still ends with search:done
            sys.stderr.write("helios-search: %s: %r\n" % (self.sid, e))
        finally:
            if self.timed_out:
                self.truncated = True
            self.ended.set()
            with self.batch_lock:
                self.flush()
            done = {"searchId": self.sid, "files": self.files, "matches": self.matches,
                    "truncated": self.truncated}
            if self.timed_out:
                done["timedOut"] = True
            if self.cancel_event.is_set() and not self.timed_out:
                done["cancelled"] = True
            self.service.out.notify("search:done", done, self.connection)
            self.service.finished(self)

    def compile(self):
        p = self.params
        pattern = p["query"] if p["regex"] else re.escape(p["query"])
        flags = 0 if p["caseSensitive"] else re.IGNORECASE
        return re.compile(pattern, flags)

    def run_python(self):
        regex = self.compile()
        p = self.params
        for rel, size in walk(self.root, self.cancelled, p["exclude"], p["include"]):
            if size > MAX_FILE_SIZE:
                continue
            try:
                fd = os.open(os.path.join(self.root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            with open(fd, "rb") as f:
                try:
                    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                        continue
                    data = f.read(MAX_FILE_SIZE + 1)
                except OSError:
                    continue
            if len(data) > MAX_FILE_SIZE or b"\0" in data[:BINARY_PROBE]:
                continue
            text = data.decode("utf-8", "replace")
            if not regex.search(text):
                continue
            counted = False
            for line_no, line in enumerate(text.split("\n"), 1):
                for m in regex.finditer(line):
                    if m.start() == m.end():
                        continue
                    if not counted:
                        self.files += 1
                        counted = True
                    if not self.add(make_match(rel, line_no, line, m.start(), m.end())):
                        return
                if self.cancelled():
                    return

    def run_rg(self):
        p = self.params
        args = [self.service.rg, "--json", "--no-config", "--hidden", "--no-follow", "--no-require-git",
                "--no-ignore-parent", "--no-ignore-global", "--no-ignore-exclude", "--no-ignore-dot",
                "--max-filesize", str(MAX_FILE_SIZE), "--glob", "!.git/", "--threads", "2"]
        args.append("--case-sensitive" if p["caseSensitive"] else "--ignore-case")
        if not p["regex"]:
            args.append("--fixed-strings")
        # Include globs narrow what .gitignore keeps; as rg globs they would also bring ignored
        # files back, so they are applied to rg's answers instead.
        includes = self.params["includePatterns"]
        for g in p["exclude"]:
            args += ["--glob", "!" + g]
        args += ["--regexp", p["query"], "--", "."]
        self.proc = subprocess.Popen(args, cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        if self.cancel_event.is_set():
            self.proc.kill()
        timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self.expire)
        timer.daemon = True
        timer.start()
        try:
            current = None
            for raw in self.proc.stdout:
                if self.cancel_event.is_set():
                    break
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                kind = event.get("type")
                data = event.get("data", {})
                if kind == "begin":
                    current = None
                elif kind == "match":
                    rel = rg_text(data.get("path", {}))
                    if rel.startswith("./"):
                        rel = rel[2:]
                    line_bytes = rg_bytes(data.get("lines", {}))
                    if includes and not glob_matches(includes, rel, rel.rsplit("/", 1)[-1], False):
                        continue
                    if current != rel:
                        self.files += 1
                        current = rel
                    line = line_bytes.decode("utf-8", "replace")
                    keep = True
                    for sm in data.get("submatches", []):
                        start = len(line_bytes[: sm["start"]].decode("utf-8", "replace"))
                        end = len(line_bytes[: sm["end"]].decode("utf-8", "replace"))
                        if start == end:
                            continue
                        if not self.add(make_match(rel, data.get("line_number", 0), line, start, end)):
                            keep = False
                            break
                    if not keep:
                        break
        finally:
            timer.cancel()
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.stdout.close()
            self.proc.wait()

    def expire(self):
        self.timed_out = True
        self.cancel()


def rg_bytes(obj):
    if "text" in obj:
        return obj["text"].encode("utf-8")
    try:
        return base64.b64decode(obj.get("bytes", ""))
    except ValueError:
        return b""


def rg_text(obj):
    return rg_bytes(obj).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# search:files


class FileList:
    def __init__(self, root, files):
        self.root = root
        self.files = files
        self.lower = [f.lower() for f in files]
        self.made = time.monotonic()


def list_files(root, rg):
    files = []
    if rg:
        args = [rg, "--files", "--no-config", "--hidden", "--no-follow", "--no-require-git",
                "--no-ignore-parent", "--no-ignore-global", "--no-ignore-exclude", "--no-ignore-dot",
                "--glob", "!.git/", "--", "."]
        proc = subprocess.Popen(args, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        for raw in proc.stdout:
            name = raw.rstrip(b"\n").decode("utf-8", "surrogateescape")
            if name.startswith("./"):
                name = name[2:]
            files.append(name)
            if len(files) >= MAX_LISTED_FILES:
                proc.kill()
                break
        proc.stdout.close()
        proc.wait()
        files.sort()
    else:
        for rel, _ in walk(root):
            files.append(rel)
            if len(files) >= MAX_LISTED_FILES:
                break
    return [f.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for f in files]


SEPARATORS = "/_-. "


def fuzzy_score(query, path, lower):
    """Score of query (lower case) as a subsequence of path, or None. Higher is better.

    Each matched character scores; a character right after the previous one, at a word start (after
    a separator or at a lower-to-upper case change) or in the file's own name scores more. The
    matched window is tightened backwards from its end, and shorter paths win ties."""
    n = len(query)
    pos = 0
    for c in query:
        pos = lower.find(c, pos)
        if pos < 0:
            return None
        pos += 1
    end = pos
    # Walk back from the end to the latest start that still holds the whole query.
    qi = n - 1
    i = end - 1
    while qi >= 0:
        if lower[i] == query[qi]:
            qi -= 1
        i -= 1
    start = i + 1
    base_start = path.rfind("/") + 1
    score = 0
    prev = -2
    qi = 0
    i = start
    while qi < n:
        if lower[i] == query[qi]:
            s = 16
            if prev == i - 1:
                s += 12
            if i == 0 or path[i - 1] in SEPARATORS or (path[i - 1].islower() and path[i].isupper()):
                s += 10
            if i >= base_start:
                s += 6
            score += s
            prev = i
            qi += 1
        i += 1
    score -= (end - start) - n  # gaps inside the match
    if start >= base_start:
        score += 20
    score -= len(path) // 8
    return score


# ---------------------------------------------------------------------------------------------
# The service


def get_bool(params, name, default):
    v = params.get(name, default)
    if not isinstance(v, bool):
        raise ParamError("%s must be a boolean" % name)
    return v


def get_count(params, name, default, cap):
    v = params.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ParamError("%s must be a positive integer" % name)
    return min(v, cap)


def get_query(params):
    q = params.get("query")
    if not isinstance(q, str) or not q:
        raise ParamError("query must be a non-empty string")
    if len(q.encode("utf-8", "surrogatepass")) > MAX_QUERY:
        raise ParamError("query longer than %d bytes" % MAX_QUERY)
    return q


def get_globs(params, name):
    v = params.get(name, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or len(v) > MAX_GLOBS or not all(isinstance(g, str) and 0 < len(g) <= 256 for g in v):
        raise ParamError("%s must be a list of at most %d globs" % (name, MAX_GLOBS))
    if any("\n" in g or "\0" in g for g in v):
        raise ParamError("%s: a glob may not hold a newline or NUL" % name)
    return v


class Service:
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.rg = shutil.which("rg")
        self.time_limit = TIME_LIMIT
        self.searches = {}  # searchId -> TextSearch
        self.next_search = 1
        self.next_request = 1
        self.pending = {}  # our request id -> callback(root or None, error)
        self.file_lists = {}  # root -> FileList

    # Requests to the worker -------------------------------------------------------------

    def ask_root(self, callback):
        with self.lock:
            if len(self.pending) >= MAX_PENDING_ROOTS:
                return False
            rid = "search-%d" % self.next_request
            self.next_request += 1
            self.pending[rid] = callback
        self.out.send({"jsonrpc": "2.0", "id": rid, "method": "workspace:state", "params": {}})
        return True

    def on_response(self, msg):
        with self.lock:
            callback = self.pending.pop(msg.get("id"), None)
        if callback is None:
            return
        root = None
        result = msg.get("result")
        if isinstance(result, dict) and isinstance(result.get("root"), str) and result["root"]:
            root = result["root"]
        callback(root)

    # Dispatch ---------------------------------------------------------------------------

    def handle_line(self, line):
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            self.out.error(None, PARSE_ERROR, "parse error")
            return
        if isinstance(msg, list):
            self.out.error(None, INVALID_REQUEST, "batches are not served by this service")
            return
        if not isinstance(msg, dict):
            self.out.error(None, INVALID_REQUEST, "invalid request")
            return
        if "method" not in msg:
            if "result" in msg or "error" in msg:
                self.on_response(msg)
            return
        method = msg.get("method")
        rid = msg.get("id")
        has_id = "id" in msg
        if has_id and not (rid is None or isinstance(rid, (str, int, float)) and not isinstance(rid, bool)):
            self.out.error(None, INVALID_REQUEST, "invalid id")
            return
        if msg.get("jsonrpc") != "2.0" or not isinstance(method, str):
            if has_id:
                self.out.error(rid, INVALID_REQUEST, "invalid request")
            return
        params = msg.get("params", {})
        connection = msg.get("connection")
        if method == "file:changed_on_disk":
            self.on_disk_change(params)
            return
        if not has_id:
            return  # notifications we do not serve are none of our business
        handler = {"search:text": self.search_text, "search:cancel": self.search_cancel,
                   "search:files": self.search_files}.get(method)
        if handler is None:
            self.out.error(rid, METHOD_NOT_FOUND, "method not found", {"method": method})
            return
        if not isinstance(params, dict):
            self.out.error(rid, INVALID_PARAMS, "params must be an object")
            return
        try:
            handler(rid, params, connection)
        except ParamError as e:
            self.out.error(rid, INVALID_PARAMS, "invalid params", {"reason": str(e)})

    def with_root(self, rid, run):
        def got(root):
            if root is None:
                self.out.error(rid, NOT_FOUND, "no project loaded", {"reason": "no project loaded"})
                return
            try:
                real = os.path.realpath(root)
                if not os.path.isdir(real):
                    raise OSError
            except OSError:
                self.out.error(rid, NOT_FOUND, "project root not found", {"path": root})
                return
            run(real)

        if not self.ask_root(got):
            self.out.error(rid, TOO_LARGE, "too many requests waiting", {"reason": "too many requests"})

    # search:text ------------------------------------------------------------------------

    def search_text(self, rid, params, connection):
        parsed = {
            "query": get_query(params),
            "regex": get_bool(params, "regex", False),
            "caseSensitive": get_bool(params, "caseSensitive", False),
            "include": get_globs(params, "include"),
            "exclude": get_globs(params, "exclude"),
            "maxResults": get_count(params, "maxResults", DEFAULT_RESULTS, MAX_RESULTS),
        }
        if parsed["regex"]:
            try:
                re.compile(parsed["query"])
            except re.error as e:
                raise ParamError("invalid regular expression: %s" % e)
        parsed["include"] = [p for g in parsed["include"] for p in parse_gitignore(g)[:1]]
        parsed["exclude"] = [p for g in parsed["exclude"] for p in parse_gitignore(g)[:1]]
        raw_globs = (get_globs(params, "include"), get_globs(params, "exclude"))

        def run(root):
            with self.lock:
                mine = sum(1 for s in self.searches.values() if s.connection == connection)
                if mine >= MAX_ACTIVE_PER_CONNECTION or len(self.searches) >= MAX_ACTIVE:
                    busy = True
                else:
                    busy = False
                    # Not guessable: without a connection token any connection could cancel.
                    sid = "s%d-%s" % (self.next_search, secrets.token_hex(8))
                    self.next_search += 1
                    search = TextSearch(self, sid, connection, root, dict(parsed))
                    search.params["includePatterns"] = parsed["include"]
                    search.params["include"], search.params["exclude"] = raw_globs
                    if not self.rg:
                        search.params["include"] = parsed["include"]
                        search.params["exclude"] = parsed["exclude"]
                    self.searches[sid] = search
            if busy:
                self.out.error(rid, TOO_LARGE, "too many searches at once",
                               {"reason": "too many searches", "limit": MAX_ACTIVE_PER_CONNECTION})
                return
            self.out.result(rid, {"searchId": sid})
            threading.Thread(target=search.run, daemon=True).start()

        self.with_root(rid, run)

    def finished(self, search):
        with self.lock:
            self.searches.pop(search.sid, None)

    def search_cancel(self, rid, params, connection):
        sid = params.get("searchId")
        if not isinstance(sid, str):
            raise ParamError("searchId must be a string")
        with self.lock:
            search = self.searches.get(sid)
        if search is None or search.connection != connection:
            self.out.error(rid, NOT_FOUND, "no such search", {"searchId": sid})
            return
        search.cancel()
        self.out.result(rid, {})

    # search:files -----------------------------------------------------------------------

    def on_disk_change(self, params):
        if isinstance(params, dict) and params.get("kind") in ("created", "deleted", "moved"):
            with self.lock:
                self.file_lists.clear()

    def search_files(self, rid, params, connection):
        query = get_query(params)
        limit = get_count(params, "maxResults", DEFAULT_FILES, MAX_FILES)
        needle = "".join(query.split()).lower()
        if not needle:
            raise ParamError("query must hold more than spaces")

        def work(root):
            try:
                with self.lock:
                    cached = self.file_lists.get(root)
                if cached is None or time.monotonic() - cached.made > FILE_LIST_TTL:
                    cached = FileList(root, list_files(root, self.rg))
                    with self.lock:
                        self.file_lists = {root: cached}
                scored = []
                for path, lower in zip(cached.files, cached.lower):
                    s = fuzzy_score(needle, path, lower)
                    if s is not None:
                        scored.append((-s, len(path), path))
                scored.sort()
                self.out.result(rid, {"files": [p for _, _, p in scored[:limit]]})
            except Exception as e:
                self.out.error(rid, INTERNAL_ERROR, "internal error", {"reason": str(e)})

        self.with_root(rid, lambda root: threading.Thread(target=work, args=(root,), daemon=True).start())

    # Main loop --------------------------------------------------------------------------

    def serve(self, stream):
        # Started from its manifest the connection serves search:* already, and naming one's own
        # topics again is fine; connected to the worker's socket by hand, this is what joins the bus.
        self.out.send({"jsonrpc": "2.0", "id": "search-serve", "method": "bus:serve",
                       "params": {"topics": ["search:*"]}})
        self.out.send({"jsonrpc": "2.0", "id": "search-subscribe", "method": "bus:subscribe",
                       "params": {"topics": ["file:changed_on_disk"]}})
        while True:
            line = stream.readline(MAX_LINE + 1)
            if not line:
                break
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                # Too long: answer once, drop the rest of the line.
                self.out.error(None, TOO_LARGE, "message too large")
                while True:
                    rest = stream.readline(MAX_LINE)
                    if not rest or rest.endswith(b"\n"):
                        break
                if not rest:
                    break
                continue
            if not line.strip():
                continue
            try:
                self.handle_line(line)
            except Exception as e:
                sys.stderr.write("helios-search: %r\n" % e)
                self.out.error(None, INTERNAL_ERROR, "internal error")
        with self.lock:
            searches = list(self.searches.values())
        for s in searches:
            s.cancel()


def main():
    out = Output(sys.stdout.buffer)
    service = Service(out)
    service.serve(sys.stdin.buffer)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
