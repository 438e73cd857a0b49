"""The GitOps loop end to end (issue 3, DESIGN.md §3): commit job files, plan, apply, edit, delete.

Real git, the real `courier` process and the real SQLite file; the state is read back through
`state.open_store`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.support import GitRepo, expect, job_doc, table_rows

FILES = {"alpha.json": "alpha", "beta.yaml": "beta", "gamma.toml": "gamma"}


def plan_json(repo: GitRepo, *args: str) -> dict[str, Any]:
    proc = expect(repo.courier("plan", "-o", "json", *args), 0)
    return json.loads(proc.stdout)


def change_of(plan: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in plan["changes"] if c["name"] == name]
    assert len(found) == 1, plan
    return found[0]


def statuses(store: Any, job_id: str) -> list[str]:
    return [str(i.status) for i in store.instances(job_id)]


def start_three(repo: GitRepo) -> None:
    for rel, name in FILES.items():
        repo.write_job(rel, job_doc(name, command=f"echo {name}"))
    repo.commit("three jobs, one per format")


def test_three_new_files_plan_apply_converge(git_repo: GitRepo) -> None:
    start_three(git_repo)

    expect(git_repo.courier("plan", "--detailed-exitcode"), 2)
    plan = plan_json(git_repo)
    assert plan["summary"] == {"create": 3, "update": 0, "cancel": 0, "noop": 0, "drift": 0}
    assert {c["name"]: c["path"] for c in plan["changes"]} == {
        name: f"jobs.d/{rel}" for rel, name in FILES.items()
    }
    assert plan["stateSerial"] == 0

    expect(git_repo.courier("apply"), 0)
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)

    store = git_repo.store()
    state = store.read()
    assert sorted(state.jobs) == sorted(FILES.values())
    head = git_repo.head()
    for rel, name in FILES.items():
        job = state.jobs[name]
        assert str(job.status) == "active" and job.managed
        assert statuses(store, job.id) == ["pending"]  # an immediate job gets one instance now
        [version] = store.job_versions(job.id)
        assert (version.source_path, version.git_commit) == (f"jobs.d/{rel}", head)


def test_description_edit_is_metadata_only(git_repo: GitRepo) -> None:
    start_three(git_repo)
    expect(git_repo.courier("apply"), 0)
    store = git_repo.store()
    beta = store.read().jobs["beta"]

    git_repo.write_job("beta.yaml", job_doc("beta", command="echo beta", description="now noted"))
    git_repo.commit("describe beta")
    expect(git_repo.courier("plan", "--detailed-exitcode"), 2)
    plan = plan_json(git_repo)
    assert plan["summary"]["update"] == 1 and plan["summary"]["noop"] == 2
    change = change_of(plan, "beta")
    assert change["action"] == "update"
    assert change["reruns"] is False
    assert [f["path"] for f in change["fields"]] == ["description"]

    expect(git_repo.courier("apply"), 0)
    after = store.read().jobs["beta"]
    assert after.id == beta.id and after.version == 2
    assert after.spec["description"] == "now noted"
    assert statuses(store, beta.id) == ["pending"], "a description change must not re-run"
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)


def test_command_change_of_immediate_job_reruns(git_repo: GitRepo) -> None:
    start_three(git_repo)
    expect(git_repo.courier("apply"), 0)
    store = git_repo.store()
    gamma = store.read().jobs["gamma"]
    [first] = store.instances(gamma.id)

    git_repo.write_job("gamma.toml", job_doc("gamma", command="echo gamma v2"))
    git_repo.commit("change gamma's command")
    plan = plan_json(git_repo)
    change = change_of(plan, "gamma")
    assert change["action"] == "update" and change["reruns"] is True
    command = {"path": "actions.steps[0].command.linux[0]", "old": "echo gamma"}
    assert {**command, "new": "echo gamma v2"} in change["fields"]

    expect(git_repo.courier("apply"), 0)
    instances = {i.id: i for i in store.instances(gamma.id)}
    assert len(instances) == 2
    assert str(instances.pop(first.id).status) == "canceled"
    [new] = instances.values()
    assert (str(new.status), new.job_version) == ("pending", 2)
    assert store.read().jobs["gamma"].spec["actions"]["steps"][0]["command"]["linux"] == [
        "echo gamma v2"
    ]
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)


def test_deleted_file_cancels_job_and_pending_instances(git_repo: GitRepo) -> None:
    start_three(git_repo)
    expect(git_repo.courier("apply"), 0)
    store = git_repo.store()
    alpha = store.read().jobs["alpha"]

    git_repo.remove("alpha.json")
    git_repo.commit("drop alpha")
    plan = plan_json(git_repo)
    assert plan["summary"]["cancel"] == 1
    assert change_of(plan, "alpha")["action"] == "cancel"

    expect(git_repo.courier("apply"), 0)
    jobs = store.read().jobs
    assert str(jobs["alpha"].status) == "canceled"
    assert statuses(store, alpha.id) == ["canceled"]
    assert str(jobs["beta"].status) == str(jobs["gamma"].status) == "active"
    assert statuses(store, jobs["beta"].id) == ["pending"]
    # A canceled job whose file stays gone is settled: nothing left to do.
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)


def test_apply_twice_changes_nothing_the_second_time(git_repo: GitRepo) -> None:
    start_three(git_repo)
    expect(git_repo.courier("apply"), 0)
    store = git_repo.store()
    serial = store.serial()
    jobs = table_rows(git_repo.state_db, "jobs")
    versions = table_rows(git_repo.state_db, "job_versions")
    instances = table_rows(git_repo.state_db, "instances")

    second = expect(git_repo.courier("apply", "-o", "json"), 0)
    result = json.loads(second.stdout)
    assert result["applied"] is False and result["instances"] == []
    assert store.serial() == serial == result["stateSerial"]
    assert table_rows(git_repo.state_db, "jobs") == jobs
    assert table_rows(git_repo.state_db, "job_versions") == versions
    assert table_rows(git_repo.state_db, "instances") == instances
    latest, previous = store.journal(2)
    assert latest.entry.outcome == "noop" and previous.entry.outcome == "applied"
    assert latest.serial == serial
    assert latest.entry.counts["noop"] == 3


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_converting_a_file_between_formats_is_not_a_change(git_repo: GitRepo, fmt: str) -> None:
    git_repo.write_job("job.json", job_doc("shape-shifter", description="same job"))
    git_repo.commit()
    expect(git_repo.courier("apply"), 0)
    git_repo.remove("job.json")
    git_repo.write_job(f"job.{fmt}", job_doc("shape-shifter", description="same job"))
    git_repo.commit(f"as {fmt}")
    plan = plan_json(git_repo)
    assert change_of(plan, "shape-shifter")["action"] == "noop", plan
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)
