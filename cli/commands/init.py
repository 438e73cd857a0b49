"""`courier init [DIR]`: scaffold a repository for courier."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.context import echo

COURIER_TOML = """\
# courier configuration. Command-line options and COURIER_* environment variables win over it.
[state]
# url = "postgresql://courier@db.example/courier"   # default: sqlite file .courier/state.db

[report]
out = "status"
"""

EXAMPLE_JOB = """\
# A first job: runs once on this machine as soon as it is applied.
name: hello
description: Say hello from every node.
scheduleRule: immediate
target:
  executionType: sequential
  groups:
    - timeoutSeconds: 60
      batchSize: {type: number, value: 1}
      distributionMethod: batching
      successCriteria:
        - {status: success, numRuns: {type: percent, value: 100}}
      nodeListType: nodes
      nodeIdentifiers: [local]
actions:
  accessMode: agent
  steps:
    - name: hello
      interpreter:
        name: chef-platform/shell-interpreter
        skill: {minVersion: 1.0.0, maxVersion: 9.99.99}
      command:
        linux: ["echo hello from $COURIER_NODE_ID"]
"""

GITIGNORE = ".courier/\n"


def init(
    directory: Path = typer.Argument(Path(), help="Where to create the scaffold."),
) -> None:
    """Scaffold courier.toml, jobs.d/ with an example job, and .gitignore."""
    directory.mkdir(parents=True, exist_ok=True)
    created = []
    for rel, text in (
        ("courier.toml", COURIER_TOML),
        ("jobs.d/hello.yaml", EXAMPLE_JOB),
    ):
        path = directory / rel
        if path.exists():
            echo(f"kept     {rel} (exists)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(rel)
        echo(f"created  {rel}")
    ignore = directory / ".gitignore"
    current = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    if ".courier/" not in current.splitlines():
        ignore.write_text(
            current + ("" if current.endswith("\n") or not current else "\n") + GITIGNORE
        )
        echo("updated  .gitignore (.courier/ holds local state)")
    echo("next: `courier validate`, `courier plan`, `courier apply`")


def register(app: typer.Typer) -> None:
    app.command()(init)
