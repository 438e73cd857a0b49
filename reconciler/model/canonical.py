"""The canonical form of a job: defaults filled as Chef echoes them, keys sorted, and its hash.

Two files that mean the same job (JSON, YAML or TOML; legacy or current keys) have one canonical
form and so one hash. `plan` compares hashes first and diffs canonical forms only when they differ.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from reconciler.model.job import JobTemplate

EXECUTION_FIELDS = ("actions", "target", "scheduleRule", "exceptionRules")


def canonical(job: JobTemplate) -> dict[str, Any]:
    """The job as a plain JSON-able dict with every default filled."""
    return job.model_dump(mode="json")


def canonical_json(spec: dict[str, Any]) -> bytes:
    """Stable bytes for a canonical spec: sorted keys, no whitespace."""
    return orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec)).hexdigest()


def execution_hash(spec: dict[str, Any]) -> str:
    """Hash of the fields whose change makes a job run again (DESIGN.md §3)."""
    return hashlib.sha256(canonical_json({k: spec.get(k) for k in EXECUTION_FIELDS})).hexdigest()
