"""`courier validate`, `courier fmt` and `courier schema`: the job files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.context import OutputOption, echo, options, output_format, print_json, warn
from reconciler.errors import CourierError, Problem, ValidationFailed
from reconciler.loading import discover, load_paths
from reconciler.loading.formatting import format_text
from reconciler.loading.parsing import ParseError
from reconciler.loading.positions import json_positions
from reconciler.model.job import JobTemplate


def _paths(ctx: typer.Context, paths: list[Path] | None) -> list[Path]:
    return list(paths) if paths else [options(ctx).jobs_dir]


def validate(
    ctx: typer.Context,
    paths: list[Path] | None = typer.Argument(
        None, help="Job files or folders (default: jobs.d/ of the repo)."
    ),
    output: str | None = OutputOption,
) -> None:
    """Check job files; print every problem as path:line:col: field: message."""
    result = load_paths(_paths(ctx, paths), options(ctx).repo)
    if output_format(ctx, output) == "json":
        print_json(
            {
                "valid": not result.errors,
                "jobs": [{"name": j.name, "path": j.path, "hash": j.hash} for j in result.jobs],
                "problems": [_problem_json(p) for p in result.problems],
            }
        )
        if result.errors:
            raise typer.Exit(1)
        return
    result.raise_for_errors()  # prints every problem, warnings included, once, in file order
    for problem in result.warnings:
        warn(problem.render())
    echo(f"{len(result.jobs)} job file(s) valid")


def _problem_json(p: Problem) -> dict[str, object]:
    return {
        "path": p.path,
        "line": p.line,
        "column": p.column,
        "field": p.field,
        "message": p.message,
        "severity": str(p.severity),
    }


def fmt(
    ctx: typer.Context,
    paths: list[Path] | None = typer.Argument(
        None, help="Job files or folders (default: jobs.d/)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Change nothing; list files that would change and exit 1."
    ),
) -> None:
    """Rewrite job files in the canonical layout (comments in YAML and TOML are kept)."""
    sources, problems = discover(_paths(ctx, paths), options(ctx).repo)
    changed: list[str] = []
    rewrites: list[tuple[Path, str]] = []
    for source in sources:
        data = source.path.read_bytes()
        try:
            formatted = format_text(data, source.format)
        except ParseError as exc:
            line, column = exc.line or 1, exc.column or 1
            if exc.line == 0 and source.format == "json":  # a duplicate key: find where
                duplicates = json_positions(data.decode("utf-8", "replace"))[1]
                if duplicates:
                    line, column = duplicates[0][1]
            problems.append(Problem(source.display, line, column, "", exc.message))
            continue
        if formatted.encode() != data:
            changed.append(source.display)
            rewrites.append((source.path, formatted))
    if problems:
        raise ValidationFailed(problems)
    if check:
        for name in changed:
            echo(f"would reformat {name}")
        if changed:
            raise CourierError(f"{len(changed)} file(s) would be reformatted")
        echo(f"{len(sources)} file(s) already formatted")
        return
    for path, text in rewrites:
        path.write_text(text, encoding="utf-8")
    for name in changed:
        echo(f"reformatted {name}")
    echo(f"{len(changed)} file(s) reformatted, {len(sources) - len(changed)} unchanged")


def schema() -> None:
    """Print the JSON Schema of a job template (for editors and yaml-language-server)."""
    document = JobTemplate.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "https://courier.invalid/schema/job-template.json"
    document["title"] = "Chef Courier job template"
    echo(json.dumps(document, indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(fmt)
    app.command()(schema)
