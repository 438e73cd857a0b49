"""Enrolled nodes: declared ones (nodes.yaml, upserted at apply/execute time) and, later, agents
that enroll themselves. Backs `courier nodes list|show`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from reconciler.errors import NotFound
from state.tables import NODES

# id, name, transport, attributes, tags, skills
NodeDeclaration = tuple[str, str, str, dict[str, Any], dict[str, Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class StoredNode:
    id: str
    name: str
    transport: str
    attributes: dict[str, Any]
    tags: dict[str, Any]
    skills: dict[str, Any]
    enrolled_at: datetime
    last_seen_at: datetime | None


def upsert_nodes(conn: Connection, nodes: Sequence[NodeDeclaration], at: datetime) -> None:
    """Insert new nodes (enrolled and seen at `at`); refresh known ones, keeping `enrolled_at`."""
    rows = {
        node_id: {
            "id": node_id,
            "name": name,
            "transport": transport,
            "attributes": attributes,
            "tags": tags,
            "skills": skills,
            "enrolled_at": at,
            "last_seen_at": at,
        }
        for node_id, name, transport, attributes, tags, skills in nodes
    }  # one row per id (the last wins): PostgreSQL refuses to upsert a row twice in a statement
    if not rows:
        return
    statement = (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(NODES)
    kept = ("id", "enrolled_at")
    updates = {c.name: statement.excluded[c.name] for c in NODES.columns if c.name not in kept}
    conn.execute(
        statement.on_conflict_do_update(index_elements=["id"], set_=updates), list(rows.values())
    )


def all_nodes(conn: Connection) -> list[StoredNode]:
    """Every node, by name (then id)."""
    return [to_node(row) for row in conn.execute(select(NODES).order_by(NODES.c.name, NODES.c.id))]


def node_by_id(conn: Connection, node_id: str) -> StoredNode:
    row = conn.execute(select(NODES).where(NODES.c.id == node_id)).first()
    if row is None:
        raise NotFound(f"no node with id {node_id}")
    return to_node(row)


def to_node(row: Row[Any]) -> StoredNode:
    return StoredNode(
        id=row.id,
        name=row.name,
        transport=row.transport,
        attributes=dict(row.attributes or {}),
        tags=dict(row.tags or {}),
        skills=dict(row.skills or {}),
        enrolled_at=row.enrolled_at,
        last_seen_at=row.last_seen_at,
    )
