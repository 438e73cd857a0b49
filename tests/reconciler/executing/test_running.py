from __future__ import annotations

import json
import shutil

import pytest

from reconciler.interpreters.unsupported import UNSUPPORTED
from reconciler.model.enums import RunStatus, StepStatus
from tests.reconciler.executing.support import RUN_ID, Runner, node, step

COUNTER = (
    'if [ -f tried ]; then echo "second try"; '
    'else touch tried; echo "first attempt broke" >&2; exit 1; fi'
)


def test_a_step_sees_the_run_in_its_environment(runner: Runner) -> None:
    outcome = runner(
        [
            step(
                "echo $COURIER_NODE_ID $COURIER_RUN_ID $COURIER_INSTANCE_ID $COURIER_JOB_NAME",
                "echo $COURIER_STEP_NUMBER $COURIER_ATTEMPT; pwd",
                'test -d "$COURIER_EVIDENCE_DIR"',
            )
        ]
    )
    assert outcome.status is RunStatus.SUCCESS
    (result,) = outcome.steps
    assert (result.status, result.num_attempts, result.reason) == (StepStatus.SUCCESS, 1, "")
    assert result.interpreter_path == shutil.which("sh")
    assert result.interpreter_version == "1.4.0"
    assert result.attempts[0].exit_code == 0
    assert result.attempts[0].evidence_key == (
        f"run/{RUN_ID}/step/1/attempt/1/evidence-run-{RUN_ID}-step-1-attempt-1.zip"
    )
    stdout = runner.member(1, 1, "stdout.txt").splitlines()
    assert stdout == [f"node-1 {RUN_ID} instance-1 job-a", "1 1", str(runner.workdir)]


def test_evidence_holds_result_command_and_left_files(runner: Runner) -> None:
    outcome = runner(
        [
            step(
                "echo {{.greeting}}",
                'mkdir -p "$COURIER_EVIDENCE_DIR/sub" && echo report > '
                '"$COURIER_EVIDENCE_DIR/sub/report.txt"',
                'ln -s /etc/hostname "$COURIER_EVIDENCE_DIR/link"',
                inputs={"greeting": "hi there"},
                limits={"cores": 2, "timeoutSeconds": 30},
            )
        ]
    )
    assert outcome.status is RunStatus.SUCCESS
    archive = runner.zip_of(1, 1)
    assert sorted(archive.namelist()) == [
        "command.txt",
        "files/sub/report.txt",
        "outputs.json",
        "result.json",
        "stderr.txt",
        "stdout.txt",
    ]
    assert archive.read("command.txt").decode().splitlines()[0] == "echo 'hi there'"
    result = json.loads(archive.read("result.json"))
    assert result["exitCode"] == 0
    assert result["status"] == "success"
    assert result["attempt"] == 1
    assert result["nodeId"] == "node-1"
    assert result["interpreter"]["name"] == "chef-platform/shell-interpreter"
    assert result["interpreter"]["version"] == "1.4.0"
    assert result["startedAt"] == "2026-01-02T03:04:05.002Z"
    assert result["endedAt"] == "2026-01-02T03:04:05.003Z"
    assert result["durationSeconds"] == 0.001
    assert result["notes"] == ["limits.cores not enforced on this platform"]
    assert result["skippedFiles"] == ["link: a symbolic link"]
    assert json.loads(outcome.steps[0].inputs) == {"greeting": "hi there"}


def test_output_beyond_the_cap_keeps_the_end(runner: Runner) -> None:
    outcome = runner([step("head -c 1200000 /dev/zero | tr '\\0' a; echo END")])
    assert outcome.status is RunStatus.SUCCESS
    stdout = runner.member(1, 1, "stdout.txt")
    assert len(stdout) == 1024 * 1024
    assert stdout.endswith("aaaEND\n")
    result = json.loads(runner.member(1, 1, "result.json"))
    assert result["stdoutDroppedBytes"] == 1200004 - 1024 * 1024


def test_a_retry_that_succeeds_keeps_each_attempts_evidence(runner: Runner) -> None:
    outcome = runner([step(COUNTER, retryCount=2)])
    assert outcome.status is RunStatus.SUCCESS
    (result,) = outcome.steps
    assert result.status is StepStatus.SUCCESS
    assert result.num_attempts == 2
    first, second = result.attempts
    assert (first.status, first.exit_code, first.reason) == (
        StepStatus.FAILURE,
        1,
        "the command exited with 1",
    )
    assert (second.status, second.exit_code) == (StepStatus.SUCCESS, 0)
    assert runner.member(1, 1, "stderr.txt") == "first attempt broke\n"
    assert runner.member(1, 2, "stderr.txt") == ""
    assert runner.member(1, 2, "stdout.txt") == "second try\n"
    assert runner.sleeps == []  # backoff `none`


def test_retry_then_fail_stops_the_run_and_reports_the_rest(runner: Runner) -> None:
    outcome = runner(
        [step("echo one"), step("false", "echo never", retryCount=1), step("touch third")]
    )
    assert outcome.status is RunStatus.FAILURE
    assert (
        outcome.reason == "step 2 (a step) failed: command line 1 exited with 1 (after 2 attempts)"
    )
    assert [s.status for s in outcome.steps] == [
        StepStatus.SUCCESS,
        StepStatus.FAILURE,
        StepStatus.CANCELED,
    ]
    third = outcome.steps[2]
    assert (third.num_attempts, third.reason) == (0, "not run: a step failed")
    assert not (runner.workdir / "third").exists()
    assert runner.member(2, 2, "stdout.txt") == ""  # line 2 never ran


def test_retry_then_ignore_goes_on(runner: Runner) -> None:
    ignored = step("exit 7", failureBehavior={"action": "retryThenIgnore"}, retryCount=1)
    outcome = runner([ignored, step("touch second")])
    assert outcome.status is RunStatus.SUCCESS
    first = outcome.steps[0]
    assert (first.status, first.num_attempts) == (StepStatus.IGNORED, 2)
    assert first.reason == "the command exited with 7 (after 2 attempts)"
    assert (runner.workdir / "second").exists()


@pytest.mark.parametrize(
    ("skills", "reason"),
    [
        (
            {"shell-interpreter": "0.9.0"},
            "node node-1 has shell-interpreter 0.9.0, below the step's minVersion 1.0.0",
        ),
        (
            {"shell-interpreter": "2.0.0"},
            "node node-1 has shell-interpreter 2.0.0, above the step's maxVersion 1.9.99",
        ),
        (
            {},
            "node node-1 has no skill shell-interpreter (needed by "
            "chef-platform/shell-interpreter)",
        ),
    ],
)
def test_a_skill_out_of_range_fails_without_running(
    runner: Runner, skills: dict[str, str], reason: str
) -> None:
    outcome = runner([step("touch ran")], target=node(skills=skills))
    (result,) = outcome.steps
    assert (result.status, result.num_attempts, result.reason) == (StepStatus.FAILURE, 0, reason)
    assert outcome.status is RunStatus.FAILURE
    assert not (runner.workdir / "ran").exists()
    assert not runner.evidence_root.exists()


def test_max_version_is_inclusive(runner: Runner) -> None:
    outcome = runner([step("true")], target=node(skills={"shell-interpreter": "1.9.99"}))
    assert outcome.status is RunStatus.SUCCESS


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_interpreters_that_cannot_run_here_fail_clearly(runner: Runner, name: str) -> None:
    unsupported = step(
        name=name,
        interpreter={"name": name, "skill": {"minVersion": "1.0.0", "maxVersion": "9.0.0"}},
        command={"exec": "machine_reboot", "args": {"time": "1"}},
    )
    outcome = runner([unsupported])
    (result,) = outcome.steps
    assert result.status is StepStatus.FAILURE
    assert result.num_attempts == 0
    assert result.reason.startswith(f"{name} cannot run on a local node: ")


def test_an_unknown_interpreter_fails_clearly(runner: Runner) -> None:
    outcome = runner([step("true", interpreter={"name": "acme/python-interpreter"})])
    assert outcome.steps[0].reason.startswith(
        "no interpreter named acme/python-interpreter here (known: "
    )


def test_a_required_input_without_a_value_fails_without_running(runner: Runner) -> None:
    needy = step(
        "touch ran",
        expectedInputs={"TICKET": {"required": True}},
        failureBehavior={"action": "retryThenIgnore"},
    )
    outcome = runner([needy, step("echo {{.TICKET}}", expectedInputs={"TICKET": {"default": 42}})])
    first, second = outcome.steps
    assert (first.status, first.num_attempts, first.reason) == (
        StepStatus.IGNORED,
        0,
        "required input TICKET is missing",
    )
    assert not (runner.workdir / "ran").exists()
    assert second.status is StepStatus.SUCCESS
    assert json.loads(second.inputs) == {"TICKET": "42"}
    assert runner.member(2, 1, "stdout.txt") == "42\n"


def test_an_unknown_variable_fails_the_step(runner: Runner) -> None:
    outcome = runner([step("echo {{.NOPE}}")])
    assert outcome.steps[0].reason == (
        "{{.NOPE}} has no value: it is neither an output of an earlier step nor an input of "
        "this step"
    )


def test_a_step_without_a_command_for_this_os_fails(runner: Runner) -> None:
    only_windows = step(command={"windows": ["dir"]})
    outcome = runner([only_windows])
    assert outcome.steps[0].reason == "no command for linux"


def test_an_empty_run_succeeds(runner: Runner) -> None:
    outcome = runner([])
    assert (outcome.status, outcome.steps) == (RunStatus.SUCCESS, ())
