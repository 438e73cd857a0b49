"""The daemon's tick: instances of recurring jobs as their occurrences come due (DESIGN.md §5).

Between `scheduling` (which occurrences fall in an interval) and the state: a tick reads the
active recurring jobs, applies the missed-run policy, fixes each new instance's runs with
`applying.assignments` and has the store insert it under the unique (job, scheduled_for) key, so
two daemons or a restart never create one occurrence twice. The clock is passed in; only
`cli/` prints, through the `log` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from reconciler.applying import assignments
from reconciler.errors import CourierError, LockTimeout
from reconciler.model.enums import JobStatus
from reconciler.nodes.inventory import Inventory
from reconciler.ports import Assignment, Clock, StoredJob, StoredState
from reconciler.scheduling import MAX_DUE_SCAN, Schedule

Log = Callable[[str], None]
WRITE_BATCH = 500
"""Jobs written per transaction: keeps the apply lock short when thousands come due together."""


class MissedRuns(StrEnum):
    """What to do with occurrences that came due while no daemon was running."""

    CATCH_UP = "catch-up"  # one instance, for the latest of them
    SKIP = "skip"  # none; only an occurrence that is current (see `Policy.on_time`) runs


@dataclass(frozen=True, slots=True)
class Policy:
    missed: MissedRuns = MissedRuns.CATCH_UP
    on_time: timedelta = timedelta(seconds=10)
    """With `skip`: an occurrence at most this old at the tick is current, not missed."""
    scan_chunks: int = 10
    """`Schedule.due` calls (each examines up to `MAX_DUE_SCAN` occurrences) per job and tick;
    a longer backlog is scanned on across ticks, and each such tick says so in the log."""


@dataclass(frozen=True, slots=True)
class NewOccurrence:
    scheduled_for: datetime
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True, slots=True)
class Advance:
    """What a tick writes for one job: its next execution time and maybe one new instance.

    The store writes it only while the job is still active at `version`: an apply that changed
    or canceled the job in between wins, and the next tick looks at the job again.
    """

    job_id: str
    version: int
    next_execution_time: datetime | None
    occurrence: NewOccurrence | None = None


class SchedulerStore(Protocol):
    def read(self, *, with_specs: bool = True) -> StoredState: ...
    def specs(self, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...
    def last_scheduled(self, job_ids: Iterable[str]) -> dict[str, datetime]: ...
    # job id -> the latest scheduled_for among its instances (jobs without any are absent)
    def schedule_occurrences(
        self, advances: Sequence[Advance], at: datetime, *, lock_timeout: float, holder: str
    ) -> list[str | None]: ...

    # one transaction under the apply lock; per advance the new instance's id, or None when
    # nothing was created (no occurrence, the occurrence exists already, or the job changed)


@dataclass(frozen=True, slots=True)
class Created:
    job_name: str
    instance_id: str
    scheduled_for: datetime


@dataclass(frozen=True, slots=True)
class TickReport:
    created: tuple[Created, ...] = ()
    skipped: int = 0
    """Missed occurrences that will not run (the policy's choice, each one logged)."""
    deferred: int = 0
    """Jobs looked at again next tick: a backlog still being scanned, or the state was locked."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy applied to the occurrences due in one interval: which one runs, if any."""

    run: datetime | None
    skipped: int


def decide(due: int, latest: datetime | None, now: datetime, policy: Policy) -> Decision:
    """Of `due` occurrences, the latest at `latest`: which one gets an instance."""
    if due == 0 or latest is None:
        return Decision(None, 0)
    if policy.missed is MissedRuns.SKIP and now - latest > policy.on_time:
        return Decision(None, due)
    return Decision(latest, due - 1)


@dataclass(frozen=True, slots=True)
class _Planned:
    job: StoredJob
    advance: Advance
    decision: Decision


class _Later:
    """The job is looked at again next tick (a backlog still being scanned, nodes unresolved)."""


_LATER = _Later()


@dataclass(frozen=True, slots=True)
class _Scan:
    """Occurrences counted so far in (start, resume_after] of one job version."""

    start: datetime
    count: int
    latest: datetime | None
    resume_after: datetime | None  # None: the scan reached `now`


class Scheduler:
    """Creates the due instances of recurring jobs, one `tick()` at a time.

    The job's stored next execution time is the cursor: a job is looked at once it has come,
    and the occurrences due are those from the cursor (inclusive) to now. `apply` sets it to the
    first occurrence at or after the job's creation (or its execution-affecting update), each
    tick moves it past `now`, so occurrences are counted from the last tick that saw the job:
    after downtime, the missed ones. The job's latest instance bounds the interval too, so an
    occurrence that has an instance is never counted again.
    """

    def __init__(
        self,
        store: SchedulerStore,
        clock: Clock,
        inventory: Inventory | None,
        policy: Policy | None = None,
        *,
        log: Log | None = None,
        holder: str = "courier daemon",
        lock_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.inventory = inventory  # the CLI replaces it when nodes.yaml changes
        self.policy = policy or Policy()
        self.log: Log = log if log is not None else _quiet
        self.holder = holder
        self.lock_timeout = lock_timeout
        self._scans: dict[tuple[str, int], _Scan] = {}
        self._said: dict[tuple[str, int], str] = {}  # the last problem logged per job version

    def tick(self) -> TickReport:
        """Create the instances that are due now; raises StateError when the state is down."""
        now = self.clock.now()
        state = self.store.read(with_specs=False)
        live = {(j.id, j.version) for j in state.jobs.values()}
        for memo in (self._scans, self._said):
            for key in [k for k in memo if k not in live]:
                del memo[key]
        candidates = [job for job in state.jobs.values() if self._is_candidate(job, now)]
        if not candidates:
            return TickReport()
        ids = [job.id for job in candidates]
        specs = self.store.specs(ids)
        last = self.store.last_scheduled(ids)
        planned: list[_Planned] = []
        deferred = 0
        for job in sorted(candidates, key=lambda j: j.name):
            spec = specs.get(job.id)
            if spec is None:
                continue
            outcome = self._plan(job, spec, last.get(job.id), now)
            if outcome is _LATER:
                deferred += 1
            elif isinstance(outcome, _Planned):
                planned.append(outcome)
        report = self._write(planned, now)
        return TickReport(report.created, report.skipped, report.deferred + deferred)

    # -- one job ----------------------------------------------------------------------------

    def _is_candidate(self, job: StoredJob, now: datetime) -> bool:
        if job.status is not JobStatus.ACTIVE or job.next_execution_time is None:
            return False  # immediate, canceled, completed, or a rule that ran out
        return job.next_execution_time <= now

    def _plan(
        self, job: StoredJob, spec: dict[str, Any], last: datetime | None, now: datetime
    ) -> _Planned | _Later | None:
        """What to write for `job`: a plan, `_LATER` (look again next tick) or None (nothing)."""
        key = (job.id, job.version)
        try:
            rules = [(r["rrule"], int(r["duration"])) for r in spec.get("exceptionRules", [])]
            schedule = Schedule.parse(spec["scheduleRule"], rules, job.created_at)
        except (KeyError, TypeError, ValueError) as exc:
            self._say(key, f"{job.name}: cannot read its schedule ({exc}); not scheduling it")
            return None
        if schedule.is_immediate or job.next_execution_time is None:
            return None
        # Occurrences are whole seconds: just before the cursor, so that it counts itself.
        start = job.next_execution_time - timedelta(microseconds=1)
        if last is not None and last > start:
            start = last
        scan = self._scan(key, schedule, start, now)
        if scan.resume_after is not None:
            self.log(
                f"{job.name}: {scan.count} occurrences due so far, up to "
                f"{iso(scan.resume_after)}; more to scan (at most "
                f"{self.policy.scan_chunks * MAX_DUE_SCAN} per tick), continuing next tick"
            )
            return _LATER
        decision = decide(scan.count, scan.latest, now, self.policy)
        occurrence = None
        if decision.run is not None:
            try:
                runs = tuple(assignments(spec, self.inventory))
            except (CourierError, ValueError) as exc:
                message = getattr(exc, "message", str(exc))
                self._say(key, f"{job.name}: cannot resolve its nodes ({message}); trying again")
                return _LATER
            occurrence = NewOccurrence(decision.run, runs)
        upcoming = schedule.next_after(now)
        return _Planned(job, Advance(job.id, job.version, upcoming, occurrence), decision)

    def _scan(
        self, key: tuple[str, int], schedule: Schedule, start: datetime, now: datetime
    ) -> _Scan:
        """Count the occurrences due in (start, now], continuing a scan an earlier tick began."""
        count, latest, after = 0, None, start
        scan = self._scans.pop(key, None)
        # Go on only from where this very interval was left; if another scheduler moved the
        # cursor meanwhile, the interval is a new one.
        if scan is not None and scan.start == start and scan.resume_after is not None:
            count, latest, after = scan.count, scan.latest, scan.resume_after
        latest_time: datetime | None = latest
        for _ in range(max(1, self.policy.scan_chunks)):
            due = schedule.due(after, now)
            count += len(due.times)
            if due.times:
                latest_time = due.times[-1]
            if due.resume_after is None:
                return _Scan(start, count, latest_time, None)
            after = due.resume_after
        partial = _Scan(start, count, latest_time, after)
        self._scans[key] = partial
        return partial

    def _say(self, key: tuple[str, int], line: str) -> None:
        if self._said.get(key) != line:  # once per job version and problem, not every tick
            self._said[key] = line
            self.log(line)

    # -- writing ----------------------------------------------------------------------------

    def _write(self, planned: list[_Planned], now: datetime) -> TickReport:
        created: list[Created] = []
        skipped = 0
        for start in range(0, len(planned), WRITE_BATCH):
            batch = planned[start : start + WRITE_BATCH]
            try:
                ids = self.store.schedule_occurrences(
                    [p.advance for p in batch],
                    now,
                    lock_timeout=self.lock_timeout,
                    holder=self.holder,
                )
            except LockTimeout as exc:
                self.log(f"the state is locked ({exc.holder}); trying again next tick")
                return TickReport(tuple(created), skipped, len(planned) - start)
            for p, instance_id in zip(batch, ids, strict=True):
                skipped += self._report(p, instance_id)
                if instance_id is not None and p.advance.occurrence is not None:
                    when = p.advance.occurrence.scheduled_for
                    created.append(Created(p.job.name, instance_id, when))
                    self.log(f"{p.job.name}: instance {instance_id} for {iso(when)}")
        return TickReport(tuple(created), skipped)

    def _report(self, planned: _Planned, instance_id: str | None) -> int:
        """Log what the policy left out; returns how many occurrences will not run."""
        job, advance, decision = planned.job, planned.advance, planned.decision
        if instance_id is None and advance.occurrence is not None:
            return 0  # another scheduler created it (or an apply changed the job): its report
        if not decision.skipped:
            return 0
        n = decision.skipped
        if decision.run is not None and self.policy.missed is MissedRuns.CATCH_UP:
            self.log(
                f"{n + 1} missed occurrences of {job.name}; catching up with the latest "
                f"({iso(decision.run)}), skipping {n}"
            )
        elif decision.run is not None:
            self.log(
                f"{n} missed occurrence(s) of {job.name} skipped (missed-run policy: skip); "
                f"running the current one ({iso(decision.run)})"
            )
        else:
            upcoming = advance.next_execution_time
            self.log(
                f"{n} missed occurrence(s) of {job.name} skipped (missed-run policy: skip; "
                f"none within {self.policy.on_time.total_seconds():g}s of now); next: "
                f"{iso(upcoming) if upcoming else 'none'}"
            )
        return n


def _quiet(_line: str) -> None:
    pass


def iso(moment: datetime) -> str:
    """RFC 3339 UTC with a `Z`, to the second, as the logs and the Chef JSON shapes write it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
