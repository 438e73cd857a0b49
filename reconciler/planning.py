"""Desired jobs vs stored jobs -> a Plan of create / update / cancel / noop / drift. Pure.

The plan records the state serial it was made on, so a saved plan can be refused when stale.
Unmanaged jobs (made with `scheduler jobs add-job`) are listed but never canceled; a file with the
same name adopts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import FrozenInstanceError, dataclass, field, replace
from enum import StrEnum
from typing import Any

import orjson

from reconciler.diff import FieldChange, field_changes, reruns
from reconciler.model.enums import JobStatus
from reconciler.ports import StoredJob, StoredState


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CANCEL = "cancel"
    NOOP = "noop"
    DRIFT = "drift"


class Desired:
    """A job as its file says it should be: name, file, canonical spec and its hash, blob id.

    Immutable, and equal to another with the same values. The spec may be given as None with a
    `fetch` that returns it on first use: a file unchanged since its job was applied needs only
    its name and hash to be planned (DESIGN.md §8), so the stored specs of 10,000 such jobs are
    not loaded for nothing; only an apply that writes the job anyway (drift, adoption) or a
    saved plan reads it.
    """

    __slots__ = ("_fetch", "_spec", "blob_id", "hash", "name", "path")
    __hash__ = None  # type: ignore[assignment]  # the spec is a dict, as for the dataclass it was

    name: str
    path: str
    hash: str
    blob_id: str | None
    _spec: dict[str, Any] | None
    _fetch: Callable[[], dict[str, Any]] | None

    def __init__(
        self,
        name: str,
        path: str,
        spec: dict[str, Any] | None,
        hash: str,
        blob_id: str | None = None,
        *,
        fetch: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if spec is None and fetch is None:
            raise TypeError("Desired needs a spec or a fetch")
        for key, value in (
            ("name", name),
            ("path", path),
            ("_spec", spec),
            ("hash", hash),
            ("blob_id", blob_id),
            ("_fetch", fetch if spec is None else None),
        ):
            object.__setattr__(self, key, value)

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] | None = self._spec
        if spec is None:
            assert self._fetch is not None
            spec = self._fetch()
            object.__setattr__(self, "_spec", spec)
            object.__setattr__(self, "_fetch", None)
        return spec

    def __setattr__(self, key: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {key!r}")

    def __delattr__(self, key: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {key!r}")

    def __reduce__(self) -> tuple[type[Desired], tuple[Any, ...]]:  # copy, deepcopy, pickle
        return (self.__class__, (self.name, self.path, self.spec, self.hash, self.blob_id))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Desired)
        return (self.name, self.path, self.hash, self.blob_id) == (
            other.name,
            other.path,
            other.hash,
            other.blob_id,
        ) and self.spec == other.spec

    def __repr__(self) -> str:
        spec = "<not loaded>" if self._spec is None else repr(self._spec)
        return (
            f"Desired(name={self.name!r}, path={self.path!r}, spec={spec}, hash={self.hash!r}, "
            f"blob_id={self.blob_id!r})"
        )


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    name: str
    path: str | None
    reruns: bool = False
    fields: tuple[FieldChange, ...] = ()
    job_id: str | None = None
    desired: Desired | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": str(self.action),
            "name": self.name,
            "path": self.path,
            "reruns": self.reruns,
            "fields": [f.to_json() for f in self.fields],
        }
        if self.job_id:
            out["jobId"] = self.job_id
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    serial: int
    managed_active: int = 0
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(self.summary.get(a, 0) for a in ("create", "update", "cancel", "drift"))

    @property
    def mass_cancel(self) -> bool:
        """More than half of the managed jobs would be canceled (and at least two)."""
        cancels = self.summary.get("cancel", 0)
        return cancels >= 2 and cancels * 2 > self.managed_active

    def fingerprint(self) -> str:
        """A hash of what the plan would do; recorded in the apply journal."""
        material = [(c.action, c.name, c.desired.hash if c.desired else None) for c in self.changes]
        return hashlib.sha256(orjson.dumps([self.serial, material])).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": dict(self.summary),
            "changes": [c.to_json() for c in self.changes],
            "stateSerial": self.serial,
        }


SpecsOf = Callable[[Iterable[str]], dict[str, dict[str, Any]]]
"""Job ids -> the current canonical spec of each (a `StateStore.specs`)."""


def make_plan(desired: list[Desired], stored: StoredState, specs: SpecsOf | None = None) -> Plan:
    """Compare desired jobs (by name) with the stored ones.

    With `specs`, `stored` may have been read without its specs (`spec == {}`): only jobs whose
    hash differs from their file's are compared field by field, and their specs are asked of
    `specs` in one call, so a plan over 10,000 unchanged jobs parses none of them.
    """
    if specs is not None:
        stored = _with_specs_to_diff(desired, stored, specs)
    changes: list[Change] = []
    wanted = {d.name: d for d in desired}
    for d in sorted(desired, key=lambda d: d.name):
        changes.append(_change_for(d, stored.jobs.get(d.name)))
    for name in sorted(stored.jobs):
        job = stored.jobs[name]
        if name in wanted:
            continue
        if not job.managed:
            if job.status is not JobStatus.CANCELED:
                changes.append(
                    Change(Action.NOOP, name, None, job_id=job.id, note="unmanaged (add-job)")
                )
            continue
        if job.status is JobStatus.CANCELED:
            continue
        changes.append(
            Change(Action.CANCEL, name, job.origin_path, job_id=job.id, note="file removed")
        )
    summary = {a.value: 0 for a in Action}
    for c in changes:
        summary[c.action.value] += 1
    managed_active = sum(
        1 for j in stored.jobs.values() if j.managed and j.status is not JobStatus.CANCELED
    )
    return Plan(tuple(changes), stored.serial, managed_active, summary)


def _change_for(d: Desired, job: StoredJob | None) -> Change:
    if job is None:
        return Change(Action.CREATE, d.name, d.path, reruns=True, desired=d)
    if job.hash == d.hash:
        if job.status is JobStatus.CANCELED:
            return Change(
                Action.DRIFT,
                d.name,
                d.path,
                job_id=job.id,
                desired=d,
                note="canceled outside git; apply re-activates it",
            )
        if not job.managed:
            return Change(
                Action.UPDATE, d.name, d.path, job_id=job.id, desired=d, note="adopt unmanaged job"
            )
        if job.origin_path != d.path:
            # Same job, another file (renamed, or converted to another format): not a change of
            # the job; apply records the new path so its blob id matches again.
            return Change(
                Action.NOOP,
                d.name,
                d.path,
                job_id=job.id,
                desired=d,
                note=f"file moved from {job.origin_path}",
            )
        return Change(Action.NOOP, d.name, d.path, job_id=job.id, desired=d)
    fields = field_changes(job.spec, d.spec)
    note = "adopt unmanaged job" if not job.managed else ""
    if job.status is JobStatus.CANCELED:
        note = "re-activate canceled job"
    return Change(
        Action.UPDATE,
        d.name,
        d.path,
        reruns=reruns(job.spec, d.spec) or job.status is JobStatus.CANCELED,
        fields=fields,
        job_id=job.id,
        desired=d,
        note=note,
    )


def _with_specs_to_diff(desired: list[Desired], stored: StoredState, specs: SpecsOf) -> StoredState:
    differ = {
        job.id: job
        for d in desired
        if (job := stored.jobs.get(d.name)) is not None and job.hash != d.hash and not job.spec
    }
    if not differ:
        return stored
    found = specs(differ)
    jobs = dict(stored.jobs)
    for job_id, job in differ.items():
        jobs[job.name] = replace(job, spec=found.get(job_id, job.spec))
    return StoredState(jobs, stored.serial)
