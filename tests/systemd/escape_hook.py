"""The hook for the sandbox-escape battery under real systemd.

run_in_terminal(machine, user, script) runs script the way a user would: typed into, or started
from, a terminal of that user's own helios-worker@USER.service, reached through its socket as the
gateway reaches it. The script is written into the user's home through the worker's file service and
run by interpreter in a new PTY of the worker, so it has exactly what the worker's sandbox leaves to
a terminal: the unit's mount namespace, system call filter, no_new_privs, cgroup and limits.
(systemd-run with the same properties would be a different process tree, not the worker's.)

Returns {"output": what the terminal showed (CR LF line ends), "exitCode": int or None,
"signal": int or None}.
"""

from machine import instance


def run_in_terminal(machine, user, script, interpreter=("/bin/sh",), args=(), timeout=120):
    """Run script (its text) as `INTERPRETER... SCRIPT ARGS...` in a new terminal of user's worker."""
    machine.systemctl("start", f"helios-worker@{instance(user)}.socket")
    out = machine.client(f"/run/helios/workers/{user}.sock", "run", *interpreter, "--", *args,
                         input=script, timeout=timeout)
    if "output" not in out:
        raise AssertionError(f"the script could not run in {user}'s worker: {out}")
    return out
