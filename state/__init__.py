"""SQL persistence with sqlmodel: tables, engine, migrations and the store (DESIGN.md §1).

`open_store(url)` is the usual entry point; it implements `reconciler.ports.StateStore` and
`reconciler.ports.ExecutionStore`.
"""

from state.engine import default_url, open_engine
from state.errors import DuplicateJobName, DuplicateOccurrence
from state.migrating import migrate
from state.nodes import NodeDeclaration, StoredNode
from state.queries import JournalRecord, Page
from state.store import SqlStateStore, open_store

__all__ = [
    "DuplicateJobName",
    "DuplicateOccurrence",
    "JournalRecord",
    "NodeDeclaration",
    "Page",
    "SqlStateStore",
    "StoredNode",
    "default_url",
    "migrate",
    "open_engine",
    "open_store",
]
