# SPDX-License-Identifier: MIT
"""The search service joined to a real worker over the worker's socket (its standard input and
output that connection, as a manifest-started service has its socket pair): requests from a client
reach it through the bus, and it learns the project root from the worker's workspace:state."""

import os
import socket
import subprocess
import time

SERVICE = os.path.join(os.path.dirname(__file__), "..", "..", "services", "search", "helios-search.py")


def start_service(worker):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(worker.sock)
    proc = subprocess.Popen(["/usr/bin/python3", SERVICE], stdin=sock, stdout=sock)
    sock.close()
    return proc


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_search_through_the_worker(worker, client):
    root = os.path.join(worker.home, "proj")
    write(root, "src/main.c", "int main(void) { return 0; }\n")
    write(root, "src/util/string_map.c", "/* main */\n")
    write(root, "ignored/main.c", "main\n")
    write(root, ".gitignore", "ignored/\n")
    client.call("project:load", {"root": root})
    proc = start_service(worker)
    try:
        # The service has joined when its topics are taken.
        for _ in range(100):
            msg = client.request("search:files", {"query": "main"})
            if "error" not in msg or msg["error"]["code"] != -32601:
                break
            time.sleep(0.1)
        assert msg["result"]["files"][0] == "src/main.c"
        assert "ignored/main.c" not in msg["result"]["files"]
        assert client.call("search:text", {"query": "main"})["searchId"]
        assert client.request("search:text", {"query": ""})["error"]["code"] == -32602
        # Another project loaded: the service follows it.
        other = os.path.join(worker.home, "other")
        write(other, "lonely.txt", "")
        client.call("project:load", {"root": other})
        assert client.call("search:files", {"query": "main"})["files"] == []
    finally:
        proc.kill()
        proc.wait()

