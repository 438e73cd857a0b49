"""Carry a plan out through the StateStore port: one transaction, under the apply lock.

The plan is made again inside the lock against what the state holds at that moment, so two
applies started together converge instead of creating a job twice. A saved plan is applied only
if the state serial is still the one it was made on. A crash anywhere leaves the state as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.errors import CourierError, StalePlan
from reconciler.model.enums import JobStatus
from reconciler.model.job import JobTemplate
from reconciler.nodes.inventory import Inventory
from reconciler.planning import Action, Change, Desired, Plan, make_plan
from reconciler.ports import (
    Assignment,
    JobVersion,
    JournalEntry,
    NewJob,
    StateStore,
    StateWriter,
    StoredJob,
    StoredState,
)
from reconciler.scheduling import Schedule
from reconciler.targeting import resolve_group


class MassCancel(CourierError):
    def __init__(self, cancels: int, managed: int) -> None:
        super().__init__(
            f"the plan cancels {cancels} of {managed} managed jobs (more than half); "
            "if that is intended, apply again with --allow-mass-cancel"
        )


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    lock_timeout: float = 30.0
    allow_mass_cancel: bool = False
    cancel_running: bool = False
    restart_running: bool = False
    inventory: Inventory | None = None  # resolves each new instance's nodes; None: no runs
    actor: str = "courier"
    git_commit: str | None = None
    expected_serial: int | None = None  # set when applying a saved plan


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan: Plan
    serial: int
    instances: tuple[str, ...]
    changed: bool


def apply(
    desired: list[Desired], store: StateStore, now: datetime, options: ApplyOptions
) -> ApplyResult:
    """Make the state match `desired`. Raises StalePlan, MassCancel or LockTimeout."""

    def mutation(writer: StateWriter) -> ApplyResult:
        stored = StoredState(writer.jobs(), writer.serial())
        if options.expected_serial is not None and stored.serial != options.expected_serial:
            raise StalePlan(options.expected_serial, stored.serial)
        plan = make_plan(desired, stored)
        if plan.mass_cancel and not options.allow_mass_cancel:
            raise MassCancel(plan.summary["cancel"], plan.managed_active)
        instances: list[str] = []
        for change in plan.changes:
            _carry_out(change, stored.jobs.get(change.name), writer, now, options, instances)
        serial = writer.bump_serial() if plan.has_changes else stored.serial
        counts = dict(plan.summary)
        writer.journal(
            JournalEntry(
                started_at=now,
                finished_at=now,
                actor=options.actor,
                git_commit=options.git_commit,
                plan_hash=plan.fingerprint(),
                outcome="applied" if plan.has_changes else "noop",
                counts=counts,
            )
        )
        return ApplyResult(plan, serial, tuple(instances), plan.has_changes)

    return store.write(mutation, lock_timeout=options.lock_timeout, holder=options.actor)


def next_execution(spec: dict[str, Any], anchor: datetime, now: datetime) -> datetime | None:
    """The first occurrence at or after `now` of a recurring spec; None for immediate jobs."""
    rules = [(r["rrule"], int(r["duration"])) for r in spec.get("exceptionRules", [])]
    schedule = Schedule.parse(spec["scheduleRule"], rules, anchor)
    if schedule.is_immediate:
        return None
    return schedule.next_after(now, inclusive=True)


def assignments(spec: dict[str, Any], inventory: Inventory | None) -> list[Assignment]:
    """The runs of a new instance: nodes resolved now and fixed (DESIGN.md §4)."""
    if inventory is None:
        return []
    job = JobTemplate.model_validate(spec)
    out: list[Assignment] = []
    for number, group in enumerate(job.target.groups):
        for node_id in resolve_group(group, inventory).node_ids:
            out.append(Assignment(str(uuid.uuid4()), node_id, number))
    return out


def _version(d: Desired, options: ApplyOptions, now: datetime) -> JobVersion:
    return JobVersion(d.spec, d.hash, d.path, options.git_commit, d.blob_id, now)


def _carry_out(
    change: Change,
    job: StoredJob | None,
    writer: StateWriter,
    now: datetime,
    options: ApplyOptions,
    instances: list[str],
) -> None:
    d = change.desired
    if change.action is Action.CREATE and d is not None:
        job_id = str(uuid.uuid4())
        writer.insert_job(
            NewJob(job_id, d.name, True, d.path, now, next_execution(d.spec, now, now)),
            _version(d, options, now),
        )
        if d.spec["scheduleRule"] == "immediate":
            runs = assignments(d.spec, options.inventory)
            instances.append(writer.create_instance(job_id, 1, now, now, runs))
    elif change.action is Action.UPDATE and d is not None and job is not None:
        rerun = change.reruns
        upcoming = next_execution(d.spec, job.created_at, now) if rerun else job.next_execution_time
        version = writer.add_version(job.id, _version(d, options, now), upcoming)
        if not job.managed:
            writer.set_managed(job.id, True, d.path)
        if job.status is JobStatus.CANCELED:
            writer.set_status(job.id, JobStatus.ACTIVE, now)
        if rerun:
            writer.cancel_pending_instances(job.id, now, running=options.restart_running)
            if d.spec["scheduleRule"] == "immediate":
                runs = assignments(d.spec, options.inventory)
                instances.append(writer.create_instance(job.id, version, now, now, runs))
    elif change.action is Action.CANCEL and job is not None:
        writer.set_status(job.id, JobStatus.CANCELED, now)
        writer.set_next_execution(job.id, None)
        writer.cancel_pending_instances(job.id, now, running=options.cancel_running)
    elif change.action is Action.NOOP and d is not None and job is not None and job.managed:
        if job.origin_path != d.path or (d.blob_id and job.blob_id != d.blob_id):
            writer.set_origin(job.id, d.path, d.blob_id)
    elif change.action is Action.DRIFT and d is not None and job is not None:
        writer.set_status(job.id, JobStatus.ACTIVE, now)
        writer.set_next_execution(job.id, next_execution(d.spec, job.created_at, now))
