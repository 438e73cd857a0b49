"""Every command has help and is documented in the README (sqlite-utils' test_docs pattern)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from cli.main import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
        elif path:
            found.append(path)

    walk(get_command(app), ())
    return sorted(found)


COMMANDS = _commands()


def test_there_are_commands() -> None:
    assert ("plan",) in COMMANDS
    assert ("scheduler", "jobs", "add-job") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_command_has_help(command: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    click_command = get_command(app)
    for part in command:
        click_command = click_command.commands[part]  # type: ignore[attr-defined]
    assert (click_command.help or "").strip(), f"`courier {' '.join(command)}` has no help text"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_command_is_in_the_readme(command: tuple[str, ...]) -> None:
    *groups, leaf = command
    if groups:
        # `courier jobs list|show|cancel` documents a group's commands on one line.
        pattern = rf"courier {' '.join(groups)} [^\n]*\b{re.escape(leaf)}\b"
    else:
        pattern = rf"courier {re.escape(leaf)}\b"
    assert re.search(pattern, README), f"`courier {' '.join(command)}` is not in README.md"


def test_typer_is_the_cli() -> None:
    assert isinstance(app, typer.Typer)
