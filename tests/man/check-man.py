"""The manual pages render without a warning, and say what the binaries do.

  check-man.py MAN_DIR HELIOS_CONF GATEWAY LAUNCHER WORKER

MAN_DIR holds the built pages (helios-gateway.8, helios-launcher.8, helios-worker.8, helios.conf.5),
HELIOS_CONF the commented default /etc/helios/helios.conf. Checked:
- groff with every warning (-ww) and man-db (`man --warnings -l`) print nothing on any page;
- every long option a binary's --help lists is in its page, and every option a page describes is in
  --help (a page that lags behind the code, either way, fails);
- every setting of the gateway is described in helios.conf(5) and shown in the default file, and both
  name no setting the gateway does not have; the same for the [worker] section and the settings
  helios-worker --help names.
Prints one line per failed check and exits 1 if there was any.
"""

import os
import re
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}")


def run(argv, env=None):
    return subprocess.run(argv, capture_output=True, text=True,
                          env=dict(os.environ, LC_ALL="C.UTF-8", **(env or {})))


def rendered(page):
    """The page as man shows it, in plain text (no overstrike, no hyphenation marks)."""
    r = run(["man", "-E", "UTF-8", "-l", page], env={"MANWIDTH": "200", "MAN_KEEP_FORMATTING": "0"})
    text = re.sub(r".\x08", "", r.stdout)
    # Sign hyphens (U+2010) as groff prints '-' in some fonts, back to ASCII.
    return text.replace("\u2010", "-").replace("\u2212", "-")


def lint(page):
    r = run(["groff", "-man", "-ww", "-z", "-t", page])
    if r.returncode != 0 or r.stderr.strip():
        fail(f"groff -man -ww on {os.path.basename(page)}: {r.stderr.strip() or r.returncode}")
    r = run(["man", "--warnings", "-E", "UTF-8", "-l", page], env={"MANWIDTH": "80"})
    if r.returncode != 0 or r.stderr.strip():
        fail(f"man --warnings -l {os.path.basename(page)}: {r.stderr.strip() or r.returncode}")


def help_options(argv):
    """Long options of the option table of a --help (indented lines), with their '--'."""
    r = run(argv)
    if r.returncode != 0:
        fail(f"{' '.join(argv)} exited with {r.returncode}: {r.stderr.strip()}")
    return set(re.findall(r"^\s+(?:-\w,? )?(--[a-z][a-z0-9-]*)", r.stdout, re.M))


def page_options(text, section_start, section_end=None):
    """Options the page describes: '--name' at the start of an item of its OPTIONS section."""
    start = text.find(section_start)
    end = text.find(section_end, start + 1) if section_end else -1
    body = text[start:end if end > 0 else None]
    return set(re.findall(r"^\s*(?:-\w, )?(--[a-z][a-z0-9-]*)", body, re.M))


def compare(what, listed, described):
    for o in sorted(listed - described):
        fail(f"{what}: {o} is in --help but not in the manual page")
    for o in sorted(described - listed):
        fail(f"{what}: the manual page describes {o}, which --help does not list")


def main():
    man_dir, conf, gateway, launcher, worker = sys.argv[1:6]
    pages = {name: os.path.join(man_dir, name)
             for name in ("helios-gateway.8", "helios-launcher.8", "helios-worker.8", "helios.conf.5")}
    for page in pages.values():
        if not os.path.exists(page):
            fail(f"{page} was not built")
            continue
        lint(page)
    if failures:
        return 1
    text = {name: rendered(page) for name, page in pages.items()}
    for name, t in text.items():
        if "@" in re.sub(r"helios-worker@\S*|[\w.-]+@[\w.-]+", "", t):
            fail(f"{name}: a placeholder was left unfilled")

    compare("helios-gateway", help_options([gateway, "--help"]),
            page_options(text["helios-gateway.8"], "\nOPTIONS", "\n   passwd options"))
    compare("helios-gateway passwd", help_options([gateway, "passwd", "--help"]),
            page_options(text["helios-gateway.8"], "\n   passwd options", "\nLOGGING IN"))
    compare("helios-launcher", help_options([launcher, "--help"]),
            page_options(text["helios-launcher.8"], "\nOPTIONS", "\nSYSTEMD"))
    compare("helios-worker", help_options([worker, "--help"]),
            page_options(text["helios-worker.8"], "\nOPTIONS", "\nSYSTEMD"))

    # Settings: the gateway's options but its own four are keys of the file.
    keys = {o[2:].replace("-", "_") for o in help_options([gateway, "--help"])} - {"help", "version", "config", "check_config"}
    settings = text["helios.conf.5"]
    body = settings[settings.find("\nSETTINGS"):settings.find("\nWORKER SETTINGS")]
    described = set(re.findall(r"^\s{7}([a-z][a-z0-9_]*) = ", body, re.M))
    for k in sorted(keys - described):
        fail(f"helios.conf(5) does not describe the setting {k}")
    for k in sorted(described - keys):
        fail(f"helios.conf(5) describes {k}, which the gateway does not have")
    with open(conf) as f:
        gateway_part, _, worker_part = f.read().partition("\n#[worker]\n")
    shown = set(re.findall(r"^#([a-z][a-z0-9_]*) =", gateway_part, re.M))
    for k in sorted(keys - shown):
        fail(f"the default helios.conf does not show the setting {k}")
    for k in sorted(shown - keys):
        fail(f"the default helios.conf shows {k}, which the gateway does not have")
    # The [worker] section: the keys helios-worker --help names, in the page and the default file.
    m = re.search(r"^\[worker\] settings: (.*)$", run([worker, "--help"]).stdout, re.M)
    worker_keys = set(m.group(1).split()) if m else set()
    if not worker_keys:
        fail("helios-worker --help names no [worker] settings")
    wbody = settings[settings.find("\nWORKER SETTINGS"):settings.find("\nEXAMPLE")]
    wdescribed = set(re.findall(r"^\s{7}([a-z][a-z0-9_]*) = ", wbody, re.M))
    wshown = set(re.findall(r"^#([a-z][a-z0-9_]*) =", worker_part, re.M))
    for k in sorted(worker_keys - wdescribed):
        fail(f"helios.conf(5) does not describe the [worker] setting {k}")
    for k in sorted(wdescribed - worker_keys):
        fail(f"helios.conf(5) describes {k} in [worker], which the worker does not have")
    for k in sorted(worker_keys ^ wshown):
        fail(f"the default helios.conf's [worker] section and the worker disagree on {k}")
    # The default file is what it says: comments only, so the gateway reads it as no setting at all.
    with open(conf) as f:
        live = [line for line in f if line.strip() and line.lstrip()[0] not in "#;"]
    if live:
        fail(f"the default helios.conf sets something: {live[0].strip()}")

    print(f"{len(pages)} pages, {len(keys)} settings checked; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
