"""Report data: the state read through a small Protocol and turned into frozen report values.

First stage of `courier report` (data -> rendering -> writing). Templates see these values and
the frozen port values they carry (`StoredRun`, `StepResult`, `AttemptResult`), never store rows;
per-run values are not copied into view objects, so 100,000 runs cost no extra allocations.
Ordering is fixed everywhere and times come from the state only: the same state gives the same
`Report`. Evidence is read through a callable the caller passes in (only for the output tail of
failed steps), which keeps this module free of any store or file access.
"""

from __future__ import annotations

import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
from reconciler.reporting.text import (
    Tail,
    duration,
    one_line,
    rfc3339,
    seconds_between,
    slugs,
    zip_tails,
)
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
NO_STEPS: tuple[StepResult, ...] = ()


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

    def runs_of(self, instance_ids: Sequence[str]) -> Mapping[str, Sequence[StoredRun]]: ...
    def steps_of(self, run_ids: Sequence[str]) -> Mapping[str, Sequence[StepResult]]: ...


# -- the values templates see ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepTail:
    """The end of the output of a failed step (its last attempt), or why there is none."""

    stderr: Tail | None
    stdout: Tail | None
    note: str  # "" when the tails are there


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed step of a run, with the end of its output."""

    run: StoredRun
    step: StepResult
    tail: StepTail


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One instance with its runs (store order: by group, then as targeting placed them)."""

    instance: StoredInstance
    runs: tuple[StoredRun, ...]
    steps: Mapping[str, Sequence[StepResult]]  # by run id; absent: no steps recorded
    step_names: tuple[str, ...]  # of the job version the instance ran, by step number - 1
    tails: Mapping[tuple[str, int], StepTail]  # (run id, step number) of failed steps
    failures: tuple[Failure, ...]  # the failed steps in run order, then step order
    counts: str  # "2 success, 1 failure"

    @property
    def id(self) -> str:
        return self.instance.id

    @property
    def short_id(self) -> str:
        return self.instance.id[:8]

    @property
    def status(self) -> str:
        return str(self.instance.status)

    def step_name(self, number: int) -> str:
        return self.step_names[number - 1] if 0 < number <= len(self.step_names) else ""


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

    @property
    def latest(self) -> InstanceView | None:
        return self.instances[0] if self.instances else None


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
    tails = tail_reader(read_evidence) if read_evidence is not None else None
    return assemble(loaded, tails=tails, last=last, max_instances=max_instances)


def load(source: ReportSource, *, max_instances: int = MAX_INSTANCES) -> Loaded:
    """Read jobs, instances, the runs of the newest `max_instances` instances of each job and
    their steps: through the source's bulk reads when it has them, else one read per instance
    and per run."""
    state = source.read()
    by_job: dict[str, list[StoredInstance]] = defaultdict(list)
    for instance in source.instances():
        by_job[instance.job_id].append(instance)
    for found in by_job.values():
        found.sort(key=lambda i: (i.created_at, i.scheduled_for, i.id), reverse=True)
    shown = [i for found in by_job.values() for i in found[:max_instances]]
    shown_ids = sorted(i.id for i in shown)
    runs: Mapping[str, Sequence[StoredRun]]
    steps: Mapping[str, Sequence[StepResult]]
    if isinstance(source, BulkReportSource):
        runs = source.runs_of(shown_ids)
        started = sorted(r.id for rs in runs.values() for r in rs if r.status not in UNSTARTED)
        steps = source.steps_of(started)
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
        timeline=layout([span for view in shown for span in _spans(view)]),
    )


def _instance(
    instance: StoredInstance,
    spec: Mapping[str, Any],
    loaded: Loaded,
    tails: TailReader | None,
) -> InstanceView:
    runs = tuple(loaded.runs.get(instance.id, ()))
    steps = {run.id: loaded.steps[run.id] for run in runs if run.id in loaded.steps}
    counts = Counter(run.status for run in runs)
    failures = tuple(
        Failure(run, step, _tail(step, tails))
        for run in runs
        for step in steps.get(run.id, NO_STEPS)
        if step.status in FAILED_STEP
    )
    return InstanceView(
        instance=instance,
        runs=runs,
        steps=steps,
        step_names=_step_names(spec),
        tails={(f.run.id, f.step.step_number): f.tail for f in failures},
        failures=failures,
        counts=", ".join(f"{counts[s]} {s}" for s in RunStatus if counts[s]) or "no runs",
    )


def _step_names(spec: Mapping[str, Any]) -> tuple[str, ...]:
    actions = spec.get("actions")
    steps = actions.get("steps") if isinstance(actions, dict) else None
    if not isinstance(steps, list):
        return ()
    return tuple(one_line(str(s.get("name") or "")) if isinstance(s, dict) else "" for s in steps)


def _tail(step: StepResult, tails: TailReader | None) -> StepTail:
    keys = [a.evidence_key for a in step.attempts if a.evidence_key]
    if not keys:
        return StepTail(None, None, "no evidence was kept for this step")
    if tails is None:
        return StepTail(None, None, "output not read")
    try:
        stderr, stdout = tails(keys[-1])
    except ReportEvidenceError as exc:
        return StepTail(None, None, exc.message)
    return StepTail(stderr, stdout, "")


def _spans(view: InstanceView) -> list[Span]:
    short = view.short_id
    return [
        Span(
            node_id=run.node_id,
            group=run.group_number,
            status=str(run.status),
            start=run.received_time,
            end=run.last_update_time,
            title=(
                f"{run.node_id} (group {run.group_number}): {run.status}"
                f" {duration(seconds_between(run.received_time, run.last_update_time))}"
                f" from {rfc3339(run.received_time)}, instance {short}"
            ),
        )
        for run in view.runs
    ]


class ReportEvidenceError(CourierError):
    """The evidence of a failed step could not be read; the report says so instead of failing."""


def tail_reader(read: EvidenceReader) -> TailReader:
    """`read` turned into (stderr, stdout) tails of a key; errors become `ReportEvidenceError`."""

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
