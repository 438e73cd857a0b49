"""`chef-platform/shell-interpreter` (SPEC.md §1.6): this OS's command lines, a process each.

Linux and macOS run every line as `sh -c LINE`, Windows as `powershell -Command LINE`; the line is
one argv element and substituted values are quoted for that shell, so a value is data, never code.
The working directory is the node's folder, or `inputs.dir` inside it.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from functools import cache
from pathlib import Path

from reconciler.interpreters.base import (
    Execution,
    Launch,
    Prepared,
    StepCall,
    StepRefused,
    argv_lines,
    run_commands,
)
from reconciler.model.enums import SHELL_INTERPRETER
from reconciler.model.job import ShellCommand

SHELL_VERSION = "1.4.0"
"""The shell interpreter's version, as node skills and `interpreterVersion` report it."""

_POWERSHELL_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-Command")


def current_os() -> str:
    """The key of `command` for this machine: `linux`, `darwin` or `windows`."""
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    return "linux"


def powershell_quote(value: str) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded; `'` is doubled."""
    return "'" + value.replace("'", "''") + "'"


@cache
def _executable(os_key: str) -> str:
    if os_key == "windows":
        return shutil.which("powershell") or shutil.which("pwsh") or "powershell.exe"
    return shutil.which("sh") or "/bin/sh"


class ShellInterpreter:
    """Runs the command lines for one OS (this machine's unless told otherwise)."""

    name = SHELL_INTERPRETER
    version = SHELL_VERSION

    def __init__(self, os_key: str | None = None) -> None:
        self.os_key = os_key or current_os()

    @property
    def path(self) -> str:
        return _executable(self.os_key)

    def prepare(self, call: StepCall) -> Prepared:
        command = call.step.command
        if not isinstance(command, ShellCommand):
            raise StepRefused(
                f"{self.name} needs a command with linux/windows/darwin lines, "
                f"not an exec payload ({command.exec!r})"
            )
        lines = getattr(command, self.os_key)
        if not lines:
            raise StepRefused(f"no command for {self.os_key}")
        quote = powershell_quote if self.os_key == "windows" else shlex.quote
        rendered = [call.render(line, quote) for line in lines]
        if self.os_key == "windows":
            argvs = argv_lines((self.path, *_POWERSHELL_ARGS), rendered)
        else:
            argvs = argv_lines((self.path, "-c"), rendered)
        cwd = working_directory(call.workdir, call.inputs.get("dir", ""))
        return Prepared(argvs=argvs, cwd=cwd, command="\n".join(rendered))

    def run(self, prepared: Prepared, launch: Launch) -> Execution:
        return run_commands(prepared, launch)


def working_directory(workdir: Path, directory: str) -> Path:
    """`inputs.dir` inside the node's folder (which is the default); refuses a way out of it."""
    if not directory:
        return workdir
    base = workdir.resolve()
    target = (base / directory).resolve()
    if not target.is_relative_to(base):
        raise StepRefused(
            f"inputs.dir {directory!r} is outside the node's working directory {str(base)!r}"
        )
    if not target.is_dir():
        raise StepRefused(f"inputs.dir {directory!r} is not a directory under {str(base)!r}")
    return target
