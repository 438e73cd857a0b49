"""Text helpers of the report: safe file names for jobs, clean output tails, escaping for Markdown.

Pure functions (no I/O): `data` uses them to build the report and `rendering` to escape it.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

SLUG_MAX = 60
HASH_LEN = 8
TAIL_LINES = 20
LINE_MAX = 400
TAIL_BYTES = 64 * 1024  # read at most this much of the end of each output member

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Device names Windows refuses as file names whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
# CSI and OSC escape sequences (colours, cursor moves, titles) and every other control character
# but tab and newline: none of them is allowed in XML 1.0, and HTML calls them parse errors.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def clean(text: str) -> str:
    """`text` without escape sequences and control characters (tabs and newlines kept);
    a carriage return keeps what a terminal would show: the text after it."""
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    if "\r" in text:
        text = "\n".join(_after_cr(line) for line in text.split("\n"))
    return _CONTROL.sub("", text)


def _after_cr(line: str) -> str:
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def one_line(text: str) -> str:
    """`text` cleaned, with runs of whitespace (newlines too) folded into one space."""
    return " ".join(clean(text).split())


def md_inline(text: str) -> str:
    """Plain text made safe inside a Markdown line or table cell: Markdown punctuation is
    backslash-escaped, `<`, `>` and `&` become entities (no raw HTML), newlines become spaces."""
    text = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_fence(text: str) -> str:
    """A fence longer than any run of backticks in `text`, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


# -- slugs -------------------------------------------------------------------------------------


def _digest(name: str, length: int) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:length]


def base_slug(name: str) -> str:
    """Lowercase ASCII letters, digits and single hyphens; accents dropped; `job` if nothing
    is left. Never contains `/`, `.` or `\\`, so it cannot leave the folder it is put in."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")
    return slug or "job"


def slugs(names: Iterable[str]) -> dict[str, str]:
    """A distinct file-name stem for each of `names`, independent of their order.

    A name that is already a slug keeps it; any other gets `-<8 hex of its sha256>`, so two names
    that fold to the same slug (`A b`, `a-b`) never share a file. Should a suffixed slug still
    collide (a name spelled like another's suffixed slug), the suffixed ones use 16 hex digits.
    """
    unique = sorted(set(names))
    chosen = {name: _slug_for(name, HASH_LEN) for name in unique}
    taken = Counter(chosen.values())
    for name in unique:
        if taken[chosen[name]] > 1 and chosen[name] != name:
            chosen[name] = _slug_for(name, 2 * HASH_LEN)
    return chosen


def _slug_for(name: str, digits: int) -> str:
    slug = base_slug(name)
    if slug == name and slug not in _RESERVED:
        return slug
    return f"{slug}-{_digest(name, digits)}"


# -- output tails ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tail:
    """The last lines of one output stream, cleaned; `omitted` when earlier lines exist."""

    text: str
    omitted: bool

    @property
    def empty(self) -> bool:
        return not self.text


def tail(data: bytes, lines: int = TAIL_LINES) -> Tail:
    """The last `lines` non-trailing-blank lines of `data` (UTF-8, bad bytes replaced), each cut
    to `LINE_MAX` characters."""
    cut = len(data) > TAIL_BYTES
    text = clean(data[-TAIL_BYTES:].decode("utf-8", errors="replace"))
    all_lines = text.rstrip("\n").split("\n") if text.strip() else []
    if cut and all_lines:
        all_lines = all_lines[1:]  # the first one is most likely cut in the middle
    kept = all_lines[-lines:]
    shown = [line if len(line) <= LINE_MAX else line[:LINE_MAX] + "…" for line in kept]
    return Tail("\n".join(shown).rstrip(), cut or len(all_lines) > len(kept))


def zip_tails(archive: bytes, lines: int = TAIL_LINES) -> tuple[Tail, Tail]:
    """(stderr, stdout) tails of one evidence zip (`zipfile.BadZipFile` if it is not a zip)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        names = set(zf.namelist())
        found = []
        for member in ("stderr.txt", "stdout.txt"):
            found.append(tail(_end_of(zf, member), lines) if member in names else Tail("", False))
    return found[0], found[1]


def _end_of(zf: zipfile.ZipFile, member: str) -> bytes:
    """The last bytes of a member, streamed: a huge output is never held whole in memory."""
    keep = b""
    with zf.open(member) as stream:
        while chunk := stream.read(256 * 1024):
            keep = (keep + chunk)[-(TAIL_BYTES + 1) :]
    return keep


# -- times -------------------------------------------------------------------------------------


def rfc3339(moment: datetime | None) -> str:
    """RFC 3339 UTC to the second (`2026-01-02T03:04:05Z`), `-` for no time."""
    if moment is None:
        return "-"
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds")[:19] + "Z"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def duration(seconds: float | None) -> str:
    """`0.012s`, `4.5s`, `2m 03s`, `1h 02m`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.3f}s" if seconds < 1 else f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
