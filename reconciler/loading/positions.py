"""Find where a field is in a file's text, for error messages. Only used on files with problems.

`locate(text, fmt, loc)` returns the 1-based (line, column) of the deepest part of `loc` present in
the file: a missing field is reported at the object that should hold it.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

Loc = tuple[str | int, ...]
Position = tuple[int, int]


def locate(text: str, fmt: str, loc: Loc) -> Position:
    try:
        if fmt == "json":
            table = json_positions(text)[0]
        elif fmt == "yaml":
            return _yaml_locate(text, loc)
        else:
            table = toml_positions(text)
    except Exception:  # the file parsed once already; a locator hiccup must not hide the problem
        return (1, 1)
    for end in range(len(loc), -1, -1):
        if loc[:end] in table:
            return table[loc[:end]]
    return (1, 1)


# --- JSON: a small scanner that records where every key and item starts ----------------------

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


def json_positions(text: str) -> tuple[dict[Loc, Position], list[tuple[Loc, Position]]]:
    """Positions of every value by path, and the (path, position) of each duplicate key."""
    table: dict[Loc, Position] = {}
    duplicates: list[tuple[Loc, Position]] = []
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def where(offset: int) -> Position:
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return (lo + 1, offset - line_starts[lo] + 1)

    def skip(i: int) -> int:
        m = _WS.match(text, i)
        return m.end() if m else i

    def value(i: int, loc: Loc) -> int:
        i = skip(i)
        table.setdefault(loc, where(i))
        ch = text[i]
        if ch == "{":
            i = skip(i + 1)
            seen: set[str] = set()
            if text[i] == "}":
                return i + 1
            while True:
                m = _STRING.match(text, skip(i))
                assert m
                key = _decode_key(m.group())
                key_pos = where(m.start())
                if key in seen:
                    duplicates.append(((*loc, key), key_pos))
                seen.add(key)
                table.setdefault((*loc, key), key_pos)
                i = skip(m.end())
                i = value(i + 1, (*loc, key))  # past ':'
                i = skip(i)
                if text[i] == "}":
                    return i + 1
                i += 1  # ','
        if ch == "[":
            i = skip(i + 1)
            n = 0
            if text[i] == "]":
                return i + 1
            while True:
                i = value(i, (*loc, n))
                n += 1
                i = skip(i)
                if text[i] == "]":
                    return i + 1
                i += 1
        m = _STRING.match(text, i) if ch == '"' else _SCALAR.match(text, i)
        assert m
        return m.end()

    value(0, ())
    return table, duplicates


def _decode_key(raw: str) -> str:
    import json

    return str(json.loads(raw))


# --- YAML: ruamel's round-trip loader keeps line/column on every mapping and sequence --------


def _yaml_locate(text: str, loc: Loc) -> Position:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    node: Any = yaml.load(text)
    best: Position = (1, 1)
    if isinstance(node, (CommentedMap, CommentedSeq)):
        best = (node.lc.line + 1, node.lc.col + 1)
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part)
            best = (line + 1, col + 1)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            best = (line + 1, col + 1)
            node = node[part]
        else:
            break
    return best


# --- TOML: table headers and key lines, by path ----------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"^(\s*)((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _split_key(key: str) -> list[str]:
    parts = re.findall(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'", key)
    return [p[1:-1] if p[0] in "\"'" else p for p in parts]


def toml_positions(text: str) -> dict[Loc, Position]:
    table: dict[Loc, Position] = {(): (1, 1)}
    counts: dict[tuple[str, ...], int] = {}  # per array of tables, by full path
    current: Loc = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in line:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            names = _split_key(header.group(2))
            array = header.group(1) == "[["
            loc: list[str | int] = []
            for depth, name in enumerate(names):
                loc.append(name)
                key = tuple(str(p) for p in loc)
                if array and depth == len(names) - 1:
                    index = counts.get(key, 0)
                    counts[key] = index + 1
                    loc.append(index)
                elif key in counts:
                    loc.append(counts[key] - 1)
            current = tuple(loc)
            column = line.index("[") + 1
            for end in range(1, len(current) + 1):
                table.setdefault(current[:end], (number, column))
            continue
        m = _KEY.match(line)
        if m:
            column = len(m.group(1)) + 1
            loc_key = (*current, *_split_key(m.group(2)))
            table.setdefault(loc_key, (number, column))
            rest = line[m.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_string = quote
    return table
