"""What one unauthenticated TLS client costs the gateway when it speaks HTTP/2 and sends PINGs without
reading the answers: the gateway's resident memory before, right after, and a while after the flood.

  /usr/bin/python3 bench/h2-ping-flood.py --gateway build/gateway/helios-gateway \
      --worker build/worker/helios-worker --web-root build/web/dist [--pings 1000000]

Measured on a 2-core Debian 12 machine, 1,000,000 PINGs (17 MB):
  HTTP/2 offered by ALPN (before):  ALPN h2, all sent; RSS +57,644 KiB, still +57,516 KiB after the
                                    client left.
  http/1.1 only (now):              ALPN none; the connection is answered 403 and closed at once;
                                    RSS +444 KiB.
"""

import argparse
import os
import select
import socket
import ssl
import subprocess
import tempfile
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags=0, stream=0, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--web-root", required=True)
    ap.add_argument("--pings", type=int, default=1000000)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        env = dict(os.environ, HOME=d)
        prefix = []
        if os.geteuid() == 0:
            # helios-gateway refuses to run as root.
            import pwd
            nobody = pwd.getpwnam("nobody")
            for name in [d] + [os.path.join(d, n) for n in os.listdir(d)]:
                os.chown(name, nobody.pw_uid, nobody.pw_gid)
            prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        proc = subprocess.Popen(prefix + [a.gateway, "--listen", "127.0.0.1:0", "--web-root", a.web_root, "--worker",
                                 a.worker, "--runtime-dir", os.path.join(d, "run"), "--config", "/dev/null",
                                 "--cert", cert, "--key", key], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            line = proc.stdout.readline().decode()
            port = int(line.split("https://127.0.0.1:")[1].split("/")[0])
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
            alpn = s.selected_alpn_protocol()
            s.setblocking(False)
            data = PREFACE + frame(0x4) + b"".join(frame(0x6, payload=i.to_bytes(8, "big"))
                                                   for i in range(a.pings))
            sent, deadline = 0, time.monotonic() + 120
            view = memoryview(data)
            while sent < len(data) and time.monotonic() < deadline:
                _, w, _ = select.select([], [s], [], 1)
                if not w:
                    continue
                try:
                    sent += s.send(view[sent:sent + 65536])
                except (ssl.SSLWantWriteError, BlockingIOError):
                    continue
                except OSError:
                    break
            time.sleep(2)
            after = rss_kib(proc.pid)
            s.close()
            time.sleep(3)
            later = rss_kib(proc.pid)
            print(f"ALPN selected: {alpn}; sent {sent} of {len(data)} bytes ({a.pings} PINGs)")
            print(f"gateway RSS: before {before} KiB, after the flood {after} KiB (+{after - before}), "
                  f"3 s after the client left {later} KiB (+{later - before})")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
