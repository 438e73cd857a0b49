"""The error hierarchy. Errors carry data and never print; only `cli/` turns them into text.

`CourierError` is everything a user can fix (exit 1); anything else that escapes is a bug (exit 70).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or suspicious) in one file, at one place."""

    path: str
    line: int
    column: int
    field: str
    message: str
    severity: Severity = Severity.ERROR

    def render(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {prefix}{field}{self.message}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.column, self.field, self.message)


class CourierError(Exception):
    """A user-fixable error: the CLI prints its message and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CourierError):
    exit_code = 64


class ValidationFailed(CourierError):
    """Job files have problems; all of them are carried, sorted by file and position."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        errors = [p for p in problems if p.severity is Severity.ERROR]
        super().__init__(f"{len(errors)} problem(s) in job files")
        self.problems = sorted(problems, key=Problem.sort_key)


class StateError(CourierError):
    """The state store cannot be used as asked (newer schema, bad URL, lock held...)."""


class LockTimeout(StateError):
    def __init__(self, holder: str, waited: float) -> None:
        super().__init__(f"another apply holds the state lock ({holder}); waited {waited:.1f}s")
        self.holder = holder


class StalePlan(CourierError):
    def __init__(self, planned_serial: int, current_serial: int) -> None:
        super().__init__(
            f"the saved plan was made on state serial {planned_serial} but the state is now at "
            f"{current_serial}; run `courier plan` again"
        )


class NotFound(CourierError):
    pass
