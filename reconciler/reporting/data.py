"""Report data: the state read through a small Protocol and turned into frozen view values.

First stage of `courier report` (data -> rendering -> writing). Templates only ever see these
values, never store rows. Ordering is fixed everywhere and times come from the state only, so the
same state gives the same `Report`. Evidence is read through a callable the caller passes in (only
for the output tail of failed steps), which keeps this module free of any store or file access.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from reconciler.errors import CourierError
from reconciler.model.enums import InstanceStatus, RunStatus, StepStatus
from reconciler.ports import (
    JobVersion,
    StepResult,
    StoredInstance,
    StoredJob,
    StoredRun,
    StoredState,
)
from reconciler.reporting.text import Tail, duration, one_line, rfc3339, seconds_between, slugs
from reconciler.reporting.timeline import Span, Timeline, layout

DEFAULT_LAST = 10
MAX_INSTANCES = 20  # per job page; older instances only count in the totals

EvidenceReader = Callable[[str], bytes]
"""Returns the evidence zip stored under a key; raises `CourierError` (e.g. NotFound) or
`OSError` when it cannot."""
TailReader = Callable[[str], tuple[Tail, Tail]]

FINISHED = (InstanceStatus.SUCCESS, InstanceStatus.FAILURE, InstanceStatus.CANCELED)
FAILED_RUN = (RunStatus.FAILURE, RunStatus.TIMEOUT)
FAILED_STEP = (StepStatus.FAILURE, StepStatus.IGNORED)
UNSTARTED = (RunStatus.PENDING,)


class ReportSource(Protocol):
    """The reads a report needs (`state.SqlStateStore` has them)."""

    def read(self) -> StoredState: ...
    def instances(self, job_id: str | None = None) -> list[StoredInstance]: ...
    def runs(self, instance_id: str) -> list[StoredRun]: ...
    def steps(self, run_id: str) -> list[StepResult]: ...
    def job_versions(self, job_id: str) -> list[JobVersion]: ...


@runtime_checkable
class BulkReportSource(Protocol):
    """Bulk reads (a few queries for any number of instances and runs); used when present."""

    def runs_of(self, instance_ids: Sequence[str]) -> dict[str, list[StoredRun]]: ...
    def steps_of(self, run_ids: Sequence[str]) -> dict[str, list[StepResult]]: ...


# -- the values templates see ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvidenceRef:
    run_id: str
    step_number: int
    attempt_no: int
    key: str  # where the evidence store keeps the zip


@dataclass(frozen=True, slots=True)
class AttemptView:
    number: int
    status: str
    exit_code: str  # "-" when the process never exited (timeout, not started)
    started: str
    duration: str
    reason: str
    evidence: EvidenceRef | None


@dataclass(frozen=True, slots=True)
class StepView:
    number: int
    name: str
    status: str
    reason: str
    attempts: tuple[AttemptView, ...]
    stderr: Tail | None  # only for failed steps with readable evidence
    stdout: Tail | None
    tail_note: str  # why there is no tail of a failed step ("" otherwise)

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STEP


@dataclass(frozen=True, slots=True)
class RunView:
    id: str
    short_id: str
    node_id: str
    group: int
    status: str
    started: str
    ended: str
    duration: str
    seconds: float  # 0.0 when unknown (JUnit wants a number)
    reason: str
    steps: tuple[StepView, ...]
    started_at: datetime | None  # for the timeline
    ended_at: datetime | None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_RUN


@dataclass(frozen=True, slots=True)
class GroupView:
    number: int
    runs: tuple[RunView, ...]


@dataclass(frozen=True, slots=True)
class InstanceView:
    id: str
    short_id: str
    status: str
    version: int
    created: str
    updated: str
    counts: str  # "2 success, 1 failure"
    groups: tuple[GroupView, ...]

    @property
    def runs(self) -> tuple[RunView, ...]:
        return tuple(run for group in self.groups for run in group.runs)

    @property
    def has_steps(self) -> bool:
        return any(run.steps for group in self.groups for run in group.runs)


@dataclass(frozen=True, slots=True)
class JobReport:
    name: str
    slug: str
    status: str
    managed: bool
    description: str
    schedule: str
    file: str  # repo-relative source path, "" for unmanaged jobs
    version: int
    next_execution: str
    last_status: str  # "-" when it never ran
    last_time: str
    ratio: str  # "8/10 (80%)" over the last N finished instances, "-" when none
    instance_total: int
    instances: tuple[InstanceView, ...]  # newest first, at most MAX_INSTANCES
    timeline: Timeline


@dataclass(frozen=True, slots=True)
class Report:
    jobs: tuple[JobReport, ...]  # by name
    last: int
    summary: str  # "2 success, 1 failure" over each job's last instance

    @property
    def runs(self) -> int:
        return sum(len(i.runs) for j in self.jobs for i in j.instances)


# -- building ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the report is made of, read from the state (in as few reads as the source allows)."""

    state: StoredState
    instances: Mapping[str, Sequence[StoredInstance]]  # by job id, newest first (all of them)
    runs: Mapping[str, Sequence[StoredRun]]  # by instance id, for the shown instances
    steps: Mapping[str, Sequence[StepResult]]  # by run id
    specs: Mapping[tuple[str, int], Mapping[str, Any]]  # (job id, version) -> spec


def build_report(
    source: ReportSource,
    *,
    read_evidence: EvidenceReader | None = None,
    last: int = DEFAULT_LAST,
    max_instances: int = MAX_INSTANCES,
) -> Report:
    """Read the state through `source` and make the report's values."""
    loaded = load(source, max_instances=max_instances)
    tails = _tail_reader(read_evidence) if read_evidence is not None else None
    return assemble(loaded, tails=tails, last=last, max_instances=max_instances)


def load(source: ReportSource, *, max_instances: int = MAX_INSTANCES) -> Loaded:
    state = source.read()
    by_job: dict[str, list[StoredInstance]] = defaultdict(list)
    for instance in source.instances():
        by_job[instance.job_id].append(instance)
    for found in by_job.values():
        found.sort(key=lambda i: (i.created_at, i.scheduled_for, i.id), reverse=True)
    shown = [i for found in by_job.values() for i in found[:max_instances]]
    shown_ids = sorted(i.id for i in shown)
    if isinstance(source, BulkReportSource):
        runs: Mapping[str, Sequence[StoredRun]] = source.runs_of(shown_ids)
        run_ids = sorted(r.id for rs in runs.values() for r in rs if r.status not in UNSTARTED)
        steps: Mapping[str, Sequence[StepResult]] = source.steps_of(run_ids)
    else:
        runs = {instance_id: source.runs(instance_id) for instance_id in shown_ids}
        steps = {
            run.id: source.steps(run.id)
            for found_runs in runs.values()
            for run in found_runs
            if run.status not in UNSTARTED
        }
    specs: dict[tuple[str, int], Mapping[str, Any]] = {
        (job.id, job.version): job.spec for job in state.jobs.values()
    }
    for instance in shown:
        if (instance.job_id, instance.job_version) not in specs:
            for number, version in enumerate(source.job_versions(instance.job_id), start=1):
                specs[instance.job_id, number] = version.spec
    return Loaded(state, dict(by_job), runs, steps, specs)


def assemble(
    loaded: Loaded,
    *,
    tails: TailReader | None = None,
    last: int = DEFAULT_LAST,
    max_instances: int = MAX_INSTANCES,
) -> Report:
    """The report's values from what `load` read (pure but for `tails`)."""
    jobs = sorted(loaded.state.jobs.values(), key=lambda j: (j.name, j.id))
    slug_of = slugs(j.name for j in jobs)
    reports = tuple(
        _job(job, slug_of[job.name], loaded, tails, last, max_instances) for job in jobs
    )
    counts = Counter(j.last_status for j in reports)
    order = [*(str(s) for s in InstanceStatus), "-"]
    summary = ", ".join(f"{counts[s]} {'never run' if s == '-' else s}" for s in order if counts[s])
    return Report(reports, last, summary or "no jobs")


def _job(
    job: StoredJob,
    slug: str,
    loaded: Loaded,
    tails: TailReader | None,
    last: int,
    max_instances: int,
) -> JobReport:
    every = loaded.instances.get(job.id, ())
    shown = tuple(
        _instance(i, loaded.specs.get((job.id, i.job_version), {}), loaded, tails)
        for i in every[:max_instances]
    )
    finished = [i for i in every if i.status in FINISHED][:last]
    wins = sum(1 for i in finished if i.status is InstanceStatus.SUCCESS)
    ratio = f"{wins}/{len(finished)} ({round(100 * wins / len(finished))}%)" if finished else "-"
    newest = every[0] if every else None
    spans = [_span(run, instance) for instance in shown for run in instance.runs]
    spec = job.spec
    return JobReport(
        name=job.name,
        slug=slug,
        status=str(job.status),
        managed=job.managed,
        description=str(spec.get("description") or ""),
        schedule=str(spec.get("scheduleRule") or ""),
        file=job.origin_path or "",
        version=job.version,
        next_execution=rfc3339(job.next_execution_time),
        last_status=str(newest.status) if newest else "-",
        last_time=rfc3339(newest.updated_at) if newest else "-",
        ratio=ratio,
        instance_total=len(every),
        instances=shown,
        timeline=layout(spans),
    )


def _instance(
    instance: StoredInstance,
    spec: Mapping[str, Any],
    loaded: Loaded,
    tails: TailReader | None,
) -> InstanceView:
    names = _step_names(spec)
    runs = [
        _run(r, loaded.steps.get(r.id, ()), names, tails) for r in loaded.runs.get(instance.id, ())
    ]
    by_group: dict[int, list[RunView]] = defaultdict(list)
    for run in runs:
        by_group[run.group].append(run)
    counts = Counter(run.status for run in runs)
    return InstanceView(
        id=instance.id,
        short_id=instance.id[:8],
        status=str(instance.status),
        version=instance.job_version,
        created=rfc3339(instance.created_at),
        updated=rfc3339(instance.updated_at),
        counts=", ".join(f"{counts[s]} {s}" for s in RunStatus if counts[s]) or "no runs",
        groups=tuple(GroupView(g, tuple(by_group[g])) for g in sorted(by_group)),
    )


def _step_names(spec: Mapping[str, Any]) -> list[str]:
    actions = spec.get("actions")
    steps = actions.get("steps") if isinstance(actions, dict) else None
    if not isinstance(steps, list):
        return []
    return [one_line(str(s.get("name") or "")) if isinstance(s, dict) else "" for s in steps]


def _run(
    run: StoredRun,
    steps: Sequence[StepResult],
    names: Sequence[str],
    tails: TailReader | None,
) -> RunView:
    seconds = seconds_between(run.received_time, run.last_update_time)
    return RunView(
        id=run.id,
        short_id=run.id[:8],
        node_id=run.node_id,
        group=run.group_number,
        status=str(run.status),
        started=rfc3339(run.received_time),
        ended=rfc3339(run.last_update_time),
        duration=duration(seconds),
        seconds=seconds or 0.0,
        reason=one_line(run.reason),
        steps=tuple(_step(run.id, step, names, tails) for step in steps),
        started_at=run.received_time,
        ended_at=run.last_update_time,
    )


def _step(
    run_id: str, step: StepResult, names: Sequence[str], tails: TailReader | None
) -> StepView:
    attempts = tuple(
        AttemptView(
            number=a.attempt_no,
            status=str(a.status),
            exit_code="-" if a.exit_code is None else str(a.exit_code),
            started=rfc3339(a.started_at),
            duration=duration(seconds_between(a.started_at, a.ended_at)),
            reason=one_line(a.reason),
            evidence=(
                EvidenceRef(run_id, step.step_number, a.attempt_no, a.evidence_key)
                if a.evidence_key
                else None
            ),
        )
        for a in step.attempts
    )
    stderr = stdout = None
    note = ""
    if step.status in FAILED_STEP:
        keys = [a.evidence.key for a in attempts if a.evidence is not None]
        if not keys:
            note = "no evidence was kept for this step"
        elif tails is None:
            note = "output not read"
        else:
            try:
                stderr, stdout = tails(keys[-1])
            except ReportEvidenceError as exc:
                note = exc.message
    number = step.step_number
    return StepView(
        number=number,
        name=names[number - 1] if 0 < number <= len(names) and names[number - 1] else "",
        status=str(step.status),
        reason=one_line(step.reason),
        attempts=attempts,
        stderr=stderr,
        stdout=stdout,
        tail_note=note,
    )


def _span(run: RunView, instance: InstanceView) -> Span:
    return Span(
        node_id=run.node_id,
        group=run.group,
        status=run.status,
        start=run.started_at,
        end=run.ended_at,
        title=(
            f"{run.node_id} (group {run.group}): {run.status}, {run.started} to {run.ended}"
            f" ({run.duration}), instance {instance.short_id}"
        ),
    )


class ReportEvidenceError(CourierError):
    """The evidence of a failed step could not be read; the report says so instead of failing."""


def _tail_reader(read: EvidenceReader) -> TailReader:
    import zipfile

    from reconciler.reporting.text import zip_tails

    def tails(key: str) -> tuple[Tail, Tail]:
        try:
            return zip_tails(read(key))
        except CourierError as exc:
            raise ReportEvidenceError(f"evidence not available: {exc.message}") from exc
        except OSError as exc:
            raise ReportEvidenceError(f"evidence not readable: {exc.strerror or exc}") from exc
        except zipfile.BadZipFile as exc:
            raise ReportEvidenceError("evidence is not a valid zip") from exc

    return tails
