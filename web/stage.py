#!/usr/bin/python3
"""Copy the committed web bundle (web/dist) into the build directory, where the tests' gateway serves
it from. The bundle itself is built by tools/build-web; nothing here needs node."""

import argparse
import os
import shutil
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stamp", required=True)
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.src, "index.html")):
        print(f"{args.src}/index.html is missing: run tools/build-web", file=sys.stderr)
        return 1
    tmp = args.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.src, tmp)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    with open(args.stamp, "w") as f:
        f.write("staged\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
