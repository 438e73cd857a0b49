"""Signed, expiring evidence URLs: HMAC-SHA256 over (run id, step, attempt, expiry) with a secret.

Pure: no clock reads and no I/O (`now` and the secret are passed in). `courier serve` checks what
`get-step-attempt-evidence` hands out; both build the same Chef path (`ports.evidence_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlencode

from reconciler.ports import evidence_key

LIFETIME = timedelta(minutes=15)
"""How long a signed URL stays valid by default, as Chef's presigned evidence URLs."""

_PURPOSE = "courier-evidence-url/1"  # a MAC made for evidence URLs means nothing anywhere else
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class Verdict(StrEnum):
    """What `verify` found; only `VALID` lets a download through."""

    VALID = "valid"
    MALFORMED = "malformed signature"
    BAD_SIGNATURE = "signature does not match"
    EXPIRED = "expired"


def signature(secret: bytes, run_id: str, step: int, attempt: int, expires: int) -> str:
    """The hex HMAC-SHA256 of one attempt's evidence until `expires` (unix seconds)."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    # JSON of a list is an unambiguous encoding: no run id can make two messages collide.
    message = json.dumps([_PURPOSE, run_id, step, attempt, expires], separators=(",", ":"))
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def sign(
    secret: bytes,
    run_id: str,
    step: int,
    attempt: int,
    *,
    now: datetime,
    lifetime: timedelta = LIFETIME,
) -> dict[str, str]:
    """The query parameters (`expires`, `signature`) of a URL valid for `lifetime` from `now`."""
    expires = int((now + lifetime).timestamp())
    return {
        "expires": str(expires),
        "signature": signature(secret, run_id, step, attempt, expires),
    }


def verify(
    secret: bytes,
    run_id: str,
    step: int,
    attempt: int,
    expires: int,
    given: str,
    *,
    now: datetime,
) -> Verdict:
    """Whether `given` signs exactly this run, step, attempt and expiry, and `now` is not past it.

    The comparison is constant-time; the expiry is only trusted once the signature holds.
    """
    if not _SIGNATURE.fullmatch(given):
        return Verdict.MALFORMED
    expected = signature(secret, run_id, step, attempt, expires)
    if not hmac.compare_digest(expected, given):
        return Verdict.BAD_SIGNATURE
    if now.timestamp() > expires:
        return Verdict.EXPIRED
    return Verdict.VALID


def evidence_path(run_id: str, step: int, attempt: int) -> str:
    """The server path of one attempt's zip: `/evidence/run/<id>/step/<n>/attempt/<m>/<file>`."""
    return f"/evidence/{evidence_key(run_id, step, attempt)}"


def stable_url(base_url: str, run_id: str, step: int, attempt: int) -> str:
    """The link that never expires (for reports): the server redirects it to a fresh signed URL."""
    return f"{base_url.rstrip('/')}/evidence/run/{run_id}/step/{step}/attempt/{attempt}"


def signed_url(
    base_url: str,
    secret: bytes,
    run_id: str,
    step: int,
    attempt: int,
    *,
    now: datetime,
    lifetime: timedelta = LIFETIME,
) -> str:
    """A download URL of one attempt's zip on the server at `base_url`, valid for `lifetime`."""
    params = sign(secret, run_id, step, attempt, now=now, lifetime=lifetime)
    return f"{base_url.rstrip('/')}{evidence_path(run_id, step, attempt)}?{urlencode(params)}"
