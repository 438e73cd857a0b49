"""Parse Chef's RRULE strings (RFC 5545 with an `RRULE:` prefix, DTSTART possibly inside). Pure.

Chef writes `RRULE:DTSTART=20230620;FREQ=DAILY`, which dateutil does not accept, so DTSTART is
taken out of the rule before dateutil sees it. Times are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from dateutil.rrule import rrule, rrulestr

_DTSTART_FORMATS = ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d")
_PART = re.compile(r"^[A-Z]+=")


@dataclass(frozen=True, slots=True)
class ParsedRule:
    """A rule split into its body (for dateutil) and the DTSTART it carried, if any."""

    body: str
    dtstart: datetime | None

    def expand(self, anchor: datetime) -> rrule:
        """The dateutil rule, anchored at the rule's own DTSTART or else at `anchor` (UTC)."""
        start = self.dtstart or anchor
        start = start.astimezone(UTC).replace(microsecond=0)
        try:
            rule = rrulestr(self.body, dtstart=start)
        except ValueError as exc:
            if "UNTIL" not in str(exc):
                raise
            # UNTIL written without `Z`: read the whole rule in naive UTC, then re-anchor.
            naive = rrulestr(self.body, dtstart=start.replace(tzinfo=None))
            assert isinstance(naive, rrule)
            until = naive._until  # type: ignore[attr-defined]  # dateutil keeps no public getter
            rule = naive.replace(dtstart=start, until=until.replace(tzinfo=UTC) if until else None)
        assert isinstance(rule, rrule)
        return rule


def parse_rrule(text: str) -> ParsedRule:
    """Validate and split a Chef RRULE. Raises ValueError with a message fit for a user."""
    if not isinstance(text, str):
        raise ValueError("must be a string")
    stripped = text.strip()
    if not stripped.upper().startswith("RRULE:"):
        raise ValueError(
            f"{text!r} is neither 'immediate' nor an RFC 5545 rule starting with 'RRULE:'"
            " (for example 'RRULE:FREQ=DAILY;INTERVAL=1')"
        )
    parts = [p for p in stripped[len("RRULE:") :].split(";") if p]
    dtstart: datetime | None = None
    kept: list[str] = []
    for part in parts:
        if not _PART.match(part.upper()):
            raise ValueError(f"{part!r} is not a NAME=VALUE part of an RRULE")
        key, _, value = part.partition("=")
        if key.upper() == "DTSTART":
            dtstart = _parse_dtstart(value)
        else:
            kept.append(f"{key.upper()}={value}")
    if not any(p.startswith("FREQ=") for p in kept):
        raise ValueError(f"{text!r} has no FREQ part (for example FREQ=DAILY)")
    parsed = ParsedRule("RRULE:" + ";".join(kept), dtstart)
    try:
        parsed.expand(datetime(2000, 1, 1, tzinfo=UTC))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{text!r} is not a valid RRULE: {exc}") from exc
    return parsed


def _parse_dtstart(value: str) -> datetime:
    for fmt in _DTSTART_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"DTSTART={value} is not a date like 20230620 or 20230620T010000Z")
