"""Helpers for the step runner's tests: steps from short specs, a run on a real temp node, zips."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.evidence.filesystem import FileEvidenceStore
from reconciler.executing import RunContext, RunOutcome, execute_run
from reconciler.interpreters import BUILTIN_SKILLS
from reconciler.model.enums import SHELL_INTERPRETER
from reconciler.model.job import Step
from reconciler.nodes.inventory import Node, Transport
from reconciler.ports import StepResult, evidence_key

RUN_ID = "run-1"


class FakeClock:
    """A clock that moves 1 ms each time it is read."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def now(self) -> datetime:
        self.moment += timedelta(milliseconds=1)
        return self.moment


def step(*lines: str, name: str = "a step", **fields: Any) -> Step:
    """A shell step running `lines` on Linux; `fields` are any other Step fields, as JSON."""
    doc: dict[str, Any] = {
        "name": name,
        "interpreter": {
            "name": SHELL_INTERPRETER,
            "skill": {"minVersion": "1.0.0", "maxVersion": "1.9.99"},
        },
        "command": {"linux": list(lines)},
    }
    doc.update(fields)
    return Step.model_validate(doc)


def node(node_id: str = "node-1", skills: dict[str, str] | None = None) -> Node:
    return Node(
        id=node_id,
        name=node_id,
        transport=Transport.LOCAL,
        attributes=MappingProxyType({}),
        tags=MappingProxyType({}),
        skills=MappingProxyType(dict(BUILTIN_SKILLS) if skills is None else skills),
    )


@dataclass
class Runner:
    """Runs steps on one local node whose folder is `workdir`, evidence under `evidence_root`."""

    workdir: Path
    evidence_root: Path
    sleeps: list[float]

    @property
    def store(self) -> FileEvidenceStore:
        return FileEvidenceStore(self.evidence_root)

    def __call__(
        self,
        steps: Sequence[Step],
        *,
        target: Node | None = None,
        sleep: Callable[[float], None] | None = None,
        **kwargs: Any,
    ) -> RunOutcome:
        ctx = RunContext(
            job_name="job-a",
            instance_id="instance-1",
            run_id=RUN_ID,
            node=target or node(),
            workdir=self.workdir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        return execute_run(
            steps,
            ctx,
            evidence=self.store,
            clock=FakeClock(),
            sleep=sleep or self.sleeps.append,
            **kwargs,
        )

    def zip_of(self, step_number: int, attempt_no: int) -> zipfile.ZipFile:
        data = self.store.get(evidence_key(RUN_ID, step_number, attempt_no))
        return zipfile.ZipFile(io.BytesIO(data))

    def member(self, step_number: int, attempt_no: int, name: str) -> str:
        return self.zip_of(step_number, attempt_no).read(name).decode()


def all_evidence(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(root.rglob("*.zip"))]


def result_texts(result: StepResult) -> list[str]:
    """Every text a StepResult carries (what list-steps and get-run would show)."""
    texts = [result.inputs, result.outputs, result.reason]
    texts += [a.reason for a in result.attempts]
    return texts
