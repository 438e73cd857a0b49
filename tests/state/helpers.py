"""Builders shared by the state store suites: specs, versions, and jobs written through a store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from reconciler.model.canonical import spec_hash
from reconciler.ports import JobVersion, NewJob, StateWriter, StoredJob
from state import SqlStateStore

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=2))


def spec(name: str, command: str = "echo hi", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": 'ünïcode ✓ and "quotes"',
        "scheduleRule": "immediate",
        "actions": {"steps": [{"command": {"linux": [command]}, "retryCount": 2}]},
        "target": {"groups": [{"nodeListType": "nodes", "nodeIdentifiers": ["a", "b"]}]},
        "weights": [1, 2.5, None, True],
        **extra,
    }


def version(s: dict[str, Any], at: datetime = T0, commit: str | None = "c0ffee") -> JobVersion:
    return JobVersion(s, spec_hash(s), f"jobs.d/{s['name']}.json", commit, "blob1", at)


def new_job(name: str, at: datetime = T0, nxt: datetime | None = None) -> NewJob:
    return NewJob(str(uuid.uuid4()), name, True, f"jobs.d/{name}.json", at, nxt)


def add_jobs(store: SqlStateStore, *names: str, **extra: Any) -> dict[str, StoredJob]:
    """Insert jobs with `spec(name, **extra)`; returns every stored job by name."""

    def mutation(writer: StateWriter) -> None:
        for name in names:
            writer.insert_job(new_job(name), version(spec(name, **extra)))

    store.write(mutation, lock_timeout=5, holder="test")
    return store.read().jobs


def count_rows(store: SqlStateStore, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)
