"""Parse job file bytes, fast: stdlib JSON, ruamel's C safe loader, tomllib.

Positions are not tracked here (that costs 5-10x, DESIGN.md §8); `positions` re-reads a file only
when it has a problem. Duplicate keys, non-UTF-8 bytes and YAML alias bombs are refused here.
JSON and YAML each have a fast path for the common, clean file; anything it does not fully
understand (a duplicate key, an alias, a merge key, a tag, an error) is parsed again by the
careful path, so results and error messages do not depend on which path ran.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from typing import Any

import orjson
import ruamel.yaml.main
from ruamel.yaml import YAML
from ruamel.yaml.compat import _DEFAULT_YAML_VERSION
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver, implicit_resolvers
from ruamel.yaml.tag import Tag

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
    fast = _parse_json_fast(text)
    if fast is not _SLOW:
        return fast
    try:
        return json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    except _DuplicateKey as exc:
        # The position is found by `positions.json_duplicates`; the loader asks it.
        raise ParseError(f"duplicate key {exc.key!r}", 0, 0) from exc
    except RecursionError as exc:
        raise ParseError("JSON nested too deeply") from exc


_SLOW: Any = object()  # "the fast path cannot tell; parse carefully"


def _parse_json_fast(text: str) -> Any:
    """`json.loads` without a Python hook per object (~15% faster, bench/RESULTS.md), or _SLOW.

    Duplicate keys are found by counting colons. Outside strings a colon only ever ends a key,
    and orjson's compact re-dump writes every colon inside a string as it is; so the file has
    more colons than the re-dump exactly when a key was dropped as a duplicate (its value goes
    with it). An escaped colon (\\u003a) in the file would hide one, so such files go the slow
    way, as do documents orjson cannot write (integers past 64 bits, nesting past 255).
    """
    try:
        doc = json.loads(text)
        dumped = orjson.dumps(doc)
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError):
        return _SLOW
    if text.count(":") != dumped.count(b":") or "\\u003" in text:
        return _SLOW
    return doc


_yaml = YAML(typ="safe", pure=False)
_yaml.allow_duplicate_keys = False


def _parse_yaml(text: str) -> Any:
    if CParser is not None:
        fast = _parse_yaml_fast(text)
        if fast is not _SLOW:
            return fast
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


# --- YAML fast path --------------------------------------------------------------------------
#
# ruamel's safe C loader spends most of its time in Python around the C parser: the resolver
# looks up the YAML version through two caught AttributeErrors per scalar, every node gets a
# fresh Tag, and construction goes through generators and per-node bookkeeping (DESIGN.md §8;
# bench/RESULTS.md). Below, the same C parser composes the nodes with a resolver that gives the
# same answers from a precomputed table, and plain trees of maps, sequences and scalars are built
# directly. Scalars other than strings go through ruamel's own constructors.

_VERSION = _DEFAULT_YAML_VERSION  # what ruamel's resolver settles on with the C parser
_STR = VersionedResolver.DEFAULT_SCALAR_TAG
_SEQ = VersionedResolver.DEFAULT_SEQUENCE_TAG
_MAP = VersionedResolver.DEFAULT_MAPPING_TAG


def _implicit_table() -> tuple[dict[str, list[tuple[Tag, re.Pattern[str]]]], dict[int, Any]]:
    """First character -> [(tag, regex)] in ruamel's order; id(tag) -> constructor for scalars.

    Constructors are found by the identity of the resolver's own tags, so a tag written in the
    file (`!!int 3`) is never mistaken for a resolved one and takes the careful path.
    """
    table: dict[str, list[tuple[Tag, re.Pattern[str]]]] = {}
    tags: dict[str, Tag] = {}
    for versions, name, regexp, first in implicit_resolvers:
        if _VERSION not in versions:
            continue
        tag = tags.setdefault(name, Tag(suffix=name))
        pattern = re.compile(regexp.pattern, regexp.flags)
        for ch in first:
            table.setdefault(ch, []).append((tag, pattern))
    constructors = {
        id(tag): SafeConstructor.yaml_constructors[name]
        for name, tag in tags.items()
        if name.rsplit(":", 1)[1] in ("null", "bool", "int", "float", "timestamp")
    }
    return table, constructors


_IMPLICIT, _SCALARS = _implicit_table()
_INT = next(tag for tags in _IMPLICIT.values() for tag, _ in tags if tag == "tag:yaml.org,2002:int")


CParser: Any = getattr(ruamel.yaml.main, "CParser", None)  # None without ruamel.yaml.clib
_RESOLVED: dict[str, Tag] = {}  # plain scalar -> its tag; keys and enum values repeat a lot


class _FastResolver(VersionedResolver):
    processing_version = _VERSION

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode:
            if implicit[0]:
                tag = _RESOLVED.get(value)
                if tag is not None:
                    return tag
                tag = _STR
                for candidate, pattern in _IMPLICIT.get(value[0] if value else "", ()):
                    if pattern.match(value):
                        tag = candidate
                        break
                if len(_RESOLVED) < 4096 and len(value) <= 64:
                    _RESOLVED[value] = tag
                return tag
            return _STR
        if kind is SequenceNode:
            return _SEQ
        if kind is MappingNode:
            return _MAP
        return None

    # The C composer calls these two for every node; ruamel's do nothing when no path resolvers
    # are registered (none are). No-ops written in C (an empty dict's `get`, `tuple`) save a
    # Python call each, 4% of a YAML load.
    descend_resolver: Any = {}.get
    ascend_resolver: Any = tuple


if CParser is not None:

    class _FastLoader(CParser, SafeConstructor, _FastResolver):  # type: ignore[misc]
        """The class ruamel assembles for `YAML(typ="safe")` with the C parser, built once."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            self._parser = self._composer = self
            SafeConstructor.__init__(self, loader=self)
            self.allow_duplicate_keys = False
            _FastResolver.__init__(self, version=None, loadumper=self)


class _Unusual(Exception):
    """Something the fast path leaves to ruamel's own constructor."""


def _parse_yaml_fast(text: str) -> Any:
    try:
        loader = _FastLoader(text)
        try:
            if not loader.check_node():
                return None
            node = loader.get_node()
            if loader.check_node():
                return _SLOW  # several documents: the careful path words the error
            builder = _TreeBuilder(loader)
            doc = builder.build(node)
        finally:
            loader.dispose()
            loader.__dict__.clear()  # it refers to itself as parser, resolver...: break the cycle
    except Exception:  # any doubt at all: the careful path decides, and words the error
        return _SLOW
    if builder.count > MAX_NODES:
        return _SLOW  # check_size words the error
    return doc


class _TreeBuilder:
    """Nodes of a plain tree of maps, sequences and scalars -> Python values, counted.

    Every collection node may be visited once: a second visit is an alias (shared or recursive
    data), which the careful path handles with `check_size`. With no sharing, `count` is
    exactly what `check_size` counts. (A class, not a recursive closure: a closure that calls
    itself is a reference cycle, and the loader it holds would wait for the cyclic collector.)
    """

    __slots__ = ("count", "loader", "seen")

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.seen: set[int] = set()
        self.count = 0

    def build(self, node: Any) -> Any:
        self.count += 1
        tag = node.ctag
        if tag is _STR:
            return node.value
        if tag is _MAP:
            if id(node) in self.seen:
                raise _Unusual
            self.seen.add(id(node))
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key_tag = key_node.ctag
                if key_tag is _STR:
                    key = key_node.value
                elif id(key_tag) in _SCALARS and type(key_node) is ScalarNode:
                    key = _SCALARS[id(key_tag)](self.loader, key_node)
                else:
                    raise _Unusual  # merge keys, `=` keys, tagged or complex keys
                if key in mapping:
                    raise _Unusual  # a duplicate: ruamel's error says where
                mapping[key] = self.build(value_node)
            return mapping
        if tag is _SEQ:
            if id(node) in self.seen:
                raise _Unusual
            self.seen.add(id(node))
            return [self.build(child) for child in node.value]
        if tag is _INT and node.value.isdigit() and node.value.isascii():
            return int(node.value)  # what construct_yaml_int makes of plain digits in YAML 1.2
        if id(tag) in _SCALARS and type(node) is ScalarNode:
            return _SCALARS[id(tag)](self.loader, node)
        raise _Unusual  # explicit tags (!!set, !!omap, !custom...)


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
