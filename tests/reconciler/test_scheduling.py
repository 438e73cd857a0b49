from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from typing import Any

import pytest

from reconciler.model.job import JobTemplate
from reconciler.scheduling import MAX_DUE_SCAN, Due, ExceptionWindow, Schedule

ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DAILY_AT_1 = "RRULE:DTSTART=20230620T010000Z;FREQ=DAILY"
SUNDAYS = "RRULE:DTSTART=20230625T000000Z;FREQ=WEEKLY;BYDAY=SU"  # 2023-06-25 is a Sunday


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(rule: str, *exceptions: tuple[str, int], anchor: datetime = ANCHOR) -> Schedule:
    return Schedule.parse(rule, exceptions, anchor)


@pytest.mark.parametrize(
    ("rule", "after", "inclusive", "expected"),
    [
        pytest.param(
            "RRULE:DTSTART=20230620;FREQ=DAILY",
            at(2023, 6, 1),
            False,
            at(2023, 6, 20),
            id="dtstart-in-rule-before-start",
        ),
        pytest.param(
            "RRULE:DTSTART=20230620;FREQ=DAILY",
            at(2023, 6, 20),
            False,
            at(2023, 6, 21),
            id="dtstart-in-rule-exclusive",
        ),
        pytest.param(
            "RRULE:DTSTART=20230620;FREQ=DAILY",
            at(2023, 6, 20),
            True,
            at(2023, 6, 20),
            id="dtstart-in-rule-inclusive",
        ),
        pytest.param(
            "RRULE:FREQ=DAILY",
            at(2024, 3, 5, 12),
            False,
            at(2024, 3, 6),
            id="anchor-without-dtstart",
        ),
        pytest.param(
            "RRULE:FREQ=MINUTELY;COUNT=2", ANCHOR, False, at(2024, 1, 1, 0, 1), id="count-second"
        ),
        pytest.param(
            "RRULE:FREQ=MINUTELY;COUNT=2", at(2024, 1, 1, 0, 1), False, None, id="count-exhausted"
        ),
        pytest.param(
            "RRULE:FREQ=HOURLY;INTERVAL=6",
            at(2024, 1, 1, 7),
            False,
            at(2024, 1, 1, 12),
            id="interval",
        ),
        pytest.param("RRULE:FREQ=WEEKLY;BYDAY=FR", ANCHOR, False, at(2024, 1, 5), id="byday"),
        pytest.param(
            "RRULE:FREQ=DAILY;UNTIL=20240103T000000Z",
            at(2024, 1, 2),
            False,
            at(2024, 1, 3),
            id="until-z-last",
        ),
        pytest.param(
            "RRULE:FREQ=DAILY;UNTIL=20240103T000000Z",
            at(2024, 1, 3),
            False,
            None,
            id="until-z-exhausted",
        ),
        pytest.param(
            "RRULE:FREQ=DAILY;UNTIL=20240103T000000",
            at(2024, 1, 2),
            False,
            at(2024, 1, 3),
            id="until-naive-last",
        ),
        pytest.param(
            "RRULE:FREQ=DAILY;UNTIL=20240103T000000",
            at(2024, 1, 3),
            False,
            None,
            id="until-naive-exhausted",
        ),
    ],
)
def test_next_after(rule: str, after: datetime, inclusive: bool, expected: datetime | None) -> None:
    assert schedule(rule).next_after(after, inclusive=inclusive) == expected


@pytest.mark.parametrize(
    ("rule", "after", "expected"),
    [
        pytest.param(
            "RRULE:FREQ=MINUTELY;COUNT=2",
            at(2023, 12, 31),
            [ANCHOR, at(2024, 1, 1, 0, 1)],
            id="count-runs-out",
        ),
        pytest.param(
            "RRULE:FREQ=WEEKLY;BYDAY=MO,FR",
            ANCHOR,
            [at(2024, 1, 5), at(2024, 1, 8), at(2024, 1, 12), at(2024, 1, 15)],
            id="byday-two-days",
        ),
        pytest.param(
            "RRULE:FREQ=DAILY;UNTIL=20240103T000000Z",
            at(2023, 12, 31),
            [at(2024, 1, 1), at(2024, 1, 2), at(2024, 1, 3)],
            id="until-z",
        ),
        pytest.param(
            "RRULE:FREQ=DAILY;UNTIL=20240103T000000",
            at(2023, 12, 31),
            [at(2024, 1, 1), at(2024, 1, 2), at(2024, 1, 3)],
            id="until-naive",
        ),
    ],
)
def test_occurrences_end_with_the_rule(
    rule: str, after: datetime, expected: list[datetime]
) -> None:
    assert schedule(rule).occurrences(after, 4) == expected


def test_estimate_next_five_run_times() -> None:
    assert schedule("RRULE:FREQ=MINUTELY;INTERVAL=15").occurrences(at(2024, 1, 1, 0, 7), 5) == [
        at(2024, 1, 1, 0, 15),
        at(2024, 1, 1, 0, 30),
        at(2024, 1, 1, 0, 45),
        at(2024, 1, 1, 1, 0),
        at(2024, 1, 1, 1, 15),
    ]


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        pytest.param(
            120,
            [
                at(2023, 6, 24, 1),
                at(2023, 6, 26, 1),
                at(2023, 6, 27, 1),
                at(2023, 7, 1, 1),
                at(2023, 7, 3, 1),
            ],
            id="sundays-skipped",
        ),
        # The window is [00:00, 01:00): the 01:00 run starts just as it closes.
        pytest.param(
            60,
            [
                at(2023, 6, 24, 1),
                at(2023, 6, 25, 1),
                at(2023, 6, 26, 1),
                at(2023, 6, 27, 1),
                at(2023, 7, 1, 1),
            ],
            id="window-end-is-open",
        ),
        pytest.param(
            0,
            [
                at(2023, 6, 24, 1),
                at(2023, 6, 25, 1),
                at(2023, 6, 26, 1),
                at(2023, 6, 27, 1),
                at(2023, 7, 1, 1),
            ],
            id="zero-duration",
        ),
    ],
)
def test_weekly_exception_skips_sunday_runs(duration: int, expected: list[datetime]) -> None:
    weekend = "RRULE:DTSTART=20230620T010000Z;FREQ=DAILY;BYDAY=MO,TU,SA,SU"
    assert schedule(weekend, (SUNDAYS, duration)).occurrences(at(2023, 6, 23), 5) == expected


def test_daily_job_with_sunday_exception_runs_every_other_day() -> None:
    runs = schedule(DAILY_AT_1, (SUNDAYS, 120)).occurrences(at(2023, 6, 23, 12), 8)
    assert runs == [at(2023, 6, d, 1) for d in (24, 26, 27, 28, 29, 30)] + [
        at(2023, 7, 1, 1),
        at(2023, 7, 3, 1),
    ]


def test_skipped_occurrences_still_consume_count() -> None:
    rule = "RRULE:FREQ=DAILY;COUNT=3"
    second_day = "RRULE:DTSTART=20240102T000000Z;FREQ=DAILY;COUNT=1"
    assert schedule(rule, (second_day, 60)).occurrences(at(2023, 12, 31), 5) == [
        at(2024, 1, 1),
        at(2024, 1, 3),
    ]


def test_overlapping_windows_of_a_rule_anchored_earlier() -> None:
    # Windows open at 00:00, 00:10, ..., 00:40 and last an hour: blackout until 01:40.
    exception = ("RRULE:FREQ=MINUTELY;INTERVAL=10;COUNT=5", 60)
    every_half_hour = schedule("RRULE:FREQ=MINUTELY;INTERVAL=30", exception)
    assert every_half_hour.occurrences(at(2023, 12, 31), 2) == [
        at(2024, 1, 1, 2, 0),
        at(2024, 1, 1, 2, 30),
    ]
    assert every_half_hour.next_after(at(2024, 1, 1, 1, 0)) == at(2024, 1, 1, 2, 0)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(
            at(2024, 3, 3, 1, 59),
            ExceptionWindow(0, at(2024, 3, 3), at(2024, 3, 3, 2)),
            id="inside",
        ),
        pytest.param(at(2024, 3, 3, 2), None, id="at-end"),
        pytest.param(at(2024, 3, 4, 1), None, id="monday"),
    ],
)
def test_window_at(moment: datetime, expected: ExceptionWindow | None) -> None:
    assert schedule(DAILY_AT_1, (SUNDAYS, 120)).window_at(moment) == expected


@pytest.mark.parametrize(
    "exception",
    [
        pytest.param(("RRULE:FREQ=DAILY", 24 * 60), id="back-to-back-windows"),
        pytest.param(("RRULE:FREQ=HOURLY", 60), id="one-window-per-run"),
    ],
)
def test_exception_covering_every_occurrence_terminates(exception: tuple[str, int]) -> None:
    # Gives up after MAX_SKIPPED excepted occurrences (~11 years of hourly runs) instead of looping.
    assert schedule("RRULE:FREQ=HOURLY", exception).next_after(ANCHOR) is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(
            at(2024, 1, 1, 0, 13, 30),
            [at(2024, 1, 1, 0, m) for m in (11, 12, 13)],
            id="three-missed",
        ),
        pytest.param(
            at(2024, 1, 1, 0, 13),
            [at(2024, 1, 1, 0, m) for m in (11, 12, 13)],
            id="now-is-inclusive",
        ),
        pytest.param(at(2024, 1, 1, 0, 10, 59), [], id="nothing-due"),
    ],
)
def test_due_minutely(now: datetime, expected: list[datetime]) -> None:
    due = schedule("RRULE:FREQ=MINUTELY").due(at(2024, 1, 1, 0, 10), now)
    assert due == Due(tuple(expected))
    assert not due.truncated


def test_due_skips_exception_windows() -> None:
    sample = schedule("RRULE:FREQ=MINUTELY;COUNT=10", ("RRULE:FREQ=MINUTELY;INTERVAL=3", 1))
    assert sample.due(None, at(2024, 1, 2)).times == tuple(
        at(2024, 1, 1, 0, m) for m in (1, 2, 4, 5, 7, 8)
    )


def test_due_is_capped_and_resumable() -> None:
    minutely = schedule("RRULE:FREQ=MINUTELY")
    now = ANCHOR + timedelta(minutes=MAX_DUE_SCAN + 500)
    first = minutely.due(ANCHOR, now)
    assert first.truncated
    assert len(first.times) == MAX_DUE_SCAN
    assert first.times[0] == at(2024, 1, 1, 0, 1)
    assert first.resume_after == first.times[-1] == ANCHOR + timedelta(minutes=MAX_DUE_SCAN)
    rest = minutely.due(first.resume_after, now)
    assert not rest.truncated
    assert len(rest.times) == 500
    assert rest.times[-1] == now


def test_immediate_has_no_times() -> None:
    immediate = schedule("Immediate", ("RRULE:FREQ=DAILY", 60))
    assert immediate.is_immediate
    assert immediate.next_after(ANCHOR, inclusive=True) is None
    assert immediate.occurrences(ANCHOR, 5) == []
    assert immediate.due(None, at(2030, 1, 1)) == Due(())
    assert not schedule("RRULE:FREQ=DAILY").is_immediate


def test_of_job_template_uses_creation_time_as_anchor() -> None:
    job = JobTemplate.model_validate(
        _job(
            "RRULE:FREQ=MINUTELY;COUNT=10",
            [{"rrule": "RRULE:FREQ=MINUTELY;INTERVAL=3", "duration": 1}],
        )
    )
    created = at(2024, 5, 1, 9, 30)
    assert Schedule.of(job, created).occurrences(created, 10) == [
        created + timedelta(minutes=m) for m in (1, 2, 4, 5, 7, 8)
    ]


def test_times_come_back_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    nxt = schedule("RRULE:FREQ=DAILY").next_after(datetime(2024, 1, 1, 1, tzinfo=plus_two))
    assert nxt == at(2024, 1, 1)
    assert nxt is not None
    assert nxt.utcoffset() == timedelta(0)


NAIVE = datetime(2024, 1, 1)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.next_after(NAIVE), id="next_after"),
        pytest.param(lambda s: s.occurrences(NAIVE, 1), id="occurrences"),
        pytest.param(lambda s: s.due(NAIVE, ANCHOR), id="due-last"),
        pytest.param(lambda s: s.due(None, NAIVE), id="due-now"),
        pytest.param(lambda s: s.window_at(NAIVE), id="window_at"),
        pytest.param(lambda s: Schedule.parse("RRULE:FREQ=DAILY", (), NAIVE), id="anchor"),
    ],
)
def test_naive_datetimes_are_refused(call: Any) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        call(schedule("RRULE:FREQ=DAILY"))


@pytest.mark.parametrize(
    ("rule", "exceptions", "message"),
    [
        pytest.param("daily", (), "neither 'immediate'", id="not-a-rule"),
        pytest.param("RRULE:FREQ=DAILY", (("RRULE:FREQ=DAILY", -1),), "negative", id="duration"),
    ],
)
def test_bad_rules_are_refused(
    rule: str, exceptions: tuple[tuple[str, int], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(rule, exceptions, ANCHOR)


def _job(schedule_rule: str, exception_rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "reoccurring",
        "scheduleRule": schedule_rule,
        "exceptionRules": exception_rules,
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 300,
                    "batchSize": {"type": "number", "value": 1},
                    "distributionMethod": "batching",
                    "nodeListType": "nodes",
                    "nodeIdentifiers": ["node-1"],
                }
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "sleep",
                    "interpreter": {"name": "chef-platform/shell-interpreter"},
                    "command": {"linux": ["sleep 1"]},
                }
            ]
        },
    }


FAST_FORWARD_RULES = [
    "RRULE:DTSTART=20261001T000000Z;FREQ=MINUTELY;INTERVAL=7",
    "RRULE:DTSTART=20261001T001732Z;FREQ=MINUTELY",
    "RRULE:DTSTART=20261001T000000Z;FREQ=HOURLY;INTERVAL=5;BYMINUTE=15,45",
    "RRULE:DTSTART=20260901T031500Z;FREQ=DAILY;INTERVAL=3",
    "RRULE:DTSTART=20260101T020000Z;FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
    "RRULE:DTSTART=20261001T000000Z;FREQ=SECONDLY;INTERVAL=97",
    "RRULE:DTSTART=20261001T000000Z;FREQ=MINUTELY;BYHOUR=3,4;UNTIL=20261120T000000Z",
]


@pytest.mark.parametrize("rule", FAST_FORWARD_RULES)
@pytest.mark.parametrize(
    "after",
    [datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC), datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC)],
)
def test_fast_forward_gives_what_walking_from_dtstart_gives(rule: str, after: datetime) -> None:
    from reconciler.model.rrule import parse_rrule
    from reconciler.scheduling import fast_forward

    plain = parse_rrule(rule).expand(datetime(2026, 1, 1, tzinfo=UTC))
    fast = fast_forward(plain, after)
    expected = list(islice(plain.xafter(after), 20))
    assert list(islice(fast.xafter(after), 20)) == expected
    assert list(islice(fast.xafter(after, inc=True), 5)) == list(
        islice(plain.xafter(after, inc=True), 5)
    )


def test_a_minutely_rule_anchored_years_ago_answers_without_walking_from_its_start() -> None:
    schedule = Schedule.parse(
        "RRULE:DTSTART=20000101T000000Z;FREQ=MINUTELY",
        [("RRULE:DTSTART=20000102T000000Z;FREQ=DAILY", 60)],
        datetime(2000, 1, 1, tzinfo=UTC),
    )
    at = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    # 00:30 falls in the daily 00:00-01:00 window: the next run is 01:00
    assert schedule.next_after(at) == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
