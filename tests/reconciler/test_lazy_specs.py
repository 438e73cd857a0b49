"""A no-op plan loads no stored spec and reads no unchanged file (DESIGN.md §8, issue 3 bench).

`make_plan` asks for the stored specs of changed jobs only; a `Desired` reused from the state
fetches its spec only when something reads it; `desired_from_worktree` takes blob ids of files
git vouches for from the index and reads and hashes everything else.
"""

from __future__ import annotations

import copy
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from reconciler.loading.desired import desired_from_worktree, git_blob_id
from reconciler.planning import Action, Desired, make_plan
from reconciler.ports import StoredJob
from tests.reconciler.test_planning import desired, job_doc, state, stored


def without_spec(job: StoredJob) -> StoredJob:
    return replace(job, spec={})


def test_only_jobs_whose_hash_differs_have_their_spec_asked_for() -> None:
    same, old = desired(job_doc("same")), desired(job_doc("changed"))
    new = desired(job_doc("changed", description="new words"))
    jobs = state(without_spec(stored(same)), without_spec(stored(old)))
    asked: list[list[str]] = []

    def specs(ids: Any) -> dict[str, dict[str, Any]]:
        asked.append(sorted(ids))
        return {"id-changed": old.spec}

    plan = make_plan([same, new], jobs, specs)
    assert asked == [["id-changed"]]
    by_name = {c.name: c for c in plan.changes}
    assert by_name["same"].action is Action.NOOP
    update = by_name["changed"]
    assert update.action is Action.UPDATE and not update.reruns
    assert [(f.path, f.old, f.new) for f in update.fields] == [("description", "d", "new words")]
    assert plan == make_plan([same, new], state(stored(same), stored(old)))


def test_a_plan_without_changes_asks_for_no_spec() -> None:
    a = desired(job_doc("a"))

    def specs(ids: Any) -> dict[str, dict[str, Any]]:
        raise AssertionError("no spec is needed")

    plan = make_plan([a], state(without_spec(stored(a))), specs)
    assert not plan.has_changes


def test_a_lazy_desired_fetches_its_spec_once_and_only_when_read() -> None:
    a = desired(job_doc("a"))
    calls: list[int] = []

    def fetch() -> dict[str, Any]:
        calls.append(1)
        return a.spec

    lazy = Desired(a.name, a.path, None, a.hash, "blob", fetch=fetch)
    plan = make_plan([lazy], state(stored(a)))
    assert plan.fingerprint() == make_plan([a], state(stored(a))).fingerprint()
    assert "<not loaded>" in repr(lazy) and calls == []
    assert lazy.spec == a.spec and lazy.spec is lazy.spec and calls == [1]
    assert lazy == Desired(a.name, a.path, a.spec, a.hash, "blob")
    assert copy.deepcopy(lazy) == lazy == copy.copy(lazy)
    with pytest.raises(AttributeError):
        lazy.name = "b"
    with pytest.raises(TypeError):
        Desired("a", "p", None, "h")


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_blob_ids_from_the_index_and_the_work_tree_agree(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    (jobs / "team").mkdir(parents=True)
    for name in ("kept", "edited", "staged"):
        (jobs / "team" / f"{name}.json").write_bytes(orjson.dumps(job_doc(name)))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "jobs")
    (jobs / "team" / "edited.json").write_bytes(orjson.dumps(job_doc("edited", description="x")))
    (jobs / "team" / "staged.json").write_bytes(orjson.dumps(job_doc("staged", description="y")))
    _git(tmp_path, "add", "jobs.d/team/staged.json")
    (jobs / "new.json").write_bytes(orjson.dumps(job_doc("new")))

    first, result = desired_from_worktree([jobs], tmp_path)
    assert not result.errors
    # applied jobs with blob ids make desired_from_worktree ask git's index
    known = [replace(stored(d), id=f"id-{d.name}", blob_id=d.blob_id, spec={}) for d in first]
    asked: list[str] = []

    def spec_of(job: StoredJob) -> dict[str, Any]:
        asked.append(job.name)
        return next(d.spec for d in first if d.name == job.name)

    again, result = desired_from_worktree([jobs], tmp_path, known, spec_of)
    assert not result.errors
    on_disk = {str(p.relative_to(tmp_path)): git_blob_id(p.read_bytes()) for p in jobs.rglob("*.*")}
    assert {d.path: d.blob_id for d in again} == on_disk
    assert asked == []  # every file is unchanged since `first`: nothing parsed, no spec read
    assert again == first
    assert sorted(asked) == ["edited", "kept", "new", "staged"]
