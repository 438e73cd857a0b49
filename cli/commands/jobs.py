"""`courier jobs list|show|cancel`: the jobs in the state, as tables or as JSON (-o json)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from cli.context import OutputOption, echo, options, output_format, print_json
from cli.shapes import instance_item, job_item, rfc3339
from cli.wiring import SystemClock, open_store
from reconciler.errors import NotFound

jobs_app = typer.Typer(help="The jobs in the state.", no_args_is_help=True)


@jobs_app.command("list")
def list_(ctx: typer.Context, output: str | None = OutputOption) -> None:
    """List every job: status, managed or not, schedule, next run, version, file."""
    store = open_store(options(ctx))
    jobs = sorted(store.read().jobs.values(), key=lambda j: j.name)
    if output_format(ctx, output) == "json":
        print_json(
            {
                "items": [
                    {
                        **job_item(j),
                        "managed": j.managed,
                        "originPath": j.origin_path,
                        "version": j.version,
                    }
                    for j in jobs
                ],
                "totalItems": len(jobs),
            }
        )
        return
    rows = [
        (
            j.name,
            str(j.status),
            "yes" if j.managed else "no",
            str(j.spec["scheduleRule"]),
            rfc3339(j.next_execution_time) if j.next_execution_time else "-",
            str(j.version),
            j.origin_path or "-",
        )
        for j in jobs
    ]
    _table(("NAME", "STATUS", "MANAGED", "SCHEDULE", "NEXT RUN", "VERSION", "FILE"), rows)


@jobs_app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The job's name."),
    output: str | None = OutputOption,
) -> None:
    """One job: its spec, versions and instances."""
    store = open_store(options(ctx))
    job = store.read().jobs.get(name)
    if job is None:
        raise NotFound(f"no job named {name!r}")
    versions = store.job_versions(job.id)
    instances = store.instances(job.id)
    specs = {i + 1: v.spec for i, v in enumerate(versions)}
    if output_format(ctx, output) == "json":
        print_json(
            {
                "item": {
                    **job_item(job),
                    "managed": job.managed,
                    "originPath": job.origin_path,
                    "version": job.version,
                    "versions": [_version_json(i + 1, v) for i, v in enumerate(versions)],
                    "instances": [instance_item(i, specs.get(i.job_version)) for i in instances],
                }
            }
        )
        return
    echo(f"{job.name}  ({job.status}, {'managed' if job.managed else 'unmanaged'}, id {job.id})")
    echo(f"  file:      {job.origin_path or '-'}")
    echo(f"  schedule:  {job.spec['scheduleRule']}")
    echo(f"  next run:  {rfc3339(job.next_execution_time) if job.next_execution_time else '-'}")
    echo(f"  versions:  {len(versions)}")
    for i, v in enumerate(versions):
        commit, source = v.git_commit or "-", v.source_path or "-"
        echo(f"    v{i + 1}  {rfc3339(v.applied_at)}  {v.hash[:12]}  {commit}  {source}")
    echo(f"  instances: {len(instances)}")
    for inst in instances:
        echo(f"    {inst.id}  v{inst.job_version}  {inst.status:<8}  {rfc3339(inst.created_at)}")


def _version_json(number: int, v: Any) -> dict[str, Any]:
    return {
        "version": number,
        "hash": v.hash,
        "sourcePath": v.source_path,
        "gitCommit": v.git_commit,
        "appliedAt": rfc3339(v.applied_at),
    }


@jobs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The job's name."),
    running: bool = typer.Option(False, "--running", help="Also cancel running instances."),
) -> None:
    """Stop future instances of a job (and, with --running, running ones)."""
    store = open_store(options(ctx))
    job = store.read().jobs.get(name)
    if job is None:
        raise NotFound(f"no job named {name!r}")
    count = store.cancel_job(job.id, SystemClock().now(), running=running)
    note = " (it is managed: the next `courier apply` restores it unless its file is removed)"
    echo(f"canceled {name}; {count} instance(s) canceled" + (note if job.managed else ""))


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    from cli.context import is_terminal

    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
