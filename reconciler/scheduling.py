"""When a job runs: `immediate`, or RRULE occurrences minus exception windows (SPEC.md §5). Pure.

`applying` asks for a recurring job's `nextExecutionTime`, the daemon asks which occurrences came
due since the last one it scheduled, and `scheduler jobs estimate-run-times` lists the next N. The
clock is always passed in; every datetime in and out is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from dateutil.rrule import rrule

from reconciler.model.job import JobTemplate
from reconciler.model.rrule import parse_rrule

MAX_SKIPPED = 100_000
"""Excepted occurrences one query examines before it concludes the job never runs again."""

MAX_DUE_SCAN = 10_000
"""Occurrences one `due` call examines; beyond it `Due.resume_after` says where to go on."""


@dataclass(frozen=True, slots=True)
class ExceptionWindow:
    """The blackout [start, end) opened by occurrence `start` of exception rule `rule_index`."""

    rule_index: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Due:
    """Occurrences that came due, earliest first.

    `resume_after` is None when the whole interval was examined. Otherwise the scan stopped at the
    `MAX_DUE_SCAN` cap and more may be due: call `due(resume_after, now)` to continue.
    """

    times: tuple[datetime, ...]
    resume_after: datetime | None = None

    @property
    def truncated(self) -> bool:
        return self.resume_after is not None


@dataclass(frozen=True, slots=True)
class _Exception:
    rule: rrule
    duration: timedelta


@dataclass(frozen=True, slots=True)
class Schedule:
    """A job's schedule rule and exception windows, anchored in time.

    An occurrence inside an exception window is skipped, not deferred, and it still consumes the
    rule's COUNT: `FREQ=DAILY;COUNT=3` with the second day excepted runs twice. (Chef does not say,
    SPEC.md §8 q7; this way an exception never extends a job past its last planned run, as with
    UNTIL, and the times are dateutil's expansion of the rule as written.)
    """

    rule: rrule | None
    exceptions: tuple[_Exception, ...] = ()

    @classmethod
    def of(cls, job: JobTemplate, anchor: datetime) -> Schedule:
        """The schedule of a validated job; `anchor` (its creation time) stands in for DTSTART."""
        rules = ((e.rrule, e.duration) for e in job.exceptionRules)
        return cls.parse(job.scheduleRule, rules, anchor)

    @classmethod
    def parse(
        cls, schedule_rule: str, exception_rules: Iterable[tuple[str, int]], anchor: datetime
    ) -> Schedule:
        """Build from raw strings: `immediate` or an RRULE, and (rrule, minutes) pairs.

        Raises ValueError for a rule `parse_rrule` rejects, a negative duration or a naive anchor.
        """
        anchor = _utc(anchor, "anchor")
        exceptions = []
        for text, minutes in exception_rules:
            if minutes < 0:
                raise ValueError(f"exception duration {minutes} is negative")
            exceptions.append(
                _Exception(parse_rrule(text).expand(anchor), timedelta(minutes=minutes))
            )
        if schedule_rule.strip().lower() == "immediate":
            return cls(None, tuple(exceptions))
        return cls(parse_rrule(schedule_rule).expand(anchor), tuple(exceptions))

    @property
    def is_immediate(self) -> bool:
        return self.rule is None

    def window_at(self, moment: datetime) -> ExceptionWindow | None:
        """The exception window containing `moment`, if any (the first rule's, when several)."""
        moment = _utc(moment, "moment")
        for index, exception in enumerate(self.exceptions):
            # All windows of one rule are equally long, so only the latest start can still be open.
            start = exception.rule.before(moment, inc=True)
            if start is not None and moment < start + exception.duration:
                return ExceptionWindow(index, start, start + exception.duration)
        return None

    def next_after(self, after: datetime, *, inclusive: bool = False) -> datetime | None:
        """The first non-excepted occurrence after `after` (or at it, if `inclusive`).

        None when the job has no next time: it is immediate, its rule is exhausted (COUNT, UNTIL),
        or the next `MAX_SKIPPED` occurrences all fall in exception windows.
        """
        return next(self._runs(_utc(after, "after"), inclusive), None)

    def occurrences(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` non-excepted occurrences after `after` (fewer if the rule runs out)."""
        if count < 0:
            raise ValueError(f"count {count} is negative")
        runs = self._runs(_utc(after, "after"), inclusive=False)
        return list(islice(runs, count))

    def due(self, last_scheduled: datetime | None, now: datetime) -> Due:
        """Non-excepted occurrences in (last_scheduled, now]; from the rule's start when None.

        At most `MAX_DUE_SCAN` occurrences (excepted or not) are examined per call; see `Due`.
        """
        now = _utc(now, "now")
        if self.rule is None:
            return Due(())
        if last_scheduled is None:
            candidates: Iterator[datetime] = iter(self.rule)
        else:
            last = _utc(last_scheduled, "last_scheduled")
            candidates = fast_forward(self.rule, last).xafter(last, inc=False)
        windows = _WindowSweep(self.exceptions)
        times: list[datetime] = []
        for examined, t in enumerate(candidates, start=1):
            if t > now:
                break
            if not windows.covers(t):
                times.append(t)
            if examined == MAX_DUE_SCAN:
                return Due(tuple(times), resume_after=t)
        return Due(tuple(times))

    def _runs(self, after: datetime, inclusive: bool) -> Iterator[datetime]:
        if self.rule is None:
            return
        windows = _WindowSweep(self.exceptions)
        skipped = 0
        for t in fast_forward(self.rule, after).xafter(after, inc=inclusive):
            if not windows.covers(t):
                yield t
            else:
                skipped += 1
                if skipped >= MAX_SKIPPED:
                    return


class _WindowSweep:
    """Answers "is t in a window?" for increasing t, walking each exception rule only once.

    Asking `rrule.before` for every candidate would rescan each rule from its start every time;
    the sweep keeps, per rule, the latest start seen and a lazy iterator over the later ones.
    """

    def __init__(self, exceptions: tuple[_Exception, ...]) -> None:
        self._exceptions = [e for e in exceptions if e.duration > timedelta(0)]
        self._starts: list[Iterator[datetime] | None] = [None] * len(self._exceptions)
        self._latest: list[datetime | None] = [None] * len(self._exceptions)
        self._peek: list[datetime | None] = [None] * len(self._exceptions)

    def covers(self, t: datetime) -> bool:
        covered = False
        for i, exception in enumerate(self._exceptions):
            starts = self._starts[i]
            if starts is None:
                # A window can hold t only if it starts after t - duration; skip older ones.
                since = t - exception.duration
                starts = self._starts[i] = fast_forward(exception.rule, since).xafter(since)
                self._peek[i] = next(starts, None)
            peek = self._peek[i]
            while peek is not None and peek <= t:
                self._latest[i] = peek
                peek = self._peek[i] = next(starts, None)
            latest = self._latest[i]
            if latest is not None and t < latest + exception.duration:
                covered = True
        return covered


# dateutil's frequency constants (YEARLY=0 ... SECONDLY=6) -> the length of one period.
_PERIOD = {
    2: timedelta(weeks=1),
    3: timedelta(days=1),
    4: timedelta(hours=1),
    5: timedelta(minutes=1),
    6: timedelta(seconds=1),
}


def fast_forward(rule: rrule, to: datetime) -> rrule:
    """The same rule re-anchored shortly before `to`, so iterating does not start at DTSTART.

    dateutil always walks from DTSTART: a MINUTELY rule anchored a year ago walks half a million
    occurrences to find the next one. Moving DTSTART by whole periods (INTERVAL x FREQ) keeps
    every later occurrence: the lattice of candidates is unchanged, and the defaults dateutil
    takes from DTSTART (second, minute, hour, weekday) are too. Not done with COUNT (it counts
    from DTSTART) or for MONTHLY/YEARLY (few occurrences, and month lengths vary).
    """
    # dateutil keeps these only as private attributes; there is no public getter.
    freq, interval, count = rule._freq, rule._interval, rule._count  # type: ignore[attr-defined]
    start: datetime = rule._dtstart  # type: ignore[attr-defined]
    period = _PERIOD.get(freq)
    if period is None or count is not None or to <= start:
        return rule
    step = period * interval
    periods = (to - start) // step - 1  # one period of slack before `to`
    if periods <= 0:
        return rule
    return rule.replace(dtstart=start + step * periods)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone; pass an aware UTC datetime")
    return value.astimezone(UTC)
