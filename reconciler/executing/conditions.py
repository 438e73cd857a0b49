"""Step `conditions` (SPEC.md §1.5): all must hold for a step to run, else it is skipped. Pure.

Values are text from the job context. `eq` and the orderings compare as numbers when both sides
read as finite numbers (`"10\n"` > `"9"`), as strings otherwise; `matches` is `re.search`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler.model.enums import ConditionOperator as Op
from reconciler.model.job import Condition

_ORDER: dict[Op, Callable[[Any, Any], Any]] = {
    Op.EQ: operator.eq,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
}


def holds(condition: Condition, actual: str) -> bool:
    """Whether `actual <operator> condition.value` holds, after `negate`."""
    op, expected = condition.operator, condition.value
    if op in _ORDER:
        left, right = _number(actual), _number(expected)
        if left is not None and right is not None:
            result = bool(_ORDER[op](left, right))
        else:
            result = bool(_ORDER[op](actual, expected))
    elif op is Op.MATCHES:
        result = re.search(expected, actual) is not None
    elif op is Op.STARTS_WITH:
        result = actual.startswith(expected)
    elif op is Op.ENDS_WITH:
        result = actual.endswith(expected)
    else:
        result = expected in actual
    return result != condition.negate


def unmet(conditions: Sequence[Condition], values: Mapping[str, str]) -> str | None:
    """Why the step is skipped (the first condition that fails), or None when all hold.

    A condition on a name that has no value does not hold, whatever its `negate`.
    """
    for condition in conditions:
        name = condition.inputName
        if name not in values:
            return f"skipped: {name} has no value in the job context"
        if not holds(condition, values[name]):
            neg = "not " if condition.negate else ""
            return (
                f"skipped: condition {neg}{name} {condition.operator} {condition.value!r} "
                f"is false ({name} is {values[name]!r})"
            )
    return None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
