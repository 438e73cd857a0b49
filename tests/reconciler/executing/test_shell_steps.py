"""The shell interpreter through the runner: quoting, working directories, timeouts, cancel."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from reconciler.model.enums import RunStatus, StepStatus
from tests.reconciler.executing.support import Runner, step

NASTY = ["; rm -rf x", "$(touch pwned)", "`touch pwned`", "a'b\"c", "x && touch pwned", "\n"]


@pytest.mark.parametrize("value", NASTY)
def test_substituted_values_are_printed_not_executed(runner: Runner, value: str) -> None:
    (runner.workdir / "x").mkdir()
    producer = step(
        "cat value.txt",
        outputFieldRules={"V": {"sourceType": "output", "extractMethod": "content"}},
    )
    (runner.workdir / "value.txt").write_text(value)
    outcome = runner([producer, step("printf '%s|' {{.V}} {{.IN}}", inputs={"IN": value})])
    assert outcome.status is RunStatus.SUCCESS, outcome.reason
    assert runner.member(2, 1, "stdout.txt") == f"{value}|{value}|"
    assert (runner.workdir / "x").is_dir()
    assert not (runner.workdir / "pwned").exists()


def test_inputs_dir_is_the_working_directory(runner: Runner) -> None:
    (runner.workdir / "app" / "conf").mkdir(parents=True)
    outcome = runner(
        [
            step("pwd", inputs={"dir": "app/conf"}),
            step(
                "pwd",
                inputs={"dir": "{{.SUB}}"},
                expectedInputs={"SUB": {"default": "app"}},
            ),
        ]
    )
    assert outcome.status is RunStatus.SUCCESS
    assert runner.member(1, 1, "stdout.txt") == f"{runner.workdir / 'app' / 'conf'}\n"
    assert runner.member(2, 1, "stdout.txt") == f"{runner.workdir / 'app'}\n"


@pytest.mark.parametrize("directory", ["..", "../other", "/tmp", "app/../../x", "escape"])
def test_inputs_dir_cannot_leave_the_node_folder(
    runner: Runner, tmp_path: Path, directory: str
) -> None:
    (runner.workdir / "app").mkdir()
    (runner.workdir / "escape").symlink_to(tmp_path)
    outcome = runner([step("touch ran", inputs={"dir": directory})])
    (result,) = outcome.steps
    assert result.status is StepStatus.FAILURE
    assert result.num_attempts == 0
    assert result.reason.startswith(f"inputs.dir {directory!r} is outside the node's working")
    assert not list(tmp_path.rglob("ran"))


def test_inputs_dir_must_exist(runner: Runner) -> None:
    outcome = runner([step("true", inputs={"dir": "missing"})])
    assert outcome.steps[0].reason.startswith("inputs.dir 'missing' is not a directory under ")


def test_lines_run_in_order_and_the_first_failure_stops_the_attempt(runner: Runner) -> None:
    outcome = runner([step("echo one", "echo two; exit 3", "touch three")])
    (result,) = outcome.steps
    assert result.reason == "command line 2 exited with 3"
    assert result.attempts[0].exit_code == 3
    assert runner.member(1, 1, "stdout.txt") == "one\ntwo\n"
    assert not (runner.workdir / "three").exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to see processes")
def test_a_timeout_kills_the_whole_process_group_even_if_it_ignores_sigterm(
    runner: Runner,
) -> None:
    stubborn = step(
        "trap '' TERM; sleep 30 & echo $$ $! > pids; wait; wait",
        limits={"timeoutSeconds": 1},
    )
    started = time.monotonic()
    outcome = runner([stubborn, step("touch after")])
    took = time.monotonic() - started
    (first, second) = outcome.steps
    assert first.status is StepStatus.FAILURE
    assert first.reason == "timed out after 1 s"
    assert outcome.status is RunStatus.FAILURE
    assert second.status is StepStatus.CANCELED
    assert 2.5 < took < 6  # 1 s limit, ~2 s grace after SIGTERM, then SIGKILL
    shell, grandchild = _pids(runner.workdir / "pids")
    assert not _alive(shell)
    assert not _alive(grandchild)


def test_a_child_that_obeys_sigterm_ends_without_the_grace(runner: Runner) -> None:
    started = time.monotonic()
    outcome = runner([step("sleep 30", limits={"timeoutSeconds": 1}, retryCount=0)])
    assert outcome.steps[0].reason == "timed out after 1 s"
    assert time.monotonic() - started < 2.5


def test_cancel_kills_the_running_step_and_ends_the_run(runner: Runner) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    outcome = runner([step("sleep 30 & echo $! > pid; wait"), step("touch after")], cancel=cancel)
    timer.join()
    assert time.monotonic() - started < 2.5
    assert outcome.status is RunStatus.CANCELED
    first, second = outcome.steps
    assert first.status is StepStatus.CANCELED
    assert first.attempts[0].reason == "canceled while running"
    assert second.status is StepStatus.CANCELED
    assert second.reason == "not run: the run was canceled"
    assert not (runner.workdir / "after").exists()
    (sleeper,) = _pids(runner.workdir / "pid")
    assert not _alive(sleeper)


def test_a_cancel_during_backoff_stops_retrying(runner: Runner) -> None:
    cancel = threading.Event()
    outcome = runner(
        [
            step(
                "false",
                retryCount=3,
                failureBehavior={"retryBackoffStrategy": {"type": "linear", "delaySeconds": 1}},
            )
        ],
        cancel=cancel,
        sleep=lambda seconds: cancel.set(),
    )
    assert outcome.status is RunStatus.CANCELED
    (result,) = outcome.steps
    assert (result.status, result.num_attempts) == (StepStatus.CANCELED, 1)
    assert result.reason == "canceled while waiting to retry; the command exited with 1"


def test_a_canceled_run_starts_nothing(runner: Runner) -> None:
    cancel = threading.Event()
    cancel.set()
    outcome = runner([step("touch ran")], cancel=cancel)
    assert outcome.status is RunStatus.CANCELED
    assert outcome.reason == "canceled before step 1"
    assert outcome.steps[0].reason == "not run: the run was canceled"
    assert not (runner.workdir / "ran").exists()


def test_environment_of_the_context_reaches_the_step(runner: Runner) -> None:
    assert os.environ.get("PATH")
    outcome = runner([step('test -n "$PATH"', 'test -z "$HOME_NOT_PASSED"')])
    assert outcome.status is RunStatus.SUCCESS
