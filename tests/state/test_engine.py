"""Opening state databases: URLs, the SQLite default and its pragmas, friendly errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.ports import StateWriter
from state import default_url, open_engine, open_store
from state.engine import normalize_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:pw@db:5433/courier", "postgresql+psycopg://u:pw@db:5433/courier"),
        ("postgresql://u@db/courier", "postgresql+psycopg://u@db/courier"),
        ("postgresql+psycopg://u@db/courier", "postgresql+psycopg://u@db/courier"),
        ("sqlite:////tmp/x/state.db", "sqlite:////tmp/x/state.db"),
        ("sqlite+pysqlite:///rel.db", "sqlite:///rel.db"),
    ],
)
def test_urls_are_normalized(url: str, expected: str) -> None:
    assert normalize_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "cannot parse the state URL"),
        ("mysql://u@db/courier", "unsupported state URL scheme 'mysql'"),
        ("sqlite:////no/such/folder/state.db", "/no/such/folder does not exist"),
        ("postgresql://nobody@127.0.0.1:1/courier", "cannot reach the state database"),
    ],
)
def test_bad_urls_and_unreachable_servers_are_state_errors(url: str, message: str) -> None:
    with pytest.raises(StateError, match=message):
        open_engine(url)


def test_the_default_is_a_sqlite_file_under_dot_courier(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert default_url(repo) == f"sqlite:///{repo.resolve() / '.courier' / 'state.db'}"
    engine = open_engine(repo=repo)
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert (repo / ".courier").is_dir()
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 5000,
    }


def test_sqlite_publishes_the_holder_only_while_holding_the_lock(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    holder_file = tmp_path / "state.db.holder.json"
    seen: list[dict[str, object]] = []

    def look(writer: StateWriter) -> None:
        seen.append(json.loads(holder_file.read_text(encoding="utf-8")))

    def fail(writer: StateWriter) -> None:
        raise RuntimeError("crash")

    try:
        store.write(look, lock_timeout=1, holder="apply by alice")
        assert not holder_file.exists()
        with pytest.raises(RuntimeError):
            store.write(fail, lock_timeout=1, holder="apply by bob")
        assert not holder_file.exists()
    finally:
        store.engine.dispose()
    [record] = seen
    assert record["holder"] == "apply by alice"
    assert record["pid"] == os.getpid()
    assert str(record["since"]).endswith("Z")
