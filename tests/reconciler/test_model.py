"""Pure model tests: validate_document, the legacy pre-pass, canonical form and spec_hash."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.model import canonical, execution_hash, spec_hash, validate_document
from reconciler.model.enums import ZERO_UUID
from tests.helpers import (
    deep_copy_with,
    del_path,
    minimal_job,
    rich_job,
    set_path,
    split_path,
)

OTHER_UUID = "5e9f6b7e-1c52-4b8f-9f0a-0c3a4d9e2b11"


def ok(doc: Any) -> dict[str, Any]:
    """Validate `doc`, insist it is valid, and return its canonical form."""
    validated = validate_document(doc)
    errors = [(f.loc, f.message) for f in validated.findings if not f.warning]
    assert validated.job is not None, errors
    assert not errors
    return canonical(validated.job)


def errors_of(doc: Any) -> dict[tuple[str | int, ...], str]:
    """Validate `doc`, insist it is refused, and return its errors by location."""
    validated = validate_document(doc)
    assert validated.job is None, "expected the document to be refused"
    found = {f.loc: f.message for f in validated.findings if not f.warning}
    assert found
    return found


def warnings_of(doc: Any) -> dict[tuple[str | int, ...], str]:
    return {f.loc: f.message for f in validate_document(doc).findings if f.warning}


def loc(path: str) -> tuple[str | int, ...]:
    return tuple(split_path(path))


def hash_of(doc: Any) -> str:
    return spec_hash(ok(doc))


# --- canonical defaults -----------------------------------------------------------------------


def test_canonical_fills_defaults_as_chef_echoes_them() -> None:
    doc = minimal_job()
    del doc["actions"]["steps"][0]["interpreter"]["skill"]["maxVersion"]
    spec = ok(doc)
    group = spec["target"]["groups"][0]
    step = spec["actions"]["steps"][0]
    assert spec["description"] == ""
    assert spec["exceptionRules"] == []
    assert group["filterId"] == ZERO_UUID == "00000000-0000-0000-0000-000000000000"
    assert group["listId"] == ZERO_UUID
    assert group["filter"] is None
    assert group["earlyTermination"] is False
    assert group["successCriteria"] == []
    assert step["description"] == ""
    assert step["limits"] == {"cores": 0, "cpu": 1, "timeoutSeconds": 0}
    assert step["interpreter"]["skill"] == {"minVersion": "1.0.0", "maxVersion": ""}
    assert step["inputs"] == {}
    assert step["expectedInputs"] == {}
    assert step["outputFieldRules"] == {}
    assert step["conditions"] == []
    assert step["retryCount"] == 0
    assert step["failureBehavior"]["retryBackoffStrategy"]["delaySeconds"] == 0
    assert step["failureBehavior"]["retryBackoffStrategy"]["arguments"] == []
    assert spec["actions"]["accessMode"] == "agent"


def test_missing_max_version_is_a_warning_not_an_error() -> None:
    doc = minimal_job()
    del doc["actions"]["steps"][0]["interpreter"]["skill"]["maxVersion"]
    warnings = warnings_of(doc)
    assert "mandatory" in warnings[loc("actions.steps[0].interpreter.skill.maxVersion")]


def test_explicit_defaults_hash_like_omitted_ones() -> None:
    explicit = deep_copy_with(
        minimal_job(),
        [
            ("description", ""),
            ("exceptionRules", []),
            ("target.groups[0].earlyTermination", False),
            ("target.groups[0].successCriteria", []),
            ("target.groups[0].filter", None),
            ("target.groups[0].filterId", ZERO_UUID),
            ("target.groups[0].listId", ZERO_UUID),
            ("actions.accessMode", "agent"),
            ("actions.steps[0].description", ""),
            ("actions.steps[0].limits", {"cores": 0, "cpu": 1, "timeoutSeconds": 0}),
            ("actions.steps[0].inputs", {}),
            ("actions.steps[0].conditions", []),
            ("actions.steps[0].retryCount", 0),
        ],
    )
    assert hash_of(explicit) == hash_of(minimal_job())
    assert warnings_of(explicit) == {}


def test_canonical_is_a_fixed_point() -> None:
    spec = ok(rich_job())
    assert ok(spec) == spec
    assert spec_hash(ok(spec)) == spec_hash(spec)


def test_key_order_does_not_change_the_hash() -> None:
    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: reverse(node[k]) for k in reversed(list(node))}
        if isinstance(node, list):
            return [reverse(v) for v in node]
        return node

    assert hash_of(reverse(rich_job())) == hash_of(rich_job())


def test_description_change_is_not_an_execution_change() -> None:
    before = ok(rich_job())
    after = ok(deep_copy_with(rich_job(), [("description", "reworded")]))
    assert spec_hash(before) != spec_hash(after)
    assert execution_hash(before) == execution_hash(after)
    changed = ok(deep_copy_with(rich_job(), [("actions.steps[1].command.linux", ["true"])]))
    assert execution_hash(before) != execution_hash(changed)


@pytest.mark.parametrize("rule", ["immediate", "Immediate", " immediate ", "IMMEDIATE"])
def test_immediate_is_normalised(rule: str) -> None:
    spec = ok(deep_copy_with(minimal_job(), [("scheduleRule", rule)]))
    assert spec["scheduleRule"] == "immediate"
    assert spec_hash(spec) == hash_of(minimal_job())


# --- target selection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("filterId", OTHER_UUID),
        ("listId", OTHER_UUID),
        (
            "filter",
            {"constraints": {"attributes": [{"name": "os", "operator": "=", "value": "x"}]}},
        ),
    ],
)
def test_unselected_target_fields_are_dropped_with_a_warning(field: str, value: Any) -> None:
    doc = deep_copy_with(minimal_job(), [(f"target.groups[0].{field}", value)])
    warnings = warnings_of(doc)
    assert "ignored because nodeListType is 'nodes'" in warnings[loc(f"target.groups[0].{field}")]
    assert hash_of(doc) == hash_of(minimal_job())


def test_chef_echo_of_unselected_fields_is_silent() -> None:
    doc = deep_copy_with(
        minimal_job(),
        [
            ("target.groups[0].filter", None),
            ("target.groups[0].filterId", ZERO_UUID),
            ("target.groups[0].listId", ZERO_UUID),
        ],
    )
    assert warnings_of(doc) == {}
    assert hash_of(doc) == hash_of(minimal_job())


SELECTED = {
    "nodes": ("nodeIdentifiers", ["n1"]),
    "filter": ("filter", {"constraints": {"skills": [{"name": "courier-runner"}]}}),
    "savedFilter": ("filterId", OTHER_UUID),
    "savedList": ("listId", OTHER_UUID),
}


def _group_for(kind: str) -> dict[str, Any]:
    doc = minimal_job()
    group = doc["target"]["groups"][0]
    del group["nodeIdentifiers"]
    group["nodeListType"] = kind
    return doc


@pytest.mark.parametrize("kind", sorted(SELECTED))
def test_selected_target_field_is_accepted(kind: str) -> None:
    field, value = SELECTED[kind]
    doc = _group_for(kind)
    doc["target"]["groups"][0][field] = value
    selected = ok(doc)["target"]["groups"][0][field]
    if kind == "filter":
        assert selected["constraints"]["skills"] == [{"name": "courier-runner", "version": []}]
    else:
        assert selected == value


@pytest.mark.parametrize(
    ("kind", "empty"),
    [
        ("nodes", "missing"),
        ("nodes", []),
        ("nodes", None),
        ("filter", "missing"),
        ("filter", None),
        ("savedFilter", "missing"),
        ("savedFilter", ""),
        ("savedFilter", ZERO_UUID),
        ("savedList", "missing"),
        ("savedList", ""),
        ("savedList", ZERO_UUID),
    ],
)
def test_selected_target_field_must_be_present_and_not_empty(kind: str, empty: Any) -> None:
    field = SELECTED[kind][0]
    doc = _group_for(kind)
    if empty != "missing":
        doc["target"]["groups"][0][field] = empty
    errors = errors_of(doc)
    assert loc(f"target.groups[0].{field}") in errors, errors


@pytest.mark.parametrize("kind", sorted(SELECTED))
def test_selected_target_field_message_names_the_node_list_type(kind: str) -> None:
    field = SELECTED[kind][0]
    message = errors_of(_group_for(kind))[loc(f"target.groups[0].{field}")]
    assert f"nodeListType is {kind!r}" in message


def test_empty_filter_is_refused() -> None:
    doc = _group_for("filter")
    doc["target"]["groups"][0]["filter"] = {"constraints": {}}
    assert loc("target.groups[0].filter") in errors_of(doc)


@pytest.mark.parametrize("namespace", ["agent", ["agent"]])
def test_attribute_namespace_is_a_string_or_a_list(namespace: Any) -> None:
    doc = deep_copy_with(
        rich_job(), [("target.groups[1].filter.constraints.attributes[0].namespace", namespace)]
    )
    assert hash_of(doc) == hash_of(rich_job())


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "amount", "valid"),
    [
        ("target.groups[0].batchSize", {"type": "number", "value": 1}, True),
        ("target.groups[0].batchSize", {"type": "number", "value": 500}, True),
        ("target.groups[0].batchSize", {"type": "percent", "value": 1}, True),
        ("target.groups[0].batchSize", {"type": "percent", "value": 100}, True),
        ("target.groups[0].batchSize", {"type": "number", "value": 0}, False),
        ("target.groups[0].batchSize", {"type": "percent", "value": 0}, False),
        ("target.groups[0].batchSize", {"type": "percent", "value": 101}, False),
        ("target.groups[0].batchSize", {"type": "number", "value": -1}, False),
        ("target.groups[0].batchSize", {}, False),
        ("target.groups[0].successCriteria[0].numRuns", {"type": "percent", "value": 100}, True),
        ("target.groups[0].successCriteria[0].numRuns", {"type": "number", "value": 3}, True),
        ("target.groups[0].successCriteria[0].numRuns", {"type": "percent", "value": 150}, False),
        ("target.groups[0].successCriteria[0].numRuns", {"type": "number", "value": -2}, False),
    ],
)
def test_amounts(path: str, amount: dict[str, Any], valid: bool) -> None:
    doc = rich_job()
    set_path(doc, path, amount)
    if valid:
        ok(doc)
    else:
        errors = errors_of(doc)
        assert any(e[: len(loc(path))] == loc(path) for e in errors), errors


@pytest.mark.parametrize("timeout", [0, -5, "five minutes", 1.5])
def test_group_timeout_must_be_a_positive_integer(timeout: Any) -> None:
    doc = deep_copy_with(minimal_job(), [("target.groups[0].timeoutSeconds", timeout)])
    assert loc("target.groups[0].timeoutSeconds") in errors_of(doc)


def test_groups_and_steps_must_not_be_empty() -> None:
    assert loc("target.groups") in errors_of(deep_copy_with(minimal_job(), [("target.groups", [])]))
    assert loc("actions.steps") in errors_of(deep_copy_with(minimal_job(), [("actions.steps", [])]))


# --- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "RRULE:FREQ=DAILY;INTERVAL=2",
        "RRULE:FREQ=MINUTELY;COUNT=2;WKST=MO",
        "RRULE:FREQ=MINUTELY;COUNT=10",
        "RRULE:FREQ=WEEKLY;INTERVAL=1",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR",
        "RRULE:DTSTART=20230620;FREQ=DAILY",
        "RRULE:DTSTART=20230620T010000Z;FREQ=DAILY",
        "RRULE:DTSTART=20230620T010000;FREQ=DAILY;COUNT=1",
        "RRULE:FREQ=DAILY;DTSTART=20230620T010000Z;INTERVAL=3",
    ],
)
def test_rrules_are_accepted(rule: str) -> None:
    spec = ok(deep_copy_with(minimal_job(), [("scheduleRule", rule)]))
    assert spec["scheduleRule"] == rule
    rules = [{"rrule": rule, "duration": 30}]
    ok(deep_copy_with(minimal_job(), [("exceptionRules", rules)]))


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "daily",
        "FREQ=DAILY;INTERVAL=1",
        "0 1 * * *",
        "RRULE:",
        "RRULE:INTERVAL=2",
        "RRULE:FREQ=SOMETIMES",
        "RRULE:FREQ=DAILY;INTERVAL=banana",
        "RRULE:FREQ=DAILY;BYDAY=XX",
        "RRULE:DTSTART=tomorrow;FREQ=DAILY",
        "RRULE:FREQ=DAILY;garbage",
    ],
)
def test_bad_rrules_are_refused(rule: str) -> None:
    errors = errors_of(deep_copy_with(minimal_job(), [("scheduleRule", rule)]))
    assert loc("scheduleRule") in errors
    rules = [{"rrule": rule, "duration": 30}]
    errors = errors_of(deep_copy_with(minimal_job(), [("exceptionRules", rules)]))
    assert loc("exceptionRules[0].rrule") in errors


def test_exception_rule_needs_a_duration() -> None:
    rules = [{"rrule": "RRULE:FREQ=DAILY"}]
    assert loc("exceptionRules[0].duration") in errors_of(
        deep_copy_with(minimal_job(), [("exceptionRules", rules)])
    )


# --- enums: every value of every enum field (SPEC.md §1), and a wrong one -------------------


def enum_base() -> dict[str, Any]:
    """rich_job with every enum-bearing field present, and every target selector filled."""
    doc = rich_job()
    group = doc["target"]["groups"][1]
    group["nodeIdentifiers"] = ["n1"]
    group["filterId"] = OTHER_UUID
    group["listId"] = OTHER_UUID
    group["filter"]["constraints"]["enrollmentLevel"] = {"operator": "=", "value": ["enrolled"]}
    group["filter"]["constraints"]["healthStatus"] = {"operator": "=", "value": ["healthy"]}
    # valid both as a regex and as a JSON path, so every extract method accepts it
    doc["actions"]["steps"][0]["outputFieldRules"]["USAGE"]["expression"] = "$.usage"
    return doc


ATTRIBUTE_OPERATORS = ["=", "!=", "MATCHES", "CONTAINS"]
ENUM_FIELDS: dict[str, tuple[list[str], str]] = {
    # path: (values SPEC.md lists, a wrong value)
    "target.executionType": (["sequential", "parallel"], "serial"),
    "target.groups[1].distributionMethod": (["rolling", "batching"], "all-at-once"),
    "target.groups[1].batchSize.type": (["number", "percent"], "nodes"),
    "target.groups[1].successCriteria[0].status": (["success", "failure"], "timeout"),
    "target.groups[1].successCriteria[0].numRuns.type": (["number", "percent"], "ratio"),
    "target.groups[1].nodeListType": (["nodes", "filter", "savedFilter", "savedList"], "list"),
    "target.groups[1].filter.constraints.attributes[0].operator": (ATTRIBUTE_OPERATORS, "=="),
    "target.groups[1].filter.constraints.enrollmentLevel.operator": (ATTRIBUTE_OPERATORS, "LIKE"),
    "target.groups[1].filter.constraints.healthStatus.operator": (ATTRIBUTE_OPERATORS, "~"),
    "actions.accessMode": (["agent"], "ssh"),
    "actions.steps[0].failureBehavior.action": (["retryThenFail", "retryThenIgnore"], "retry"),
    "actions.steps[0].failureBehavior.retryBackoffStrategy.type": (
        ["none", "linear", "exponential", "polynomial"],
        "fibonacci",
    ),
    "actions.steps[1].conditions[0].operator": (
        ["eq", "gt", "gte", "lt", "lte", "matches", "startsWith", "endsWith", "contains"],
        "equals",
    ),
    "actions.steps[0].outputFieldRules.USAGE.sourceType": (
        ["artifact", "exitCode", "file", "output"],
        "stderr",
    ),
    "actions.steps[0].outputFieldRules.USAGE.extractMethod": (
        ["regex", "regEx", "jsonPath", "content"],
        "xpath",
    ),
}


def test_enum_base_is_valid() -> None:
    ok(enum_base())


@pytest.mark.parametrize(
    ("path", "value"),
    [(path, value) for path, (values, _) in ENUM_FIELDS.items() for value in values],
)
def test_every_enum_value_is_accepted(path: str, value: str) -> None:
    doc = enum_base()
    set_path(doc, path, value)
    spec = ok(doc)
    parts = split_path(path)
    node: Any = spec
    for part in parts:
        node = node[part]
    assert node.lower() == value.lower()


@pytest.mark.parametrize("path", sorted(ENUM_FIELDS))
@pytest.mark.parametrize("wrong", ["wrong", ""])
def test_a_wrong_enum_value_is_refused(path: str, wrong: str) -> None:
    value = ENUM_FIELDS[path][1] if wrong == "wrong" else ""
    doc = enum_base()
    set_path(doc, path, value)
    errors = errors_of(doc)
    assert loc(path) in errors, errors
    if value:
        assert repr(value) in errors[loc(path)]


@pytest.mark.parametrize("spelling", ["regEx", "REGEX", "Regex", "regex"])
def test_regex_extract_method_is_case_insensitive(spelling: str) -> None:
    doc = deep_copy_with(
        rich_job(), [("actions.steps[0].outputFieldRules.USAGE.extractMethod", spelling)]
    )
    spec = ok(doc)
    assert spec["actions"]["steps"][0]["outputFieldRules"]["USAGE"]["extractMethod"] == "regex"
    assert spec_hash(spec) == hash_of(rich_job())


# --- regexes, versions, commands ---------------------------------------------------------------


def test_matches_filter_regex_must_compile() -> None:
    path = "target.groups[1].filter.constraints.attributes[1]"
    doc = deep_copy_with(rich_job(), [(f"{path}.value", ["^(10\\."])])
    errors = errors_of(doc)
    assert any(e[: len(loc(path))] == loc(path) for e in errors), errors
    assert "regular expression" in " ".join(errors.values())


def test_non_regex_operators_take_any_value() -> None:
    path = "target.groups[1].filter.constraints.attributes[1]"
    ok(deep_copy_with(rich_job(), [(f"{path}.operator", "CONTAINS"), (f"{path}.value", ["(("])]))
    cond = "actions.steps[1].conditions[0]"
    ok(deep_copy_with(rich_job(), [(f"{cond}.operator", "eq"), (f"{cond}.value", "((")]))


def test_output_rule_regex_must_compile() -> None:
    path = "actions.steps[0].outputFieldRules.USAGE"
    errors = errors_of(deep_copy_with(rich_job(), [(f"{path}.expression", "([0-9]+%")]))
    assert any(e[: len(loc(path))] == loc(path) for e in errors), errors


def test_output_rule_json_path_starts_with_dollar() -> None:
    path = "actions.steps[0].outputFieldRules.USAGE"
    ok(
        deep_copy_with(
            rich_job(), [(f"{path}.extractMethod", "jsonPath"), (f"{path}.expression", "$.a")]
        )
    )
    errors_of(
        deep_copy_with(
            rich_job(), [(f"{path}.extractMethod", "jsonPath"), (f"{path}.expression", "a.b")]
        )
    )


def test_condition_matches_regex_must_compile() -> None:
    path = "actions.steps[1].conditions[0]"
    doc = deep_copy_with(rich_job(), [(f"{path}.operator", "matches"), (f"{path}.value", "[0-9")])
    errors = errors_of(doc)
    assert any(e[: len(loc(path))] == loc(path) for e in errors), errors


@pytest.mark.parametrize(
    "constraint", [">= 1.0.0", "<= 1.9.996", "= 0.1.0", "< 1.0.0", "> 2.1", "!= 1.2.3", "1.2.3"]
)
def test_skill_constraints_accepted(constraint: str) -> None:
    path = "target.groups[1].filter.constraints.skills[0].version"
    ok(deep_copy_with(rich_job(), [(path, [constraint])]))


@pytest.mark.parametrize("constraint", ["~> 1.0", "^1.2.0", ">= banana", "about 1.0", ">=", ""])
def test_bad_skill_constraints_refused(constraint: str) -> None:
    path = "target.groups[1].filter.constraints.skills[0].version"
    errors = errors_of(deep_copy_with(rich_job(), [(path, [constraint])]))
    assert any(e[: len(loc(path))] == loc(path) for e in errors), errors


@pytest.mark.parametrize("version", ["1.0.0", "1.9.99", "20.9.99", "0.1.3", "1.0.0-beta.1"])
def test_skill_versions_accepted(version: str) -> None:
    ok(deep_copy_with(minimal_job(), [("actions.steps[0].interpreter.skill.minVersion", version)]))


@pytest.mark.parametrize(
    "version",
    [
        "latest",
        "one.two.three",
        "v",
        "-1.0.0",
        "1.banana",
        "2.0.banana",
        "1..2",
        "1.0.0garbage",
        "1.2.3.4",
    ],
)
@pytest.mark.parametrize("field", ["minVersion", "maxVersion"])
def test_bad_skill_versions_refused(field: str, version: str) -> None:
    path = f"actions.steps[0].interpreter.skill.{field}"
    assert loc(path) in errors_of(deep_copy_with(minimal_job(), [(path, version)]))


@pytest.mark.parametrize(
    "command",
    [
        {"linux": ["df -h"], "windows": ["Get-PSDrive"], "darwin": ["df -h"]},
        {"windows": ["dir"]},
        {"exec": "machine_reboot", "args": {"time": "1"}},
        {"exec": "scan", "args": {"path": "https://example.invalid/profile.tar.gz"}},
        {"exec": "run"},
    ],
)
def test_commands_accepted(command: dict[str, Any]) -> None:
    ok(deep_copy_with(minimal_job(), [("actions.steps[0].command", command)]))


@pytest.mark.parametrize(
    "command",
    [
        {},
        {"linux": []},
        {"linux": None},
        {"exec": ""},
        {"args": {"a": 1}},
        "df -h",
        42,
        {"bash": ["x"]},
    ],
)
def test_bad_commands_refused(command: Any) -> None:
    errors = errors_of(deep_copy_with(minimal_job(), [("actions.steps[0].command", command)]))
    path = loc("actions.steps[0].command")
    assert any(e[: len(path)] == path for e in errors), errors


# --- unknown and missing fields -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "typo", "suggestion"),
    [
        ("", "scheduelRule", "scheduleRule"),
        ("", "descripton", "description"),
        ("target.", "executionTyp", "executionType"),
        ("target.groups[0].", "timeoutSecond", "timeoutSeconds"),
        ("target.groups[0].", "nodeIdentifier", "nodeIdentifiers"),
        ("actions.steps[0].", "retryCont", "retryCount"),
        ("actions.steps[0].", "OutputFieldRules", "outputFieldRules"),
        ("actions.steps[0].interpreter.skill.", "minversion", "minVersion"),
        ("actions.steps[0].limits.", "timeoutSecond", "timeoutSeconds"),
    ],
)
def test_unknown_field_suggests_the_close_one(parent: str, typo: str, suggestion: str) -> None:
    doc = minimal_job()
    doc["actions"]["steps"][0]["limits"] = {}
    set_path(doc, parent + typo, 1)
    message = errors_of(doc)[loc(parent + typo)]
    assert "unknown field" in message
    assert f"did you mean {suggestion!r}" in message


def test_unknown_field_without_a_close_one_lists_the_known_ones() -> None:
    doc = deep_copy_with(minimal_job(), [("target.colour", "blue")])
    message = errors_of(doc)[loc("target.colour")]
    assert "unknown field" in message
    assert "executionType" in message
    assert "groups" in message


@pytest.mark.parametrize(
    "path",
    [
        "name",
        "scheduleRule",
        "target",
        "actions",
        "target.executionType",
        "target.groups[0].timeoutSeconds",
        "target.groups[0].batchSize",
        "target.groups[0].distributionMethod",
        "target.groups[0].nodeListType",
        "actions.steps[0].name",
        "actions.steps[0].interpreter",
        "actions.steps[0].interpreter.name",
        "actions.steps[0].command",
    ],
)
def test_missing_required_field(path: str) -> None:
    doc = minimal_job()
    del_path(doc, path)
    errors = errors_of(doc)
    assert errors.get(loc(path)) == "required field is missing", errors


def test_all_problems_are_reported_at_once() -> None:
    doc = deep_copy_with(
        minimal_job(),
        [
            ("scheduleRule", "sometimes"),
            ("target.executionType", "serial"),
            ("actions.steps[0].retryCont", 3),
        ],
    )
    errors = errors_of(doc)
    assert {
        loc("scheduleRule"),
        loc("target.executionType"),
        loc("actions.steps[0].retryCont"),
    } <= set(errors)


@pytest.mark.parametrize(
    ("doc", "words"),
    [(None, "empty file"), ([], "list"), ("name: x", "str"), (42, "int")],
)
def test_a_document_must_be_a_mapping(doc: Any, words: str) -> None:
    validated = validate_document(doc)
    assert validated.job is None
    assert len(validated.findings) == 1
    assert validated.findings[0].loc == ()
    assert words in validated.findings[0].message


def test_wrong_types_are_refused() -> None:
    doc = deep_copy_with(
        minimal_job(),
        [
            ("name", 42),
            ("target.groups[0].nodeIdentifiers", "local"),
            ("actions.steps[0].retryCount", "twice"),
            ("actions.steps[0].limits", {"cpu": "lots"}),
        ],
    )
    errors = errors_of(doc)
    for path in ["name", "target.groups[0].nodeIdentifiers", "actions.steps[0].retryCount"]:
        assert loc(path) in errors, errors
    assert loc("actions.steps[0].limits.cpu") in errors


def test_negative_retry_count_is_refused() -> None:
    path = "actions.steps[0].retryCount"
    assert loc(path) in errors_of(deep_copy_with(minimal_job(), [(path, -1)]))


# --- legacy forms ---------------------------------------------------------------------------


def modern_step_job() -> dict[str, Any]:
    return deep_copy_with(
        minimal_job(),
        [
            (
                "actions.steps[0].failureBehavior",
                {
                    "action": "retryThenIgnore",
                    "retryBackoffStrategy": {"type": "linear", "delaySeconds": 5, "arguments": []},
                },
            ),
            ("actions.steps[0].limits", {"timeoutSeconds": 120}),
            ("actions.steps[0].command", {"linux": ["df -h", "free -m"]}),
        ],
    )


def legacy_step_job() -> dict[str, Any]:
    return deep_copy_with(
        minimal_job(),
        [
            (
                "actions.steps[0].failureBehavior",
                {
                    "action": "retryThenIgnore",
                    "retryBackoffStrategy": {"name": "linear", "delaySeconds": 5, "arguments": []},
                },
            ),
            ("actions.steps[0].limits", {"time": 120}),
            ("actions.steps[0].command", ["df -h", "free -m"]),
        ],
    )


def test_legacy_forms_hash_like_the_modern_form() -> None:
    assert hash_of(legacy_step_job()) == hash_of(modern_step_job())


@pytest.mark.parametrize(
    ("path", "legacy", "modern"),
    [
        (
            "actions.steps[0].failureBehavior",
            {"retryBackoffStrategy": {"name": "exponential", "delaySeconds": 2}},
            {"retryBackoffStrategy": {"type": "exponential", "delaySeconds": 2}},
        ),
        ("actions.steps[0].limits", {"time": 30, "cpu": 1}, {"timeoutSeconds": 30, "cpu": 1}),
        ("actions.steps[0].command", ["sleep 10"], {"linux": ["sleep 10"]}),
    ],
)
def test_each_legacy_form_alone(path: str, legacy: Any, modern: Any) -> None:
    assert hash_of(deep_copy_with(minimal_job(), [(path, legacy)])) == hash_of(
        deep_copy_with(minimal_job(), [(path, modern)])
    )


def test_legacy_command_list_warns() -> None:
    warnings = warnings_of(deep_copy_with(minimal_job(), [("actions.steps[0].command", ["ls"])]))
    assert loc("actions.steps[0].command") in warnings


def test_beta_top_level_fields_are_read_with_warnings() -> None:
    beta = minimal_job()
    del beta["scheduleRule"]
    beta["immediate"] = True
    beta["timeoutSeconds"] = 300
    beta["actions"]["steps"][0]["stepNumber"] = 1
    interpreter = beta["actions"]["steps"][0]["interpreter"]
    del interpreter["skill"]
    interpreter["min_version"] = "1.0.0"
    interpreter["max_version"] = "2.0.0"
    warnings = warnings_of(beta)
    assert {loc("immediate"), loc("timeoutSeconds"), loc("actions.steps[0].interpreter")} <= set(
        warnings
    )
    assert hash_of(beta) == hash_of(minimal_job())


def test_beta_misspelt_schedule_rule() -> None:
    beta = minimal_job()
    beta["schduleRule"] = beta.pop("scheduleRule")
    assert loc("schduleRule") in warnings_of(beta)
    assert hash_of(beta) == hash_of(minimal_job())


def test_malformed_output_rules_of_chef_job_reboot_are_a_warning() -> None:
    doc = deep_copy_with(
        minimal_job(), [("actions.steps[0].outputFieldRules", {"required": False})]
    )
    warnings = warnings_of(doc)
    assert (
        "not an output rule object" in warnings[loc("actions.steps[0].outputFieldRules.required")]
    )
    assert hash_of(doc) == hash_of(minimal_job())


def test_validation_does_not_change_its_input() -> None:
    doc = legacy_step_job()
    before = copy.deepcopy(doc)
    ok(doc)
    assert doc == before
