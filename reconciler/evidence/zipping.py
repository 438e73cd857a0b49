"""Build one attempt's evidence zip in memory (DESIGN.md §4: one zip per step attempt).

The step runner hands in the members it made (stdout, stderr, result, command, outputs) and the
folder the step could leave files in; every byte goes through `mask` before it is written.
Small members are stored, larger ones deflated at level 1: evidence is written far more often
than it is read.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

FILES_LIMIT = 10 * 1024 * 1024
"""Total bytes of files taken from `$COURIER_EVIDENCE_DIR` into one zip."""

_DEFLATE_FROM = 16 * 1024

Mask = Callable[[bytes], bytes]


@dataclass(slots=True)
class LeftFiles:
    """Files a step left in its evidence folder: what goes into `files/`, and what did not."""

    members: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def collect_files(root: Path, limit: int = FILES_LIMIT) -> LeftFiles:
    """Regular files under `root` (symlinks are neither followed nor taken), up to `limit` bytes."""
    left = LeftFiles()
    total = 0
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        dirs.sort()
        for name in [d for d in dirs if (base / d).is_symlink()]:
            left.skipped.append(f"{(base / name).relative_to(root).as_posix()}: a symbolic link")
        for name in sorted(names):
            path = base / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                left.skipped.append(f"{rel}: a symbolic link")
                continue
            if not stat.S_ISREG(info.st_mode):
                left.skipped.append(f"{rel}: not a regular file")
                continue
            if total + info.st_size > limit:
                left.skipped.append(
                    f"{rel}: {info.st_size} bytes would pass the {limit} byte limit"
                )
                continue
            data = _read_no_follow(path)
            if data is None:
                left.skipped.append(f"{rel}: could not be read")
                continue
            total += len(data)
            left.members.append((f"files/{rel}", data))
    return left


def _read_no_follow(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def build_zip(members: Iterable[tuple[str, bytes]], when: datetime, mask: Mask) -> bytes:
    """A zip of `(name, data)` members, names and data masked, every member dated `when`."""
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(mask(name.encode()).decode(errors="replace"), stamp)
            info.external_attr = 0o644 << 16
            body = mask(data)
            if len(body) >= _DEFLATE_FROM:
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, body, compresslevel=1)
            else:
                archive.writestr(info, body)
    return buffer.getvalue()
