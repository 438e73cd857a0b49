"""Fixtures for the state store suite: one fresh database per test, SQLite and PostgreSQL.

PostgreSQL runs when COURIER_TEST_PG_URL is set (a server URL whose user may create databases);
each test gets its own uniquely named database, dropped afterwards, so runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from state import SqlStateStore, open_engine
from state.engine import normalize_url

PG_ENV = "COURIER_TEST_PG_URL"

StoreFactory = Callable[[], SqlStateStore]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty state database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"{PG_ENV} is not set")
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    name = f"courier_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield normalize_url(server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines a test opened; disposed at the end (before its database is dropped)."""
    opened: list[Engine] = []
    yield opened
    for engine in opened:
        engine.dispose()


@pytest.fixture
def stores(state_url: str, engines: list[Engine]) -> StoreFactory:
    """Open another store on the test's database, as another process would (own engine)."""

    def make() -> SqlStateStore:
        engine = open_engine(state_url)
        engines.append(engine)
        return SqlStateStore(engine)

    return make


@pytest.fixture
def store(stores: StoreFactory) -> SqlStateStore:
    return stores()
