"""A warm `courier` for the tests: one interpreter imports the CLI, each run is a forked process.

`tests.helpers.run_courier_forked` talks to this module (`python -m tests.forked_cli`): start-up and
the CLI's imports (~0.25 s a process) are paid once per test session, and every run still happens
in its own process through `cli.main:run`, the console-script entry point, with its own cwd,
environment, stdout, stderr and exit status. Protocol: one JSON request per stdin line,
`{"args": [...], "cwd": "...", "env": {...}}`, one JSON answer per stdout line,
`{"returncode": n, "stdout": "...", "stderr": "..."}`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any


def _child(request: dict[str, Any], out: Path, err: Path) -> None:
    code = 70
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115  (the child owns it)
        sys.argv = ["courier", *request["args"]]
        import cli.main

        try:
            cli.main.run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what an uncaught exception does to a real process
            traceback.print_exc()
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(request: dict[str, Any], tmp: Path) -> dict[str, Any]:
    out, err = tmp / "stdout", tmp / "stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request, out, err)
    _, status = os.waitpid(pid, 0)
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "stdout": out.read_text(encoding="utf-8", errors="replace"),
        "stderr": err.read_text(encoding="utf-8", errors="replace"),
    }


def main() -> None:
    import cli.main  # (warm: the children inherit every imported module)

    cli.main.load_all_commands()  # the CLI imports a command's module only when it runs

    with tempfile.TemporaryDirectory() as tmp:
        for line in sys.stdin:
            answer = _run(json.loads(line), Path(tmp))
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
