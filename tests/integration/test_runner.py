"""`courier runner` in fleet mode on real PostgreSQL: issue 6's acceptance and a database outage.

20 agent nodes, each with a real `courier runner` process (and a second runner for one node);
`courier apply --wait` offers the runs, the runners claim them. Two runners are SIGKILLed in the
middle of their step and restarted: their runs are taken over once the lease expires, and their
half-done steps die with them (the orphan guard), so no node's step completes twice and no node
ever runs two steps at once. Skipped without COURIER_TEST_PG_URL.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.model.enums import InstanceStatus, RunStatus, StepStatus
from tests.integration.support import SHELL, GitRepo, collect, courier_env, describe

pytestmark = [pytest.mark.pg, pytest.mark.slow]

NODES = [f"node-{i:02d}" for i in range(20)]
SHARED = "node-00"  # gets a second runner
STEP = (
    'echo "start $(date +%s.%N) $COURIER_RUNNER" >> steps.log; sleep 2; '
    'echo "done $(date +%s.%N) $COURIER_RUNNER" >> steps.log'
)
FAST = ("--lease", "3", "--heartbeat", "1", "--poll", "0.2")  # a dead runner's run moves in ~3 s


def fleet_job(nodes: list[str], name: str = "fleet-rollout") -> dict[str, Any]:
    return {
        "name": name,
        "scheduleRule": "immediate",
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 90,
                    "batchSize": {"type": "percent", "value": 100},
                    "distributionMethod": "batching",
                    "successCriteria": [
                        {"status": "success", "numRuns": {"type": "percent", "value": 100}}
                    ],
                    "nodeListType": "nodes",
                    "nodeIdentifiers": nodes,
                }
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "work",
                    "interpreter": {
                        "name": SHELL,
                        "skill": {"minVersion": "1.0.0", "maxVersion": "9.0.0"},
                    },
                    "command": {"linux": [STEP]},
                }
            ]
        },
    }


def agent_nodes(nodes: list[str]) -> str:
    return "nodes:\n" + "".join(f"  - {{id: {n}, transport: agent}}\n" for n in nodes)


class Runners:
    """`courier runner` processes, each logging to its own file; all stopped at the end."""

    def __init__(self, repo: GitRepo, url: str) -> None:
        self.repo, self.url = repo, url
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, node: str, *extra: str) -> subprocess.Popen[bytes]:
        log = self.repo.tmp / f"runner-{node}-{len(self.procs)}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                self.repo.argv("--state", self.url, "runner", "--node-id", node, *FAST, *extra),
                cwd=self.repo.root,
                env=courier_env(self.repo.tmp),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.procs.append((node, proc, log))
        return proc

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        [proc] = [proc for _, proc, _ in self.procs if proc.pid == pid]
        return proc

    def logs(self, node: str) -> str:
        return "".join(log.read_text() for n, _, log in self.procs if n == node)

    def all_logs(self) -> str:
        return "".join(f"--- {log.name}\n{log.read_text()}" for _, _, log in self.procs)

    def stop_all(self) -> dict[int, int | None]:
        """SIGTERM every live runner once it is in its loop (a process still importing has no
        handler yet) and wait; returns their exit codes by pid."""
        wait_for(
            lambda: all(
                "enrolled node" in log.read_text()
                for _, proc, log in self.procs
                if proc.poll() is None
            ),
            60,
            "every runner to be up",
            self.all_logs,
        )
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for _, proc, _ in self.procs:
            try:
                codes[proc.pid] = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[proc.pid] = None
        return codes


@pytest.fixture
def runners(git_repo: GitRepo, pg_url: str) -> Iterator[Runners]:
    group = Runners(git_repo, pg_url)
    try:
        yield group
    finally:
        for _, proc, _ in group.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def steps_log(repo: GitRepo, node: str) -> list[tuple[str, float, str]]:
    """(`start` | `done`, time, runner) lines the step wrote in the node's working folder."""
    path = repo.root / ".courier" / "nodes" / node / "steps.log"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(kind, float(at), owner) for kind, at, owner in lines]


def wait_for(condition: Any, timeout: float, what: str, context: Any = str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{context()}")
        time.sleep(0.05)


def test_twenty_runners_with_kills_and_a_shared_node_run_each_step_once(
    git_repo: GitRepo, pg_url: str, runners: Runners
) -> None:
    git_repo.write("nodes.yaml", agent_nodes(NODES))
    git_repo.write_job("fleet.json", fleet_job(NODES))
    git_repo.commit()
    store = git_repo.store(pg_url)  # the schema, made once: the runners do not race to make it
    for node in [*NODES, SHARED]:
        runners.start(node)
    apply = git_repo.popen("--state", pg_url, "apply", "--wait", "--timeout", "120")
    try:
        # Kill two runners 0.8 s into their 2 s step (one of the shared node's, and one of a
        # node whose step is running then), and start new ones for their nodes.
        killed_at: dict[str, float] = {}
        victims: list[subprocess.Popen[bytes]] = []
        for which in (SHARED, "any"):
            node = which
            if which == "any":
                busy = [n for n in NODES if n not in killed_at and _in_step(git_repo, n)]
                assert busy, "every step ended before a second runner could be killed"
                node = max(busy, key=lambda n: steps_log(git_repo, n)[0][1])  # the latest
            wait_for(
                lambda n=node: steps_log(git_repo, n) or apply.poll() is not None,
                90,
                f"the step to start on {node}",
                runners.all_logs,
            )
            assert apply.poll() is None, describe(collect(apply)) + runners.all_logs()
            [(_, started, owner)] = steps_log(git_repo, node)  # owner: "host:pid:random"
            time.sleep(max(0.0, started + 0.8 - time.time()))
            assert _in_step(git_repo, node), f"the step on {node} ended before the kill"
            victim = runners.by_pid(int(owner.split(":")[1]))
            victim.kill()
            killed_at[node] = time.time()
            victim.wait(5)
            victims.append(victim)
            runners.start(node)
        done = collect(apply, timeout=150)
    finally:
        if apply.poll() is None:
            apply.kill()
    context = describe(done) + "\n" + runners.all_logs()
    assert done.returncode in (0, 3), context
    assert "Traceback" not in done.stdout + done.stderr + runners.all_logs(), context
    codes = runners.stop_all()
    killed_pids = {victim.pid for victim in victims}
    assert {pid: code for pid, code in codes.items() if pid not in killed_pids} == {
        pid: 0 for pid in codes if pid not in killed_pids
    }, f"{codes}\n{context}"  # SIGTERM: a clean exit

    [instance] = store.instances()
    assert instance.status in (InstanceStatus.SUCCESS, InstanceStatus.FAILURE), context
    runs = store.runs(instance.id)
    assert sorted(r.node_id for r in runs) == NODES  # one run per node
    assert {r.node_id: r.status for r in runs} == dict.fromkeys(NODES, RunStatus.SUCCESS), context
    assert instance.status is InstanceStatus.SUCCESS
    assert done.returncode == 0, context
    recorded: dict[str, list[tuple[Any, Any]]] = {}
    for run in runs:
        [step] = store.steps(run.id)
        assert (step.status, step.num_attempts) == (StepStatus.SUCCESS, 1)
        spans = [(a.started_at, a.ended_at) for a in step.attempts]
        recorded.setdefault(run.node_id, []).extend(spans)
    for spans in recorded.values():  # in the state too, no node ran two attempts at once
        spans.sort()
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))

    for node in NODES:
        lines = steps_log(git_repo, node)
        finished = [owner for kind, _, owner in lines if kind == "done"]
        assert len(finished) == 1, (node, lines)  # completed exactly once, killed runs included
        assert not _overlapping(lines, killed_at.get(node)), (node, lines)
    for node in killed_at:
        starts = [line for line in steps_log(git_repo, node) if line[0] == "start"]
        assert len(starts) == 2, starts  # the killed attempt, then the one that finished
        assert starts[0][2] != starts[1][2]  # by another runner
        assert "again (the lease of its previous runner expired)" in runners.logs(node)
    enrolled = {n.id: n for n in store.list_nodes()}
    assert set(enrolled) == set(NODES)
    assert all(n.transport == "agent" and n.attributes.get("hostname") for n in enrolled.values())
    assert all("shell-interpreter" in n.skills for n in enrolled.values())


def _in_step(repo: GitRepo, node: str) -> bool:
    kinds = [kind for kind, _, _ in steps_log(repo, node)]
    return kinds == ["start"]


def _overlapping(lines: list[tuple[str, float, str]], killed_at: float | None) -> bool:
    """True when two executions of the step on one node overlap in time. A start without its
    `done` was a killed runner's: the guard ended it when its runner died."""
    intervals = []
    for kind, at, owner in lines:
        if kind != "start":
            continue
        ends = [t for k, t, o in lines if k == "done" and o == owner and t >= at]
        if ends:
            intervals.append((at, ends[0]))
        else:
            assert killed_at is not None, f"the step of {owner} never ended"
            intervals.append((at, killed_at + 0.5))  # the guard acts within milliseconds
    intervals.sort()
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(intervals))


# --- a database that goes away -------------------------------------------------------------


class Proxy:
    """A TCP relay to PostgreSQL that can drop every connection and refuse new ones, as a
    database restart does, without touching the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.closing = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # the server is "down": refused
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def down(self) -> None:
        self.up.clear()
        with self.lock:
            for sock in self.conns:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.conns.clear()

    def close(self) -> None:
        self.closing.set()
        self.down()
        self.listener.close()


def test_a_runner_reconnects_after_the_database_went_away(
    git_repo: GitRepo, pg_url: str, runners: Runners
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        git_repo.store(pg_url)  # the schema
        git_repo.write("nodes.yaml", agent_nodes(["edge-1"]))
        git_repo.write_job("edge.json", fleet_job(["edge-1"], "edge"))
        git_repo.commit()
        runners.url = through
        runner = runners.start("edge-1")
        wait_for(
            lambda: "enrolled node" in runners.logs("edge-1"), 90, "the start", runners.all_logs
        )
        proxy.down()
        wait_for(
            lambda: "state database unavailable (claim)" in runners.logs("edge-1"),
            60,
            "the runner to notice the outage",
            runners.all_logs,
        )
        time.sleep(2)  # a few failed retries
        proxy.up.set()
        assert runner.poll() is None, runners.all_logs()
        done = git_repo.courier("--state", pg_url, "apply", "--wait", "--timeout", "60")
        assert done.returncode == 0, describe(done) + runners.all_logs()
        assert "state database available again" in runners.logs("edge-1")
        assert [k for k, _, _ in steps_log(git_repo, "edge-1")] == ["start", "done"]
        assert runners.stop_all() == {runner.pid: 0}
    finally:
        proxy.close()
