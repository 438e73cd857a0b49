"""Bulk reads for `courier report`: the runs of many instances and the steps of many runs in a few
queries (`SqlStateStore.runs_of`, `SqlStateStore.steps_of`; `reconciler.reporting.data` uses
them when the store has them).

A report reads 100,000 runs and 500,000 rows in all, so these skip SQLAlchemy's typed result
processing: plain SQL through the driver, one query per `CHUNK` ids, every chunk in the caller's
transaction. Values are made exactly as `runs()` and `steps()` make them: statuses are the same
enum members and timestamps go through the result processor of the tables' own `UtcDateTime`
column type for the connection's dialect (SQLite: naive UTC text; PostgreSQL: `timestamptz`),
so the results compare equal (`==`) to theirs, with the same aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

from reconciler.model.enums import RunStatus, StepStatus
from reconciler.ports import AttemptResult, StepResult, StoredRun
from state.tables import RUNS

CHUNK = 900  # ids per IN (...): below SQLite's oldest default limit of 999 parameters

E = TypeVar("E", bound=StrEnum)
Timestamp = Callable[[Any], Any]  # raw driver value -> aware UTC datetime, None -> None

# Only `?`/`%s` placeholders are ever put into these (by `_queries`), never values.
RUNS_SQL = (
    "SELECT id, instance_id, node_id, group_number, status, received_time, last_update_time,"
    " reason FROM runs WHERE instance_id IN ({ids})"
    " ORDER BY instance_id, group_number, position, id"  # runs(): group, position, id
)
STEPS_SQL = (
    "SELECT s.run_id, s.step_number, s.status, s.num_attempts, s.reason, s.interpreter_path,"
    " s.interpreter_version, a.attempt_no, a.status, a.exit_code, a.started_at, a.ended_at,"
    " a.reason, a.evidence_key"
    " FROM steps s LEFT JOIN attempts a ON a.run_id = s.run_id AND a.step_number = s.step_number"
    " WHERE s.run_id IN ({ids})"
    " ORDER BY s.run_id, s.step_number, a.attempt_no"  # steps(): by number, attempts by number
)


class _Members(dict[str, E], Generic[E]):
    """Stored text -> enum member (what `EnumText` returns), by dict lookup; unknown text
    raises the enum's own ValueError, as `EnumText` does."""

    def __init__(self, enum: type[E]) -> None:
        super().__init__((member.value, member) for member in enum)
        self.enum = enum

    def __missing__(self, value: str) -> E:
        return self.enum(value)


RUN_STATUS = _Members(RunStatus)
STEP_STATUS = _Members(StepStatus)


def runs_of(conn: Connection, instance_ids: Sequence[str]) -> dict[str, list[StoredRun]]:
    """The runs of each instance, as `execution.instance_runs` orders them; an unknown id (or
    an instance without runs) maps to []. Keys: the given ids, once each, in the given order."""
    found: dict[str, list[StoredRun]] = {instance_id: [] for instance_id in instance_ids}
    utc = _timestamp(conn)
    for sql, chunk in _queries(conn, RUNS_SQL, list(found)):
        rows = conn.exec_driver_sql(sql, chunk).all()  # fetchall: faster than row by row
        for run_id, instance_id, node, group, status, received, updated, reason in rows:
            found[instance_id].append(
                StoredRun(
                    run_id,
                    instance_id,
                    node,
                    group,
                    RUN_STATUS[status],
                    utc(received),
                    utc(updated),
                    reason or "",
                )
            )
    return found


def steps_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[StepResult]]:
    """The steps of each run with their attempts, as `execution.run_steps` makes them but with
    `inputs` and `outputs` left "" (not even read); an unknown id (or a run without steps) maps
    to []. Keys: the given ids, once each, in the given order."""
    found: dict[str, list[StepResult]] = {run_id: [] for run_id in run_ids}
    utc = _timestamp(conn)
    for sql, chunk in _queries(conn, STEPS_SQL, list(found)):
        step: tuple[Any, ...] | None = None  # the step whose attempts are being collected
        attempts: list[AttemptResult] = []
        for (
            run_id,
            number,
            status,
            tries,
            reason,
            path,
            interp_version,
            attempt_no,
            a_status,
            exit_code,
            started,
            ended,
            a_reason,
            key,
        ) in conn.exec_driver_sql(sql, chunk).all():
            if step is None or number != step[1] or run_id != step[0]:
                if step is not None:
                    found[step[0]].append(_step(step, attempts))
                step, attempts = (run_id, number, status, tries, reason, path, interp_version), []
            if attempt_no is not None:  # None: a step without attempts (LEFT JOIN)
                attempts.append(
                    AttemptResult(
                        attempt_no,
                        STEP_STATUS[a_status],
                        exit_code,
                        utc(started),
                        utc(ended),
                        a_reason or "",
                        key,
                    )
                )
        if step is not None:
            found[step[0]].append(_step(step, attempts))
    return found


def _step(step: tuple[Any, ...], attempts: list[AttemptResult]) -> StepResult:
    _, number, status, tries, reason, path, interp_version = step
    return StepResult(  # positional (cheaper): step_number .. interpreter_version, attempts
        number,
        STEP_STATUS[status],
        tries,
        "",  # inputs
        "",  # outputs
        reason or "",
        path or "",
        interp_version or "",
        tuple(attempts),
    )


def _timestamp(conn: Connection) -> Timestamp:
    """Raw driver value -> aware UTC datetime, by the same processor `runs()`/`steps()` get
    from the tables' `UtcDateTime` columns on this dialect (every timestamp column has it)."""
    dialect = conn.dialect
    column_type = RUNS.c.received_time.type
    process = column_type.dialect_impl(dialect).result_processor(dialect, None)
    if process is None:  # pragma: no cover - UtcDateTime always converts
        raise TypeError(f"{column_type!r} has no result processor on {dialect.name}")
    return process


def _queries(conn: Connection, sql: str, ids: list[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """`sql` with its `{ids}` filled in for each chunk of `ids`, with the chunk's parameters."""
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"  # sqlite3 | psycopg
    for start in range(0, len(ids), CHUNK):
        chunk = tuple(ids[start : start + CHUNK])
        yield sql.format(ids=", ".join([placeholder] * len(chunk))), chunk
