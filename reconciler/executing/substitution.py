"""`{{.NAME}}` substitution (Go-template style, SPEC.md §1.5.1) and the text form of values. Pure.

The step runner binds `render` to the values a step may see; each interpreter passes the quoting
of its shell, so a substituted value is always data (`; rm -rf x` is printed, not executed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

_VARIABLE = re.compile(r"\{\{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")


class UnknownVariable(KeyError):
    """A `{{.NAME}}` whose name has no value."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def render(text: str, values: Mapping[str, str], quote: Callable[[str], str]) -> str:
    """`text` with every `{{.NAME}}` replaced by `quote(values[NAME])`; raises `UnknownVariable`."""
    if "{{" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        try:
            return quote(values[name])
        except KeyError:
            raise UnknownVariable(name) from None

    return _VARIABLE.sub(substitute, text)


def names(text: str) -> list[str]:
    """The variable names `text` refers to, in order of appearance."""
    return _VARIABLE.findall(text)


def as_text(value: Any) -> str:
    """A job value as the text a command or condition sees: JSON for anything but str/number."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def verbatim(value: str) -> str:
    """The quoting of values that never reach a shell (step `inputs`, such as `dir`)."""
    return value
