"""Masking of sensitive values (DESIGN.md §4): `****` wherever one would be stored or shown.

One `Masker` lives for one run. Values join it as they become known (sensitive expected inputs,
inputs named like secrets, sensitive outputs) and stay masked in every later step: results, reasons,
evidence members. Each value is also masked in the forms it takes on the way out: stripped of
surrounding whitespace, shell-quoted, and JSON-escaped.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import orjson

MASK = "****"
_SECRET_NAME = re.compile(r"token|password|secret|key", re.IGNORECASE)


def secret_name(name: str) -> bool:
    """Whether an input's name says it holds a secret (token, password, secret, key)."""
    return _SECRET_NAME.search(name) is not None


class Masker:
    """Replaces every known sensitive value by `****` in text and bytes."""

    __slots__ = ("_bytes", "_text", "_values")

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None

    def __bool__(self) -> bool:
        return bool(self._values)

    @property
    def longest(self) -> int:
        """Bytes of the longest masked form (how far a value may reach across a cut)."""
        return max((len(v.encode()) for v in self._values), default=0)

    def add(self, value: str) -> None:
        forms = {value, value.strip()}
        forms |= {shlex.quote(f) for f in list(forms)}
        forms |= {orjson.dumps(f).decode()[1:-1] for f in list(forms)}
        new = {f for f in forms if f} - self._values
        if new:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)  # the longest form wins
            self._text = re.compile("|".join(map(re.escape, ordered)))
            self._bytes = re.compile(b"|".join(re.escape(v.encode()) for v in ordered))

    def text(self, text: str) -> str:
        return text if self._text is None else self._text.sub(MASK, text)

    def data(self, data: bytes) -> bytes:
        return data if self._bytes is None else self._bytes.sub(MASK.encode(), data)

    def json(self, values: dict[str, Any]) -> str:
        """`values` as sorted JSON text, every string value and the result masked."""
        masked = {k: self.text(v) if isinstance(v, str) else v for k, v in values.items()}
        return self.text(orjson.dumps(masked, option=orjson.OPT_SORT_KEYS).decode())
