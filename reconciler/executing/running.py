"""The per-node step runner: one run of a job's steps on one node (DESIGN.md §4).

The orchestrator decides which node runs when and records the outcome; `execute_run` does what
happens in between: steps in order, conditions, expected inputs, the skill check, attempts with
backoff, outputs into the job context, masking, and one evidence zip per attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from reconciler.executing.attempt import Attempt, AttemptCall, run_attempt
from reconciler.executing.backoff import delay
from reconciler.executing.conditions import unmet
from reconciler.executing.masking import Masker, secret_name
from reconciler.executing.preflight import missing_reason, resolve_expected, skill_problem
from reconciler.executing.substitution import UnknownVariable, as_text, render, verbatim
from reconciler.interpreters import REGISTRY
from reconciler.interpreters.base import Interpreter, Prepared, Quote, StepCall, StepRefused
from reconciler.model.enums import FailureAction, RunStatus, StepStatus
from reconciler.model.job import Step
from reconciler.nodes.inventory import Node
from reconciler.ports import AttemptResult, Clock, EvidenceStore, StepResult


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who runs what where: the run's ids, its node and that node's folder and environment."""

    job_name: str
    instance_id: str
    run_id: str
    node: Node
    workdir: Path  # the node's working directory (exists); steps run here unless inputs.dir
    env: Mapping[str, str]  # base environment for child processes


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: RunStatus  # success | failure | canceled
    steps: tuple[StepResult, ...]
    started_at: datetime
    ended_at: datetime
    reason: str = ""


def execute_run(
    steps: Sequence[Step],
    ctx: RunContext,
    *,
    evidence: EvidenceStore,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
    cancel: threading.Event | None = None,
    registry: Mapping[str, Interpreter] | None = None,
) -> RunOutcome:
    """Run `steps` (numbered from 1) on `ctx.node`; every step gets a `StepResult`.

    A failed `retryThenFail` step ends the run `failure` and the later steps are reported
    `canceled` ("not run"); `cancel` kills the running step's process group and ends the run
    `canceled`. Only `evidence.put` and child processes touch the world.
    """
    runner = _Runner(
        ctx, evidence, clock, sleep, cancel, REGISTRY if registry is None else registry
    )
    return runner.run(steps)


class _Runner:
    def __init__(
        self,
        ctx: RunContext,
        evidence: EvidenceStore,
        clock: Clock,
        sleep: Callable[[float], None],
        cancel: threading.Event | None,
        registry: Mapping[str, Interpreter],
    ) -> None:
        self.ctx, self.clock, self.sleep, self.cancel = ctx, clock, sleep, cancel
        self.registry = registry
        self.context: dict[str, str] = {}  # the job context: outputs of earlier steps
        self.masker = Masker()
        env = {
            **ctx.env,
            "COURIER_NODE_ID": ctx.node.id,
            "COURIER_RUN_ID": ctx.run_id,
            "COURIER_INSTANCE_ID": ctx.instance_id,
            "COURIER_JOB_NAME": ctx.job_name,
        }
        self.call = AttemptCall(ctx.run_id, ctx.node.id, env, evidence, clock, self.masker)

    def run(self, steps: Sequence[Step]) -> RunOutcome:
        started = self.clock.now()
        results: list[StepResult] = []
        status, reason = RunStatus.SUCCESS, ""
        for number, step in enumerate(steps, 1):
            if status is RunStatus.SUCCESS and self._canceled():
                status, reason = RunStatus.CANCELED, f"canceled before step {number}"
            if status is not RunStatus.SUCCESS:
                why = "the run was canceled" if status is RunStatus.CANCELED else "a step failed"
                results.append(self._not_run(number, step, f"not run: {why}"))
                continue
            result = self._step(number, step)
            results.append(result)
            if result.status is StepStatus.FAILURE:
                status = RunStatus.FAILURE
                reason = f"step {number} ({step.name}) failed: {result.reason}"
            elif result.status is StepStatus.CANCELED:
                status, reason = RunStatus.CANCELED, f"canceled during step {number} ({step.name})"
        if self.masker:  # a value that turned sensitive later is masked in earlier results too
            results = [self._remask(r) for r in results]
        return RunOutcome(
            status, tuple(results), started, self.clock.now(), self.masker.text(reason)
        )

    def _step(self, number: int, step: Step) -> StepResult:
        ready = self._ready(number, step)
        if isinstance(ready, StepResult):
            return ready  # skipped, or refused before anything ran
        interpreter, prepared, inputs_json = ready
        attempts: list[AttemptResult] = []
        outputs: dict[str, str] = {}
        for attempt_no in range(1, step.retryCount + 2):
            if attempt_no > 1 and not self._pause(step, attempt_no - 1):
                reason = f"canceled while waiting to retry; {attempts[-1].reason}"
                return self._result(
                    number, step, StepStatus.CANCELED, reason, attempts, inputs_json
                )
            which = Attempt(number, step, attempt_no, interpreter, prepared)
            attempt, outputs = run_attempt(self.call, which, self.cancel)
            attempts.append(attempt)
            if attempt.status is not StepStatus.FAILURE:
                break
        status, reason = attempts[-1].status, attempts[-1].reason
        if status is StepStatus.FAILURE:
            status = self._failed(step)
            if len(attempts) > 1:
                reason = f"{reason} (after {len(attempts)} attempts)"
        if status in (StepStatus.SUCCESS, StepStatus.IGNORED):
            self.context.update(outputs)
        outputs_json = self.masker.json(dict(outputs))
        return self._result(number, step, status, reason, attempts, inputs_json, outputs_json)

    def _ready(self, number: int, step: Step) -> tuple[Interpreter, Prepared, str] | StepResult:
        """The step's interpreter, prepared step and inputs JSON; or its result if it won't run."""
        expected = resolve_expected(step.expectedInputs, self.context)
        for value in expected.sensitive:
            self.masker.add(value)
        seen = {**self.context, **expected.values}
        skipped = unmet(step.conditions, seen)
        if skipped is not None:
            return self._result(number, step, StepStatus.SKIPPED, skipped)
        try:
            inputs = self._inputs(step, seen)
        except StepRefused as exc:
            return self._refused(number, step, exc.reason, "{}")
        inputs_json = self.masker.json({**expected.values, **inputs})
        interpreter = self.registry.get(step.interpreter.name)
        if interpreter is None:
            known = ", ".join(sorted(self.registry))
            why = f"no interpreter named {step.interpreter.name} here (known: {known})"
            return self._refused(number, step, why, inputs_json)
        if expected.missing:
            return self._refused(number, step, missing_reason(expected.missing), inputs_json)
        call = StepCall(step, inputs, self.ctx.workdir, self._renderer({**seen, **inputs}))
        try:
            prepared = interpreter.prepare(call)
        except StepRefused as exc:
            return self._refused(number, step, exc.reason, inputs_json)
        node = self.ctx.node
        problem = skill_problem(step.interpreter.name, step.interpreter.skill, node.id, node.skills)
        if problem is not None:
            return self._refused(number, step, problem, inputs_json)
        return interpreter, prepared, inputs_json

    def _inputs(self, step: Step, seen: Mapping[str, str]) -> dict[str, str]:
        inputs = {}
        render_input = self._renderer(seen)
        for name, raw in step.inputs.items():
            value = render_input(as_text(raw), verbatim)
            if secret_name(name):
                self.masker.add(value)
            inputs[name] = value
        return inputs

    def _renderer(self, values: Mapping[str, str]) -> Callable[[str, Quote], str]:
        def render_text(text: str, quote: Quote) -> str:
            try:
                return render(text, values, quote)
            except UnknownVariable as exc:
                raise StepRefused(
                    f"{{{{.{exc.name}}}}} has no value: it is neither an output of an earlier "
                    "step nor an input of this step"
                ) from None

        return render_text

    def _pause(self, step: Step, retry: int) -> bool:
        """Wait before retry `retry`; False when the run was canceled meanwhile."""
        seconds = delay(step.failureBehavior.retryBackoffStrategy, retry)
        if seconds > 0:
            if self.cancel is not None and self.sleep is time.sleep:
                self.cancel.wait(seconds)  # the same wait, but a cancel ends it at once
            else:
                self.sleep(seconds)
        return not self._canceled()

    def _canceled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @staticmethod
    def _failed(step: Step) -> StepStatus:
        if step.failureBehavior.action is FailureAction.RETRY_THEN_IGNORE:
            return StepStatus.IGNORED
        return StepStatus.FAILURE

    def _refused(self, number: int, step: Step, reason: str, inputs_json: str) -> StepResult:
        return self._result(number, step, self._failed(step), reason, (), inputs_json)

    def _not_run(self, number: int, step: Step, reason: str) -> StepResult:
        return self._result(number, step, StepStatus.CANCELED, reason)

    def _result(
        self,
        number: int,
        step: Step,
        status: StepStatus,
        reason: str,
        attempts: Sequence[AttemptResult] = (),
        inputs_json: str = "{}",
        outputs_json: str = "{}",
    ) -> StepResult:
        interpreter = self.registry.get(step.interpreter.name)
        return StepResult(
            step_number=number,
            status=status,
            num_attempts=len(attempts),
            inputs=inputs_json,
            outputs=outputs_json,
            reason=self.masker.text(reason),
            interpreter_path=interpreter.path if interpreter is not None else "",
            interpreter_version=interpreter.version if interpreter is not None else "",
            attempts=tuple(attempts),
        )

    def _remask(self, result: StepResult) -> StepResult:
        mask = self.masker.text
        return replace(
            result,
            inputs=mask(result.inputs),
            outputs=mask(result.outputs),
            reason=mask(result.reason),
            attempts=tuple(replace(a, reason=mask(a.reason)) for a in result.attempts),
        )
