"""A broken job file anywhere under jobs.d/ stops `apply` with its position and leaves the state
exactly as it was (DESIGN.md §3, §7), even when the other files hold real changes.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.support import GitRepo, expect, job_doc, table_rows

STATE_TABLES = ("jobs", "job_versions", "instances", "apply_journal", "meta")

BROKEN_YAML = "name: broken\nscheduleRule: immediate\ntarget: [unclosed\n"
BROKEN_TOML = 'name = "broken"\nscheduleRule = \n'


def broken_json() -> str:
    """A well-formed JSON job with a string where an integer belongs (line 8, column 9)."""
    doc = job_doc("broken")
    doc["target"]["groups"][0]["timeoutSeconds"] = "soon"
    return json.dumps(doc, indent=2) + "\n"


# (file under jobs.d/, its content, the line:col courier must point at)
BROKEN = {
    # Where an unclosed flow sequence "ends" is the parser's call: any position will do.
    "yaml-syntax": ("team/deep/broken.yaml", BROKEN_YAML, None),
    "json-wrong-type": ("team/deep/broken.json", broken_json(), (8, 9)),
    "toml-syntax": ("broken.toml", BROKEN_TOML, (2, 16)),
}


def snapshot(repo: GitRepo) -> dict[str, object]:
    store = repo.store()
    return {
        "serial": store.serial(),
        "jobs": len(store.read().jobs),
        **{table: table_rows(repo.state_db, table) for table in STATE_TABLES},
    }


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_stops_apply_and_leaves_state_untouched(git_repo: GitRepo, case: str) -> None:
    git_repo.write_job("keep.json", job_doc("keep"))
    git_repo.write_job("drop.yaml", job_doc("drop"))
    git_repo.commit("two jobs")
    expect(git_repo.courier("apply"), 0)
    before = snapshot(git_repo)

    # Real changes wait beside the broken file: an update, a create and a cancel.
    git_repo.write_job("keep.json", job_doc("keep", command="echo changed"))
    git_repo.write_job("new.toml", job_doc("new"))
    git_repo.remove("drop.yaml")
    rel, content, position = BROKEN[case]
    git_repo.write(f"jobs.d/{rel}", content)
    git_repo.commit("changes and a broken file")

    proc = expect(git_repo.courier("apply"), 1)
    found = re.findall(rf"^jobs\.d/{re.escape(rel)}:(\d+):(\d+): ", proc.stderr, re.MULTILINE)
    assert found, proc.stderr
    if position is not None:
        assert (int(found[0][0]), int(found[0][1])) == position, proc.stderr
    assert snapshot(git_repo) == before

    # plan refuses the same way; with the file fixed, everything else goes through.
    assert expect(git_repo.courier("plan"), 1).stderr == proc.stderr
    git_repo.remove(rel)
    git_repo.commit("fix")
    expect(git_repo.courier("apply"), 0)
    expect(git_repo.courier("plan", "--detailed-exitcode"), 0)


def test_every_broken_file_is_reported_at_once(git_repo: GitRepo) -> None:
    git_repo.write_job("ok.json", job_doc("ok"))
    git_repo.write("jobs.d/a/one.toml", BROKEN_TOML)
    git_repo.write("jobs.d/b/two.json", broken_json())
    git_repo.commit()

    proc = expect(git_repo.courier("apply"), 1)
    assert re.search(r"^jobs\.d/a/one\.toml:2:16: ", proc.stderr, re.MULTILINE), proc.stderr
    assert re.search(r"^jobs\.d/b/two\.json:8:9: ", proc.stderr, re.MULTILINE), proc.stderr
    # Nothing was applied, not even the valid job.
    assert git_repo.store().read().jobs == {}


def test_duplicate_job_name_names_both_files(git_repo: GitRepo) -> None:
    git_repo.write_job("first.json", job_doc("twin"))
    git_repo.write_job("elsewhere/second.yaml", job_doc("twin", command="echo other"))
    git_repo.commit()
    proc = expect(git_repo.courier("apply"), 1)
    assert "jobs.d/first.json" in proc.stderr and "jobs.d/elsewhere/second.yaml" in proc.stderr
    assert git_repo.store().read().jobs == {}
