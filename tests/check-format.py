"""Every C source and header of Helios is formatted as the repository's .clang-format says (STYLE.md:
one format, applied to everything). Prints each file that is not, with the first lines clang-format
would change, and fails."""

import os
import subprocess
import sys

SOURCE = os.path.abspath(sys.argv[1])
DIRS = ["bench", "common", "gateway", "launcher", "policy", "tests", "worker"]

files = []
for d in DIRS:
    for root, dirs, names in os.walk(os.path.join(SOURCE, d)):
        dirs[:] = [n for n in dirs if n not in ("node_modules", "corpus-gateway", "corpus-rpc")]
        files += [os.path.join(root, n) for n in names if n.endswith((".c", ".h"))]

bad = []
for path in sorted(files):
    r = subprocess.run(["clang-format", "--dry-run", "-Werror", "--style=file", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        bad.append(path)
        print(f"{os.path.relpath(path, SOURCE)}: not formatted")
        print("\n".join(r.stderr.splitlines()[:6]))
print(f"{len(files)} files checked, {len(bad)} not formatted")
sys.exit(1 if bad else 0)
