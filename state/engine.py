"""Opening the state database: SQLite by default (`<repo>/.courier/state.db`), PostgreSQL by URL.

SQLite gets WAL, foreign keys, a busy timeout and synchronous=NORMAL on every connection, and
SQLAlchemy (not the pysqlite driver) emits BEGIN, so that writers can ask for `BEGIN IMMEDIATE`
(see `begin_immediate`). PostgreSQL goes through psycopg 3. Bad URLs and unreachable servers
become `StateError`s.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from reconciler.errors import StateError

DEFAULT_BUSY_TIMEOUT_MS = 5_000
PG_CONNECT_TIMEOUT_S = 5

# Execution options read by the SQLite `begin` hook.
BEGIN_MODE = "courier_sqlite_begin"
BUSY_TIMEOUT_MS = "courier_sqlite_busy_timeout_ms"


def default_url(repo: Path) -> str:
    """The embedded default: a SQLite file under `<repo>/.courier/` (the folder is created)."""
    folder = repo / ".courier"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'state.db').resolve()}"


def normalize_url(url: str) -> URL:
    """Parse a state URL; `postgres://` and `postgresql://` mean psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StateError(
            f"cannot parse the state URL {url!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql") and driver in ("psycopg", "psycopg2", ""):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("pysqlite", ""):
        return parsed.set(drivername="sqlite")
    raise StateError(
        f"unsupported state URL scheme {parsed.drivername!r}; use sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DATABASE"
    )


def open_engine(url: str | None = None, *, repo: Path | None = None) -> Engine:
    """An engine for `url` (default: the SQLite file of `repo`, or of the current folder)."""
    parsed = normalize_url(url if url is not None else default_url(repo or Path.cwd()))
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return _postgres_engine(parsed)
    except (ArgumentError, NoSuchModuleError, TypeError) as exc:
        raise StateError(f"cannot use the state URL {_shown(parsed)}: {exc}") from exc


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for messages."""
    return _shown(engine.url)


def begin_immediate(conn: Connection, timeout_s: float) -> Connection:
    """Make the next transaction on this SQLite connection `BEGIN IMMEDIATE` (take the write lock
    up front), waiting up to `timeout_s` for it. A no-op on PostgreSQL."""
    if conn.dialect.name == "sqlite":
        conn.execution_options(
            **{BEGIN_MODE: "IMMEDIATE", BUSY_TIMEOUT_MS: max(0, int(timeout_s * 1000))}
        )
    return conn


def is_sqlite_busy(exc: DBAPIError) -> bool:
    orig = exc.orig
    return isinstance(orig, sqlite3.OperationalError) and (
        getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
        or "database is locked" in str(orig)
    )


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        if not folder.is_dir():
            raise StateError(f"cannot open the state database {database}: {folder} does not exist")
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop pysqlite from issuing BEGIN itself; `_on_begin` does it (SQLAlchemy docs,
        # "Enabling Non-Legacy SQLite Transactional Modes").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={DEFAULT_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        mode = options.get(BEGIN_MODE, "DEFERRED")
        busy = int(options.get(BUSY_TIMEOUT_MS, DEFAULT_BUSY_TIMEOUT_MS))
        cursor = conn.connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy}")
        finally:
            cursor.close()
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _use_wal(cursor: sqlite3.Cursor) -> None:
    # Switching a fresh database to WAL needs an exclusive lock, and SQLite answers "locked"
    # without calling the busy handler when connections race for it: retry for a while.
    deadline = time.monotonic() + DEFAULT_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _postgres_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StateError(f"cannot reach the state database {_shown(url)}: {reason}") from exc
    return engine
