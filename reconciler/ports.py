"""Protocols the core needs from the outside world; `state/` and the CLI implement them.

The core sees frozen dataclasses, never ORM rows or sessions (STYLE.md). All times are aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from reconciler.model.enums import InstanceStatus, JobStatus

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as the state knows it, with its current version's canonical spec."""

    id: str
    name: str
    status: JobStatus
    managed: bool
    origin_path: str | None
    version: int
    spec: dict[str, Any]
    hash: str
    blob_id: str | None
    created_at: datetime
    modified_at: datetime
    next_execution_time: datetime | None
    execution_count: int


@dataclass(frozen=True, slots=True)
class StoredState:
    jobs: dict[str, StoredJob]  # by name
    serial: int


@dataclass(frozen=True, slots=True)
class JobVersion:
    """One applied version of a job (kept forever: job_versions)."""

    spec: dict[str, Any]
    hash: str
    source_path: str | None
    git_commit: str | None
    blob_id: str | None
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    name: str
    managed: bool
    origin_path: str | None
    created_at: datetime
    next_execution_time: datetime | None


@dataclass(frozen=True, slots=True)
class StoredInstance:
    id: str
    job_id: str
    job_version: int
    status: InstanceStatus
    scheduled_for: datetime
    created_at: datetime
    updated_at: datetime
    instance_type: str = "scheduled"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    started_at: datetime
    finished_at: datetime
    actor: str
    git_commit: str | None
    plan_hash: str
    outcome: str  # "applied" | "noop" | "failed"
    counts: dict[str, int] = field(default_factory=dict)


class StateWriter(Protocol):
    """What an apply may do, inside one transaction holding the apply lock."""

    def serial(self) -> int: ...
    def jobs(self) -> dict[str, StoredJob]: ...
    def insert_job(self, job: NewJob, version: JobVersion) -> None: ...
    def add_version(
        self, job_id: str, version: JobVersion, next_execution_time: datetime | None
    ) -> int: ...
    def set_status(self, job_id: str, status: JobStatus, at: datetime) -> None: ...
    def set_next_execution(self, job_id: str, at: datetime | None) -> None: ...
    def set_managed(self, job_id: str, managed: bool, origin_path: str | None) -> None: ...
    def create_instance(
        self, job_id: str, job_version: int, scheduled_for: datetime, at: datetime
    ) -> str: ...
    def cancel_pending_instances(self, job_id: str, at: datetime, *, running: bool) -> int: ...
    def journal(self, entry: JournalEntry) -> None: ...
    def bump_serial(self) -> int: ...


class StateStore(Protocol):
    def read(self) -> StoredState: ...
    def write(
        self, mutation: Callable[[StateWriter], T], *, lock_timeout: float, holder: str
    ) -> T: ...
    def instances(self, job_id: str | None = None) -> list[StoredInstance]: ...
