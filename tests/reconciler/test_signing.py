"""Signed evidence URLs (reconciler/evidence/signing.py): pure functions, a fixed clock."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.evidence import signing
from reconciler.evidence.signing import Verdict, sign, signed_url, stable_url, verify

SECRET = b"0123456789abcdef0123456789abcdef"
RUN = "0898cb9e-dec8-4a67-8686-495504b41ae0"
OTHER_RUN = "5b1f3c2e-0000-4a67-8686-495504b41ae0"
NOW = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)


def signed(**overrides: Any) -> tuple[int, str]:
    params = sign(SECRET, RUN, 2, 1, now=overrides.pop("now", NOW), **overrides)
    return int(params["expires"]), params["signature"]


def test_a_fresh_signature_is_valid() -> None:
    expires, signature = signed()
    assert verify(SECRET, RUN, 2, 1, expires, signature, now=NOW) is Verdict.VALID


def test_the_default_lifetime_is_15_minutes() -> None:
    expires, _ = signed()
    assert expires == int((NOW + timedelta(minutes=15)).timestamp())
    assert signing.LIFETIME.total_seconds() == 15 * 60


def test_the_signature_is_64_lowercase_hex_digits_and_deterministic() -> None:
    expires, signature = signed()
    assert len(signature) == 64
    assert signature == signature.lower()
    assert signing.signature(SECRET, RUN, 2, 1, expires) == signature


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: ("0" if s[0] != "0" else "1") + s[1:], id="first-digit"),
        pytest.param(lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"), id="last-digit"),
        pytest.param(lambda s: s[::-1], id="reversed"),
    ],
)
def test_a_tampered_signature_is_refused(tamper: Any) -> None:
    expires, signature = signed()
    verdict = verify(SECRET, RUN, 2, 1, expires, tamper(signature), now=NOW)
    assert verdict is Verdict.BAD_SIGNATURE


@pytest.mark.parametrize(
    "given",
    ["", "abc", "G" * 64, "A" * 64, "a" * 63, "a" * 65, "é" * 64, "a" * 63 + "\n"],
)
def test_a_malformed_signature_is_refused_before_comparing(given: str) -> None:
    expires, _ = signed()
    assert verify(SECRET, RUN, 2, 1, expires, given, now=NOW) is Verdict.MALFORMED


@pytest.mark.parametrize(
    ("run_id", "step", "attempt", "expires_delta"),
    [
        pytest.param(OTHER_RUN, 2, 1, 0, id="another-run"),
        pytest.param(RUN + "0", 2, 1, 0, id="longer-run-id"),
        pytest.param(RUN, 1, 1, 0, id="another-step"),
        pytest.param(RUN, 2, 2, 0, id="another-attempt"),
        pytest.param(RUN, 2, 1, 3600, id="later-expiry"),
        pytest.param(RUN, 1, 2, 0, id="step-and-attempt-swapped"),
    ],
)
def test_a_signature_for_anything_else_is_refused(
    run_id: str, step: int, attempt: int, expires_delta: int
) -> None:
    expires, signature = signed()
    verdict = verify(SECRET, run_id, step, attempt, expires + expires_delta, signature, now=NOW)
    assert verdict is Verdict.BAD_SIGNATURE


def test_another_secret_does_not_verify() -> None:
    expires, signature = signed()
    verdict = verify(b"another secret, 32 bytes long!!!", RUN, 2, 1, expires, signature, now=NOW)
    assert verdict is Verdict.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        (timedelta(0), Verdict.VALID),
        (timedelta(minutes=14, seconds=59), Verdict.VALID),
        (timedelta(minutes=15), Verdict.VALID),  # valid through its expiry second
        (timedelta(minutes=15, seconds=1), Verdict.EXPIRED),
        (timedelta(days=400), Verdict.EXPIRED),
    ],
)
def test_expiry_is_checked_against_the_given_now(later: timedelta, expected: Verdict) -> None:
    expires, signature = signed()
    assert verify(SECRET, RUN, 2, 1, expires, signature, now=NOW + later) is expected


def test_a_signature_made_with_a_past_expiry_is_expired() -> None:
    expires, signature = signed(now=NOW - timedelta(hours=1))
    assert verify(SECRET, RUN, 2, 1, expires, signature, now=NOW) is Verdict.EXPIRED


def test_a_custom_lifetime() -> None:
    expires, signature = signed(lifetime=timedelta(seconds=30))
    assert verify(SECRET, RUN, 2, 1, expires, signature, now=NOW + timedelta(seconds=30)) is (
        Verdict.VALID
    )
    assert verify(SECRET, RUN, 2, 1, expires, signature, now=NOW + timedelta(seconds=31)) is (
        Verdict.EXPIRED
    )


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("reconciler.evidence.signing.hmac.compare_digest", spy)
    expires, signature = signed()
    assert verify(SECRET, RUN, 2, 1, expires, signature, now=NOW) is Verdict.VALID
    assert verify(SECRET, RUN, 2, 1, expires, "f" * 64, now=NOW) is Verdict.BAD_SIGNATURE
    assert [given for _, given in calls] == [signature, "f" * 64]


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty secret"):
        sign(b"", RUN, 1, 1, now=NOW)


def test_signed_url_has_chefs_path_and_the_query() -> None:
    url = signed_url("http://127.0.0.1:8080/", SECRET, RUN, 2, 1, now=NOW)
    parts = urlsplit(url)
    assert parts.path == (
        f"/evidence/run/{RUN}/step/2/attempt/1/evidence-run-{RUN}-step-2-attempt-1.zip"
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == sign(SECRET, RUN, 2, 1, now=NOW)


def test_stable_url() -> None:
    assert stable_url("https://courier.example/", RUN, 3, 2) == (
        f"https://courier.example/evidence/run/{RUN}/step/3/attempt/2"
    )
