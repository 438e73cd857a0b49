from __future__ import annotations

import pytest

from reconciler.executing.conditions import holds, unmet
from reconciler.model.enums import RunStatus, StepStatus
from reconciler.model.job import Condition
from tests.reconciler.executing.support import Runner, step


def cond(operator: str, value: str, negate: bool = False, name: str = "X") -> Condition:
    return Condition(inputName=name, operator=operator, value=value, negate=negate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("actual", "operator", "value", "expected"),
    [
        ("false\n", "eq", "false\n", True),
        ("false\n", "eq", "false", False),
        ("5", "eq", "5.0", True),  # numbers compare as numbers
        ("10", "gt", "9", True),  # ... not as strings ("10" < "9")
        ("10\n", "gt", "9", True),  # stdout's newline does not make it a string
        ("9", "gt", "9", False),
        ("9", "gte", "9", True),
        ("8.5", "lt", "9", True),
        ("9", "lt", "9", False),
        ("9", "lte", "9", True),
        ("-1", "lt", "0", True),
        ("abc", "lt", "abd", True),  # strings compare as strings
        ("abc", "gt", "10", True),  # one side not a number: strings ("a" > "1")
        ("nan", "eq", "nan", True),  # not finite: compared as text
        ("version 1.4.2", "matches", r"1\.4\.\d", True),  # re.search, not a full match
        ("version 1.4.2", "matches", r"^1\.4", False),
        ("hello world", "startsWith", "hello", True),
        ("hello world", "startsWith", "world", False),
        ("hello world", "endsWith", "world", True),
        ("hello world", "endsWith", "hello", False),
        ("hello world", "contains", "o w", True),
        ("hello world", "contains", "xyz", False),
    ],
)
def test_each_operator(actual: str, operator: str, value: str, expected: bool) -> None:
    assert holds(cond(operator, value), actual) is expected
    assert holds(cond(operator, value, negate=True), actual) is not expected


def test_all_conditions_must_hold() -> None:
    both = [cond("gt", "1"), cond("lt", "5", name="Y")]
    assert unmet(both, {"X": "2", "Y": "4"}) is None
    reason = unmet(both, {"X": "2", "Y": "7"})
    assert reason == "skipped: condition Y lt '5' is false (Y is '7')"


def test_a_condition_on_a_missing_value_does_not_hold_even_negated() -> None:
    assert unmet([cond("eq", "x", negate=True)], {}) == (
        "skipped: X has no value in the job context"
    )


def test_a_false_condition_skips_the_step_and_the_run_goes_on(runner: Runner) -> None:
    probe = step(
        "echo false",
        outputFieldRules={
            "FOUND": {"sourceType": "output", "source": "stdout", "extractMethod": "content"}
        },
    )
    install = step(
        "touch installed",
        conditions=[{"inputName": "FOUND", "operator": "eq", "value": "true\n"}],
    )
    report = step(
        "printf 'found=%s' {{.FOUND}}",
        conditions=[{"inputName": "FOUND", "operator": "eq", "value": "true\n", "negate": True}],
    )
    outcome = runner([probe, install, report])
    assert outcome.status is RunStatus.SUCCESS
    skipped = outcome.steps[1]
    assert skipped.status is StepStatus.SKIPPED
    assert skipped.num_attempts == 0
    assert skipped.attempts == ()
    assert "FOUND eq 'true\\n' is false" in skipped.reason
    assert not (runner.workdir / "installed").exists()
    assert outcome.steps[2].status is StepStatus.SUCCESS
    assert runner.member(3, 1, "stdout.txt") == "found=false\n"


def test_conditions_see_expected_input_defaults(runner: Runner) -> None:
    guarded = step(
        "echo ran",
        expectedInputs={"MODE": {"default": "fast"}},
        conditions=[{"inputName": "MODE", "operator": "eq", "value": "fast"}],
    )
    assert runner([guarded]).steps[0].status is StepStatus.SUCCESS
