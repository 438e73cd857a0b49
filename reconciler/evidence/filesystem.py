"""The default evidence store: one file per key under a root folder (`.courier/evidence/`).

Keys are `ports.evidence_key` paths. A key that could leave the root (`..`, absolute, a backslash)
is refused, here and in the S3 store, so a stored run id can never name another file.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from reconciler.errors import CourierError, NotFound


class BadEvidenceKey(CourierError):
    """An evidence key that is not a plain relative path."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"evidence key {key!r} {why}")
        self.key = key


def check_key(key: str) -> str:
    """Return `key` if it is a relative `a/b/c` path without `..`; raise `BadEvidenceKey`."""
    if not key:
        raise BadEvidenceKey(key, "is empty")
    if "\\" in key:
        raise BadEvidenceKey(key, "contains a backslash")
    if "\0" in key:
        raise BadEvidenceKey(key, "contains a NUL character")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise BadEvidenceKey(key, "is an absolute path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadEvidenceKey(key, "has an empty, '.' or '..' segment")
    return key


class FileEvidenceStore:
    """Evidence zips as files under `root`; `url` is a `file://` URL."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside and rename, so a reader never sees half a zip.
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        partial.write_bytes(data)
        partial.replace(path)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no evidence stored under {key!r}") from exc

    def url(self, key: str) -> str:
        return self.path(key).as_uri()
