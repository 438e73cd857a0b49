"""What an interpreter is to the step runner: a `Protocol`, its values, and process handling.

`executing.running` looks an interpreter up by its full name in a plain dict (the registry in
`interpreters/__init__.py`, pre-commit's lang_base/all_languages pattern), asks it to `prepare` a
step (payload, substitution, working directory: no process yet), then `run`s it once per attempt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from reconciler.model.job import Step

KILL_GRACE_SECONDS = 2.0
"""Between SIGTERM and SIGKILL to a step's process group (timeout or cancel)."""

_CANCEL_POLL_SECONDS = 0.05
_PROC = Path("/proc") if Path("/proc/self").is_dir() else None

Quote = Callable[[str], str]
Render = Callable[[str, Quote], str]
"""`render(text, quote)`: `{{.NAME}}` replaced by `quote(value)`; raises `StepRefused` for an
unknown name. The runner binds it to the values the step may see."""


class StepRefused(Exception):
    """The step cannot run as written here; the interpreter is not started. Carries the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StepCall:
    """What `prepare` gets: the step, its inputs (substituted, as text) and the node's folder."""

    step: Step
    inputs: Mapping[str, str]
    workdir: Path
    render: Render


@dataclass(frozen=True, slots=True)
class Prepared:
    """A step ready to run: processes to start in order, where, and the command as text."""

    argvs: tuple[tuple[str, ...], ...]
    cwd: Path
    command: str  # after substitution, unmasked: the runner masks it before it is stored


@dataclass(frozen=True, slots=True)
class Launch:
    """How one attempt runs: environment, where output goes, its time limit and cancel flag."""

    env: Mapping[str, str]
    stdout: IO[bytes]
    stderr: IO[bytes]
    timeout: float | None = None
    cancel: threading.Event | None = None


@dataclass(frozen=True, slots=True)
class Execution:
    """How an attempt ended. `reason` is empty exactly when it succeeded."""

    exit_code: int | None
    reason: str = ""
    canceled: bool = False


class Interpreter(Protocol):
    """One kind of step executor (`chef-platform/shell-interpreter`, ...)."""

    @property
    def name(self) -> str: ...  # full name, as in `interpreter.name`

    @property
    def version(self) -> str: ...  # reported as `interpreterVersion`

    @property
    def path(self) -> str: ...  # reported as `interpreterPath`

    def prepare(self, call: StepCall) -> Prepared: ...  # raises StepRefused

    def run(self, prepared: Prepared, launch: Launch) -> Execution: ...


def skill_name(interpreter_name: str) -> str:
    """`chef-platform/shell-interpreter` -> `shell-interpreter`, the node skill it needs."""
    return interpreter_name.rsplit("/", 1)[-1]


def argv_lines(prefix: Sequence[str], lines: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """One argv per command line: `[*prefix, line]` (the line is one argument, never pasted)."""
    return tuple((*prefix, line) for line in lines)


def run_commands(prepared: Prepared, launch: Launch) -> Execution:
    """Run `prepared.argvs` one after another; the first non-zero exit ends the attempt.

    Every process gets its own session (so its own process group); a timeout covers the whole
    attempt and, like a cancel, kills the running process's whole group.
    """
    deadline = None if launch.timeout is None else time.monotonic() + launch.timeout
    code = 0
    for index, argv in enumerate(prepared.argvs, 1):
        try:
            proc = subprocess.Popen(
                argv,
                cwd=prepared.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=launch.stdout,
                stderr=launch.stderr,
                start_new_session=True,
            )
        except OSError as exc:
            return Execution(None, f"could not start {argv[0]}: {exc.strerror or exc}")
        ended = _wait(proc, deadline, launch.cancel)
        if ended == "timeout":
            return Execution(proc.returncode, f"timed out after {_seconds(launch.timeout)} s")
        if ended == "canceled":
            return Execution(proc.returncode, "canceled while running", canceled=True)
        code = proc.returncode
        if code != 0:
            where = f"command line {index}" if len(prepared.argvs) > 1 else "the command"
            return Execution(code, f"{where} {_exit_text(code)}")
    return Execution(code)


def _wait(
    proc: subprocess.Popen[bytes], deadline: float | None, cancel: threading.Event | None
) -> str:
    if deadline is None and cancel is None:
        proc.wait()
        return "exited"
    while True:
        if cancel is not None and cancel.is_set():
            kill_group(proc)
            return "canceled"
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            kill_group(proc)
            return "timeout"
        if cancel is not None:
            remaining = min(remaining or _CANCEL_POLL_SECONDS, _CANCEL_POLL_SECONDS)
        try:
            proc.wait(timeout=remaining)
            return "exited"
        except subprocess.TimeoutExpired:
            continue


def kill_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the process group led by `proc`, then SIGKILL whatever is left after `grace`."""
    if sys.platform == "win32":  # no process groups to signal; best effort on the process
        proc.kill()
        proc.wait()
        return
    group = proc.pid  # start_new_session: the leader's pid is the group id
    _signal_group(group, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        proc.poll()  # reap the leader: a zombie still counts as a member of its group
        if not _group_alive(group):
            break
        time.sleep(0.02)
    else:
        _signal_group(group, signal.SIGKILL)
    proc.wait()


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _PROC is None or _live_member(group)


def _live_member(group: int) -> bool:
    # A killed grandchild is reparented to PID 1 and stays a zombie, still in the group, until
    # PID 1 reaps it (some container inits never do): only members that are not zombies count.
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
