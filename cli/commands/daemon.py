"""`courier daemon` and `courier watch`: the always-on commands (DESIGN.md §5, §7).

`daemon` wires the state, the clock, the inventory and the executor into `reconciler.scheduler`
and `reconciler.daemon`, and turns SIGTERM/SIGINT into a graceful stop (a second signal
interrupts the running steps); it logs plain lines to stderr. `watch` validates and plans (with
`--apply`, applies) the work tree whenever `jobs.d/` or `nodes.yaml` changes.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from cli.context import Options, echo, options, warn
from cli.errors import EXIT_FAILED_RUNS
from cli.wiring import (
    SystemClock,
    actor,
    evidence_store,
    head_commit,
    load_inventory,
    open_store,
    step_env,
)
from reconciler.errors import CourierError, Problem, Severity, ValidationFailed
from reconciler.model.enums import InstanceStatus
from reconciler.scheduler import MissedRuns

if TYPE_CHECKING:
    from watchfiles import Change

    from reconciler.nodes.inventory import Inventory
    from state import SqlStateStore

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
NODES_FILE = "nodes.yaml"


def daemon(
    ctx: typer.Context,
    interval: float = typer.Option(
        5.0, "--interval", min=0.1, help="Seconds between ticks (creating and starting instances)."
    ),
    missed: MissedRuns = typer.Option(
        MissedRuns.CATCH_UP,
        "--missed",
        help="Occurrences missed while no daemon ran: catch-up runs the latest of them once, "
        "skip runs none.",
    ),
    once: bool = typer.Option(
        False, "--once", help="One tick, run what is due to its end, exit (3 if any failed)."
    ),
    grace: float = typer.Option(
        30.0,
        "--grace",
        min=0,
        help="On SIGTERM/SIGINT: seconds started runs get to finish before they are interrupted.",
    ),
    max_instances: int = typer.Option(
        8, "--max-instances", min=1, help="Instances this daemon executes at the same time."
    ),
) -> None:
    """Create instances of recurring jobs when due and execute local nodes' runs."""
    from reconciler.daemon import Dispatcher, LogProgress, Stop, run_daemon
    from reconciler.executing.orchestrating import Executor
    from reconciler.scheduler import Policy, Scheduler

    opts = options(ctx)
    clock = SystemClock()

    def log(line: str) -> None:
        stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        # One write(2) per line: atomic between threads, and safe from a signal handler.
        os.write(2, f"{stamp} daemon: {line}\n".encode())

    stop = Stop()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            log("second signal: interrupting the running steps now")
        else:
            log(f"{signal.Signals(signum).name}: stopping (no new instances or runs)")
        stop.request()

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    store = None
    try:
        store = open_store(opts)
        nodes = _Nodes(opts.repo, log)
        inventory = nodes.load()
        # `skip`: an occurrence seen within two ticks of its time is on time, not missed.
        on_time = timedelta(seconds=max(2 * interval, 10.0))
        scheduler = Scheduler(
            store,
            clock,
            inventory,
            Policy(MissedRuns(missed), on_time=on_time),
            log=log,
            holder=f"courier daemon {actor()}",
        )
        executor = Executor(
            store=store,
            inventory=inventory,
            evidence=evidence_store(opts.repo),
            clock=clock,
            nodes_root=opts.repo / ".courier" / "nodes",
            env=step_env(),
            progress=LogProgress(log),
        )
        dispatcher = Dispatcher(executor, store, max_instances=max_instances, log=log)

        def refresh() -> None:
            changed = nodes.reload()
            if changed is not None:
                scheduler.inventory = changed
                dispatcher.set_inventory(changed)

        log(
            f"started: tick every {interval:g}s, missed runs: {MissedRuns(missed)}, "
            f"up to {max_instances} instance(s) at a time"
        )
        outcomes = run_daemon(
            scheduler,
            dispatcher,
            stop,
            clock=clock,
            interval=interval,
            grace=grace,
            once=once,
            log=log,
            refresh=refresh,
        )
    finally:
        if store is not None:
            store.engine.dispose()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if once and any(o.status is not InstanceStatus.SUCCESS for o in outcomes):
        raise typer.Exit(EXIT_FAILED_RUNS)


class _Nodes:
    """`nodes.yaml`, loaded again when it changes; a broken edit keeps the previous inventory."""

    def __init__(self, repo: Path, log: Callable[[str], None]) -> None:
        self.path = repo / NODES_FILE
        self.repo = repo
        self.log = log
        self._stamp = self._stat()

    def load(self) -> Inventory:
        return load_inventory(self.repo)

    def reload(self) -> Inventory | None:
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            inventory = load_inventory(self.repo)
        except ValidationFailed as exc:
            for problem in exc.problems:
                self.log(problem.render())
            self.log(f"{NODES_FILE} has problems; keeping the inventory loaded before")
            return None
        self.log(f"{NODES_FILE} changed: inventory reloaded")
        return inventory

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size


# -- watch ------------------------------------------------------------------------------------


def watch(
    ctx: typer.Context,
    apply_: bool = typer.Option(False, "--apply", help="Also apply every valid change."),
    debounce: int = typer.Option(
        300, "--debounce", min=0, help="Milliseconds to wait for more changes before planning."
    ),
    exit_after: int | None = typer.Option(
        None, "--exit-after", min=1, hidden=True, help="Exit after N changes (for tests)."
    ),
) -> None:
    """Validate and plan (with --apply, apply) whenever jobs.d/ or nodes.yaml changes."""
    import watchfiles

    opts = options(ctx)
    store = open_store(opts)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()  # watchfiles polls it; Ctrl-C (SIGINT) raises KeyboardInterrupt: exit 130

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        warn(f"watching {opts.jobs_dir} and {opts.repo / NODES_FILE}; Ctrl-C to stop")
        _plan_once(opts, store, apply_)
        for rounds, changes in enumerate(
            watchfiles.watch(
                opts.repo,
                watch_filter=_Relevant(opts.repo),
                debounce=debounce,
                stop_event=stop,
                raise_interrupt=True,
            ),
            start=1,
        ):
            paths = sorted({_relative(opts.repo, path) for _change, path in changes})
            echo("")
            echo(f"changed: {', '.join(paths)}")
            _plan_once(opts, store, apply_)
            if exit_after is not None and rounds >= exit_after:
                break
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.engine.dispose()


def _plan_once(opts: Options, store: SqlStateStore, apply_: bool) -> None:
    """Validate, plan and maybe apply the work tree; print problems instead of raising them."""
    from cli.render_plan import as_text
    from reconciler.applying import ApplyOptions, apply
    from reconciler.loading.desired import desired_from_worktree
    from reconciler.planning import make_plan

    try:
        problems: list[Problem] = []
        inventory = None
        try:
            inventory = load_inventory(opts.repo)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
        stored = store.read()
        desired, result = desired_from_worktree([opts.jobs_dir], opts.repo, stored.jobs.values())
        problems.extend(result.problems)
        if result.errors or inventory is None:
            raise ValidationFailed(problems)
        for problem in problems:
            warn(problem.render())
        if not apply_:
            echo(as_text(make_plan(desired, stored)))
            return
        applied = apply(
            desired,
            store,
            SystemClock().now(),
            ApplyOptions(inventory=inventory, actor=actor(), git_commit=head_commit(opts.repo)),
        )
        echo(as_text(applied.plan))
        verb = "Applied" if applied.changed else "Nothing to apply"
        echo(
            f"{verb}: state serial {applied.serial}, {len(applied.instances)} instance(s) created."
        )
    except ValidationFailed as exc:
        for problem in exc.problems:
            warn(problem.render())
        errors = [p for p in exc.problems if p.severity is Severity.ERROR]
        warn(f"error: {len(errors)} problem(s); watching for the fix")
    except CourierError as exc:
        warn(f"error: {exc.message}; watching for the next change")


class _Relevant:
    """Changes under jobs.d/ and to nodes.yaml, minus editor swap and backup files."""

    def __init__(self, repo: Path) -> None:
        import watchfiles

        self.jobs = repo / "jobs.d"
        self.nodes = repo / NODES_FILE
        self.default = watchfiles.DefaultFilter()

    def __call__(self, change: Change, path: str) -> bool:
        where = Path(path)
        if where != self.nodes and not where.is_relative_to(self.jobs):
            return False
        return bool(self.default(change, path))


def _relative(repo: Path, path: str) -> str:
    try:
        return str(Path(path).relative_to(repo))
    except ValueError:
        return path


def register(app: typer.Typer) -> None:
    app.command()(daemon)
    app.command()(watch)
