"""Each binary given was built with _FORTIFY_SOURCE: it calls glibc's checked variants (__memcpy_chk,
__snprintf_chk, __read_chk, ...), not only the stack protector's __stack_chk_fail."""

import re
import subprocess
import sys

failed = False
for path in sys.argv[1:]:
    out = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True, text=True, check=True)
    checked = sorted({m for m in re.findall(r"\b(__\w+_chk)\b", out.stdout) if m != "__stack_chk_fail"})
    print(f"{path}: {len(checked)} fortified calls ({', '.join(checked[:6])}{', ...' if len(checked) > 6 else ''})")
    if not checked:
        failed = True
sys.exit(1 if failed else 0)
