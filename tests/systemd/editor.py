"""An editor for `systemctl edit` in tests: puts $HELIOS_EDIT where an admin would type it (after
systemctl's "Anything between here..." line when the file has one), as if typed and saved."""

import os
import sys

path, text = sys.argv[-1], os.environ["HELIOS_EDIT"]
with open(path) as f:
    lines = f.read().splitlines(keepends=True)
for i, line in enumerate(lines):
    if line.startswith("### Anything between here"):
        lines.insert(i + 1, text)
        break
else:
    lines = [text]
with open(path, "w") as f:
    f.writelines(lines)
