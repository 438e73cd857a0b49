"""`outputFieldRules` (SPEC.md §1.5.1): values taken from a finished attempt into the job context.

Sources: `output` (stdout or stderr), `exitCode`, `file` (relative to the step's working
directory) and `artifact` (a file the step left in `$COURIER_EVIDENCE_DIR`). Methods: `content`,
`regex` (first group, else the whole match) and a small `jsonPath` subset: `$`, `.key`, `['key']`,
`[index]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reconciler.model.enums import ExtractMethod, SourceType
from reconciler.model.job import OutputFieldRule

_STEP = re.compile(
    r"""\.(?P<dot>[A-Za-z_$][\w$-]*)"""
    r"""|\[\s*'(?P<single>(?:[^'\\]|\\.)*)'\s*\]"""
    r"""|\[\s*"(?P<double>(?:[^"\\]|\\.)*)"\s*\]"""
    r"""|\[\s*(?P<index>-?\d+)\s*\]"""
)


class Missing(Exception):
    """The rule found nothing to extract; the message says why."""


@dataclass(frozen=True, slots=True)
class Sources:
    """What one attempt produced, for the rules to read."""

    stdout: str
    stderr: str
    exit_code: int | None
    cwd: Path
    evidence_dir: Path


@dataclass(slots=True)
class Extracted:
    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # required outputs that could not be had
    notes: list[str] = field(default_factory=list)  # optional outputs that could not be had


def extract(rules: Mapping[str, OutputFieldRule], sources: Sources) -> Extracted:
    """Apply every rule; a required output that cannot be extracted is a problem, not a raise."""
    done = Extracted()
    for name, rule in rules.items():
        try:
            done.values[name] = extract_one(rule, sources)
        except Missing as exc:
            (done.problems if rule.required else done.notes).append(
                f"{'required ' if rule.required else ''}output {name}: {exc}"
            )
    return done


def extract_one(rule: OutputFieldRule, sources: Sources) -> str:
    text = _source_text(rule, sources)
    method = rule.extractMethod
    if method is ExtractMethod.CONTENT:
        return text
    if method is ExtractMethod.REGEX:
        match = re.search(rule.expression, text)
        if match is None:
            raise Missing(f"regex {rule.expression!r} does not match")
        if match.re.groups:
            return match.group(1) or ""
        return match.group(0)
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Missing(f"the {_describe(rule)} is not JSON ({exc})") from None
    found = json_path(document, rule.expression)
    return found if isinstance(found, str) else orjson.dumps(found).decode()


def json_path(document: Any, expression: str) -> Any:
    """The value at `expression` (`$`, `.key`, `['key']`, `[index]`); raises `Missing`."""
    if not expression.startswith("$"):
        raise Missing(f"jsonPath {expression!r} does not start with '$'")
    current, position = document, 1
    while position < len(expression):
        match = _STEP.match(expression, position)
        if match is None:
            raise Missing(
                f"jsonPath {expression!r} uses syntax courier does not support at "
                f"{expression[position:]!r} (supported: $, .key, ['key'], [index])"
            )
        position = match.end()
        index = match.group("index")
        if index is not None:
            if not isinstance(current, list) or not -len(current) <= int(index) < len(current):
                raise Missing(f"jsonPath {expression!r}: no item [{index}]")
            current = current[int(index)]
            continue
        key = match.group("dot")
        if key is None:
            quoted = match.group("single")
            quoted = quoted if quoted is not None else match.group("double")
            key = re.sub(r"\\(.)", r"\1", quoted)
        if not isinstance(current, dict) or key not in current:
            raise Missing(f"jsonPath {expression!r}: no key {key!r}")
        current = current[key]
    return current


def _source_text(rule: OutputFieldRule, sources: Sources) -> str:
    kind = rule.sourceType
    if kind is SourceType.OUTPUT:
        stream = rule.source or "stdout"
        if stream == "stdout":
            return sources.stdout
        if stream == "stderr":
            return sources.stderr
        raise Missing(f"source {stream!r} is neither stdout nor stderr")
    if kind is SourceType.EXIT_CODE:
        if sources.exit_code is None:
            raise Missing("the step has no exit code (it did not run to the end)")
        return str(sources.exit_code)
    base = sources.cwd if kind is SourceType.FILE else sources.evidence_dir
    return _read_inside(base, rule.source, _describe(rule))


def _read_inside(base: Path, relative: str, what: str) -> str:
    if not relative:
        raise Missing(f"the {what} has no source path")
    root = base.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise Missing(f"the {what} {relative!r} is outside {str(root)!r}")
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        raise Missing(f"the {what} {relative!r} does not exist") from None
    except OSError as exc:
        raise Missing(f"the {what} {relative!r} cannot be read: {exc.strerror}") from None


def _describe(rule: OutputFieldRule) -> str:
    return {
        SourceType.OUTPUT: rule.source or "stdout",
        SourceType.EXIT_CODE: "exit code",
        SourceType.FILE: "file",
        SourceType.ARTIFACT: "artifact",
    }[rule.sourceType]
