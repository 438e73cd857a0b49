"""`courier watch` as a real process: a saved job file shows up as a plan, a broken one as
`path:line:col` problems while watching goes on, `--apply` applies, Ctrl-C exits 130.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

import pytest

from tests.helpers import PROBLEM_LINE
from tests.integration.support import GitRepo, collect, dump_job, job_doc

WAIT_S = 30


class Output:
    """The lines a running process writes to stdout and stderr, read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        assert proc.stdout is not None and proc.stderr is not None
        for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))

    def wait_for(
        self, match: Callable[[str, str], bool], what: str, retry: Callable[[], None] | None = None
    ) -> str:
        """The first new line (stream, text) that `match`es; fails after WAIT_S. `retry` is
        called every 2 s meanwhile (a file saved before the watcher started is saved again)."""
        deadline = time.monotonic() + WAIT_S
        next_retry = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                stream, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                if retry is not None and time.monotonic() >= next_retry:
                    retry()
                    next_retry = time.monotonic() + 2
                continue
            self.seen.append((stream, line))
            if match(stream, line):
                return line
        shown = "\n".join(f"{s}: {line}" for s, line in self.seen)
        pytest.fail(f"no {what} within {WAIT_S}s (exit {self.proc.poll()}); output:\n{shown}")


def start_watch(repo: GitRepo, *args: str) -> tuple[subprocess.Popen[str], Output]:
    proc = repo.popen("watch", "--debounce", "100", *args)
    out = Output(proc)
    out.wait_for(lambda s, line: line.startswith("No changes"), "initial plan")
    return proc, out


def finish(proc: subprocess.Popen[str], signum: int) -> int:
    proc.send_signal(signum)
    try:
        return proc.wait(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            collect(proc)


def test_watch_plans_on_save_reports_problems_and_exits_130_on_ctrl_c(git_repo: GitRepo) -> None:
    proc, out = start_watch(git_repo)
    try:
        job = dump_job(job_doc("nightly"), "json")
        path = git_repo.write("jobs.d/nightly.json", job)
        out.wait_for(
            lambda s, line: s == "out" and re.search(r"\+ create\s+nightly\b", line) is not None,
            "`+ create nightly` in the plan",
            retry=lambda: path.write_text(job, encoding="utf-8"),
        )
        out.wait_for(lambda s, line: line.startswith("Plan: 1 to create"), "the summary")

        broken = "name: broken\nscheduleRule: sometimes\nbogus: [1, 2\n"
        bad = git_repo.write("jobs.d/broken.yaml", broken)
        line = out.wait_for(
            lambda s, line: s == "err" and line.startswith("jobs.d/broken.yaml:"),
            "a problem line for jobs.d/broken.yaml",
            retry=lambda: bad.write_text(broken, encoding="utf-8"),
        )
        assert PROBLEM_LINE.match(line), line
        out.wait_for(lambda s, line: "watching for the fix" in line, "the error summary")
        time.sleep(0.5)
        assert proc.poll() is None, "watch stopped after an invalid file"

        # Fixed: the plan comes back.
        fixed = dump_job(job_doc("broken"), "yaml")
        bad.write_text(fixed, encoding="utf-8")
        out.wait_for(
            lambda s, line: line.startswith("Plan: 2 to create"),
            "the plan after the fix",
            retry=lambda: bad.write_text(fixed, encoding="utf-8"),
        )
    finally:
        code = finish(proc, signal.SIGINT)
    assert code == 130
    assert not [line for _, line in out.seen if "Traceback" in line]
    # Without --apply nothing reached the state.
    assert git_repo.store().read().jobs == {}


def test_watch_apply_applies_each_change(git_repo: GitRepo) -> None:
    proc, out = start_watch(git_repo, "--apply")
    try:
        job = dump_job(job_doc("hourly", schedule="RRULE:FREQ=HOURLY"), "toml")
        path = git_repo.write("jobs.d/hourly.toml", job)
        out.wait_for(
            lambda s, line: line.startswith("Applied: state serial 1"),
            "the apply",
            retry=lambda: path.write_text(job, encoding="utf-8"),
        )
        git_repo.write("nodes.yaml", "nodes:\n  - {id: web-1, transport: local}\n  - {id: web-1}\n")
        out.wait_for(
            lambda s, line: s == "err" and line.startswith("nodes.yaml:"), "a nodes.yaml problem"
        )
    finally:
        code = finish(proc, signal.SIGTERM)
    assert code == 0
    assert "hourly" in git_repo.store().read().jobs
