"""Turn a parsed document into a JobTemplate, or into located-later problems. Pure.

Problems here carry a `loc` (a path of keys and indexes); `loading` maps a loc to a line and column
of the file it came from, only when there is a problem to report.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.model.job import JobTemplate
from reconciler.model.legacy import Loc, upgrade


@dataclass(frozen=True, slots=True)
class Finding:
    loc: Loc
    message: str
    warning: bool = False


@dataclass(slots=True)
class Validated:
    job: JobTemplate | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.job is not None


def validate_document(doc: Any) -> Validated:
    """Validate one parsed job document (any format) against the current schema."""
    if not isinstance(doc, dict):
        kind = "an empty file" if doc is None else f"a {type(doc).__name__}"
        return Validated(None, [Finding((), f"a job template is a mapping of fields, not {kind}")])
    upgraded, warnings = upgrade(doc)
    findings = [Finding(loc, msg, warning=True) for loc, msg in warnings]
    try:
        job = JobTemplate.model_validate(upgraded)
    except ValidationError as exc:
        findings.extend(_finding(err) for err in exc.errors(include_url=False))
        return Validated(None, findings)
    return Validated(job, findings)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _finding(err: Any) -> Finding:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("shell", "exec")))
    kind = err["type"]
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    if kind == "extra_forbidden":
        known = known_fields(loc[:-1])
        msg = "unknown field"
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        elif known:
            msg += f" (known here: {', '.join(sorted(known))})"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        msg = f"{err['input']!r} is not one of {expected}"
    return Finding(loc, msg)


def known_fields(loc: Loc) -> list[str]:
    """Field names of the model found at `loc` under JobTemplate (for did-you-mean)."""
    annotation: Any = JobTemplate
    for part in loc:
        model = _model_of(annotation)
        if isinstance(part, int):
            annotation = _item_of(annotation)
            continue
        if model is None:
            if typing.get_origin(annotation) is dict:
                annotation = typing.get_args(annotation)[1]
                continue
            return []
        info = model.model_fields.get(part)
        if info is None:
            return []
        annotation = info.annotation
    model = _model_of(annotation)
    if model is None:
        return []
    return list(model.model_fields)


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [_strip(a) for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) > 1:
            return models
        return args[0] if args else annotation
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    a = _strip(annotation)
    if isinstance(a, list):
        first: type[BaseModel] = a[0]
        return first
    return a if isinstance(a, type) and issubclass(a, BaseModel) else None


def _item_of(annotation: Any) -> Any:
    a = _strip(annotation)
    args = typing.get_args(a)
    return args[0] if args else Any
