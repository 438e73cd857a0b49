"""Unmanaged jobs (DESIGN.md §2, §3): created imperatively with the Chef-compatible
`scheduler jobs add-job`, listed by `plan`, never canceled by `apply`, adopted by a file with the
same name. Skipped while courier has no `scheduler jobs add-job` command.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.support import GitRepo, dump_job, expect, job_doc

AddJob = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def add_job(git_repo: GitRepo) -> AddJob:
    """`add_job(doc, fmt)`: `courier scheduler jobs add-job --body-file F --body-format FMT`."""
    probe = git_repo.courier("scheduler", "jobs", "add-job", "--help")
    if probe.returncode != 0:
        pytest.skip("courier has no `scheduler jobs add-job` command yet")

    def add(doc: dict[str, Any], fmt: str = "json") -> subprocess.CompletedProcess[str]:
        body = git_repo.tmp / f"{doc['name']}.{fmt}"
        body.write_text(dump_job(doc, fmt), encoding="utf-8")
        return git_repo.courier(
            "scheduler", "jobs", "add-job", "--body-file", str(body), "--body-format", fmt
        )

    return add


def plan_changes(repo: GitRepo) -> dict[str, dict[str, Any]]:
    plan = json.loads(expect(repo.courier("plan", "-o", "json"), 0).stdout)
    return {c["name"]: c for c in plan["changes"]}


def test_unmanaged_job_is_listed_never_canceled_and_adopted(
    git_repo: GitRepo, add_job: AddJob
) -> None:
    git_repo.write_job("managed.json", job_doc("managed"))
    git_repo.commit()
    expect(git_repo.courier("apply"), 0)

    for fmt, name in (("json", "by-hand"), ("yaml", "by-hand-yaml"), ("toml", "by-hand-toml")):
        expect(add_job(job_doc(name, command="echo imperative"), fmt), 0)
    store = git_repo.store()
    jobs = store.read().jobs
    assert not jobs["by-hand"].managed and str(jobs["by-hand"].status) == "active"
    by_hand = jobs["by-hand"].id

    changes = plan_changes(git_repo)
    assert "by-hand" in changes and changes["by-hand"]["action"] == "noop"
    # Nothing to do: listing an unmanaged job is not a change.
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)

    # apply never cancels it, not even when every managed file is gone.
    git_repo.remove("managed.json")
    git_repo.commit("no files left")
    expect(git_repo.courier("apply"), 0)
    jobs = store.read().jobs
    assert str(jobs["managed"].status) == "canceled"
    for name in ("by-hand", "by-hand-yaml", "by-hand-toml"):
        assert str(jobs[name].status) == "active" and not jobs[name].managed
    instances_before = len(store.instances(by_hand))

    # A file with the same name (and the same spec) adopts it without running it again.
    git_repo.write_job("by-hand.yaml", job_doc("by-hand", command="echo imperative"))
    git_repo.commit("adopt by-hand")
    change = plan_changes(git_repo)["by-hand"]
    assert change["action"] == "update" and change["reruns"] is False
    expect(git_repo.courier("apply"), 0)
    adopted = store.read().jobs["by-hand"]
    assert adopted.id == by_hand and adopted.managed
    assert adopted.origin_path == "jobs.d/by-hand.yaml"
    assert len(store.instances(by_hand)) == instances_before
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)

    # Adopted means managed: now its file going away cancels it.
    git_repo.remove("by-hand.yaml")
    git_repo.commit("drop by-hand")
    expect(git_repo.courier("apply"), 0)
    assert str(store.read().jobs["by-hand"].status) == "canceled"


def test_add_job_with_a_taken_name_is_refused(git_repo: GitRepo, add_job: AddJob) -> None:
    git_repo.write_job("taken.json", job_doc("taken"))
    git_repo.commit()
    expect(git_repo.courier("apply"), 0)
    proc = expect(add_job(job_doc("taken")), 1)
    assert "taken" in proc.stderr
    assert len(git_repo.store().read().jobs) == 1


def test_job_canceled_outside_git_is_drift_and_apply_restores_it(git_repo: GitRepo) -> None:
    probe = git_repo.courier("scheduler", "jobs", "cancel-job", "--help")
    if probe.returncode != 0:
        pytest.skip("courier has no `scheduler jobs cancel-job` command yet")
    for name in ("steady", "meddled"):
        git_repo.write_job(f"{name}.json", job_doc(name))
    git_repo.commit()
    expect(git_repo.courier("apply"), 0)
    store = git_repo.store()
    meddled = store.read().jobs["meddled"]

    expect(git_repo.courier("scheduler", "jobs", "cancel-job", "--jobId", meddled.id), 0)
    assert str(store.read().jobs["meddled"].status) == "canceled"
    assert [str(i.status) for i in store.instances(meddled.id)] == ["canceled"]

    expect(git_repo.courier("plan", "--detailed-exitcode"), 2)
    changes = plan_changes(git_repo)
    assert changes["meddled"]["action"] == "drift"
    assert changes["steady"]["action"] == "noop"
    expect(git_repo.courier("apply"), 0)
    restored = store.read().jobs["meddled"]
    assert (restored.id, str(restored.status), restored.version) == (meddled.id, "active", 1)
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)
