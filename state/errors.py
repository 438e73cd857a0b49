"""State-specific user errors (the hierarchy itself lives in `reconciler.errors`)."""

from __future__ import annotations

from datetime import datetime

from reconciler.errors import StateError


class DuplicateOccurrence(StateError):
    """This job already has an instance for this occurrence (UNIQUE(job_id, scheduled_for))."""

    def __init__(self, job_id: str, scheduled_for: datetime | None) -> None:
        when = scheduled_for.isoformat() if scheduled_for is not None else "that time"
        super().__init__(f"job {job_id} already has an instance scheduled for {when}")
        self.job_id = job_id
        self.scheduled_for = scheduled_for


class DuplicateJobName(StateError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a job named {name!r} already exists")
        self.name = name
