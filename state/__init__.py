"""SQL persistence with sqlmodel: tables, engine, migrations and the store (DESIGN.md §1).

`open_store(url)` is the usual entry point; it implements `reconciler.ports.StateStore`.
"""

from state.engine import default_url, open_engine
from state.errors import DuplicateJobName, DuplicateOccurrence
from state.migrating import migrate
from state.queries import JournalRecord, Page
from state.store import SqlStateStore, open_store

__all__ = [
    "DuplicateJobName",
    "DuplicateOccurrence",
    "JournalRecord",
    "Page",
    "SqlStateStore",
    "default_url",
    "migrate",
    "open_engine",
    "open_store",
]
