"""Chef-compatible commands: `scheduler jobs ...` and `state instance ...` (DESIGN.md §7).

Same flags (including Chef's mixed casing) and JSON shapes as chef-courier-cli, which prints
JSON by default; `--profile` and `--format json` are accepted so scripts carry over.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import typer

from cli.context import options, print_json
from cli.shapes import (
    instance_item,
    job_item,
    page_of,
    parse_time,
    rfc3339,
    run_item,
    step_item,
)
from cli.wiring import SystemClock, evidence_store, open_store, secret, serve_url
from reconciler.applying import next_execution
from reconciler.errors import CourierError, UsageError, ValidationFailed
from reconciler.evidence.signing import signed_url
from reconciler.loading import format_of, load_text
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus
from reconciler.ports import JobVersion
from reconciler.scheduling import Schedule

scheduler_app = typer.Typer(help="Chef-compatible scheduler commands.", no_args_is_help=True)
scheduler_jobs = typer.Typer(help="Create, list, read and cancel jobs.", no_args_is_help=True)
state_app = typer.Typer(help="Chef-compatible state commands.", no_args_is_help=True)
state_instance = typer.Typer(help="Job instances.", no_args_is_help=True)
state_run = typer.Typer(help="Job runs: one per node of an instance.", no_args_is_help=True)
scheduler_app.add_typer(scheduler_jobs, name="jobs")
state_app.add_typer(state_instance, name="instance")
state_app.add_typer(state_run, name="run")

Profile = typer.Option("default", "--profile", help="Accepted for chef-courier-cli scripts.")
Format = typer.Option("json", "--format", "-o", help="Output format (json, as Chef's CLI).")
Page = typer.Option(1, "--pagination.page", min=1, help="Page number, from 1.")
Size = typer.Option(10, "--pagination.size", min=1, max=1000, help="Items per page.")


def _check_format(fmt: str) -> None:
    if fmt != "json":
        raise UsageError(f"--format {fmt!r}: Chef-compatible commands print json")


def _status(enum: Any, value: str | None, flag: str) -> Any:
    if value is None:
        return None
    normalized = "canceled" if value == "cancelled" else value
    try:
        return enum(normalized)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise UsageError(f"{flag} {value!r} is not one of {allowed}") from None


@scheduler_jobs.command("add-job")
def add_job(
    ctx: typer.Context,
    body_file: Path | None = typer.Option(None, "--body-file", help="Job template file."),
    body: str | None = typer.Option(None, "--body", help="Job template as a JSON string."),
    body_format: str | None = typer.Option(
        None, "--body-format", help="json, yaml or toml (default: from the file name, else json)."
    ),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """Create an unmanaged job from a template (apply never cancels it)."""
    _check_format(fmt)
    if (body_file is None) == (body is None):
        raise UsageError("give exactly one of --body-file or --body")
    if body_file is not None:
        try:
            data = body_file.read_bytes()
        except OSError as exc:
            raise CourierError(f"cannot read {body_file}: {exc}") from exc
        display = str(body_file)
        kind = body_format or format_of(body_file) or "json"
    else:
        data, display, kind = (body or "").encode(), "--body", body_format or "json"
    if kind not in ("json", "yaml", "toml"):
        raise UsageError(f"--body-format {kind!r} is not one of json, yaml, toml")
    result = load_text(display, kind, data)
    result.raise_for_errors()
    if not result.jobs:
        raise ValidationFailed(result.problems)
    loaded = result.jobs[0]
    now = SystemClock().now()
    immediate = loaded.spec["scheduleRule"] == "immediate"
    upcoming = now if immediate else next_execution(loaded.spec, now, now)
    store = open_store(options(ctx))
    job_id = store.insert_unmanaged(
        loaded.name,
        JobVersion(loaded.spec, loaded.hash, None, None, None, now),
        at=now,
        next_execution_time=None if immediate else upcoming,
        run_at=now if immediate else None,
    )
    print_json(
        {"item": {"exceptionReasons": [], "id": job_id, "nextExecutionTime": rfc3339(upcoming)}}
    )


@scheduler_jobs.command("list-jobs")
def list_jobs(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help="active, completed or canceled."),
    active: bool = typer.Option(False, "--active", help="Only active jobs with a future run."),
    sort_key: str = typer.Option("name", "--sortKey", help="name or createdAt."),
    sort_order: str = typer.Option("asc", "--sortOrder", help="asc or desc."),
    page: int = Page,
    size: int = Size,
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """List jobs, paginated, in Chef's shape."""
    _check_format(fmt)
    if sort_key not in ("name", "createdAt"):
        raise UsageError(f"--sortKey {sort_key!r} is not one of name, createdAt")
    if sort_order not in ("asc", "desc"):
        raise UsageError(f"--sortOrder {sort_order!r} is not one of asc, desc")
    wanted = _status(JobStatus, status, "--status")
    if active:
        wanted = JobStatus.ACTIVE
    store = open_store(options(ctx))
    found = store.list_jobs(status=wanted, sort=sort_key, order=sort_order, page=page, size=size)
    items = [job_item(j) for j in found.items]
    if active:
        items = [i for i in items if i["nextExecutionTime"] != "0001-01-01T00:00:00Z"]
    print_json(page_of(items, found.total, page, size))


@scheduler_jobs.command("get-job")
def get_job(
    ctx: typer.Context,
    job_id: str = typer.Option(..., "--jobId", help="The job's id."),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """One job, with its template and schedule."""
    _check_format(fmt)
    print_json({"item": job_item(open_store(options(ctx)).job_by_id(job_id))})


@scheduler_jobs.command("cancel-job")
def cancel_job(
    ctx: typer.Context,
    job_id: str = typer.Option(..., "--jobId", help="The job's id."),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """Cancel a job: no future instances; running ones are not affected (as in Chef)."""
    _check_format(fmt)
    store = open_store(options(ctx))
    store.job_by_id(job_id)  # NotFound before writing
    store.cancel_job(job_id, SystemClock().now())
    print_json({"item": job_item(store.job_by_id(job_id))})


@scheduler_jobs.command("estimate-run-times")
def estimate_run_times(
    ctx: typer.Context,
    job_id: str = typer.Option(..., "--jobId", help="The job's id."),
    count: int = typer.Option(10, "--count", min=1, max=1000, help="How many future times."),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """The next COUNT execution times of a job, exception windows applied."""
    _check_format(fmt)
    job = open_store(options(ctx)).job_by_id(job_id)
    times: list[datetime] = []
    if job.status is JobStatus.ACTIVE:
        spec = job.spec
        rules = [(r["rrule"], int(r["duration"])) for r in spec.get("exceptionRules", [])]
        schedule = Schedule.parse(spec["scheduleRule"], rules, job.created_at)
        if not schedule.is_immediate:
            times = schedule.occurrences(SystemClock().now(), count)
    print_json({"items": [rfc3339(t) for t in times], "totalItems": len(times)})


@state_instance.command("list-all")
def list_all(
    ctx: typer.Context,
    job_id: str | None = typer.Option(None, "--job-id", help="Only instances of this job."),
    status: str | None = typer.Option(None, "--status", help="Instance status."),
    run_after: str | None = typer.Option(None, "--run-after", help="Created after (RFC 3339)."),
    run_before: str | None = typer.Option(None, "--run-before", help="Created before (RFC 3339)."),
    page: int = Page,
    size: int = Size,
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """List job instances, newest first, in Chef's shape."""
    _check_format(fmt)
    store = open_store(options(ctx))
    found = store.list_instances(
        job_id=job_id,
        status=_status(InstanceStatus, status, "--status"),
        created_after=parse_time(run_after, "--run-after") if run_after else None,
        created_before=parse_time(run_before, "--run-before") if run_before else None,
        page=page,
        size=size,
    )
    spec_of = _spec_cache(store)
    items = [instance_item(i, spec_of(i.job_id, i.job_version)) for i in found.items]
    print_json(page_of(items, found.total, page, size))


@state_instance.command("get-instance")
def get_instance(
    ctx: typer.Context,
    instance_id: str = typer.Option(..., "--instanceId", help="The instance's id."),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """One job instance (without its runs)."""
    _check_format(fmt)
    store = open_store(options(ctx))
    found = store.instance(instance_id)
    print_json({"item": instance_item(found, _spec_cache(store)(found.job_id, found.job_version))})


@state_instance.command("list-instance-runs")
def list_instance_runs(
    ctx: typer.Context,
    instance_id: str = typer.Option(..., "--instanceId", help="The instance's id."),
    group_num: int | None = typer.Option(None, "--groupNum", help="Only this group (from 0)."),
    status: str | None = typer.Option(None, "--status", help="Run status."),
    page: int = Page,
    size: int = Size,
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """The runs of an instance, one per node, with their group and status."""
    _check_format(fmt)
    store = open_store(options(ctx))
    store.instance(instance_id)  # NotFound for an unknown id rather than an empty list
    found = store.list_runs(
        instance_id,
        group=group_num,
        status=_status(RunStatus, status, "--status"),
        page=page,
        size=size,
    )
    print_json({"items": [run_item(r) for r in found.items], "totalItems": found.total})


@state_run.command("get-run")
def get_run(
    ctx: typer.Context,
    run_id: str = typer.Option(..., "--runId", help="The run's id."),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """One run (without its steps)."""
    _check_format(fmt)
    print_json({"item": run_item(open_store(options(ctx)).run(run_id))})


@state_run.command("list-steps")
def list_steps(
    ctx: typer.Context,
    run_id: str = typer.Option(..., "--runId", help="The run's id."),
    page: int = Page,
    size: int = Size,
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """The steps of a run: status, attempts, inputs and outputs (sensitive values masked)."""
    _check_format(fmt)
    store = open_store(options(ctx))
    store.run(run_id)
    steps = store.steps(run_id)
    chunk = steps[(page - 1) * size : page * size]
    print_json({"items": [step_item(s) for s in chunk], "totalItems": len(steps)})


@state_run.command("get-step-attempt-evidence")
def get_step_attempt_evidence(
    ctx: typer.Context,
    run_id: str = typer.Option(..., "--runId", help="The run's id."),
    step_no: int = typer.Option(..., "--stepNo", min=1, help="Step number, from 1."),
    attempt_no: int = typer.Option(..., "--attemptNo", min=1, help="Attempt number, from 1."),
    profile: str = Profile,
    fmt: str = Format,
) -> None:
    """A URL of the evidence zip of one attempt of one step.

    With a `courier serve` URL configured (COURIER_SERVE_URL or courier.toml [serve] url), a
    signed URL on that server that expires in 15 minutes, as Chef's; otherwise the store's own.
    """
    _check_format(fmt)
    opts = options(ctx)
    attempt = open_store(opts).attempt(run_id, step_no, attempt_no)
    if not attempt.evidence_key:
        raise CourierError(
            f"attempt {attempt_no} of step {step_no} of run {run_id} kept no evidence"
        )
    base = serve_url(opts.repo)
    if base is None:
        url = evidence_store(opts.repo).url(attempt.evidence_key)
    else:
        now = SystemClock().now()
        url = signed_url(base, secret(opts.repo), run_id, step_no, attempt_no, now=now)
    print_json({"item": {"artifactUrl": url}})


def _spec_cache(store: Any) -> Any:
    @lru_cache(maxsize=256)
    def versions(job_id: str) -> dict[int, dict[str, Any]]:
        return {i + 1: v.spec for i, v in enumerate(store.job_versions(job_id))}

    def spec_of(job_id: str, version: int) -> dict[str, Any] | None:
        return versions(job_id).get(version)

    return spec_of


def register(app: typer.Typer) -> None:
    app.add_typer(scheduler_app, name="scheduler")
    app.add_typer(state_app, name="state")
