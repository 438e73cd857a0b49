"""Read `courier.toml` at the repository root (optional). Options and env vars win over it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from reconciler.errors import CourierError


def read_config(repo: Path) -> dict[str, Any]:
    path = repo / "courier.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CourierError(f"{path}: {exc}") from exc


def setting(config: dict[str, Any], section: str, key: str) -> Any:
    value = config.get(section, {})
    return value.get(key) if isinstance(value, dict) else None
