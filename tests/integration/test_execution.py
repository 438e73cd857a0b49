"""`courier apply --wait` on declared local nodes: groups, batches, retries, evidence, exit 3.

Issue 4's acceptance on the real CLI, a real git repo, real SQLite and real subprocesses.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.integration.support import GitRepo, expect

SIX_NODES = """\
nodes:
  - {id: db-1, transport: local, tags: {role: db}}
  - {id: db-2, transport: local, tags: {role: db}}
  - {id: db-3, transport: local, tags: {role: db}}
  - {id: db-4, transport: local, tags: {role: db}}
  - {id: web-1, transport: local, tags: {role: web}}
  - {id: web-2, transport: local, tags: {role: web}}
"""

# Fails on the first attempt on each node (the marker lives in the node's own working dir).
FLAKY = (
    'if [ -f attempted ]; then echo "second try ok on $COURIER_NODE_ID"; '
    'else touch attempted; echo "first attempt failed on $COURIER_NODE_ID" >&2; exit 1; fi'
)


def _group(nodes: dict[str, Any], batch: dict[str, Any], method: str) -> dict[str, Any]:
    return {
        "timeoutSeconds": 60,
        "batchSize": batch,
        "distributionMethod": method,
        "successCriteria": [{"status": "success", "numRuns": {"type": "percent", "value": 100}}],
        **nodes,
    }


def rollout(command: str, name: str = "rollout") -> dict[str, Any]:
    return {
        "name": name,
        "scheduleRule": "immediate",
        "target": {
            "executionType": "sequential",
            "groups": [
                _group(
                    {"nodeListType": "nodes", "nodeIdentifiers": ["db-1", "db-2", "db-3", "db-4"]},
                    {"type": "number", "value": 2},
                    "batching",
                ),
                _group(
                    {
                        "nodeListType": "filter",
                        "filter": {
                            "constraints": {
                                "attributes": [
                                    {
                                        "name": "role",
                                        "namespace": "tags",
                                        "operator": "=",
                                        "value": ["web"],
                                    }
                                ]
                            }
                        },
                    },
                    {"type": "percent", "value": 50},
                    "rolling",
                ),
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "flaky then fine",
                    "interpreter": {
                        "name": "chef-platform/shell-interpreter",
                        "skill": {"minVersion": "1.0.0", "maxVersion": "9.0.0"},
                    },
                    "command": {"linux": ["sleep 0.2", command]},
                    "retryCount": 1,
                    "failureBehavior": {
                        "action": "retryThenFail",
                        "retryBackoffStrategy": {"type": "none", "delaySeconds": 0},
                    },
                }
            ]
        },
    }


def chef(repo: GitRepo, *args: str) -> Any:
    return json.loads(expect(repo.courier(*args), 0).stdout)


def the_instance(repo: GitRepo) -> dict[str, Any]:
    items = chef(repo, "state", "instance", "list-all")["items"]
    assert len(items) == 1, items
    return items[0]


def runs_of(repo: GitRepo, instance_id: str) -> list[dict[str, Any]]:
    out = chef(repo, "state", "instance", "list-instance-runs", "--instanceId", instance_id)
    return sorted(out["items"], key=lambda r: (r["groupNumber"], r["receivedTime"]))


def test_sequential_groups_batches_retries_and_evidence(git_repo: GitRepo) -> None:
    git_repo.write("nodes.yaml", SIX_NODES)
    git_repo.write_job("jobs.d/rollout.json", rollout(FLAKY))
    git_repo.commit()
    proc = expect(git_repo.courier("apply", "--wait"), 0)
    assert "1 of 1 instance(s) succeeded" in proc.stdout

    instance = the_instance(git_repo)
    assert instance["status"] == "success"
    runs = runs_of(git_repo, instance["id"])
    assert [(r["groupNumber"], r["status"]) for r in runs] == [(0, "success")] * 4 + [
        (1, "success")
    ] * 2
    assert {r["nodeId"] for r in runs if r["groupNumber"] == 1} == {"web-1", "web-2"}
    group0 = [r for r in runs if r["groupNumber"] == 0]
    group1 = [r for r in runs if r["groupNumber"] == 1]
    # group 1 starts only after every run of group 0 ended
    assert min(r["receivedTime"] for r in group1) >= max(r["lastUpdateTime"] for r in group0)
    # batches of 2: the second batch starts after the first batch ended
    first, second = group0[:2], group0[2:]
    assert min(r["receivedTime"] for r in second) >= max(r["lastUpdateTime"] for r in first)
    # rolling 50% of 2 nodes: one at a time
    assert group1[1]["receivedTime"] >= group1[0]["lastUpdateTime"]

    for run in runs:
        steps = chef(git_repo, "state", "run", "list-steps", "--runId", run["runId"])["items"]
        assert [(s["stepNumber"], s["status"], s["numAttempts"]) for s in steps] == [
            (1, "success", 2)
        ]
        url = chef(
            git_repo,
            "state",
            "run",
            "get-step-attempt-evidence",
            "--runId",
            run["runId"],
            "--stepNo",
            "1",
            "--attemptNo",
            "1",
        )["item"]["artifactUrl"]
        assert url.startswith("file://")
        with zipfile.ZipFile(Path(unquote(urlparse(url).path))) as zf:
            stderr = zf.read("stderr.txt").decode()
            result = json.loads(zf.read("result.json"))
        assert f"first attempt failed on {run['nodeId']}" in stderr
        assert result["status"] == "failure"


def test_failed_first_group_cancels_the_second_and_exits_3(git_repo: GitRepo) -> None:
    git_repo.write("nodes.yaml", SIX_NODES)
    git_repo.write_job("jobs.d/rollout.json", rollout("echo broken >&2; exit 1"))
    git_repo.commit()
    proc = git_repo.courier("apply", "--wait")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    instance = the_instance(git_repo)
    assert instance["status"] == "failure"
    runs = runs_of(git_repo, instance["id"])
    assert {r["status"] for r in runs if r["groupNumber"] == 0} == {"failure"}
    assert [r["status"] for r in runs if r["groupNumber"] == 1] == ["canceled", "canceled"]
    steps = chef(git_repo, "state", "run", "list-steps", "--runId", runs[0]["runId"])["items"]
    assert steps[0]["status"] == "failure"
    assert steps[0]["numAttempts"] == 2


def test_shell_metacharacters_in_outputs_are_printed_not_run(git_repo: GitRepo) -> None:
    job = rollout("true")
    job["target"]["groups"] = job["target"]["groups"][:1]
    job["target"]["groups"][0]["nodeIdentifiers"] = ["db-1"]
    step = job["actions"]["steps"][0]
    step["command"] = {"linux": ["printf '%s' 'x; touch pwned' "]}
    step["outputFieldRules"] = {
        "VALUE": {"sourceType": "output", "source": "stdout", "extractMethod": "content"}
    }
    job["actions"]["steps"].append(
        {
            "name": "use it",
            "interpreter": {
                "name": "chef-platform/shell-interpreter",
                "skill": {"minVersion": "1.0.0", "maxVersion": "9.0.0"},
            },
            "command": {"linux": ["echo {{.VALUE}}"]},
        }
    )
    git_repo.write("nodes.yaml", SIX_NODES)
    git_repo.write_job("jobs.d/inject.json", job)
    git_repo.commit()
    expect(git_repo.courier("apply", "--wait"), 0)
    workdir = git_repo.root / ".courier" / "nodes" / "db-1"
    assert not (workdir / "pwned").exists()


CHEF_SAMPLES = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "courier-examples"
    / "samples-courier-job-examples"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sample", "nodes"),
    [
        ("create-job-simple.json", ["--NODE1--", "--NODE2--", "--NODE3--"]),
        ("job_direct_query_linux.json", ["linux-a", "linux-b"]),
    ],
)
def test_runnable_chef_samples_succeed(git_repo: GitRepo, sample: str, nodes: list[str]) -> None:
    source = CHEF_SAMPLES / sample
    if not source.exists():
        pytest.skip(f"the Chef samples are not at {CHEF_SAMPLES}")
    git_repo.write("jobs.d/" + sample, source.read_text())
    git_repo.write(
        "nodes.yaml",
        "nodes:\n" + "".join(f"  - {{id: '{n}', transport: local}}\n" for n in nodes),
    )
    git_repo.commit()
    proc = git_repo.courier("apply", "--wait", "--timeout", "120")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    instance = the_instance(git_repo)
    assert instance["status"] == "success"
    assert {r["status"] for r in runs_of(git_repo, instance["id"])} == {"success"}
