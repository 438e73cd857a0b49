"""Schema migrations: alembic scripts shipped in `state/migrations/`, run programmatically.

`migrate(engine)` brings a database to the head revision on first use and refuses one whose
revision this courier does not know (made by a newer courier). Upgrades run in one transaction
holding a lock, so two processes opening a fresh database do not both create the schema.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from reconciler.errors import StateError
from state.engine import begin_immediate, describe, is_sqlite_busy

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# alembic loads every script to find the head: ~0.5 s per command. Opening an up-to-date
# database only needs the head id, read from the scripts' text, and one SELECT.
_REVISION = re.compile(r'^revision(?:: str)?\s*=\s*["\']([^"\']+)["\']', re.M)
_DOWN = re.compile(r'^down_revision[^=]*=\s*["\']([^"\']+)["\']', re.M)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x636F7573  # distinct from the apply lock
MIGRATION_LOCK_TIMEOUT_S = 60.0


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


@cache
def quick_head() -> str | None:
    """The head revision read from the scripts' text (None if that is ambiguous)."""
    revisions, downs = set(), set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        body = script.read_text(encoding="utf-8")
        found = _REVISION.search(body)
        if found:
            revisions.add(found.group(1))
        downs.update(_DOWN.findall(body))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None  # no table yet: a new database
    return str(rows[0][0]) if len(rows) == 1 else None


def head_revision() -> str:
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's alembic revision (None for a database courier never touched)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the state database to the head revision; refuse one newer than this code."""
    quick = quick_head()
    if quick is not None and _stored_revision(engine) == quick:
        return
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
                    from alembic import command

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
    from alembic.util.exc import CommandError

    try:
        known = _script().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise StateError(
            f"the state database is at schema revision {current}, newer than this courier "
            f"(knows up to {head}); upgrade courier"
        )
