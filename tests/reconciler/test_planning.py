"""Pure planning: desired vs stored -> create/update/cancel/noop/drift, with field diffs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.model import canonical, spec_hash, validate_document
from reconciler.model.enums import JobStatus
from reconciler.planning import Action, Desired, make_plan
from reconciler.ports import StoredJob, StoredState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job_doc(name: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "description": "d",
        "scheduleRule": "immediate",
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 60,
                    "batchSize": {"type": "number", "value": 1},
                    "distributionMethod": "batching",
                    "successCriteria": [
                        {"status": "success", "numRuns": {"type": "percent", "value": 100}}
                    ],
                    "nodeListType": "nodes",
                    "nodeIdentifiers": ["local"],
                }
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "s",
                    "interpreter": {"name": "chef-platform/shell-interpreter"},
                    "command": {"linux": ["true"]},
                }
            ]
        },
    }
    doc.update(overrides)
    return doc


def desired(doc: dict[str, Any], path: str | None = None) -> Desired:
    v = validate_document(doc)
    assert v.job is not None, v.findings
    spec = canonical(v.job)
    return Desired(v.job.name, path or f"jobs.d/{v.job.name}.json", spec, spec_hash(spec))


def stored(d: Desired, *, status: JobStatus = JobStatus.ACTIVE, managed: bool = True) -> StoredJob:
    return StoredJob(
        id=f"id-{d.name}",
        name=d.name,
        status=status,
        managed=managed,
        origin_path=d.path,
        version=1,
        spec=d.spec,
        hash=d.hash,
        blob_id=None,
        created_at=T0,
        modified_at=T0,
        next_execution_time=None,
        execution_count=0,
    )


def state(*jobs: StoredJob, serial: int = 7) -> StoredState:
    return StoredState({j.name: j for j in jobs}, serial)


def test_new_files_are_creates_and_the_plan_remembers_the_serial() -> None:
    plan = make_plan([desired(job_doc("a")), desired(job_doc("b"))], state(serial=3))
    assert [(c.action, c.name) for c in plan.changes] == [
        (Action.CREATE, "a"),
        (Action.CREATE, "b"),
    ]
    assert plan.summary["create"] == 2
    assert plan.serial == 3
    assert plan.has_changes


def test_unchanged_job_is_a_noop_and_the_plan_has_no_changes() -> None:
    a = desired(job_doc("a"))
    plan = make_plan([a], state(stored(a)))
    assert [c.action for c in plan.changes] == [Action.NOOP]
    assert not plan.has_changes


def test_description_change_is_an_update_that_does_not_rerun() -> None:
    old = desired(job_doc("a"))
    new = desired(job_doc("a", description="new words"))
    (change,) = make_plan([new], state(stored(old))).changes
    assert change.action is Action.UPDATE
    assert change.reruns is False
    assert [(f.path, f.old, f.new) for f in change.fields] == [("description", "d", "new words")]


def test_command_change_is_an_update_that_reruns_with_the_field_path() -> None:
    old = desired(job_doc("a"))
    doc = job_doc("a")
    doc["actions"]["steps"][0]["command"] = {"linux": ["echo changed"]}
    (change,) = make_plan([desired(doc)], state(stored(old))).changes
    assert change.reruns is True
    assert [f.path for f in change.fields] == ["actions.steps[0].command.linux[0]"]
    assert change.fields[0].old == "true"
    assert change.fields[0].new == "echo changed"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scheduleRule", "RRULE:FREQ=DAILY"),
        ("exceptionRules", [{"rrule": "RRULE:FREQ=WEEKLY", "duration": 5}]),
    ],
)
def test_schedule_changes_rerun(field: str, value: Any) -> None:
    old = desired(job_doc("a"))
    (change,) = make_plan([desired(job_doc("a", **{field: value}))], state(stored(old))).changes
    assert change.reruns is True


def test_target_change_reruns() -> None:
    old = desired(job_doc("a"))
    doc = job_doc("a")
    doc["target"]["groups"][0]["nodeIdentifiers"] = ["local", "web-1"]
    (change,) = make_plan([desired(doc)], state(stored(old))).changes
    assert change.reruns is True


def test_removed_file_cancels_the_managed_job_but_never_an_unmanaged_one() -> None:
    a, b = desired(job_doc("a")), desired(job_doc("b"))
    plan = make_plan([], state(stored(a), stored(b, managed=False)))
    actions = {c.name: c.action for c in plan.changes}
    assert actions == {"a": Action.CANCEL, "b": Action.NOOP}
    assert plan.summary["cancel"] == 1


def test_already_canceled_job_without_a_file_is_not_canceled_again() -> None:
    a = desired(job_doc("a"))
    plan = make_plan([], state(stored(a, status=JobStatus.CANCELED)))
    assert plan.changes == ()


def test_job_canceled_outside_git_is_drift() -> None:
    a = desired(job_doc("a"))
    (change,) = make_plan([a], state(stored(a, status=JobStatus.CANCELED))).changes
    assert change.action is Action.DRIFT
    assert make_plan([a], state(stored(a, status=JobStatus.CANCELED))).has_changes


def test_a_file_adopts_an_unmanaged_job_of_the_same_name() -> None:
    a = desired(job_doc("a"))
    (change,) = make_plan([a], state(stored(a, managed=False))).changes
    assert change.action is Action.UPDATE
    assert "adopt" in change.note


def test_mass_cancel_is_flagged_when_more_than_half_go() -> None:
    jobs = [desired(job_doc(n)) for n in "abcd"]
    plan = make_plan(jobs[:1], state(*(stored(j) for j in jobs)))
    assert plan.summary["cancel"] == 3
    assert plan.mass_cancel
    assert not make_plan(jobs[:3], state(*(stored(j) for j in jobs))).mass_cancel


def test_plan_json_has_the_design_shape() -> None:
    old = desired(job_doc("a"))
    new = desired(job_doc("a", description="x"))
    out = make_plan([new, desired(job_doc("b"))], state(stored(old), serial=9)).to_json()
    assert set(out) == {"summary", "changes", "stateSerial"}
    assert out["stateSerial"] == 9
    assert set(out["summary"]) == {"create", "update", "cancel", "noop", "drift"}
    update = next(c for c in out["changes"] if c["action"] == "update")
    assert update["fields"] == [{"path": "description", "old": "d", "new": "x"}]
    assert update["reruns"] is False


def test_fingerprint_changes_with_the_plan() -> None:
    a = desired(job_doc("a"))
    p1 = make_plan([a], state(serial=1))
    p2 = make_plan([a], state(serial=2))
    b = desired(job_doc("a", description="other"))
    p3 = make_plan([b], state(serial=1))
    assert len({p1.fingerprint(), p2.fingerprint(), p3.fingerprint()}) == 3
    assert p1.fingerprint() == make_plan([copy.deepcopy(a)], state(serial=1)).fingerprint()
