"""Field-level differences between two canonical specs (deepdiff), as immutable values. Pure.

Only called when two hashes differ, so unchanged jobs cost a string comparison (and a plan
without updates never imports deepdiff).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.model.canonical import EXECUTION_FIELDS

_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed leaf: `path` like `actions.steps[0].command.linux[0]`."""

    path: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    """Every changed, added or removed field, sorted by path."""
    from deepdiff import DeepDiff  # slow to import (~0.1 s); a no-op plan never diffs

    diff = DeepDiff(old, new, view="tree", verbose_level=2)
    changes: list[FieldChange] = []
    for levels in diff.values():
        for level in levels:
            path = _render(level.path(output_format="list"))
            before = None if level.t1 is _missing_marker(level.t1) else level.t1
            after = None if level.t2 is _missing_marker(level.t2) else level.t2
            changes.append(FieldChange(path, _plain(before), _plain(after)))
    changes.sort(key=lambda c: c.path)
    return tuple(changes)


def reruns(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when a change touches what runs, where or when (DESIGN.md §3)."""
    return any(old.get(f) != new.get(f) for f in EXECUTION_FIELDS)


def _missing_marker(value: Any) -> Any:
    # deepdiff marks the absent side of an added/removed item with its NotPresent singleton.
    return value if type(value).__name__ == "NotPresent" else _MISSING


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    return str(value)


def _render(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
