"""Which nodes a group runs on, in what batches, and whether its success criteria hold. Pure.

`executing` resolves every group when it creates an instance (the nodes are fixed from then on,
SPEC.md §3.5), dispatches them by `batches` / `window`, and asks `success_state` after each run
ends, so an instance's outcome is decided as soon as it is known (DESIGN.md §4).

Filter semantics (SPEC.md §1.3.1), where Chef documents none:
- Constraints are ANDed; the `value` entries of one constraint are ORed.
- `namespace: tags` looks in the node's tags; any other namespace (`agent`, `gohai`, `aws`, `azure`,
  `enroll`) looks in its attributes; no namespace looks in both.
- `=`: the attribute's text equals a value. `!=`: the attribute exists and equals none of the
  values. `MATCHES`: a value, as a regular expression, is found in the text (`re.search`).
  `CONTAINS`: a value is a substring of the text. For a list attribute, `=`, `MATCHES` and
  `CONTAINS` hold when some element meets them (so `CONTAINS` is membership) and `!=` when no
  element equals a value. Booleans read as `true` / `false`. Matching is case-sensitive.
- A node without the attribute matches no operator, not even `!=`: "not Linux" should not
  select nodes whose kernel nobody knows.
- A skill constraint holds when the node has the skill and its version meets every constraint.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

from reconciler.errors import CourierError
from reconciler.model.enums import (
    AmountType,
    CriterionStatus,
    FilterOperator,
    NodeListType,
    RunStatus,
)
from reconciler.model.job import (
    AttributeConstraint,
    BatchSize,
    Constraints,
    Group,
    SkillConstraint,
    SuccessCriterion,
    ValueConstraint,
)
from reconciler.model.versions import satisfies
from reconciler.nodes.inventory import Inventory, Node

TAGS_NAMESPACE = "tags"

NOT_SUCCESS = (RunStatus.FAILURE, RunStatus.TIMEOUT, RunStatus.CANCELED)
"""Run statuses a `status: failure` criterion counts: a run that ended without succeeding."""


class TargetingError(CourierError, ValueError):
    """A group names a saved filter or saved list that the inventory does not have."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """A group's node ids in a stable order, and those among them the inventory does not know.

    Unknown ids (possible only with `nodeListType: nodes`) stay in `node_ids`, so their runs can
    fail with a clear reason instead of the node silently dropping out of the job.
    """

    node_ids: tuple[str, ...]
    unknown: tuple[str, ...] = ()


class CriteriaState(StrEnum):
    MET = "met"
    FAILED = "failed"
    PENDING = "pending"


# --- resolving ------------------------------------------------------------------------------


def resolve_group(group: Group, inventory: Inventory) -> Resolution:
    """The nodes a group targets: given ids in their order, or matches in inventory order."""
    kind = group.nodeListType
    if kind is NodeListType.NODES:
        return _known(group.nodeIdentifiers or (), inventory)
    if kind is NodeListType.SAVED_LIST:
        if group.listId not in inventory.lists:
            raise TargetingError(f"saved list {group.listId!r} is not in the inventory")
        return _known(inventory.lists[group.listId], inventory)
    if kind is NodeListType.SAVED_FILTER:
        if group.filterId not in inventory.filters:
            raise TargetingError(f"saved filter {group.filterId!r} is not in the inventory")
        constraints = inventory.filters[group.filterId]
    else:
        if group.filter is None:
            raise TargetingError("nodeListType is 'filter' but the group has no filter")
        constraints = group.filter.constraints
    return Resolution(select(inventory.nodes, constraints))


def select(nodes: Iterable[Node], constraints: Constraints) -> tuple[str, ...]:
    """Ids of the nodes that meet every constraint, in the order given."""
    return tuple(node.id for node in nodes if node_matches(node, constraints))


def node_matches(node: Node, constraints: Constraints) -> bool:
    """True when the node meets every attribute, skill, enrollment and health constraint."""
    return (
        all(_attribute_matches(node, c) for c in constraints.attributes)
        and all(_skill_matches(node, c) for c in constraints.skills)
        and _value_matches(node.enrollment_level, constraints.enrollmentLevel)
        and _value_matches(node.health_status, constraints.healthStatus)
    )


def _known(ids: Iterable[str], inventory: Inventory) -> Resolution:
    unique = tuple(dict.fromkeys(ids))
    return Resolution(unique, tuple(i for i in unique if i not in inventory))


def _attribute_matches(node: Node, constraint: AttributeConstraint) -> bool:
    namespaces = constraint.namespace or []
    found: list[object] = []
    in_attributes = not namespaces or any(ns != TAGS_NAMESPACE for ns in namespaces)
    in_tags = not namespaces or TAGS_NAMESPACE in namespaces
    if in_attributes and constraint.name in node.attributes:
        found.append(node.attributes[constraint.name])
    if in_tags and constraint.name in node.tags:
        found.append(node.tags[constraint.name])
    if not found:
        return False
    wanted = constraint.value
    if constraint.operator is FilterOperator.CONTAINS:
        return any(_contains(value, w) for value in found for w in wanted)
    return _compare([t for value in found for t in _texts(value)], constraint.operator, wanted)


def _contains(value: object, wanted: str) -> bool:
    # In a list CONTAINS is membership; in a scalar, a substring.
    return wanted in _texts(value) if _is_list(value) else wanted in _text(value)


def _skill_matches(node: Node, constraint: SkillConstraint) -> bool:
    version = node.skills.get(constraint.name)
    if version is None:
        return False
    try:
        return satisfies(version, constraint.version)
    except ValueError:  # a version nobody can compare meets no constraint
        return False


def _value_matches(actual: str, constraint: ValueConstraint | None) -> bool:
    return constraint is None or _compare([actual], constraint.operator, constraint.value)


def _is_list(value: object) -> TypeGuard[Collection[object]]:
    return isinstance(value, list | tuple | set | frozenset)


def _texts(value: object) -> list[str]:
    return [_text(item) for item in value] if _is_list(value) else [_text(value)]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(texts: Sequence[str], operator: FilterOperator, wanted: Sequence[str]) -> bool:
    if operator is FilterOperator.EQ:
        return any(t == w for t in texts for w in wanted)
    if operator is FilterOperator.NE:
        return not any(t == w for t in texts for w in wanted)
    if operator is FilterOperator.MATCHES:
        return any(re.search(w, t) for t in texts for w in wanted)
    return any(w in t for t in texts for w in wanted)


# --- batching -------------------------------------------------------------------------------


def window(batch_size: BatchSize, total: int) -> int:
    """How many runs of a group of `total` nodes are dispatched at once (ceil of a percent).

    At least 1 and, for a non-empty group, at most `total`.
    """
    if batch_size.type is AmountType.PERCENT:
        size = _ceil_percent(total, batch_size.value)
    else:
        size = batch_size.value
    return max(1, min(size, total) if total else size)


def _ceil_percent(total: int, percent: int) -> int:
    return -(-total * percent // 100)  # integers: no float rounding at exact percents


def batches(node_ids: Sequence[str], batch_size: BatchSize) -> list[tuple[str, ...]]:
    """The node ids cut into consecutive batches of `window` nodes (the last may be smaller)."""
    size = window(batch_size, len(node_ids))
    return [tuple(node_ids[i : i + size]) for i in range(0, len(node_ids), size)]


# --- success criteria -----------------------------------------------------------------------


def threshold(criterion: SuccessCriterion, total: int) -> int:
    """The criterion's count: `success` percents round up (ask for at least that many), `failure`
    percents round down (tolerate at most that many)."""
    amount = criterion.numRuns
    if amount.type is AmountType.NUMBER:
        return amount.value
    if criterion.status is CriterionStatus.SUCCESS:
        return _ceil_percent(total, amount.value)
    return total * amount.value // 100


_ALL_SUCCEED = SuccessCriterion.model_validate(
    {"status": "success", "numRuns": {"type": "percent", "value": 100}}
)


def success_state(
    criteria: Sequence[SuccessCriterion],
    counts: Mapping[RunStatus, int] | Mapping[str, int],
    total: int,
    finished: int,
) -> CriteriaState:
    """Whether a group's criteria are certainly met, can no longer be met, or not yet known.

    `counts` maps run statuses to how many of the group's `total` runs have them; `finished` runs
    are terminal. `status: success` needs count(success) >= threshold; `status: failure` allows at
    most threshold runs that ended without success (failure, timeout, canceled: see `NOT_SUCCESS`).
    FAILED as soon as one criterion cannot hold whatever the remaining runs do; MET as soon as all
    hold whatever they do. No criteria means every run must succeed: a group whose runs failed
    is not a success just because nobody wrote down what success is.
    """
    if not criteria:
        criteria = (_ALL_SUCCEED,)
    remaining = max(0, total - finished)
    successes = counts.get(RunStatus.SUCCESS, 0)
    failures = sum(counts.get(status, 0) for status in NOT_SUCCESS)
    met = True
    for criterion in criteria:
        limit = threshold(criterion, total)
        if criterion.status is CriterionStatus.SUCCESS:
            if successes + remaining < limit:
                return CriteriaState.FAILED
            met = met and successes >= limit
        else:
            if failures > limit:
                return CriteriaState.FAILED
            met = met and failures + remaining <= limit
    return CriteriaState.MET if met else CriteriaState.PENDING
