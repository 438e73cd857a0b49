"""`courier validate`: discovery under --repo, symlinks, hidden files, output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    assert_no_crash,
    build_file_tree,
    minimal_job,
    reported,
    run_courier,
    run_courier_forked,
)


def as_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


GOOD_YAML = """\
# a good job
name: yaml-job
scheduleRule: immediate
target:
  executionType: sequential
  groups:
    - timeoutSeconds: 300
      batchSize: {type: number, value: 1}
      distributionMethod: batching
      nodeListType: nodes
      nodeIdentifiers: [local]
actions:
  steps:
    - name: uptime
      interpreter:
        name: chef-platform/shell-interpreter
        skill: {minVersion: 1.0.0, maxVersion: 2.0.0}
      command:
        linux: [uptime]
"""


# --- where files are found ------------------------------------------------------------------


def test_default_path_is_jobs_d_of_the_repo(tmp_path: Path) -> None:
    repo = build_file_tree(
        tmp_path / "repo",
        {
            "jobs.d/a.json": as_json(minimal_job("a")),
            "jobs.d/team/b.yaml": GOOD_YAML,
            "elsewhere/broken.json": "{ not json",
            "broken-at-root.yaml": "- not: a job",
        },
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = run_courier("--repo", repo, "-o", "json", "validate", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [j["path"] for j in out["jobs"]] == ["jobs.d/a.json", "jobs.d/team/b.yaml"]
    assert [j["name"] for j in out["jobs"]] == ["a", "yaml-job"]

    same = run_courier_forked("validate", cwd=repo)
    assert same.returncode == 0, same.stderr
    assert same.stdout.strip() == "2 job file(s) valid"


def test_missing_jobs_d_is_a_user_error(tmp_path: Path) -> None:
    proc = run_courier_forked("--repo", tmp_path, "validate", cwd=tmp_path)
    assert_no_crash(proc)
    assert proc.returncode == 1
    [problem] = reported(proc.stderr)
    assert problem.path.endswith("jobs.d")
    assert "no such file or directory" in problem.rest


def test_empty_jobs_d_is_valid(repo: Path) -> None:
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "0 job file(s) valid"


def test_hidden_files_and_folders_are_ignored(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/good.json": as_json(minimal_job()),
            "jobs.d/.hidden.json": "{ broken",
            "jobs.d/.swap/job.yaml": "- broken",
            "jobs.d/team/.git/config.toml": "[[[ broken",
            "jobs.d/team/.draft.yml": ": broken",
            "jobs.d/README.md": "# not a job",
            "jobs.d/notes.txt": "not a job either",
        },
    )
    proc = run_courier_forked("--repo", repo, "-o", "json", "validate", cwd=repo)
    assert proc.returncode == 0, proc.stdout
    out = json.loads(proc.stdout)
    assert [j["path"] for j in out["jobs"]] == ["jobs.d/good.json"]
    assert out["problems"] == []


def test_a_named_non_job_file_is_refused(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/notes.txt": "hello"})
    proc = run_courier_forked("--repo", repo, "validate", "jobs.d/notes.txt", cwd=repo)
    assert proc.returncode == 1
    [problem] = reported(proc.stderr)
    assert problem.path == "jobs.d/notes.txt"
    assert "not a job file" in problem.rest


def test_discovery_order_is_stable(repo: Path) -> None:
    names = ["zeta", "alpha", "Mid", "b/inner", "a/z", "a/a"]
    build_file_tree(
        repo, {f"jobs.d/{n}.json": as_json(minimal_job(n.replace("/", "-"))) for n in names}
    )
    proc = run_courier_forked("--repo", repo, "-o", "json", "validate", cwd=repo)
    paths = [j["path"] for j in json.loads(proc.stdout)["jobs"]]
    assert paths == sorted(paths)
    assert len(paths) == len(names)


# --- symlinks -------------------------------------------------------------------------------


def test_symlink_leaving_the_repo_is_refused(tmp_path: Path) -> None:
    outside = build_file_tree(tmp_path / "outside", {"secret.json": as_json(minimal_job("x"))})
    repo = build_file_tree(
        tmp_path / "repo",
        {
            "jobs.d/good.json": as_json(minimal_job("good")),
            "jobs.d/escape.json": outside / "secret.json",
            "jobs.d/relative.json": Path("../../outside/secret.json"),
        },
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    problems = {r.path: r for r in reported(proc.stderr)}
    assert set(problems) == {"jobs.d/escape.json", "jobs.d/relative.json"}
    for problem in problems.values():
        assert "symlink leaves the repository" in problem.rest


def test_symlink_inside_the_repo_is_followed(tmp_path: Path) -> None:
    repo = build_file_tree(
        tmp_path / "repo",
        {
            "shared/common.yaml": GOOD_YAML,
            "jobs.d/common.yaml": Path("../shared/common.yaml"),
        },
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1 job file(s) valid"


def test_jobs_d_symlinked_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    build_file_tree(tmp_path / "outside", {"secret.json": as_json(minimal_job("x"))})
    repo = build_file_tree(tmp_path / "repo", {"jobs.d": Path("../outside")})
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    assert "symlink leaves the repository" in proc.stderr


def test_folder_symlinked_out_of_the_repo_is_refused_when_named(tmp_path: Path) -> None:
    build_file_tree(tmp_path / "outside", {"secret.json": as_json(minimal_job("x"))})
    repo = build_file_tree(tmp_path / "repo", {"jobs.d/link": Path("../../outside")})
    proc = run_courier_forked("--repo", repo, "validate", "jobs.d/link", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    assert "symlink leaves the repository" in proc.stderr


def test_folder_symlink_inside_jobs_d_is_not_followed(tmp_path: Path) -> None:
    build_file_tree(tmp_path / "outside", {"secret.json": "{ broken"})
    repo = build_file_tree(
        tmp_path / "repo",
        {"jobs.d/good.json": as_json(minimal_job()), "jobs.d/link": Path("../../outside")},
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert "secret.json" not in proc.stdout + proc.stderr
    assert proc.returncode in (0, 1)


# --- output and exit codes ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["global", "local"])
def test_json_output_of_a_valid_repo(repo: Path, where: str) -> None:
    build_file_tree(repo, {"jobs.d/a.json": as_json(minimal_job())})
    args = ["-o", "json", "validate"] if where == "global" else ["validate", "-o", "json"]
    proc = run_courier_forked("--repo", repo, *args, cwd=repo)
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert out["valid"] is True
    assert out["problems"] == []
    [job] = out["jobs"]
    assert job["name"] == "disk-report"
    assert job["path"] == "jobs.d/a.json"
    assert len(job["hash"]) == 64


def test_json_output_of_an_invalid_repo(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/bad.yaml": GOOD_YAML.replace("sequential", "serial")})
    proc = run_courier_forked("--repo", repo, "validate", "-o", "json", cwd=repo)
    out = json.loads(proc.stdout)
    assert out["valid"] is False
    assert out["jobs"] == []
    assert out["problems"] == [
        {
            "path": "jobs.d/bad.yaml",
            "line": 5,
            "column": 3,
            "field": "target.executionType",
            "message": "'serial' is not one of 'sequential' or 'parallel'",
            "severity": "error",
        }
    ]


def test_json_output_of_an_invalid_repo_exits_1(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/bad.yaml": GOOD_YAML.replace("sequential", "serial")})
    proc = run_courier_forked("--repo", repo, "-o", "json", "validate", cwd=repo)
    assert json.loads(proc.stdout)["valid"] is False
    assert proc.returncode == 1


def test_problems_of_all_files_at_once_sorted(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/b.yaml": GOOD_YAML.replace("immediate", "sometimes").replace(
                "nodes\n", "list\n"
            ),
            "jobs.d/a.json": "[]",
            "jobs.d/c.toml": 'name = "c"\nname = "d"\n',
            "jobs.d/ok.json": as_json(minimal_job()),
        },
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 1
    problems = [(r.path, r.line) for r in reported(proc.stderr)]
    assert problems == sorted(problems)
    assert [p for p, _ in problems] == [
        "jobs.d/a.json",
        "jobs.d/b.yaml",
        "jobs.d/b.yaml",
        "jobs.d/c.toml",
    ]
    assert proc.stderr.rstrip().splitlines()[-1] == "error: 4 problem(s) in job files"
    assert proc.stdout == ""


def test_warnings_alone_do_not_fail(repo: Path) -> None:
    legacy = GOOD_YAML.replace("linux: [uptime]", "linux: [uptime]\n      limits: {time: 5}")
    legacy = legacy.replace("command:\n        linux: [uptime]", "command: [uptime]")
    build_file_tree(repo, {"jobs.d/legacy.yaml": legacy})
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    [warning] = reported(proc.stderr)
    assert warning.is_warning
    assert warning.path == "jobs.d/legacy.yaml"
    assert "legacy command list" in warning.rest


def test_each_problem_is_printed_once(repo: Path) -> None:
    legacy = GOOD_YAML.replace("command:\n        linux: [uptime]", "command: [uptime]")
    build_file_tree(
        repo,
        {
            "jobs.d/legacy.yaml": legacy,
            "jobs.d/zz.yaml": GOOD_YAML.replace("sequential", "serial"),
        },
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == len(set(lines)), proc.stderr


def test_duplicate_job_names_name_both_files(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/one.json": as_json(minimal_job("same")),
            "jobs.d/nested/two.yaml": GOOD_YAML.replace("name: yaml-job", "name: same"),
            "jobs.d/three.json": as_json(minimal_job("different")),
        },
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 1
    problems = reported(proc.stderr)
    assert {r.path for r in problems} == {"jobs.d/one.json", "jobs.d/nested/two.yaml"}
    for r in problems:
        assert r.rest.startswith("name: ")
        assert "'same'" in r.rest
        assert "jobs.d/one.json" in r.rest and "jobs.d/nested/two.yaml" in r.rest


@pytest.mark.xfail(
    strict=True,
    reason="BUG: reconciler/loading/loader.py _check_unique_names reports a duplicate job name at "
    "1:1 instead of the line of the `name` field",
)
def test_duplicate_job_name_points_at_the_name_line(repo: Path) -> None:
    build_file_tree(
        repo,
        {
            "jobs.d/one.json": as_json(minimal_job("same")),
            "jobs.d/two.yaml": GOOD_YAML.replace("name: yaml-job", "name: same"),
        },
    )
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    lines = {r.path: r.line for r in reported(proc.stderr)}
    assert lines == {"jobs.d/one.json": 2, "jobs.d/two.yaml": 2}


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "inputs", [{"deep": _nested(300)}, {"big": 2**70}], ids=["nested-300", "int-2**70"]
)
def test_unstorable_inputs_are_a_user_error(repo: Path, inputs: dict[str, Any]) -> None:
    doc = minimal_job()
    doc["actions"]["steps"][0]["inputs"] = inputs
    build_file_tree(repo, {"jobs.d/odd.json": json.dumps(doc), "jobs.d/ok.yaml": GOOD_YAML})
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    [problem] = reported(proc.stderr)
    assert problem.path == "jobs.d/odd.json"
    assert "cannot be stored" in problem.rest


def test_moderately_nested_inputs_are_fine(repo: Path) -> None:
    doc = minimal_job()
    doc["actions"]["steps"][0]["inputs"] = {"deep": _nested(100), "big": 2**62}
    build_file_tree(repo, {"jobs.d/odd.json": json.dumps(doc)})
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert proc.returncode == 0, proc.stderr


def test_deeply_nested_json_is_a_user_error(repo: Path) -> None:
    build_file_tree(repo, {"jobs.d/deep.json": "[" * 100_000 + "]" * 100_000})
    proc = run_courier_forked("--repo", repo, "validate", cwd=repo)
    assert_no_crash(proc)
    assert proc.returncode == 1
    [problem] = reported(proc.stderr)
    assert problem.path == "jobs.d/deep.json"
