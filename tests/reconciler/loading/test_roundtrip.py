"""One job, three formats, legacy and current keys: one canonical form, one spec_hash."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.loading import load_paths, load_text
from tests.helpers import build_file_tree, minimal_job, rich_job, run_courier_forked

RICH_YAML = """\
# The canary rollout, in YAML.
name: canary-rollout
description: two-group canary rollout
scheduleRule: "RRULE:DTSTART=20240101T010000Z;FREQ=DAILY;INTERVAL=1"
exceptionRules:
  - {rrule: "RRULE:FREQ=WEEKLY;BYDAY=SA,SU", duration: 60}
target:
  executionType: sequential
  groups:
    - timeoutSeconds: 600
      batchSize: {type: number, value: 1}
      distributionMethod: batching
      earlyTermination: true
      successCriteria:
        - status: success
          numRuns: {type: percent, value: 100}
      nodeListType: nodes
      nodeIdentifiers: [canary-1]
    - timeoutSeconds: 1200
      batchSize: {type: percent, value: 25}
      distributionMethod: rolling
      successCriteria:
        - {status: success, numRuns: {type: percent, value: 90}}
        - {status: failure, numRuns: {type: number, value: 2}}
      nodeListType: filter
      filter:
        constraints:
          attributes:
            - {name: kernel_name, namespace: agent, operator: "=", value: [Linux]}
            - name: primary_ip
              operator: MATCHES
              value: ['^10\\.0\\.']
          skills:
            - {name: courier-runner, version: [">= 1.0.0"]}
actions:
  accessMode: agent
  steps:
    - name: check
      description: is there room?
      interpreter:
        name: chef-platform/shell-interpreter
        skill: {minVersion: 1.0.0, maxVersion: 1.9.99}
      command:
        linux: ["df --output=pcent / | tail -1"]
      outputFieldRules:
        USAGE:
          sourceType: output
          source: stdout
          extractMethod: regex
          expression: "([0-9]+)%"
          required: true
          sensitive: false
      retryCount: 2
      failureBehavior:
        action: retryThenFail
        retryBackoffStrategy: {type: exponential, delaySeconds: 5, arguments: []}
      limits: {cores: 0, cpu: 1, timeoutSeconds: 30}
    - name: clean
      interpreter:
        name: chef-platform/shell-interpreter
        skill: {minVersion: 1.0.0, maxVersion: 1.9.99}
      command:
        linux: [rm -rf /var/tmp/courier-cache]
      inputs: {dir: /var/tmp}
      expectedInputs:
        USAGE: {type: string, required: true, sensitive: false}
      conditions:
        - {inputName: USAGE, operator: gte, value: "90", negate: false}
"""

RICH_TOML = """\
# The canary rollout, in TOML.
name = "canary-rollout"
description = "two-group canary rollout"
scheduleRule = "RRULE:DTSTART=20240101T010000Z;FREQ=DAILY;INTERVAL=1"
exceptionRules = [{ rrule = "RRULE:FREQ=WEEKLY;BYDAY=SA,SU", duration = 60 }]

[target]
executionType = "sequential"

[[target.groups]]
timeoutSeconds = 600
distributionMethod = "batching"
earlyTermination = true
nodeListType = "nodes"
nodeIdentifiers = ["canary-1"]

[target.groups.batchSize]
type = "number"
value = 1

[[target.groups.successCriteria]]
status = "success"
numRuns = { type = "percent", value = 100 }

[[target.groups]]
timeoutSeconds = 1200
batchSize = { type = "percent", value = 25 }
distributionMethod = "rolling"
nodeListType = "filter"
successCriteria = [
  { status = "success", numRuns = { type = "percent", value = 90 } },
  { status = "failure", numRuns = { type = "number", value = 2 } },
]

[[target.groups.filter.constraints.attributes]]
name = "kernel_name"
namespace = "agent"
operator = "="
value = ["Linux"]

[[target.groups.filter.constraints.attributes]]
name = "primary_ip"
operator = "MATCHES"
value = ['^10\\.0\\.']

[[target.groups.filter.constraints.skills]]
name = "courier-runner"
version = [">= 1.0.0"]

[actions]
accessMode = "agent"

[[actions.steps]]
name = "check"
description = "is there room?"
command = { linux = ["df --output=pcent / | tail -1"] }
retryCount = 2
limits = { cores = 0, cpu = 1, timeoutSeconds = 30 }

[actions.steps.interpreter]
name = "chef-platform/shell-interpreter"
skill = { minVersion = "1.0.0", maxVersion = "1.9.99" }

[actions.steps.outputFieldRules.USAGE]
sourceType = "output"
source = "stdout"
extractMethod = "regex"
expression = "([0-9]+)%"
required = true
sensitive = false

[actions.steps.failureBehavior]
action = "retryThenFail"

[actions.steps.failureBehavior.retryBackoffStrategy]
type = "exponential"
delaySeconds = 5
arguments = []

[[actions.steps]]
name = "clean"
command.linux = ["rm -rf /var/tmp/courier-cache"]
inputs = { dir = "/var/tmp" }

[actions.steps.interpreter]
name = "chef-platform/shell-interpreter"
skill.minVersion = "1.0.0"
skill.maxVersion = "1.9.99"

[actions.steps.expectedInputs.USAGE]
type = "string"
required = true
sensitive = false

[[actions.steps.conditions]]
inputName = "USAGE"
operator = "gte"
value = "90"
negate = false
"""


LEGACY_YAML = """\
name: disk-report
scheduleRule: immediate
target:
  executionType: sequential
  groups:
    - timeoutSeconds: 300
      batchSize: {type: number, value: 1}
      distributionMethod: batching
      nodeListType: nodes
      nodeIdentifiers: [local]
      filterId: 00000000-0000-0000-0000-000000000000
      listId: 00000000-0000-0000-0000-000000000000
      filter: null
actions:
  steps:
    - name: df
      interpreter:
        name: chef-platform/shell-interpreter
        skill: {minVersion: 1.0.0, maxVersion: 2.0.0}
      command: [df -h]
      failureBehavior:
        action: retryThenFail
        retryBackoffStrategy: {name: polynomial, delaySeconds: 3, arguments: [2]}
      limits: {time: 45}
"""


def load_one(root: Path, relpath: str) -> Any:
    result = load_paths([root / relpath], root)
    assert [p.render() for p in result.errors] == []
    [job] = result.jobs
    return job


def test_json_yaml_and_toml_of_one_job_have_one_hash(tmp_path: Path) -> None:
    build_file_tree(
        tmp_path,
        {
            "job.json": json.dumps(rich_job(), indent=2),
            "job.yaml": RICH_YAML,
            "job.toml": RICH_TOML,
        },
        dedent=False,
    )
    jobs = {name: load_one(tmp_path, name) for name in ["job.json", "job.yaml", "job.toml"]}
    assert jobs["job.yaml"].spec == jobs["job.json"].spec
    assert jobs["job.toml"].spec == jobs["job.json"].spec
    assert len({job.hash for job in jobs.values()}) == 1
    assert {job.format for job in jobs.values()} == {"json", "yaml", "toml"}


def test_the_cli_reports_the_same_hash_for_each_format(tmp_path: Path) -> None:
    build_file_tree(
        tmp_path,
        {
            "jobs.d/job.json": json.dumps(rich_job()),
            "jobs.d/job.yml": RICH_YAML,
            "jobs.d/job.toml": RICH_TOML,
        },
        dedent=False,
    )
    found = set()
    for name in ["job.json", "job.yml", "job.toml"]:
        proc = run_courier_forked("-o", "json", "validate", f"jobs.d/{name}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout
        found.add(json.loads(proc.stdout)["jobs"][0]["hash"])
    assert len(found) == 1


def test_legacy_form_has_the_hash_of_the_modern_form(tmp_path: Path) -> None:
    modern = minimal_job()
    step = modern["actions"]["steps"][0]
    step["failureBehavior"] = {
        "action": "retryThenFail",
        "retryBackoffStrategy": {"type": "polynomial", "delaySeconds": 3, "arguments": [2]},
    }
    step["limits"] = {"timeoutSeconds": 45}
    build_file_tree(
        tmp_path, {"legacy.yaml": LEGACY_YAML, "modern.json": json.dumps(modern)}, dedent=False
    )
    legacy, current = load_one(tmp_path, "legacy.yaml"), load_one(tmp_path, "modern.json")
    assert legacy.spec == current.spec
    assert legacy.hash == current.hash
    result = load_paths([tmp_path / "legacy.yaml"], tmp_path)
    assert [w.field for w in result.warnings] == ["actions.steps[0].command"]


def test_warnings_and_errors_point_into_toml(tmp_path: Path) -> None:
    broken = RICH_TOML.replace('value = "90"\nnegate = false', 'value = "90"\nnegate = "maybe"')
    broken = broken.replace('expression = "([0-9]+)%"', 'expression = "([0-9]+%"')
    build_file_tree(tmp_path, {"job.toml": broken}, dedent=False)
    result = load_paths([tmp_path / "job.toml"], tmp_path)
    lines = broken.splitlines()
    where = {p.field: lines[p.line - 1] for p in result.errors}
    assert where == {
        "actions.steps[0].outputFieldRules.USAGE.expression": 'expression = "([0-9]+%"',
        "actions.steps[1].conditions[0].negate": 'negate = "maybe"',
    }


# --- property: any job written as JSON, YAML or TOML hashes the same -----------------------

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
)
_word = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    doc = minimal_job(draw(_text))
    doc["description"] = draw(st.text(max_size=30).filter(lambda s: "\x00" not in s))
    group = doc["target"]["groups"][0]
    group["timeoutSeconds"] = draw(st.integers(1, 10**9))
    group["batchSize"] = draw(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("number"), "value": st.integers(1, 10**6)}),
            st.fixed_dictionaries({"type": st.just("percent"), "value": st.integers(1, 100)}),
        )
    )
    group["nodeIdentifiers"] = draw(st.lists(_word, min_size=1, max_size=4))
    step = doc["actions"]["steps"][0]
    step["command"] = {"linux": draw(st.lists(_text, min_size=1, max_size=3))}
    step["retryCount"] = draw(st.integers(0, 100))
    step["inputs"] = draw(
        st.dictionaries(
            _word, st.one_of(_text, st.integers(-(2**31), 2**31), st.booleans()), max_size=3
        )
    )
    step["limits"] = {"cpu": draw(st.floats(0, 64, allow_nan=False).map(lambda f: round(f, 3)))}
    return doc


def _yaml(doc: dict[str, Any]) -> bytes:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(doc, out)
    return out.getvalue().encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs())
def test_any_job_hashes_the_same_in_every_format(doc: dict[str, Any]) -> None:
    texts = {
        "json": json.dumps(doc, ensure_ascii=False).encode(),
        "yaml": _yaml(doc),
        "toml": tomlkit.dumps(doc).encode(),
    }
    hashes = {}
    for fmt, data in texts.items():
        result = load_text(f"job.{fmt}", fmt, data)
        assert [p.render() for p in result.errors] == [], data.decode()
        hashes[fmt] = result.jobs[0].hash
    assert len(set(hashes.values())) == 1, hashes
