"""Schema migrations: alembic scripts shipped in `state/migrations/`, run programmatically.

`migrate(engine)` brings a database to the head revision on first use and refuses one whose
revision this courier does not know (made by a newer courier). Upgrades run in one transaction
holding a lock, so two processes opening a fresh database do not both create the schema.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from reconciler.errors import StateError
from state.engine import begin_immediate, describe, is_sqlite_busy

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x636F7573  # distinct from the apply lock
MIGRATION_LOCK_TIMEOUT_S = 60.0


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's alembic revision (None for a database courier never touched)."""
    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the state database to the head revision; refuse one newer than this code."""
    head = head_revision()
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
        if current == head:
            return
        _refuse_unknown(current, head)
        with engine.connect() as conn:
            begin_immediate(conn, MIGRATION_LOCK_TIMEOUT_S)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                current = current_revision(conn)  # another process may have migrated meanwhile
                _refuse_unknown(current, head)
                if current != head:
                    config = _config()
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
    except DBAPIError as exc:
        if is_sqlite_busy(exc):
            raise StateError(
                f"the state database {describe(engine)} stayed locked for "
                f"{MIGRATION_LOCK_TIMEOUT_S:.0f}s while preparing its schema"
            ) from exc
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StateError(f"cannot prepare the state database {describe(engine)}: {reason}") from exc


def _refuse_unknown(current: str | None, head: str) -> None:
    if current is None:
        return
    try:
        known = _script().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise StateError(
            f"the state database is at schema revision {current}, newer than this courier "
            f"(knows up to {head}); upgrade courier"
        )
