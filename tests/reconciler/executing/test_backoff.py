from __future__ import annotations

from typing import Any

import pytest

from reconciler.executing.backoff import delay
from reconciler.model.enums import RunStatus, StepStatus
from reconciler.model.job import BackoffStrategy
from tests.reconciler.executing.support import Runner, step


def strategy(kind: str, seconds: int, arguments: list[Any] | None = None) -> BackoffStrategy:
    return BackoffStrategy.model_validate(
        {"type": kind, "delaySeconds": seconds, "arguments": arguments or []}
    )


@pytest.mark.parametrize(
    ("kind", "arguments", "expected"),
    [
        ("none", [], [0, 0, 0, 0]),
        ("linear", [], [3, 6, 9, 12]),
        ("exponential", [], [3, 6, 12, 24]),
        ("polynomial", [], [3, 12, 27, 48]),  # p defaults to 2
        ("polynomial", [3], [3, 24, 81, 192]),
        ("polynomial", [1, 3, 5], [3, 6, 9, 12]),  # Chef's sample arguments: p = 1
        ("polynomial", [0.5], [3, 3 * 2**0.5, 3 * 3**0.5, 6]),
        ("polynomial", [{}], [3, 12, 27, 48]),  # not a number: the default
        ("polynomial", [True], [3, 12, 27, 48]),  # a bool is not a power
    ],
)
def test_delay_before_each_retry(kind: str, arguments: list[Any], expected: list[float]) -> None:
    got = [delay(strategy(kind, 3, arguments), k) for k in (1, 2, 3, 4)]
    assert got == pytest.approx(expected)


def test_a_zero_base_delay_never_waits() -> None:
    assert [delay(strategy("exponential", 0), k) for k in (1, 5)] == [0, 0]


def test_retries_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        delay(strategy("linear", 1), 0)


@pytest.mark.parametrize(
    ("kind", "arguments", "slept"),
    [
        ("none", [], []),
        ("linear", [], [2, 4, 6]),
        ("exponential", [], [2, 4, 8]),
        ("polynomial", [], [2, 8, 18]),
        ("polynomial", [3], [2, 16, 54]),
    ],
)
def test_the_runner_waits_the_backoff_between_attempts(
    runner: Runner, kind: str, arguments: list[Any], slept: list[float]
) -> None:
    failing = step(
        "echo attempt $COURIER_ATTEMPT >&2",
        "exit 1",
        retryCount=3,
        failureBehavior={
            "action": "retryThenFail",
            "retryBackoffStrategy": {"type": kind, "delaySeconds": 2, "arguments": arguments},
        },
    )
    outcome = runner([failing])
    assert runner.sleeps == pytest.approx(slept)
    assert outcome.status is RunStatus.FAILURE
    (result,) = outcome.steps
    assert result.status is StepStatus.FAILURE
    assert result.num_attempts == 4
    assert [a.attempt_no for a in result.attempts] == [1, 2, 3, 4]
    assert runner.member(1, 3, "stderr.txt") == "attempt 3\n"
