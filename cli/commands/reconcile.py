"""`courier plan` and `courier apply`: the GitOps loop (DESIGN.md §3, §7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from cli.context import (
    Options,
    OutputOption,
    echo,
    is_terminal,
    options,
    output_format,
    print_json,
    warn,
)
from cli.errors import EXIT_CHANGES, EXIT_FAILED_RUNS
from cli.render_plan import as_markdown, as_text
from cli.wiring import (
    SystemClock,
    actor,
    evidence_store,
    head_commit,
    load_inventory,
    open_store,
    step_env,
)
from reconciler.errors import CourierError
from reconciler.model.enums import InstanceStatus
from reconciler.planning import Desired, Plan, make_plan
from reconciler.ports import StoredJob, StoredState

if TYPE_CHECKING:
    from reconciler.executing.orchestrating import InstanceOutcome
    from reconciler.nodes.inventory import Inventory
    from state import SqlStateStore

PLAN_FORMAT = "courier-plan/1"


def _desired(
    ctx: typer.Context, store: SqlStateStore, ref: str | None, *, with_specs: bool = False
) -> tuple[list[Desired], StoredState, str | None]:
    """The desired jobs, the state they were compared with, and the git commit.

    The state is read without its specs unless `with_specs` (a saved plan holds every spec):
    a file unchanged since its job was applied needs only the job's name and hash, and
    parsing 10,000 stored specs would be most of a no-op plan. Such a job's spec is fetched
    only if something asks for it (an apply that restores a drifted job).
    """
    from reconciler.loading.desired import desired_from_git, desired_from_worktree

    opts = options(ctx)
    stored = store.read(with_specs=with_specs)
    spec_of = None if with_specs else _spec_of(store)
    commit: str | None
    if ref:
        desired, result, commit = desired_from_git(
            opts.repo, ref, known=stored.jobs.values(), spec_of=spec_of
        )
    else:
        desired, result = desired_from_worktree(
            [opts.jobs_dir], opts.repo, stored.jobs.values(), spec_of
        )
        commit = head_commit(opts.repo)
    result.raise_for_errors()  # prints warnings and errors together, once
    for problem in result.warnings:
        warn(problem.render())
    return desired, stored, commit


def _spec_of(store: SqlStateStore) -> Callable[[StoredJob], dict[str, Any]]:
    def spec_of(job: StoredJob) -> dict[str, Any]:
        """The spec of the version with the hash the job had when it was read (an apply may
        ask after another apply changed the job since)."""
        for version in reversed(store.job_versions(job.id)):
            if version.hash == job.hash:
                return version.spec
        raise CourierError(f"the state has no version of job {job.name!r} with its hash")

    return spec_of


def plan(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", help="Save the plan to FILE for `apply`."),
    output: str | None = OutputOption,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 2 when the plan has changes (0 when none)."
    ),
    ref: str | None = typer.Option(
        None, "--ref", help="Read jobs.d/ from this git revision instead of the work tree."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also list unchanged jobs."),
) -> None:
    """Show what `apply` would change: jobs to create, update, cancel, and drift."""
    store = open_store(options(ctx))
    desired, stored, commit = _desired(ctx, store, ref, with_specs=out is not None)
    # Specs of jobs whose file changed come in a second read transaction: if an apply
    # committed in between, their fields show against its version, and the plan is stale
    # anyway (its serial is the first read's, so `apply PLANFILE` refuses it).
    the_plan = make_plan(desired, stored, store.specs)
    fmt = output_format(ctx, output)
    if fmt == "json":
        print_json(the_plan.to_json())
    elif fmt == "markdown":
        echo(as_markdown(the_plan))
    else:
        echo(as_text(the_plan, verbose=verbose))
    if out is not None:
        _save_plan(out, the_plan, desired, commit)
        if fmt == "text":
            echo(f"Saved the plan to {out}; apply it with `courier apply {out}`.")
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


def _save_plan(path: Path, the_plan: Plan, desired: list[Desired], commit: str | None) -> None:
    document = {
        "format": PLAN_FORMAT,
        "stateSerial": the_plan.serial,
        "gitCommit": commit,
        "desired": [
            {"name": d.name, "path": d.path, "spec": d.spec, "hash": d.hash, "blobId": d.blob_id}
            for d in desired
        ],
        "plan": the_plan.to_json(),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tmp.replace(path)


class _SavedDesired(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    path: str
    spec: dict[str, Any]
    hash: str
    blobId: str | None = None


class _SavedPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    stateSerial: int
    gitCommit: str | None = None
    desired: list[_SavedDesired]
    plan: dict[str, Any]


def _load_plan(path: Path) -> tuple[list[Desired], int, str | None]:
    from reconciler.model import canonical, spec_hash, validate_document

    try:
        saved = _SavedPlan.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise CourierError(f"cannot read plan file {path}: {exc}") from exc
    except ValidationError as exc:
        raise CourierError(f"{path} is not a courier plan file: {exc.errors()[0]['msg']}") from exc
    if saved.format != PLAN_FORMAT:
        raise CourierError(f"{path}: unknown plan format {saved.format!r}")
    desired = []
    for d in saved.desired:
        # A plan file is input like any other: re-validate each spec and check its hash.
        validated = validate_document(d.spec)
        if (
            validated.job is None
            or spec_hash(canonical(validated.job)) != d.hash
            or validated.job.name != d.name
        ):
            raise CourierError(f"{path}: the spec of job {d.name!r} was altered after planning")
        desired.append(Desired(d.name, d.path, d.spec, d.hash, d.blobId))
    return desired, saved.stateSerial, saved.gitCommit


def apply_cmd(
    ctx: typer.Context,
    planfile: Path | None = typer.Argument(None, help="A plan saved by `plan --out`."),
    cancel_running: bool = typer.Option(
        False, "--cancel-running", help="Also cancel running instances of canceled jobs."
    ),
    restart_running: bool = typer.Option(
        False, "--restart-running", help="Cancel running instances of jobs whose execution changed."
    ),
    allow_mass_cancel: bool = typer.Option(
        False, "--allow-mass-cancel", help="Allow a plan that cancels more than half of the jobs."
    ),
    lock_timeout: float = typer.Option(
        30.0, "--lock-timeout", help="Seconds to wait for another apply to finish."
    ),
    ref: str | None = typer.Option(None, "--ref", help="Apply jobs.d/ as of this git revision."),
    wait: bool = typer.Option(
        False,
        "--wait",
        help="Run the due instances on local nodes to completion (exit 3 if any fails).",
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="With --wait: stop waiting after S seconds (runs end `timeout`)."
    ),
    output: str | None = OutputOption,
) -> None:
    """Make the state match jobs.d/: schedule new jobs, update changed ones, cancel removed ones."""
    from reconciler.applying import ApplyOptions, apply

    opts = options(ctx)
    store = open_store(opts)
    inventory = load_inventory(opts.repo)
    expected: int | None = None
    if planfile is not None:
        if ref:
            raise CourierError("give either a plan file or --ref, not both")
        desired, expected, commit = _load_plan(planfile)
    else:
        desired, _, commit = _desired(ctx, store, ref)  # apply plans again, inside the lock
    result = apply(
        desired,
        store,
        SystemClock().now(),
        ApplyOptions(
            lock_timeout=lock_timeout,
            allow_mass_cancel=allow_mass_cancel,
            cancel_running=cancel_running,
            restart_running=restart_running,
            actor=actor(),
            git_commit=commit,
            expected_serial=expected,
            inventory=inventory,
        ),
    )
    as_json = output_format(ctx, output) == "json"
    if not as_json:
        echo(as_text(result.plan))
        verb = "Applied" if result.changed else "Nothing to apply"
        echo(f"{verb}: state serial {result.serial}, {len(result.instances)} instance(s) created.")
    outcomes = run_due(opts, store, inventory, timeout, quiet=as_json) if wait else []
    if as_json:
        print_json(
            {
                **result.plan.to_json(),
                "applied": result.changed,
                "stateSerial": result.serial,
                "instances": list(result.instances),
                "executions": [
                    {
                        "instanceId": o.instance_id,
                        "job": o.job_name,
                        "status": str(o.status),
                        "runs": dict(o.counts),
                    }
                    for o in outcomes
                ],
            }
        )
    failed = [o for o in outcomes if o.status is not InstanceStatus.SUCCESS]
    if not as_json and outcomes:
        echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} instance(s) succeeded.")
    if failed:
        raise typer.Exit(EXIT_FAILED_RUNS)


def run_due(
    opts: Options, store: SqlStateStore, inventory: Inventory, timeout: float | None, *, quiet: bool
) -> list[InstanceOutcome]:
    """Execute the instances that are due now on local nodes, with live progress."""
    from contextlib import nullcontext

    from cli.progress import PlainProgress, RichProgress
    from reconciler.executing.orchestrating import Executor, execute_due

    clock = SystemClock()
    now = clock.now()
    deadline = now + timedelta(seconds=timeout) if timeout else None
    rich = RichProgress() if is_terminal() and not quiet else None
    progress = rich or (_Silent() if quiet else PlainProgress())
    executor = Executor(
        store=store,
        inventory=inventory,
        evidence=evidence_store(opts.repo),
        clock=clock,
        nodes_root=opts.repo / ".courier" / "nodes",
        env=step_env(),
        progress=progress,
    )
    with rich or nullcontext():
        return execute_due(executor, now=now, deadline=deadline)


class _Silent:
    def instance_started(self, *args: object) -> None:
        pass

    def run_finished(self, *args: object) -> None:
        pass

    def instance_finished(self, *args: object) -> None:
        pass


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command("apply")(apply_cmd)
