"""The mass-cancel guard: a plan that cancels more than half of the managed jobs needs
`--allow-mass-cancel` (DESIGN.md §3); refused, it leaves the state untouched.
"""

from __future__ import annotations

from tests.integration.support import GitRepo, expect, job_doc, table_rows

NAMES = ("a", "b", "c", "d")


def test_deleting_three_of_four_jobs_needs_the_flag(git_repo: GitRepo) -> None:
    for name in NAMES:
        git_repo.write_job(f"{name}.json", job_doc(name))
    git_repo.commit("four jobs")
    expect(git_repo.courier("apply"), 0)
    store = git_repo.store()
    before = {t: table_rows(git_repo.state_db, t) for t in ("jobs", "instances", "meta")}

    for name in NAMES[1:]:
        git_repo.remove(f"{name}.json")
    git_repo.commit("drop three")
    proc = expect(git_repo.courier("apply"), 1)
    assert "--allow-mass-cancel" in proc.stderr
    assert "3 of 4" in proc.stderr, proc.stderr
    assert {t: table_rows(git_repo.state_db, t) for t in before} == before

    expect(git_repo.courier("apply", "--allow-mass-cancel"), 0)
    jobs = store.read().jobs
    assert {n: str(j.status) for n, j in jobs.items()} == {
        "a": "active",
        "b": "canceled",
        "c": "canceled",
        "d": "canceled",
    }
    for name in NAMES:
        expected = "pending" if name == "a" else "canceled"
        assert [str(i.status) for i in store.instances(jobs[name].id)] == [expected]
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)


def test_cancelling_half_needs_no_flag(git_repo: GitRepo) -> None:
    for name in NAMES:
        git_repo.write_job(f"{name}.yaml", job_doc(name))
    git_repo.commit("four jobs")
    expect(git_repo.courier("apply"), 0)
    git_repo.remove("c.yaml")
    git_repo.remove("d.yaml")
    git_repo.commit("drop two")
    expect(git_repo.courier("apply"), 0)
    jobs = git_repo.store().read().jobs
    assert sorted(n for n, j in jobs.items() if str(j.status) == "canceled") == ["c", "d"]
