"""Live progress of executions: a rich display on a terminal, plain lines in CI and pipes."""

from __future__ import annotations

import threading
from typing import Any

import typer

from reconciler.model.enums import InstanceStatus, RunStatus
from reconciler.ports import StoredInstance, StoredRun


class PlainProgress:
    """One line per run and per instance: readable in CI logs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._jobs: dict[str, str] = {}

    def instance_started(self, instance: StoredInstance, job: str, runs: int) -> None:
        with self._lock:
            self._done[instance.id], self._total[instance.id] = 0, runs
            self._jobs[instance.id] = job
        typer.echo(f"{job}: instance {instance.id} started, {runs} run(s)")

    def run_finished(self, instance: StoredInstance, run: StoredRun, status: RunStatus) -> None:
        with self._lock:
            self._done[instance.id] += 1
            done, total = self._done[instance.id], self._total[instance.id]
        job = self._jobs[instance.id]
        typer.echo(f"{job}: group {run.group_number} node {run.node_id}: {status} ({done}/{total})")

    def instance_finished(self, instance: StoredInstance, status: InstanceStatus) -> None:
        typer.echo(f"{self._jobs[instance.id]}: instance {instance.id} {status}")


class RichProgress:
    """A bar per instance, counting runs; the group of the last finished run in its label."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._jobs: dict[str, str] = {}
        self._failed: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def instance_started(self, instance: StoredInstance, job: str, runs: int) -> None:
        self._jobs[instance.id] = job
        self._failed[instance.id] = 0
        self._tasks[instance.id] = self._progress.add_task(job, total=runs)

    def run_finished(self, instance: StoredInstance, run: StoredRun, status: RunStatus) -> None:
        if status is not RunStatus.SUCCESS:
            self._failed[instance.id] += 1
        failed = self._failed[instance.id]
        label = f"{self._jobs[instance.id]} [group {run.group_number}]"
        if failed:
            label += f" [red]{failed} not ok[/red]"
        self._progress.update(self._tasks[instance.id], advance=1, description=label)

    def instance_finished(self, instance: StoredInstance, status: InstanceStatus) -> None:
        colour = "green" if status is InstanceStatus.SUCCESS else "red"
        self._progress.update(
            self._tasks[instance.id],
            description=f"{self._jobs[instance.id]} [{colour}]{status}[/{colour}]",
        )
