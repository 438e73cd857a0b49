"""One attempt of one step: start the interpreter, read what it left, keep the evidence.

`running` calls `run_attempt` once per attempt. Output goes to unnamed temporary files (no pipes,
no reader threads); `$COURIER_EVIDENCE_DIR` is a fresh folder that lives only as long as the
attempt.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from reconciler.evidence.zipping import build_zip, collect_files
from reconciler.executing.masking import Masker
from reconciler.executing.outputs import Sources, extract
from reconciler.interpreters.base import Execution, Interpreter, Launch, Prepared
from reconciler.model.enums import StepStatus
from reconciler.model.job import Step
from reconciler.ports import AttemptResult, Clock, EvidenceStore, evidence_key

STREAM_LIMIT = 1024 * 1024
"""Bytes of stdout and of stderr kept per attempt (the last ones)."""

_MASK_SLACK = 64 * 1024  # read this much more, so a secret cut by the limit is still masked


@dataclass(frozen=True, slots=True)
class AttemptCall:
    """Everything about the run that an attempt needs and that does not change between steps."""

    run_id: str
    node_id: str
    env: Mapping[str, str]  # the run's environment with COURIER_NODE_ID & co.
    evidence: EvidenceStore
    clock: Clock
    masker: Masker


@dataclass(frozen=True, slots=True)
class Attempt:
    """Which attempt to run: step number and step, attempt number, and the prepared step."""

    number: int
    step: Step
    attempt_no: int
    interpreter: Interpreter
    prepared: Prepared


def run_attempt(
    call: AttemptCall, which: Attempt, cancel: threading.Event | None
) -> tuple[AttemptResult, dict[str, str]]:
    """Run one attempt and store its evidence zip; return its result and the extracted outputs."""
    step, prepared = which.step, which.prepared
    evidence_dir = Path(tempfile.mkdtemp(prefix="courier-evidence-"))
    try:
        env = {
            **call.env,
            "COURIER_STEP_NUMBER": str(which.number),
            "COURIER_ATTEMPT": str(which.attempt_no),
            "COURIER_EVIDENCE_DIR": str(evidence_dir),
        }
        timeout = float(step.limits.timeoutSeconds) or None
        started = call.clock.now()
        # Unnamed temporary files: nothing to clean up, and no directory entries to sync.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            execution = which.interpreter.run(prepared, Launch(env, out, err, timeout, cancel))
            ended = call.clock.now()
            done = _Done(execution, started, ended, *_tail(out), *_tail(err))
        outputs, problems, notes = _outputs(call.masker, step, done, prepared.cwd, evidence_dir)
        status, reason = _verdict(execution, problems)
        archive = _zip(call, which, done, status, reason, outputs, notes, evidence_dir)
        key: str | None = evidence_key(call.run_id, which.number, which.attempt_no)
        try:
            call.evidence.put(evidence_key(call.run_id, which.number, which.attempt_no), archive)
        except Exception as exc:  # evidence never decides a step's status (SPEC.md §2.5)
            key = None
            reason = "; ".join(filter(None, [reason, f"evidence not stored: {exc}"]))
    finally:
        shutil.rmtree(evidence_dir, ignore_errors=True)
    attempt = AttemptResult(
        attempt_no=which.attempt_no,
        status=status,
        exit_code=execution.exit_code,
        started_at=started,
        ended_at=ended,
        reason=call.masker.text(reason),
        evidence_key=key,
    )
    return attempt, outputs


@dataclass(frozen=True, slots=True)
class _Done:
    """A finished execution with the end of what it printed (and how much came before)."""

    execution: Execution
    started: datetime
    ended: datetime
    stdout: bytes
    stdout_dropped: int
    stderr: bytes
    stderr_dropped: int


def _outputs(
    masker: Masker, step: Step, done: _Done, cwd: Path, evidence_dir: Path
) -> tuple[dict[str, str], list[str], list[str]]:
    """Extracted outputs, required ones that are missing, and notes for the evidence."""
    notes = _limit_notes(step)
    if done.execution.canceled:
        return {}, [], notes
    sources = Sources(
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
        done.execution.exit_code,
        cwd,
        evidence_dir,
    )
    extracted = extract(step.outputFieldRules, sources)
    for name, value in extracted.values.items():
        if step.outputFieldRules[name].sensitive:
            masker.add(value)  # before anything of this attempt is written down
    return extracted.values, extracted.problems, notes + extracted.notes


def _zip(
    call: AttemptCall,
    which: Attempt,
    done: _Done,
    status: StepStatus,
    reason: str,
    outputs: dict[str, str],
    notes: list[str],
    evidence_dir: Path,
) -> bytes:
    mask, interpreter = call.masker, which.interpreter
    stdout, stdout_cut = _cap(mask.data(done.stdout))
    stderr, stderr_cut = _cap(mask.data(done.stderr))
    left = collect_files(evidence_dir)
    result = {
        "runId": call.run_id,
        "nodeId": call.node_id,
        "stepNumber": which.number,
        "stepName": which.step.name,
        "attempt": which.attempt_no,
        "status": str(status),
        "exitCode": done.execution.exit_code,
        "reason": mask.text(reason),
        "startedAt": rfc3339(done.started),
        "endedAt": rfc3339(done.ended),
        "durationSeconds": round((done.ended - done.started).total_seconds(), 6),
        "interpreter": {
            "name": interpreter.name,
            "version": interpreter.version,
            "path": interpreter.path,
        },
        "workingDirectory": str(which.prepared.cwd),
        "stdoutDroppedBytes": done.stdout_dropped + stdout_cut,
        "stderrDroppedBytes": done.stderr_dropped + stderr_cut,
        "skippedFiles": left.skipped,
        "notes": [mask.text(n) for n in notes],
    }
    members = [
        ("stdout.txt", stdout),
        ("stderr.txt", stderr),
        ("command.txt", (mask.text(which.prepared.command) + "\n").encode()),
        ("outputs.json", mask.json(dict(outputs)).encode()),
        ("result.json", orjson.dumps(result, option=orjson.OPT_INDENT_2)),
        *left.members,
    ]
    return build_zip(members, done.started, mask.data)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _verdict(execution: Execution, problems: list[str]) -> tuple[StepStatus, str]:
    if execution.canceled:
        return StepStatus.CANCELED, execution.reason
    if execution.reason:
        return StepStatus.FAILURE, execution.reason
    if problems:
        return StepStatus.FAILURE, "; ".join(problems)
    return StepStatus.SUCCESS, ""


def _limit_notes(step: Step) -> list[str]:
    # Affinity or nice set in the child (preexec_fn) is unsafe in a threaded runner; say so.
    notes = []
    if step.limits.cores > 0:
        notes.append("limits.cores not enforced on this platform")
    if step.limits.cpu not in (0, 1):
        notes.append("limits.cpu not enforced on this platform")
    return notes


def _tail(handle: IO[bytes]) -> tuple[bytes, int]:
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - STREAM_LIMIT - _MASK_SLACK)
    handle.seek(start)
    return handle.read(), start


def _cap(data: bytes) -> tuple[bytes, int]:
    if len(data) <= STREAM_LIMIT:
        return data, 0
    return data[-STREAM_LIMIT:], len(data) - STREAM_LIMIT
