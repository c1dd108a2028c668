# SPDX-License-Identifier: MIT
"""The search service as Helios runs it: started by a real worker from its manifest on the first
search:* request, asked through the worker's socket and through the gateway's /ws. Its matches
stream to the client that asked (the busClient contract of docs/services.md) and to no other; it
learns the project root from the worker's workspace:state. Also joined by hand with --connect."""

import json
import os
import shutil
import subprocess
import time


SERVICE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "services", "search",
                                       "helios-search.py"))


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_project(root):
    write(root, "src/main.c", "int main(void) { return 0; }\n")
    write(root, "src/util/string_map.c", "/* main */\n")
    write(root, "ignored/main.c", "main\n")
    write(root, ".gitignore", "ignored/\n")
    # Enough matches for several search:results and for a cancel to land before the end.
    for i in range(300):
        write(root, "many/f%03d.txt" % i, "needle\n" * 2000)


def manifest_dir(directory, script):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "search.json"), "w") as f:
        json.dump({"exec": ["/usr/bin/python3", script], "topics": ["search:*"]}, f)
    return directory


def search_notifications(conn):
    """Take the search:* notifications conn has received so far."""
    got = [n for n in conn.notifications if n["method"].startswith("search:")]
    for n in got:
        conn.notifications.remove(n)
    return got


def drive_search(conn, other, root):
    """What docs/protocol.md's Search promises, through conn; other is another client of the user."""
    conn.call("project:load", {"root": root})
    # The first request starts the service; the manifest named its topics, so it is served at once.
    files = conn.call("search:files", {"query": "main"}, timeout=20)["files"]
    assert files[0] == "src/main.c" and "ignored/main.c" not in files
    # The file list is kept, and built again when the worker reports a file created on disk (the
    # service hears file:changed_on_disk on the bus).
    write(root, "src/mainly.txt", "")
    deadline = time.monotonic() + 10
    while "src/mainly.txt" not in conn.call("search:files", {"query": "mainly"})["files"]:
        assert time.monotonic() < deadline, "the file list was not built again"
        time.sleep(0.1)

    sid = conn.call("search:text", {"query": "main", "include": ["src/**"]})["searchId"]
    done = conn.wait_notification("search:done", lambda p: p["searchId"] == sid, timeout=20)
    assert done == {"searchId": sid, "files": 2, "matches": 2, "truncated": False}
    notes = search_notifications(conn)
    assert notes and all(n["method"] == "search:results" for n in notes)
    matches = [m for n in notes for m in n["params"]["matches"]]
    assert all(n["params"]["searchId"] == sid and "busClient" not in n["params"] for n in notes)
    assert sorted((m["path"], m["line"], m["column"]) for m in matches) == [
        ("src/main.c", 1, 4), ("src/util/string_map.c", 1, 3)]

    # A large search streams in many notifications, all to conn.
    sid = conn.call("search:text", {"query": "needle", "maxResults": 3000})["searchId"]
    done = conn.wait_notification("search:done", lambda p: p["searchId"] == sid, timeout=30)
    assert done["matches"] == 3000 and done["truncated"] is True
    notes = search_notifications(conn)
    assert len(notes) >= 30 and sum(len(n["params"]["matches"]) for n in notes) == 3000

    # The other client cannot cancel conn's search; conn can.
    sid = conn.call("search:text", {"query": "needle", "maxResults": 10000})["searchId"]
    assert other.request("search:cancel", {"searchId": sid})["error"]["code"] == -32001
    assert conn.call("search:cancel", {"searchId": sid}) == {}
    done = conn.wait_notification("search:done", lambda p: p["searchId"] == sid, timeout=30)
    assert done["cancelled"] is True and done["matches"] < 10000
    search_notifications(conn)

    # Everything the service sent for conn was routed before conn saw its search:done, so an answer
    # other gets now comes after anything that would have been queued for it: it got none of it.
    other.call("worker:info")
    assert search_notifications(other) == []
    # The other client's own search is its own.
    sid = other.call("search:text", {"query": "return"})["searchId"]
    assert other.wait_notification("search:done", lambda p: p["searchId"] == sid, timeout=20)["matches"] == 1
    conn.call("worker:info")
    assert search_notifications(conn) == []

    # Bad params are the service's answer, through the bus.
    assert conn.request("search:text", {"query": ""})["error"]["code"] == -32602
    # The service follows the project the worker has loaded.
    other_root = root + "-other"
    write(other_root, "lonely.txt", "")
    conn.call("project:load", {"root": other_root})
    assert conn.call("search:files", {"query": "main"})["files"] == []


def test_search_started_from_its_manifest(make_worker, tmp_path):
    services = manifest_dir(str(tmp_path / "system-services"), SERVICE)
    w = make_worker(f"--system-services={services}")
    root = os.path.join(w.home, "proj")
    make_project(root)
    with w.connect() as client, w.connect() as other:
        drive_search(client, other, root)
        got = {s["name"]: s for s in client.call("bus:services")["services"]}
        assert got["search"]["state"] == "running" and got["search"]["topics"] == ["search:*"]
    assert "Started the service search (pid " in w.read_log()


def test_search_through_the_gateway(make_gateway):
    g = make_gateway(start=False)
    # The worker's sandbox shows it its home, not the test's directories: the program and its
    # manifest (the user's level) live there.
    script = os.path.join(g.home, "helios-search.py")
    shutil.copyfile(SERVICE, script)
    manifest_dir(os.path.join(g.home, ".config", "helios", "services"), script)
    root = os.path.join(g.home, "proj")
    make_project(root)
    g.start()
    ws, other = g.rpc(), g.rpc()
    drive_search(ws, other, root)
    other.close()
    ws.close()


def test_search_joined_by_hand(worker, client):
    root = os.path.join(worker.home, "proj")
    write(root, "src/main.c", "int main(void) { return 0; }\n")
    client.call("project:load", {"root": root})
    proc = subprocess.Popen(["/usr/bin/python3", SERVICE, "--connect", worker.sock], stdin=subprocess.DEVNULL)
    try:
        # It has joined (bus:serve) when its topics are served.
        deadline = time.monotonic() + 10
        while True:
            msg = client.request("search:files", {"query": "main"})
            if msg.get("error", {}).get("code") != -32601 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert msg["result"]["files"] == ["src/main.c"]
        sid = client.call("search:text", {"query": "main"})["searchId"]
        assert client.wait_notification("search:done", lambda p: p["searchId"] == sid)["matches"] == 1
    finally:
        proc.kill()
        proc.wait()
