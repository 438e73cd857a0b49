from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.executing.outputs import Missing, Sources, extract, json_path
from reconciler.model.enums import RunStatus, StepStatus
from reconciler.model.job import OutputFieldRule
from tests.reconciler.executing.support import Runner, step

DOC = '{"config": {"version": "1.2.3", "ports": [80, 443], "odd key": true}}'

# Every source produces DOC (the exit code produces 3, which is JSON too).
PRODUCE = [
    f"printf '%s' '{DOC}'",
    f"printf '%s' '{DOC}' >&2",
    f"printf '%s' '{DOC}' > out.json",
    f"printf '%s' '{DOC}' > \"$COURIER_EVIDENCE_DIR/config\"",
    "exit 3",
]
SOURCES = {
    "stdout": {"sourceType": "output", "source": "stdout"},
    "stderr": {"sourceType": "output", "source": "stderr"},
    "file": {"sourceType": "file", "source": "out.json"},
    "artifact": {"sourceType": "artifact", "source": "config"},
}
METHODS = {
    "content": ({"extractMethod": "content"}, DOC),
    "regex group": ({"extractMethod": "regex", "expression": r'"version": "([\d.]+)"'}, "1.2.3"),
    "regex match": ({"extractMethod": "regex", "expression": r"\d+\.\d+\.\d+"}, "1.2.3"),
    "jsonPath str": ({"extractMethod": "jsonPath", "expression": "$.config.version"}, "1.2.3"),
    "jsonPath item": ({"extractMethod": "jsonPath", "expression": "$.config.ports[-1]"}, "443"),
    "jsonPath list": ({"extractMethod": "jsonPath", "expression": "$['config'].ports"}, "[80,443]"),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("source", SOURCES)
def test_each_source_with_each_method(runner: Runner, source: str, method: str) -> None:
    rule, expected = METHODS[method]
    producer = step(*PRODUCE[:4], outputFieldRules={"V": {**SOURCES[source], **rule}})
    consumer = step("printf '%s' {{.V}}")
    outcome = runner([producer, consumer])
    assert outcome.status is RunStatus.SUCCESS, outcome.reason
    assert json.loads(outcome.steps[0].outputs) == {"V": expected}
    assert runner.member(2, 1, "stdout.txt") == expected
    assert json.loads(runner.member(1, 1, "outputs.json")) == {"V": expected}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"extractMethod": "content"}, "3"),
        ({"extractMethod": "regex", "expression": r"\d"}, "3"),
        ({"extractMethod": "jsonPath", "expression": "$"}, "3"),
    ],
)
def test_the_exit_code_of_an_ignored_step_joins_the_context(
    runner: Runner, rule: dict[str, Any], expected: str
) -> None:
    failing = step(
        "exit 3",
        failureBehavior={"action": "retryThenIgnore"},
        outputFieldRules={"CODE": {"sourceType": "exitCode", **rule}},
    )
    after = step(
        "echo after",
        conditions=[{"inputName": "CODE", "operator": "eq", "value": expected}],
    )
    outcome = runner([failing, after])
    assert outcome.steps[0].status is StepStatus.IGNORED
    assert json.loads(outcome.steps[0].outputs) == {"CODE": expected}
    assert outcome.steps[1].status is StepStatus.SUCCESS
    assert outcome.status is RunStatus.SUCCESS


def test_a_required_output_that_cannot_be_extracted_fails_each_attempt(runner: Runner) -> None:
    producer = step(
        "echo no version here",
        retryCount=1,
        outputFieldRules={
            "V": {
                "sourceType": "output",
                "extractMethod": "regex",
                "expression": r"v(\d+)",
                "required": True,
            },
        },
    )
    outcome = runner([producer, step("echo never")])
    result = outcome.steps[0]
    assert result.status is StepStatus.FAILURE
    assert result.num_attempts == 2
    assert result.attempts[0].reason == "required output V: regex 'v(\\\\d+)' does not match"
    assert outcome.steps[1].status is StepStatus.CANCELED
    assert outcome.status is RunStatus.FAILURE


def test_an_optional_output_that_is_missing_is_noted_in_the_evidence(runner: Runner) -> None:
    producer = step(
        "true",
        outputFieldRules={
            "F": {"sourceType": "file", "source": "nope.txt", "extractMethod": "content"}
        },
    )
    outcome = runner([producer])
    assert outcome.status is RunStatus.SUCCESS
    assert outcome.steps[0].outputs == "{}"
    notes = json.loads(runner.member(1, 1, "result.json"))["notes"]
    assert notes == ["output F: the file 'nope.txt' does not exist"]


def sources(tmp_path: Path) -> Sources:
    return Sources("out", "err", 0, tmp_path, tmp_path / "ev")


@pytest.mark.parametrize(
    ("source_type", "source"), [("file", "../secret.txt"), ("artifact", "../../etc/passwd")]
)
def test_files_outside_their_folder_are_not_read(
    tmp_path: Path, source_type: str, source: str
) -> None:
    (tmp_path / "ev").mkdir()
    (tmp_path.parent / "secret.txt").write_text("x")
    rule = OutputFieldRule.model_validate(
        {"sourceType": source_type, "source": source, "extractMethod": "content", "required": True}
    )
    done = extract({"S": rule}, sources(tmp_path))
    assert done.values == {}
    assert "is outside" in done.problems[0]


def test_an_unknown_output_stream_is_a_problem(tmp_path: Path) -> None:
    rule = OutputFieldRule.model_validate(
        {"sourceType": "output", "source": "stdlog", "extractMethod": "content", "required": True}
    )
    done = extract({"S": rule}, sources(tmp_path))
    assert done.problems == ["required output S: source 'stdlog' is neither stdout nor stderr"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$", {"a": {"b": [1, {"c": "d"}]}, "k.y": 2}),
        ("$.a.b[0]", 1),
        ("$.a.b[1].c", "d"),
        ("$['a'][\"b\"][-1]['c']", "d"),
        ("$['k.y']", 2),
    ],
)
def test_json_path_subset(expression: str, expected: Any) -> None:
    assert json_path({"a": {"b": [1, {"c": "d"}]}, "k.y": 2}, expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("$.a.x", "no key 'x'"),
        ("$.a.b[5]", r"no item \[5\]"),
        ("$.a[0]", r"no item \[0\]"),
        ("$..c", "does not support"),
        ("$.a.b[*]", "does not support"),
        ("$.a.b[?(@.c)]", "does not support"),
        ("a.b", "does not start with"),
    ],
)
def test_json_path_misses_and_unsupported_syntax(expression: str, message: str) -> None:
    with pytest.raises(Missing, match=message):
        json_path({"a": {"b": [1, {"c": "d"}]}}, expression)


def test_json_path_of_text_that_is_not_json(tmp_path: Path) -> None:
    rule = OutputFieldRule.model_validate(
        {"sourceType": "output", "extractMethod": "jsonPath", "expression": "$.a"}
    )
    done = extract({"J": rule}, sources(tmp_path))
    assert done.notes[0].startswith("output J: the stdout is not JSON")
