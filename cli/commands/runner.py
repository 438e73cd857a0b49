"""`courier runner --node-id ID`: the agent of one node in fleet mode (DESIGN.md §5).

The runner's composition root: gathers this machine's facts, opens the state (PostgreSQL in a
fleet; retried until it answers), wires the real step executor, evidence store and clock into
`reconciler.nodes.agent.AgentRunner`, and turns SIGTERM/SIGINT into a graceful stop (a second
signal kills the running step). Logs plain lines to stderr; exits 0 once stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import typer

from cli.context import Options, options
from cli.wiring import SystemClock, evidence_store, open_store, step_env
from reconciler.errors import StateError, UsageError

if TYPE_CHECKING:
    from state import SqlStateStore

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def runner(
    ctx: typer.Context,
    node_id: str = typer.Option(..., "--node-id", help="The node this runner executes for."),
    name: str | None = typer.Option(None, "--name", help="The node's name (default: its id)."),
    lease: float = typer.Option(
        30.0, "--lease", help="Seconds a claimed run stays this runner's without a heartbeat."
    ),
    heartbeat: float = typer.Option(
        10.0, "--heartbeat", help="Seconds between lease renewals (shorter than --lease)."
    ),
    poll: float = typer.Option(
        1.0, "--poll", help="Seconds between claims when idle (backing off to a few seconds)."
    ),
    once: bool = typer.Option(False, "--once", help="Run what can be claimed now, then exit."),
) -> None:
    """Run the jobs of one agent node: enroll it, claim its runs, heartbeat, execute, report."""
    from reconciler.interpreters import BUILTIN_SKILLS
    from reconciler.nodes.agent import (
        RUNNER_ENV,
        AgentRunner,
        OrphanGuard,
        RunnerSettings,
        agent_node,
        step_executor,
    )
    from reconciler.nodes.gather import gather

    opts = options(ctx)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    try:
        settings = RunnerSettings(node_id, owner, lease, heartbeat, poll, once)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    clock = SystemClock()

    def log(line: str) -> None:
        stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        # One write(2) per line: atomic between threads, and safe from a signal handler.
        os.write(2, f"{stamp} runner {node_id}: {line}\n".encode())

    stop = threading.Event()
    agent: list[AgentRunner] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if agent:
            second, busy = agent[0].stopping, agent[0].busy
            agent[0].stop()
            if second and busy:
                log("second signal: killing the running step")
            elif busy:
                log("stopping: finishing the current run first (signal again to kill its step)")
            elif not second:
                log("stopping")
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    store = None
    guard: OrphanGuard | None = None
    try:
        store = open_store(opts) if once else _open(opts, log, stop)
        if store is None:
            return
        node = agent_node(node_id, name or node_id, gather(), BUILTIN_SKILLS)
        # The evidence store is the repository's folder; on a real fleet every runner needs
        # the same one, which is what the S3 store (reconciler/evidence/s3.py) is for.
        execute = step_executor(
            node,
            nodes_root=opts.repo / ".courier" / "nodes",
            env={**step_env(), RUNNER_ENV: owner},
            evidence=evidence_store(opts.repo),
            clock=clock,
        )
        if OrphanGuard.available():
            guard = OrphanGuard(owner)
        else:
            log("no /proc here: a step outlives its runner if the runner is killed")
        on_run = guard.running if guard is not None else (lambda run_id: None)
        agent.append(AgentRunner(store, settings, node, execute, clock, log=log, on_run=on_run))
        if stop.is_set():
            agent[0].stop()
        log(f"started as {owner} (lease {lease:g}s, heartbeat {heartbeat:g}s)")
        handled = agent[0].run()
        log(f"stopped after {handled} run(s)")
    finally:
        if guard is not None:
            guard.close()
        if store is not None:
            store.engine.dispose()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _open(opts: Options, log: Callable[[str], None], stop: threading.Event) -> SqlStateStore | None:
    """The state store, retried with a capped backoff while the database does not answer (a
    runner started with its host outlives a database that is still starting); None if stopped."""
    from sqlalchemy.exc import DBAPIError  # SQLAlchemy is slow to import: only when needed

    from reconciler.nodes.agent import RECONNECT_FIRST_S, RECONNECT_MAX_S

    delay = RECONNECT_FIRST_S
    while True:
        try:
            return open_store(opts)
        except StateError as exc:
            if not isinstance(exc.__cause__, DBAPIError):
                raise  # a bad URL, a newer schema: waiting will not help
            log(f"state database unavailable: {exc.message}; retry in {delay:.1f}s")
        if stop.wait(delay):
            return None
        delay = min(delay * 2, RECONNECT_MAX_S)


def register(app: typer.Typer) -> None:
    app.command("runner")(runner)
