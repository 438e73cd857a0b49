"""Rewrite legacy and lenient forms of a job document into the current form, with warnings. Pure.

Runs before pydantic sees the document, so the models only know the current schema while old Chef
files (1.0 server echoes, the 2024 beta samples, the malformed `job_reboot` sample) still load.
Each rewrite leaves a warning at the location of what it changed.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.enums import ZERO_UUID

Loc = tuple[str | int, ...]
Warnings = list[tuple[Loc, str]]

_TARGET_FIELD = {
    "nodes": "nodeIdentifiers",
    "filter": "filter",
    "savedFilter": "filterId",
    "savedList": "listId",
}
_EXTRACT_METHODS = {"regex": "regex", "jsonpath": "jsonPath", "content": "content"}


def upgrade(doc: Any) -> tuple[Any, Warnings]:
    """Return the document in the current schema and the warnings for what was rewritten."""
    warnings: Warnings = []
    if not isinstance(doc, dict):
        return doc, warnings
    doc = dict(doc)
    if "schduleRule" in doc:
        if "scheduleRule" not in doc:
            doc["scheduleRule"] = doc["schduleRule"]
        del doc["schduleRule"]
        warnings.append((("schduleRule",), "legacy misspelling; read as scheduleRule"))
    if "immediate" in doc:
        immediate = doc.pop("immediate")
        if immediate is True and "scheduleRule" not in doc:
            doc["scheduleRule"] = "immediate"
        warnings.append((("immediate",), "legacy beta field; use scheduleRule: immediate"))
    if "timeoutSeconds" in doc:
        doc.pop("timeoutSeconds")
        warnings.append(
            (("timeoutSeconds",), "legacy beta field ignored; set timeoutSeconds per target group")
        )
    rules = doc.get("exceptionRules")
    if isinstance(rules, list):
        doc["exceptionRules"] = [_exception_rule(r, i, warnings) for i, r in enumerate(rules)]
    target = doc.get("target")
    if isinstance(target, dict) and isinstance(target.get("groups"), list):
        groups = [_group(g, i, warnings) for i, g in enumerate(target["groups"])]
        doc["target"] = {**target, "groups": groups}
    actions = doc.get("actions")
    if isinstance(actions, dict) and isinstance(actions.get("steps"), list):
        steps = [_step(s, i, warnings) for i, s in enumerate(actions["steps"])]
        doc["actions"] = {**actions, "steps": steps}
    return doc, warnings


def _exception_rule(rule: Any, i: int, warnings: Warnings) -> Any:
    if isinstance(rule, str):
        warnings.append(
            (("exceptionRules", i), "legacy plain rule; read as {rrule: ..., duration: 1}")
        )
        return {"rrule": rule, "duration": 1}
    return rule


def _group(group: Any, i: int, warnings: Warnings) -> Any:
    if not isinstance(group, dict):
        return group
    group = dict(group)
    selected = _TARGET_FIELD.get(group.get("nodeListType", ""))
    if selected is None:
        return group
    for field in _TARGET_FIELD.values():
        if field == selected or field not in group:
            continue
        value = group[field]
        if value in (None, ZERO_UUID, "", [], {}):
            del group[field]
            continue
        del group[field]
        warnings.append(
            (
                ("target", "groups", i, field),
                f"ignored because nodeListType is {group['nodeListType']!r}",
            )
        )
    return group


def _step(step: Any, i: int, warnings: Warnings) -> Any:
    if not isinstance(step, dict):
        return step
    step = dict(step)
    loc: Loc = ("actions", "steps", i)
    if "stepNumber" in step:
        number = step.pop("stepNumber")
        if number != i + 1:
            warnings.append(
                ((*loc, "stepNumber"), f"is {number!r} but the step is number {i + 1}; ignored")
            )
        if "name" not in step:
            step["name"] = f"step {i + 1}"
            warnings.append(((*loc,), f"step has no name; named 'step {i + 1}'"))
    command = step.get("command")
    if isinstance(command, list):
        step["command"] = {"linux": command}
        warnings.append(((*loc, "command"), "legacy command list; read as {linux: [...]}"))
    interpreter = step.get("interpreter")
    if isinstance(interpreter, dict):
        step["interpreter"] = _interpreter(interpreter, (*loc, "interpreter"), warnings)
    behavior = step.get("failureBehavior")
    if isinstance(behavior, dict) and isinstance(behavior.get("retryBackoffStrategy"), dict):
        strategy = dict(behavior["retryBackoffStrategy"])
        if "name" in strategy:
            # `name` is the 1.0/beta key of `type`: accepted silently, as Chef's server does.
            legacy = strategy.pop("name")
            strategy.setdefault("type", legacy)
        step["failureBehavior"] = {**behavior, "retryBackoffStrategy": strategy}
    limits = step.get("limits")
    if isinstance(limits, dict) and "time" in limits:
        limits = dict(limits)
        legacy_time = limits.pop("time")
        limits.setdefault("timeoutSeconds", legacy_time)
        step["limits"] = limits
    rules = step.get("outputFieldRules")
    if isinstance(rules, dict):
        step["outputFieldRules"] = _output_rules(rules, (*loc, "outputFieldRules"), warnings)
    return step


def _interpreter(interpreter: dict[str, Any], loc: Loc, warnings: Warnings) -> dict[str, Any]:
    interpreter = dict(interpreter)
    legacy = {k: interpreter.pop(k) for k in ("min_version", "max_version") if k in interpreter}
    if legacy:
        skill = dict(interpreter.get("skill") or {})
        if "min_version" in legacy:
            skill.setdefault("minVersion", legacy["min_version"])
        if "max_version" in legacy:
            skill.setdefault("maxVersion", legacy["max_version"])
        interpreter["skill"] = skill
        warnings.append(
            (loc, "legacy min_version/max_version; read as skill.minVersion/maxVersion")
        )
    given = interpreter.get("skill")
    if isinstance(given, dict) and not given.get("maxVersion"):
        warnings.append(
            ((*loc, "skill", "maxVersion"), "is mandatory since Courier 1.2.0; add one")
        )
    return interpreter


def _output_rules(rules: dict[str, Any], loc: Loc, warnings: Warnings) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, rule in rules.items():
        if not isinstance(rule, dict):
            # Chef's own job_reboot sample has `outputFieldRules: {required: false}` and Chef
            # accepts it; we drop the entry and say so instead of refusing the file.
            warnings.append(((*loc, name), "is not an output rule object; ignored"))
            continue
        method = rule.get("extractMethod")
        if isinstance(method, str) and method.lower() in _EXTRACT_METHODS:
            rule = {**rule, "extractMethod": _EXTRACT_METHODS[method.lower()]}
        kept[name] = rule
    return kept
