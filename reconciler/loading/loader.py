"""Load `jobs.d/` into the desired state: discover, parse, validate, locate problems.

Every problem of every file is collected before anything fails. Parsing takes the fast path; a
file is re-read for positions only when it has something to report.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import Problem, Severity, ValidationFailed
from reconciler.loading.discovery import discover
from reconciler.loading.parsing import ParseError, decode, parse
from reconciler.loading.positions import json_positions, locate
from reconciler.model import (
    JobTemplate,
    canonical,
    format_loc,
    spec_hash,
    validate_document,
)


@dataclass(frozen=True, slots=True)
class LoadedJob:
    """One valid job file: the model, its canonical spec and hash, and where it came from."""

    name: str
    path: str
    format: str
    job: JobTemplate
    spec: dict[str, Any]
    hash: str


@dataclass(slots=True)
class LoadResult:
    jobs: list[LoadedJob] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise ValidationFailed(self.problems)


def load_paths(paths: list[Path], repo: Path) -> LoadResult:
    """Load job files (and folders of them) from the work tree."""
    sources, problems = discover(paths, repo)
    result = LoadResult(problems=problems)
    with bulk_allocation():
        for source in sources:
            try:
                data = source.path.read_bytes()
            except OSError as exc:
                result.problems.append(Problem(source.display, 1, 1, "", f"cannot read: {exc}"))
                continue
            _load_one(source.display, source.format, data, result)
    _check_unique_names(result)
    result.problems.sort(key=Problem.sort_key)
    return result


def load_blobs(blobs: Iterable[tuple[str, str, bytes]]) -> LoadResult:
    """Load (display path, format, bytes) triples, e.g. from a git revision."""
    result = LoadResult()
    with bulk_allocation():
        for display, fmt, data in blobs:
            _load_one(display, fmt, data, result)
    _check_unique_names(result)
    result.problems.sort(key=Problem.sort_key)
    return result


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of the way while many lasting objects are made.

    Loading 10,000 jobs keeps millions of small objects (models, canonical specs) alive and makes
    no reference cycles, yet the collector would scan the growing heap again and again; it was
    over half the time of a cold `courier validate` (bench/RESULTS.md). So collection pauses,
    and afterwards the new objects go straight to the oldest generation (freeze, then
    unfreeze: no scan), where they wait for a full collection like any long-lived object.
    Nothing is leaked: cyclic garbage made meanwhile is collected later, as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # leave objects someone froze on purpose alone
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def load_text(display: str, fmt: str, data: bytes) -> LoadResult:
    """Load one document (e.g. a `--body-file` of `scheduler jobs add-job`)."""
    result = LoadResult()
    _load_one(display, fmt, data, result)
    return result


def _load_one(display: str, fmt: str, data: bytes, result: LoadResult) -> None:
    try:
        text = decode(data)
        doc = parse(text, fmt)
    except ParseError as exc:
        doc = _json_with_duplicates(display, text, result) if exc.line == 0 else None
        if doc is None:
            line, column = max(exc.line, 1), max(exc.column, 1)
            result.problems.append(Problem(display, line, column, exc.field, exc.message))
            return
    validated = validate_document(doc)
    for finding in validated.findings:
        line, column = locate(text, fmt, finding.loc)
        severity = Severity.WARNING if finding.warning else Severity.ERROR
        result.problems.append(
            Problem(display, line, column, format_loc(finding.loc), finding.message, severity)
        )
    if validated.job is None:
        return
    try:
        spec = canonical(validated.job)
        digest = spec_hash(spec)
    except (ValueError, TypeError) as exc:
        # Valid by the schema but not storable: inputs nested hundreds deep, integers past
        # 64 bits (pydantic's and orjson's serialisers refuse them). A user error, not a crash.
        result.problems.append(
            Problem(
                display,
                1,
                1,
                "",
                f"values cannot be stored (too deeply nested or too large): {exc}",
            )
        )
        return
    result.jobs.append(LoadedJob(validated.job.name, display, fmt, validated.job, spec, digest))


def _json_with_duplicates(display: str, text: str, result: LoadResult) -> Any | None:
    """A JSON file with duplicate keys, read as Chef's server reads it: the last value wins.

    YAML and TOML forbid duplicate keys and stay errors. JSON only says names SHOULD be unique,
    Chef accepts such files, and one of Chef's own samples (ssl_cert_rotation.json) has them: the
    foundation issue asks for Chef-accepted malformations to load with a warning. The warning is
    placed at each later key, whose value silently replaces the earlier one.
    """
    duplicates = json_positions(text)[1]
    if not duplicates:
        return None
    for loc, (line, column) in duplicates:
        result.problems.append(
            Problem(
                display,
                line,
                column,
                format_loc(loc),
                "duplicate key: this value replaces the earlier one (Chef keeps the last); "
                "remove one of them",
                Severity.WARNING,
            )
        )
    return json.loads(text)


def _check_unique_names(result: LoadResult) -> None:
    by_name: dict[str, list[LoadedJob]] = {}
    for job in result.jobs:
        by_name.setdefault(job.name, []).append(job)
    kept: list[LoadedJob] = []
    for name, jobs in by_name.items():
        if len(jobs) == 1:
            kept.append(jobs[0])
            continue
        paths = ", ".join(j.path for j in jobs)
        for job in jobs:
            result.problems.append(
                Problem(
                    job.path,
                    1,
                    1,
                    "name",
                    f"job name {name!r} is used by {len(jobs)} files: {paths}",
                )
            )
    kept.sort(key=lambda j: j.path)
    result.jobs = kept
