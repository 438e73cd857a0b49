"""The orphan guard of one `courier runner` (see `agent.start_orphan_guard`). Linux only.

Run as a script by file path (`python -I guard.py TOKEN`, standard library only, so it starts in
milliseconds). It blocks reading stdin, a pipe only its runner holds open; at end of file (the
runner exited, or was SIGKILLed) it SIGKILLs the process group of every process whose environment
has `COURIER_RUNNER=TOKEN`: the steps that runner started. After a clean exit there are none.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def orphans(token: str) -> set[int]:
    """Process groups holding a process whose environment carries the runner's token."""
    marker = f"COURIER_RUNNER={token}".encode()
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if marker in environ.split(b"\0"):
                groups.add(os.getpgid(int(entry.name)))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return groups


def main(token: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the pipe ends the guard
    while sys.stdin.buffer.read(4096):
        pass
    own = os.getpgid(0)
    killed = 0
    for group in orphans(token) - {own}:
        try:
            os.killpg(group, signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    if killed:
        sys.stderr.write(f"courier runner guard: killed {killed} orphaned step process group(s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
