"""The apply lock: one writer at a time per state database, and who holds it (DESIGN.md §3).

SQLite: `BEGIN IMMEDIATE` takes the database's write lock, waiting up to the lock timeout (busy
timeout); the holder is published in `<db>.holder.json` while held. PostgreSQL: a transaction-level
advisory lock, polled until the timeout; the holder is published as the backend's
`application_name`, which other sessions read from pg_stat_activity joined with pg_locks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from reconciler.errors import LockTimeout
from state.engine import begin_immediate, is_sqlite_busy

# pg_advisory_xact_lock(bigint) key: "courier" in ASCII, below 2**31 so pg_locks shows it in objid.
APPLY_LOCK_KEY = 0x636F7572
PG_POLL_S = 0.05
PG_NAME_MAX = 63  # NAMEDATALEN - 1: PostgreSQL truncates application_name beyond this

Release = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the apply lock: the caller's description plus where it runs and since when."""

    holder: str
    pid: int
    host: str
    since: datetime

    @classmethod
    def me(cls, holder: str) -> Holder:
        return cls(holder, os.getpid(), socket.gethostname(), datetime.now(UTC))

    def describe(self) -> str:
        return f"{self.holder}{self.where()}, since {_iso(self.since)}"

    def where(self) -> str:
        """` (pid N on HOST)`, leaving out what the caller's description already says."""
        parts = [] if f"pid {self.pid}" in self.holder else [f"pid {self.pid}"]
        if self.host not in self.holder:
            parts.append(f"on {self.host}")
        return f" ({' '.join(parts)})" if parts else ""


def lock_for_write(conn: Connection, *, timeout: float, holder: str) -> Release:
    """Begin the transaction of `conn` holding the apply lock, or raise `LockTimeout`.

    Returns a hook to call while the lock is still held, just before commit or rollback.
    """
    if conn.dialect.name == "sqlite":
        return _lock_sqlite(conn, timeout, Holder.me(holder))
    return _lock_postgres(conn, timeout, Holder.me(holder))


def holder_path(conn: Connection) -> Path | None:
    database = conn.engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + ".holder.json")


def _lock_sqlite(conn: Connection, timeout: float, me: Holder) -> Release:
    path = holder_path(conn)
    started = time.monotonic()
    begin_immediate(conn, timeout)
    try:
        conn.begin()
    except OperationalError as exc:
        if not is_sqlite_busy(exc):
            raise
        waited = time.monotonic() - started
        raise LockTimeout(_read_holder_file(path), waited) from exc
    if path is None:
        return lambda: None
    # Written and removed only while holding the write lock, so writers never race on it.
    tmp = path.with_name(f"{path.name}.{me.pid}.tmp")
    tmp.write_text(
        json.dumps({"holder": me.holder, "pid": me.pid, "host": me.host, "since": _iso(me.since)}),
        encoding="utf-8",
    )
    tmp.replace(path)

    def release() -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    return release


def _read_holder_file(path: Path | None) -> str:
    unknown = "holder unknown: another process is writing to the state database"
    if path is None:
        return unknown
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = Holder(
            str(data["holder"]),
            int(data["pid"]),
            str(data["host"]),
            datetime.fromisoformat(str(data["since"])),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return unknown
    if found.host == socket.gethostname() and not _alive(found.pid):
        return f"{unknown} (stale record of {found.describe()})"
    return found.describe()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_postgres(conn: Connection, timeout: float, me: Holder) -> Release:
    conn.begin()
    started = time.monotonic()
    deadline = started + timeout
    while not conn.scalar(select(func.pg_try_advisory_xact_lock(APPLY_LOCK_KEY))):
        if time.monotonic() >= deadline:
            waited = time.monotonic() - started
            description = _pg_holder(conn)
            conn.rollback()
            raise LockTimeout(description, waited)
        time.sleep(PG_POLL_S)
    # SET LOCAL semantics (is_local=true): reverts when the transaction ends.
    conn.execute(
        text("SELECT set_config('application_name', :name, true)"),
        {"name": _application_name(me)},
    )
    return lambda: None


def _application_name(me: Holder) -> str:
    suffix = me.where()
    room = PG_NAME_MAX - len(suffix)
    if room < 8:
        return (me.holder + suffix)[:PG_NAME_MAX]
    holder = me.holder if len(me.holder) <= room else me.holder[: room - 3] + "..."
    return holder + suffix


def _pg_holder(conn: Connection) -> str:
    row = conn.execute(
        text(
            "SELECT a.application_name, a.pid, host(a.client_addr), a.xact_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
            "AND l.objid = :key AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"key": APPLY_LOCK_KEY},
    ).first()
    if row is None:
        return "holder unknown: the lock was released while we looked"
    name, backend_pid, client, since = row
    where = f"from {client}" if client else "over a local socket"
    started = f", since {_iso(since)}" if since is not None else ""
    return f"{name or 'unnamed session'}; backend pid {backend_pid} {where}{started}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
