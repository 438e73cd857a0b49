"""`plan -o markdown` is a pull-request comment: a summary table first, and under 60,000
characters (GitHub's comment limit is 65,536) however large the plan (issue 3).
"""

from __future__ import annotations

import json

from tests.integration.support import GitRepo, expect

CREATES = 3_000
LIMIT = 60_000


def write_many(repo: GitRepo, count: int) -> None:
    # Written directly, not through the YAML/TOML dumpers: 3,000 files should cost milliseconds.
    for i in range(count):
        name = f"a-rather-long-job-name-for-the-pull-request-comment-{i:05d}"
        doc = json.loads(json.dumps(TEMPLATE))
        doc["name"] = name
        repo.write(f"jobs.d/team-{i % 30:02d}/{name}.json", json.dumps(doc))
    repo.commit(f"{count} jobs")


TEMPLATE = {
    "name": "",
    "scheduleRule": "immediate",
    "target": {
        "executionType": "sequential",
        "groups": [
            {
                "timeoutSeconds": 60,
                "batchSize": {"type": "number", "value": 1},
                "distributionMethod": "batching",
                "nodeListType": "nodes",
                "nodeIdentifiers": ["local"],
            }
        ],
    },
    "actions": {
        "steps": [
            {
                "name": "say",
                "interpreter": {
                    "name": "chef-platform/shell-interpreter",
                    "skill": {"minVersion": "1.0.0", "maxVersion": "2.0.0"},
                },
                "command": {"linux": ["echo hello"]},
            }
        ]
    },
}


def table_of(markdown: str) -> list[list[str]]:
    """The first Markdown table of `markdown`, as rows of stripped cells."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows


def test_markdown_of_three_thousand_creates(git_repo: GitRepo) -> None:
    write_many(git_repo, CREATES)
    proc = expect(git_repo.courier("plan", "-o", "markdown"), 0)
    text = proc.stdout

    assert len(text) < LIMIT, len(text)
    lines = [line for line in text.splitlines() if line.strip()]
    # The summary table comes first: at most a heading line before it.
    first_table_line = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert first_table_line <= 1 and all(line.startswith("#") for line in lines[:first_table_line])
    header, rule, values = table_of(text)[:3]
    assert set(rule) <= {"---", "---:", ":---", ":---:"}
    summary = dict(zip(header, values, strict=True))
    assert summary["create"] == str(CREATES)
    assert {summary[k] for k in ("update", "cancel", "drift")} == {"0"}
    # It says that it left changes out, and where to find all of them.
    assert "-o json" in text
    shown = sum(1 for line in lines if "a-rather-long-job-name" in line)
    assert 0 < shown < CREATES


def test_markdown_of_a_small_plan_lists_every_change(git_repo: GitRepo) -> None:
    write_many(git_repo, 3)
    text = expect(git_repo.courier("plan", "-o", "markdown"), 0).stdout
    assert table_of(text)[2][0] == "3"
    for i in range(3):
        assert f"a-rather-long-job-name-for-the-pull-request-comment-{i:05d}" in text
