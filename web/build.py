#!/usr/bin/python3
"""Build the web app directory the gateway serves, the way a Vite build lays it out: index.html at the
top, assets renamed NAME-HASH.EXT (HASH: 8 characters of the content's digest) so they can be cached for
good, and a precompressed .gz next to each text file."""

import argparse
import base64
import gzip
import hashlib
import os
import re
import shutil
import sys

TEXT = (".html", ".js", ".css", ".json", ".svg", ".map", ".txt")


def content_hash(data):
    digest = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(digest).decode()[:8]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    if path.endswith(TEXT):
        # mtime 0 keeps the output the same from one build to the next.
        with open(tmp, "wb") as f:
            f.write(gzip.compress(data, compresslevel=9, mtime=0))
        os.replace(tmp, path + ".gz")


def build(src, out):
    if os.path.isdir(out):
        shutil.rmtree(out)
    renamed = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name == "index.html" or not os.path.isfile(path) or name.startswith("."):
            continue
        with open(path, "rb") as f:
            data = f.read()
        stem, ext = os.path.splitext(name)
        hashed = f"{stem}-{content_hash(data)}{ext}"
        renamed[f"assets/{name}"] = f"assets/{hashed}"
        write(os.path.join(out, "assets", hashed), data)
    with open(os.path.join(src, "index.html"), encoding="utf-8") as f:
        html = f.read()
    for old, new in renamed.items():
        html = re.sub(rf'(["\']){re.escape(old)}(["\'])', rf"\g<1>{new}\g<2>", html)
    write(os.path.join(out, "index.html"), html.encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", required=True)
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--install-dir", help="output directory below the install prefix (meson install)")
    parser.add_argument("--stamp")
    args = parser.parse_args()
    out = args.out
    if args.install_dir:
        out = os.path.join(os.environ["MESON_INSTALL_DESTDIR_PREFIX"], args.install_dir)
    if not out:
        parser.error("--out or --install-dir is needed")
    build(args.src, out)
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write("built\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
