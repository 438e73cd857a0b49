"""Semantic versions and version constraints (`>= 1.2.0`, `< 2.0.0`, `= 0.1.0`). Pure.

Used by the model (to refuse bad constraint strings) and by targeting (to match node skills).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# major[.minor[.patch]] with an optional semver pre-release and build: 1.4.29, 2.0.0-rc.1+b5
_VERSION = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-[0-9A-Za-z][0-9A-Za-z.-]*)?(?:\+[0-9A-Za-z.-]+)?$"
)
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<|=|~>|\^)?\s*(\S+)\s*$")

OPERATORS = (">=", "<=", "==", "!=", ">", "<", "=")


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.4.29` -> (1, 4, 29); missing parts are 0. Raises ValueError on anything else."""
    m = _VERSION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a version like 1.2.3")
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


@dataclass(frozen=True, slots=True)
class Constraint:
    operator: str
    version: tuple[int, int, int]

    def allows(self, version: tuple[int, int, int]) -> bool:
        op = self.operator
        if op in ("=", "=="):
            return version == self.version
        if op == "!=":
            return version != self.version
        if op == ">=":
            return version >= self.version
        if op == "<=":
            return version <= self.version
        if op == ">":
            return version > self.version
        return version < self.version


def parse_constraint(text: str) -> Constraint:
    """`>= 1.2.0` -> Constraint('>=', (1, 2, 0)); a bare version means `=`."""
    m = _CONSTRAINT.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a version constraint like '>= 1.2.0'")
    op = m.group(1) or "="
    if op not in OPERATORS:
        raise ValueError(f"operator {op!r} is not one of {', '.join(OPERATORS)}")
    return Constraint(op, parse_version(m.group(2)))


def satisfies(version: str, constraints: list[str]) -> bool:
    """True when `version` meets every constraint (an empty list allows anything)."""
    v = parse_version(version)
    return all(parse_constraint(c).allows(v) for c in constraints)
