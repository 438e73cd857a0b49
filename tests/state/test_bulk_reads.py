"""The bulk reads of `courier report` (`runs_of`, `steps_of`, state/bulk.py) give exactly what
`runs()` and `steps()` give, id by id, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pytest

from reconciler.errors import NotFound
from reconciler.model.enums import RunStatus, StepStatus
from reconciler.ports import Assignment, AttemptResult, RunRecord, StateWriter, StepResult
from reconciler.reporting.data import BulkReportSource
from state import SqlStateStore, bulk
from tests.state.conftest import StoreFactory
from tests.state.helpers import CET, T0, add_jobs

T1 = T0 + timedelta(minutes=1)


@dataclass(frozen=True)
class Filled:
    instances: list[str]  # every instance, the one without runs too
    runs: list[str]  # every run: pending, running, canceled, finished with and without steps
    empty_instance: str
    no_step_runs: list[str]


def run_id(tag: str) -> str:
    """A uuid-shaped run id starting with `tag`, so id order can be set against group order."""
    return tag + str(uuid.uuid4())[len(tag) :]


def attempt(no: int, status: StepStatus, **extra: Any) -> AttemptResult:
    start = T1 + timedelta(seconds=no, microseconds=123_457)
    return AttemptResult(
        no, status, 0 if status is StepStatus.SUCCESS else 1, start, start, **extra
    )


def fill(store: SqlStateStore) -> Filled:
    """Two jobs: `alpha` with an instance of 6 runs over two groups (given group 1 first, ids
    against their position) and one without runs; `beta` with an instance of 3 runs."""
    jobs = add_jobs(store, "alpha", "beta")
    alpha, beta = jobs["alpha"].id, jobs["beta"].id
    first = [
        Assignment(run_id("f"), "db-1", 1),
        Assignment(run_id("0"), "db-2", 1),
        Assignment(run_id("e"), "web-2", 0),
        Assignment(run_id("1"), "web-1", 0),
        Assignment(run_id("9"), "web-3", 0),
        Assignment(run_id("5"), "cache", 2),
    ]
    second = [Assignment(run_id(t), f"node-{t}", 0) for t in ("c", "a", "b")]

    def mutation(writer: StateWriter) -> list[str]:
        made = [
            writer.create_instance(alpha, 1, T0, T0, first),
            writer.create_instance(alpha, 1, T0 + timedelta(hours=1), T0),  # no runs
            writer.create_instance(beta, 1, T0, T0, second),
        ]
        writer.bump_serial()
        return made

    instances = store.write(mutation, lock_timeout=5, holder="test")
    ran = [first[0], first[2], first[3], first[4], second[1], second[2]]
    store.start_runs([a.run_id for a in [*ran, first[5]]], T0.astimezone(CET))
    full = StepResult(
        1,
        StepStatus.FAILURE,
        3,
        inputs='{"who": "wörld", "token": "****"}',
        outputs='{"ok": false}',
        reason="the command exited with 1",
        interpreter_path="chef-platform/shell-interpreter",
        interpreter_version="1.2.3",
        attempts=(
            attempt(2, StepStatus.FAILURE, reason="exit 1", evidence_key="ev/2"),
            attempt(1, StepStatus.FAILURE, evidence_key="ev/1"),
            attempt(3, StepStatus.FAILURE, reason="exit 1 ✗", evidence_key="ev/3"),
        ),
    )
    plain = StepResult(2, StepStatus.SUCCESS, 1, attempts=(attempt(1, StepStatus.SUCCESS),))
    untried = StepResult(3, StepStatus.SKIPPED, 0, reason="an earlier step failed")
    end = (T1 + timedelta(seconds=30)).astimezone(CET)
    records = [
        RunRecord(ran[0].run_id, RunStatus.FAILURE, T1, end, (untried, full, plain), "step 1"),
        RunRecord(ran[1].run_id, RunStatus.SUCCESS, T1, end, (plain,)),
        RunRecord(ran[2].run_id, RunStatus.SUCCESS, T1, end, ()),  # finished without steps
        RunRecord(ran[3].run_id, RunStatus.SUCCESS, T1, end, (plain, untried)),
        RunRecord(ran[4].run_id, RunStatus.FAILURE, T1, end, (full,), "step 1 failed"),
    ]
    store.record_runs(records)
    store.end_runs([first[1].run_id], RunStatus.CANCELED, T1, "canceled by the operator")
    # first[5] stays running and second[0] pending (received_time NULL): neither has steps
    runs = [a.run_id for a in [*first, *second]]
    no_steps = [ran[2].run_id, first[1].run_id, first[5].run_id, second[0].run_id]
    return Filled(instances, runs, instances[1], no_steps)


def blank(steps: Sequence[StepResult]) -> list[StepResult]:
    return [dataclasses.replace(step, inputs="", outputs="") for step in steps]


def expected_runs(store: SqlStateStore, ids: Sequence[str]) -> dict[str, list[Any]]:
    """What `runs()` gives per id, [] where it says NotFound."""
    found: dict[str, list[Any]] = {}
    for instance_id in ids:
        try:
            found[instance_id] = store.runs(instance_id)
        except NotFound:
            found[instance_id] = []
    return found


def expected_steps(store: SqlStateStore, ids: Sequence[str]) -> dict[str, list[StepResult]]:
    """What `steps()` gives per id with inputs/outputs blanked, [] where it says NotFound."""
    found: dict[str, list[StepResult]] = {}
    for id_ in ids:
        try:
            found[id_] = blank(store.steps(id_))
        except NotFound:
            found[id_] = []
    return found


@pytest.fixture
def filled(store: SqlStateStore) -> Filled:
    return fill(store)


def test_the_store_has_the_reads_the_report_looks_for(store: SqlStateStore) -> None:
    assert isinstance(store, BulkReportSource)
    assert store.runs_of([]) == {}
    assert store.steps_of([]) == {}


def test_runs_of_equals_runs_for_every_instance(store: SqlStateStore, filled: Filled) -> None:
    unknown = str(uuid.uuid4())
    ids = [*filled.instances, unknown]
    found = store.runs_of(ids)
    assert list(found) == ids
    assert found == expected_runs(store, ids)
    assert found[filled.empty_instance] == []
    assert found[unknown] == []
    with pytest.raises(NotFound):
        store.runs(unknown)
    # the order is runs()'s (group, then position), not the ids'
    first = found[filled.instances[0]]
    assert [(r.group_number, r.node_id) for r in first] == [
        (0, "web-2"),
        (0, "web-1"),
        (0, "web-3"),
        (1, "db-1"),
        (1, "db-2"),
        (2, "cache"),
    ]
    assert [r.id for r in first] != sorted(r.id for r in first)
    # every status and a NULL time came through as runs() gives them
    every = [run for runs in found.values() for run in runs]
    assert {r.status for r in every} == {
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.SUCCESS,
        RunStatus.FAILURE,
        RunStatus.CANCELED,
    }
    assert any(r.received_time is None for r in every)
    times = [t for r in every for t in (r.received_time, r.last_update_time) if t is not None]
    assert times
    assert all(t.tzinfo is UTC for t in times)


def test_steps_of_equals_steps_without_inputs_and_outputs(
    store: SqlStateStore, filled: Filled
) -> None:
    unknown = str(uuid.uuid4())
    ids = [*filled.runs, unknown]
    found = store.steps_of(ids)
    assert list(found) == ids
    assert found == expected_steps(store, ids)
    for run in filled.no_step_runs:
        assert found[run] == []
    assert found[unknown] == []
    with pytest.raises(NotFound):
        store.steps(unknown)
    # what the comparison covers: several steps, several attempts, a step without attempts,
    # interpreter and reasons kept, inputs and outputs left out, aware UTC times
    steps = [step for found_steps in found.values() for step in found_steps]
    assert any(len(s.attempts) == 3 for s in steps)
    assert any(not s.attempts for s in steps)
    assert any(s.interpreter_version == "1.2.3" and s.reason for s in steps)
    assert all(s.inputs == "" and s.outputs == "" for s in steps)
    stored = [s for run in filled.runs for s in store.steps(run)]
    assert any(s.inputs and s.outputs for s in stored)
    attempts = [a for s in steps for a in s.attempts]
    assert [a.attempt_no for a in max((s.attempts for s in steps), key=len)] == [1, 2, 3]
    assert all(a.started_at.tzinfo is UTC and a.ended_at.tzinfo is UTC for a in attempts)
    assert any(a.reason == "exit 1 ✗" and a.evidence_key == "ev/3" for a in attempts)


def test_ids_in_any_order_repeated_and_mixed_with_unknown_ones(
    store: SqlStateStore, filled: Filled
) -> None:
    """Unknown ids cost nothing but a place in the IN list: 1,900 of them span three chunks."""
    unknown = [str(uuid.uuid4()) for _ in range(1900)]
    instances = [*unknown[:950], *reversed(filled.instances), filled.instances[0], *unknown[950:]]
    runs = [*unknown[:950], *reversed(filled.runs), filled.runs[2], *unknown[950:]]
    found_runs = store.runs_of(instances)
    found_steps = store.steps_of(runs)
    assert list(found_runs) == list(dict.fromkeys(instances))
    assert list(found_steps) == list(dict.fromkeys(runs))
    assert found_runs == expected_runs(store, list(found_runs))
    assert found_steps == expected_steps(store, list(found_steps))


def test_small_chunks_give_the_same(
    store: SqlStateStore, filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunk borders fall between the runs of an instance's neighbours and between runs."""
    whole_runs = store.runs_of(filled.instances)
    whole_steps = store.steps_of(filled.runs)
    for size in (1, 2, 4):
        monkeypatch.setattr(bulk, "CHUNK", size)
        assert store.runs_of(filled.instances) == whole_runs
        assert store.steps_of(filled.runs) == whole_steps


def test_all_chunks_are_read_in_one_snapshot(
    store: SqlStateStore,
    stores: StoreFactory,
    filled: Filled,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process writing between two chunks changes nothing in the result."""
    other = stores()
    pending = filled.no_step_runs[-1]  # the pending run of `beta`'s instance
    beta = filled.instances[2]
    step = StepResult(1, StepStatus.SUCCESS, 1, attempts=(attempt(1, StepStatus.SUCCESS),))
    before_runs = store.runs_of([filled.instances[0], beta])
    before_steps = store.steps_of([filled.runs[0], pending])
    assert before_steps[pending] == []

    def between_chunks(write: Callable[[], None]) -> Callable[..., Iterator[Any]]:
        real = bulk._queries

        def queries(*args: Any) -> Iterator[Any]:
            for number, query in enumerate(real(*args)):
                if number == 1:
                    write()
                yield query

        return queries

    monkeypatch.setattr(bulk, "CHUNK", 1)
    monkeypatch.setattr(
        bulk,
        "_queries",
        between_chunks(lambda: other.end_runs([pending], RunStatus.CANCELED, T1, "late")),
    )
    assert store.runs_of([filled.instances[0], beta]) == before_runs
    monkeypatch.setattr(
        bulk,
        "_queries",
        between_chunks(
            lambda: other.record_runs([RunRecord(pending, RunStatus.SUCCESS, T1, T1, (step,))])
        ),
    )
    assert store.steps_of([filled.runs[0], pending]) == before_steps
    monkeypatch.undo()
    # the writes did happen (a fresh read sees them), and the bulk reads agree again
    assert store.runs_of([beta]) == expected_runs(store, [beta])
    assert store.steps_of([pending]) == {pending: [step]}
