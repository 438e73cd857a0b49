"""Checks before a step's interpreter is started (SPEC.md §4 item 6): its expected inputs and the
node's interpreter skill. A failed check fails the step without running anything. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.executing.substitution import as_text
from reconciler.interpreters.base import skill_name
from reconciler.model.job import ExpectedInput, Skill
from reconciler.model.versions import parse_version


@dataclass(slots=True)
class Resolved:
    """Expected inputs with a value (from the job context, else the default), and the rest."""

    values: dict[str, str] = field(default_factory=dict)
    sensitive: list[str] = field(default_factory=list)  # values to mask
    missing: list[str] = field(default_factory=list)  # required, and no value anywhere


def resolve_expected(expected: Mapping[str, ExpectedInput], context: Mapping[str, str]) -> Resolved:
    resolved = Resolved()
    for name, rule in expected.items():
        if name in context:
            value = context[name]
        elif rule.default is not None:
            value = as_text(rule.default)
        else:
            if rule.required:
                resolved.missing.append(name)
            continue
        resolved.values[name] = value
        if rule.sensitive:
            resolved.sensitive.append(value)
    return resolved


def missing_reason(missing: list[str]) -> str:
    if len(missing) == 1:
        return f"required input {missing[0]} is missing"
    return f"required inputs {', '.join(missing)} are missing"


def skill_problem(
    interpreter: str, skill: Skill, node_id: str, skills: Mapping[str, str]
) -> str | None:
    """Why the node's skill does not fit `skill.minVersion..maxVersion` (inclusive), or None."""
    name = skill_name(interpreter)
    have = skills.get(name)
    if have is None:
        return f"node {node_id} has no skill {name} (needed by {interpreter})"
    try:
        version = parse_version(have)
    except ValueError:
        return f"node {node_id} has skill {name} with an unreadable version {have!r}"
    if skill.minVersion and version < parse_version(skill.minVersion):
        return f"node {node_id} has {name} {have}, below the step's minVersion {skill.minVersion}"
    if skill.maxVersion and version > parse_version(skill.maxVersion):
        return f"node {node_id} has {name} {have}, above the step's maxVersion {skill.maxVersion}"
    return None
