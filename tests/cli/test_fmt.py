"""`courier fmt`: canonical layout, comments kept, legacy keys renamed, idempotent, `--check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import (
    assert_no_crash,
    build_file_tree,
    minimal_job,
    reported,
    run_courier,
    run_courier_forked,
)

COMMENTED_YAML = """\
# Recurring cleanup of old temporary files.
# Owner: platform team
scheduleRule: "RRULE:FREQ=DAILY;INTERVAL=1"   # every day
name: tmp-cleanup
target:
  groups:
    # the only group: this machine
    - nodeListType: nodes
      nodeIdentifiers: [local]   # the implicit local node
      timeoutSeconds: 600
      batchSize: {type: number, value: 1}
      distributionMethod: batching
  executionType: sequential
actions:
  steps:
    - name: clean
      interpreter:
        name: chef-platform/shell-interpreter
        skill: {minVersion: 1.0.0, maxVersion: 2.0.0}
      command:
        linux:
          - find /tmp -mtime +7 -delete   # keep a week
      failureBehavior:
        action: retryThenIgnore
        retryBackoffStrategy:
          name: linear   # legacy key of type
          delaySeconds: 5
      limits:
        time: 120
"""

MESSY_JSON = json.dumps(minimal_job("messy-json"), separators=(",", ":"))

TOML_JOB = """\
# A TOML job; fmt keeps TOML as written.
name = "toml-job"
scheduleRule = "immediate"

[target]
executionType = "parallel"

[[target.groups]]
timeoutSeconds = 60   # one minute
batchSize = { type = "percent", value = 50 }
distributionMethod = "rolling"
nodeListType = "nodes"
nodeIdentifiers = ["local"]

[[actions.steps]]
name = "hello"
command = { linux = ["echo hello"] }

[actions.steps.interpreter]
name = "chef-platform/shell-interpreter"
skill = { minVersion = "1.0.0", maxVersion = "2.0.0" }
"""


def hashes(repo: Path, *paths: str) -> dict[str, str]:
    """{path: spec hash} of each job file, each validated on its own."""
    found = {}
    for path in paths:
        proc = run_courier_forked("--repo", repo, "-o", "json", "validate", path, cwd=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [job] = json.loads(proc.stdout)["jobs"]
        found[path] = job["hash"]
    return found


def test_yaml_fmt_keeps_comments_and_renames_legacy_keys(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/cleanup.yaml": COMMENTED_YAML})
    before = hashes(repo, "jobs.d/cleanup.yaml")
    proc = run_courier("--repo", repo, "fmt", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "reformatted jobs.d/cleanup.yaml",
        "1 file(s) reformatted, 0 unchanged",
    ]
    text = (repo / "jobs.d/cleanup.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    # every comment survives, full-line and end-of-line
    for comment in [
        "# Recurring cleanup of old temporary files.",
        "# Owner: platform team",
        "# every day",
        "# the only group: this machine",
        "# the implicit local node",
        "# keep a week",
        "# legacy key of type",
    ]:
        assert comment in text, comment
    assert lines[0] == "# Recurring cleanup of old temporary files."
    # end-of-line comments stay on the line of their value
    assert any(ln.strip().startswith("nodeIdentifiers:") and "# the implicit" in ln for ln in lines)
    assert any(ln.strip().startswith("type: linear") and "# legacy key" in ln for ln in lines)
    assert any("find /tmp -mtime +7 -delete" in ln and "# keep a week" in ln for ln in lines)
    # legacy keys renamed in place
    assert "name: linear" not in text
    assert "timeoutSeconds: 120" in text
    assert "\n        time:" not in text
    # fields in schema order
    top = [ln.split(":")[0] for ln in lines if ln and not ln.startswith((" ", "#", "-"))]
    assert top == ["name", "scheduleRule", "target", "actions"]
    target = text[text.index("target:") : text.index("actions:")]
    assert target.index("executionType") < target.index("groups")
    # same job as before
    assert hashes(repo, "jobs.d/cleanup.yaml") == before


def test_yaml_fmt_keeps_a_comment_above_the_key_it_describes(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/a.yaml": COMMENTED_YAML.replace(
                "name: tmp-cleanup", "# the name shown in reports\nname: tmp-cleanup"
            )
        },
    )
    proc = run_courier_forked("--repo", repo, "fmt", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    lines = (repo / "jobs.d/a.yaml").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("# the name shown in reports") + 1] == "name: tmp-cleanup"
    group = lines.index("    # the only group: this machine")
    assert lines[group + 1].lstrip().startswith("- ")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("jobs.d/job.yaml", COMMENTED_YAML),
        ("jobs.d/job.json", MESSY_JSON),
        ("jobs.d/job.toml", TOML_JOB),
    ],
)
def test_fmt_is_idempotent(repo: Path, name: str, content: str) -> None:
    build_file_tree(repo, {name: content})
    before = hashes(repo, name)
    first = run_courier_forked("--repo", repo, "fmt", cwd=repo)
    assert first.returncode == 0, first.stderr
    once = (repo / name).read_bytes()
    second = run_courier_forked("--repo", repo, "fmt", cwd=repo)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "0 file(s) reformatted, 1 unchanged"
    assert (repo / name).read_bytes() == once
    check = run_courier_forked("--repo", repo, "fmt", "--check", cwd=repo)
    assert check.returncode == 0, check.stdout + check.stderr
    assert hashes(repo, name) == before


def test_fmt_json_layout(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/job.json": MESSY_JSON})
    run_courier_forked("--repo", repo, "fmt", cwd=repo)
    text = (repo / "jobs.d/job.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "name": "messy-json",\n  "scheduleRule": "immediate",\n')
    assert json.loads(text) == json.loads(MESSY_JSON)


def test_fmt_keeps_toml_as_written(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/job.toml": TOML_JOB})
    proc = run_courier_forked("--repo", repo, "fmt", cwd=repo)
    assert proc.returncode == 0
    assert (repo / "jobs.d/job.toml").read_text(encoding="utf-8") == TOML_JOB


def test_fmt_check_lists_files_and_changes_nothing(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/a.yaml": COMMENTED_YAML,
            "jobs.d/b.json": MESSY_JSON,
            "jobs.d/c.toml": TOML_JOB,
        },
    )
    files = sorted((repo / "jobs.d").iterdir())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    proc = run_courier("--repo", repo, "fmt", "--check", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "would reformat jobs.d/a.yaml",
        "would reformat jobs.d/b.json",
    ]
    assert "2 file(s) would be reformatted" in proc.stderr
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_fmt_of_named_files_only(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/a.json": MESSY_JSON, "jobs.d/b.json": MESSY_JSON})
    proc = run_courier_forked("--repo", repo, "fmt", "jobs.d/b.json", cwd=repo)
    assert proc.returncode == 0
    assert (repo / "jobs.d/a.json").read_text(encoding="utf-8") == MESSY_JSON
    assert (repo / "jobs.d/b.json").read_text(encoding="utf-8") != MESSY_JSON


def test_fmt_refuses_unparsable_files_and_writes_nothing(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/good.json": MESSY_JSON,
            "jobs.d/broken.yaml": "name: x\n  bad: indentation\n",
        },
    )
    proc = run_courier_forked("--repo", repo, "fmt", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    [problem] = reported(proc.stderr)
    assert problem.path == "jobs.d/broken.yaml"
    assert problem.line == 2
    # all or nothing: the good file was not rewritten either
    assert (repo / "jobs.d/good.json").read_text(encoding="utf-8") == MESSY_JSON


def test_fmt_locates_a_json_duplicate_key(repo: Path) -> None:
    text = '{\n  "name": "a",\n  "name": "b"\n}\n'
    build_file_tree(repo, {"jobs.d/dup.json": text})
    proc = run_courier_forked("--repo", repo, "fmt", "--check", cwd=repo)
    assert proc.returncode == 1
    [problem] = reported(proc.stderr)
    assert (problem.line, problem.column) == (3, 3)


def test_yaml_fmt_keeps_a_comment_before_the_document_start(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/a.yaml": "# file header\n---\n" + COMMENTED_YAML})
    proc = run_courier_forked("--repo", repo, "fmt", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "# file header" in (repo / "jobs.d/a.yaml").read_text(encoding="utf-8")
