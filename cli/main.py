"""The `courier` command: the composition root. Builds options, registers commands, maps errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from cli.commands import (
    chef,
    daemon,
    files,
    init,
    jobs,
    nodes,
    reconcile,
    report,
    runner,
    serve,
)
from cli.config import read_config, setting
from cli.context import Options
from cli.errors import guarded
from reconciler import __version__

app = typer.Typer(
    name="courier",
    help="GitOps for fleet jobs: Chef Courier job files in git, planned, applied, run, reported.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"courier {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    repo: Path = typer.Option(
        Path(), "--repo", help="The repository holding jobs.d/ and nodes.yaml."
    ),
    state: str | None = typer.Option(
        None,
        "--state",
        envvar="COURIER_STATE_URL",
        help="State database URL (default: sqlite file .courier/state.db in the repo).",
    ),
    output: str = typer.Option("text", "-o", "--output", help="Output format: text, json, yaml."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """GitOps for fleet jobs."""
    root = repo.resolve()
    if state is None:
        state = setting(read_config(root), "state", "url")
    ctx.obj = Options(root, state, output)


init.register(app)
files.register(app)
reconcile.register(app)
jobs.register(app)
nodes.register(app)
chef.register(app)
report.register(app)
serve.register(app)
runner.register(app)
daemon.register(app)


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    code = guarded(lambda: app(standalone_mode=False))
    sys.exit(code)


if __name__ == "__main__":
    run()
