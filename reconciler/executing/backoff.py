"""Delays between attempts of a failed step (DESIGN.md §4). Pure."""

from __future__ import annotations

import math

from reconciler.model.enums import BackoffType
from reconciler.model.job import BackoffStrategy

DEFAULT_POLYNOMIAL_POWER = 2.0


def delay(strategy: BackoffStrategy, k: int) -> float:
    """Seconds to wait before retry `k` (1-based: the wait between attempt k and k + 1).

    none: 0; linear: d*k; exponential: d*2^(k-1); polynomial: d*k^p, where p is `arguments[0]`
    when that is a number and 2 otherwise.
    """
    if k < 1:
        raise ValueError(f"retries are numbered from 1, not {k}")
    base = float(strategy.delaySeconds)
    kind = strategy.type
    if kind is BackoffType.LINEAR:
        return base * k
    if kind is BackoffType.EXPONENTIAL:
        return base * 2.0 ** (k - 1)
    if kind is BackoffType.POLYNOMIAL:
        return base * math.pow(k, _power(strategy.arguments))
    return 0.0


def _power(arguments: list[object]) -> float:
    first = arguments[0] if arguments else None
    if isinstance(first, int | float) and not isinstance(first, bool):
        return float(first)
    return DEFAULT_POLYNOMIAL_POWER
