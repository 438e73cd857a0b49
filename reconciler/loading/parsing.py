"""Parse job file bytes, fast: stdlib JSON, ruamel's C safe loader, tomllib.

Positions are not tracked here (that costs 5-10x, DESIGN.md §8); `positions` re-reads a file only
when it has a problem. Duplicate keys, non-UTF-8 bytes and YAML alias bombs are refused here.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

MAX_NODES = 100_000  # expanded size of a document; a real job has a few hundred


@dataclass(frozen=True, slots=True)
class ParseError(Exception):
    """A problem found while parsing, with a 1-based position when the parser knows one."""

    message: str
    line: int = 1
    column: int = 1
    field: str = ""


def decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ParseError(
            f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded", line, column
        ) from exc
    return text[1:] if text.startswith("\ufeff") else text


def parse(text: str, fmt: str) -> Any:
    """Parse one document. Raises ParseError."""
    if fmt == "json":
        return _parse_json(text)
    if fmt == "yaml":
        return _parse_yaml(text)
    return _parse_toml(text)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    except _DuplicateKey as exc:
        # The position is found by `positions.json_duplicates`; the loader asks it.
        raise ParseError(f"duplicate key {exc.key!r}", 0, 0) from exc
    except RecursionError as exc:
        raise ParseError("JSON nested too deeply") from exc


_yaml = YAML(typ="safe", pure=False)
_yaml.allow_duplicate_keys = False


def _parse_yaml(text: str) -> Any:
    try:
        docs = list(_yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "duplicate key" in str(problem) or "found duplicate key" in str(exc):
            problem = "duplicate key" + _quoted_key(str(exc))
        raise ParseError(f"invalid YAML: {problem}", line, column) from exc
    except YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ParseError("YAML nested too deeply") from exc
    if len(docs) > 1:
        raise ParseError(f"{len(docs)} YAML documents in one file; a job file holds one job")
    doc = docs[0] if docs else None
    check_size(doc)
    return doc


def _quoted_key(message: str) -> str:
    marker = 'found duplicate key "'
    start = message.find(marker)
    if start < 0:
        return ""
    end = message.find('"', start + len(marker))
    return f" {message[start + len(marker) : end]!r}"


def _parse_toml(text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        line, column = 1, 1
        if "(at line " in msg:
            where = msg[msg.rfind("(at line ") + len("(at line ") : -1]
            line_text, _, col_text = where.partition(", column ")
            if line_text.isdigit() and col_text.isdigit():
                line, column = int(line_text), int(col_text)
            msg = msg[: msg.rfind(" (at line ")]
        if msg.startswith("Cannot overwrite"):
            msg = "duplicate key: " + msg
        raise ParseError(f"invalid TOML: {msg}", line, column) from exc


def check_size(doc: Any, limit: int = MAX_NODES) -> None:
    """Refuse documents whose aliases expand past `limit` nodes, or that refer to themselves.

    YAML aliases share objects, so a 'billion laughs' file parses instantly but would take
    forever to validate or hash. The count is memoised per object, so this check is linear in
    the size of the file, not of its expansion.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ParseError("a YAML alias refers to itself (recursive document)")
        active.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise ParseError(f"document expands to more than {limit} values (YAML alias bomb?)")
        active.discard(key)
        sizes[key] = total
        return total

    size(doc)
