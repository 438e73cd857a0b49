"""Global options shared by every command, and small helpers to print results."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import typer


@dataclass(frozen=True, slots=True)
class Options:
    repo: Path
    state_url: str | None
    output: str

    @property
    def jobs_dir(self) -> Path:
        return self.repo / "jobs.d"


def options(ctx: typer.Context) -> Options:
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, Options):
        return obj
    return Options(Path.cwd(), os.environ.get("COURIER_STATE_URL"), "text")


def output_format(ctx: typer.Context, local: str | None) -> str:
    """A command's own `-o` wins over the global one (so `-o json` works at the end)."""
    return local or options(ctx).output


def print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    )


def is_terminal() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


def echo(line: str = "") -> None:
    typer.echo(line)


def warn(line: str) -> None:
    typer.echo(line, err=True)


OutputOption = typer.Option(
    None, "-o", "--output", help="Output format: text, json (yaml where noted)."
)
