"""The `courier` command: the composition root. Builds options, registers commands, maps errors."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from cli.config import read_config, setting
from cli.context import Options
from cli.errors import guarded
from reconciler import __version__

COMMANDS: dict[str, str] = {
    "init": "init",
    "validate": "files",
    "fmt": "files",
    "schema": "files",
    "plan": "reconcile",
    "apply": "reconcile",
    "jobs": "jobs",
    "nodes": "nodes",
    "scheduler": "chef",
    "state": "chef",
    "report": "report",
    "serve": "serve",
    "runner": "runner",
    "daemon": "daemon",
    "watch": "daemon",
}
"""Top-level command -> the module of `cli.commands` whose `register(app)` adds it, in the order
they are registered. A module is imported when one of its commands runs (or for `--help`), so
`courier plan` does not import the report templates, the daemon, ruamel's round trip or tomlkit:
start-up is most of a no-op plan. A command missing here still works: an unknown name imports
every module before it is reported unknown."""


class _Commands(MutableMapping[str, Any]):
    """The app's subcommands, built (as typer would) the first time each is looked up."""

    def __init__(self, built: MutableMapping[str, Any]) -> None:
        self._commands: dict[str, Any] = dict(built)
        self._groups: dict[str, Any] = {}
        self._imported: set[str] = set()

    def _import(self, module: str) -> None:
        if module in self._imported:
            return
        self._imported.add(module)
        scratch = typer.Typer()
        importlib.import_module(f"cli.commands.{module}").register(scratch)
        settings: dict[str, Any] = {
            "pretty_exceptions_short": app.pretty_exceptions_short,
            "rich_markup_mode": app.rich_markup_mode,
        }
        for info in scratch.registered_commands:
            command = typer.main.get_command_from_info(info, **settings)
            if command.name:
                self._commands.setdefault(command.name, command)
        for group_info in scratch.registered_groups:
            group = typer.main.get_group_from_info(
                group_info, suggest_commands=app.suggest_commands, **settings
            )
            if group.name:
                self._groups.setdefault(group.name, group)
            else:
                for name, command in group.commands.items():
                    self._commands.setdefault(name, command)

    def load_all(self) -> None:
        for module in dict.fromkeys(COMMANDS.values()):
            self._import(module)

    def __getitem__(self, name: str) -> Any:
        if name not in self._commands and name not in self._groups:
            if name in COMMANDS:
                self._import(COMMANDS[name])
            if name not in self._commands and name not in self._groups:
                self.load_all()
        return self._commands[name] if name in self._commands else self._groups[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        if name in self._commands:
            del self._commands[name]
        else:
            del self._groups[name]

    def __iter__(self) -> Iterator[str]:
        # typer lists an app's own commands first, then its groups, each in registration order
        self.load_all()
        return iter([*self._commands, *self._groups])

    def __len__(self) -> int:
        self.load_all()
        return len(self._commands) + len(self._groups)


class _LazyGroup(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _Commands(self.commands)


app = typer.Typer(
    name="courier",
    cls=_LazyGroup,
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


def load_all_commands() -> None:
    """Import every command module now (for a warm interpreter that forks CLI runs)."""
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f"cli.commands.{module}")


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    code = guarded(lambda: app(standalone_mode=False))
    sys.exit(code)


if __name__ == "__main__":
    run()
