"""`--ref REV`: plan and apply the jobs of another git revision without touching the work tree, and
record that revision's commit in every version applied from it (DESIGN.md §2, issue 3).
"""

from __future__ import annotations

import json

import pytest

from tests.integration.support import GitRepo, expect, job_doc


def test_plan_and_apply_an_older_commit(git_repo: GitRepo) -> None:
    git_repo.write_job("keep.json", job_doc("keep", command="echo old"))
    git_repo.write_job("nested/gone.yaml", job_doc("gone"))
    old = git_repo.commit("first")
    git_repo.write_job("keep.json", job_doc("keep", command="echo new"))
    git_repo.remove("nested/gone.yaml")
    git_repo.write_job("added.toml", job_doc("added"))
    new = git_repo.commit("second")
    # An uncommitted edit in the work tree must not leak into a --ref plan either.
    git_repo.write_job("dirty.json", job_doc("dirty"))
    tree = git_repo.tree_digest()
    status = git_repo.git("status", "--porcelain")

    proc = expect(git_repo.courier("plan", "--ref", "HEAD~1", "-o", "json"), 0)
    plan = json.loads(proc.stdout)
    assert {(c["action"], c["name"], c["path"]) for c in plan["changes"]} == {
        ("create", "keep", "jobs.d/keep.json"),
        ("create", "gone", "jobs.d/nested/gone.yaml"),
    }
    expect(git_repo.courier("plan", "--ref", "HEAD~1", "--detailed-exitcode"), 2)

    # From another folder with --repo, as CI scripts often do.
    proc = git_repo.courier("--repo", str(git_repo.root), "apply", "--ref", "HEAD~1")
    expect(proc, 0)
    expect(git_repo.courier("plan", "--ref", old, "--detailed-exitcode"), 0)
    assert git_repo.tree_digest() == tree
    assert git_repo.git("status", "--porcelain") == status
    assert git_repo.head() == new

    store = git_repo.store()
    jobs = store.read().jobs
    assert sorted(jobs) == ["gone", "keep"]
    assert jobs["keep"].spec["actions"]["steps"][0]["command"]["linux"] == ["echo old"]
    for name, path in (("keep", "jobs.d/keep.json"), ("gone", "jobs.d/nested/gone.yaml")):
        [version] = store.job_versions(jobs[name].id)
        assert (version.git_commit, version.source_path) == (old, path)

    # Back on the work tree, only the difference between the two commits (and the dirty file)
    # is left to do.
    plan = json.loads(expect(git_repo.courier("plan", "-o", "json"), 0).stdout)
    assert {(c["action"], c["name"]) for c in plan["changes"]} == {
        ("update", "keep"),
        ("cancel", "gone"),
        ("create", "added"),
        ("create", "dirty"),
    }
    expect(git_repo.courier("apply", "--ref", "HEAD"), 0)
    keep_versions = store.job_versions(jobs["keep"].id)
    assert [v.git_commit for v in keep_versions] == [old, new]
    assert sorted(j.name for j in store.read().jobs.values() if str(j.status) == "active") == [
        "added",
        "keep",
    ]
    assert git_repo.tree_digest() == tree


@pytest.mark.parametrize(
    ("command", "ref"),
    [
        pytest.param("plan", "no-such-branch", id="plan-unknown-name"),
        pytest.param("apply", "HEAD~5", id="apply-too-far-back"),
        pytest.param("plan", "0" * 40, id="plan-unknown-sha"),
        pytest.param("apply", "HEAD:jobs.d", id="apply-not-a-commit"),
    ],
)
def test_unknown_ref_is_a_user_error(git_repo: GitRepo, command: str, ref: str) -> None:
    git_repo.write_job("keep.json", job_doc("keep"))
    git_repo.commit()
    proc = expect(git_repo.courier(command, "--ref", ref), 1)
    assert ref in proc.stderr
