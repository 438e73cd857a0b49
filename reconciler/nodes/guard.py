"""The orphan guard of one `courier runner` (see `agent.OrphanGuard`). Linux only.

Run as a script by file path (`python -I guard.py TOKEN`, standard library only, so it starts in
milliseconds). It reads lines from stdin, a pipe only its runner holds open: `run ID` (that run is
in flight), `idle`, `quit` (a clean exit: leave). At end of file without `quit` the runner died
(SIGKILL, OOM): it SIGKILLs the process group of every process whose environment has both
`COURIER_RUNNER=TOKEN` and `COURIER_RUN_ID=ID` of the run in flight, so that run's step is not
still running when another runner takes the run over.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def orphans(token: str, run_id: str) -> set[int]:
    """Process groups holding a process started for `run_id` by the runner `token`."""
    wanted = {f"COURIER_RUNNER={token}".encode(), f"COURIER_RUN_ID={run_id}".encode()}
    own = os.getpgid(0)
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted <= set((entry / "environ").read_bytes().split(b"\0")):
                groups.add(os.getpgid(int(entry.name)))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return groups - {own}


def main(token: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the pipe ends the guard
    in_flight = None
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "quit":
            return 0
        in_flight = argument if command == "run" else None
    if in_flight is None:
        return 0
    killed = 0
    for group in orphans(token, in_flight):
        try:
            os.killpg(group, signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    if killed:
        sys.stderr.write(
            f"courier runner guard: the runner died; killed {killed} process group(s) of run "
            f"{in_flight}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
