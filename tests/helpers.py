"""Helpers shared by the tests: job-file trees in temp dirs, the real `courier` process, examples.

`build_file_tree` follows copier's test helper; `run_courier` runs the installed console script as
a real subprocess (no mocks), `run_courier_forked` the same entry point in a process forked from a
warm interpreter (for the many runs of bulk tests). Crash logs go to a private TMPDIR.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

# `path:line:col: rest` as printed by `courier validate` (DESIGN.md §7).
PROBLEM_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


# --- file trees ---------------------------------------------------------------------------


def build_file_tree(
    root: Path, spec: Mapping[str, str | bytes | Path], *, dedent: bool = True
) -> Path:
    """Create files under `root` from `{relative path: content}` and return `root`.

    str content is written as UTF-8 text (dedented unless `dedent=False`), bytes as they are, and a
    `Path` value makes a symlink pointing at that path (relative or absolute, as given).
    """
    root.mkdir(parents=True, exist_ok=True)
    for relpath, content in spec.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            path.symlink_to(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content) if dedent else content, encoding="utf-8")
    return root


# --- the real CLI -------------------------------------------------------------------------


def courier_argv() -> list[str]:
    """The installed console script next to this interpreter, else `python -m cli.main`."""
    script = Path(sys.executable).with_name("courier")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli.main"]


@cache
def crash_log_dir() -> Path:
    """Where a crashing courier writes its traceback log (its TMPDIR), one dir per test run."""
    return Path(tempfile.mkdtemp(prefix="courier-tests-"))


def remove_crash_log_dir_if_empty() -> None:
    """Tidy up after a session in which courier never crashed (a crash log is kept to be read)."""
    if crash_log_dir.cache_info().currsize and not any(crash_log_dir().iterdir()):
        crash_log_dir().rmdir()


def courier_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment courier runs in: ours minus COURIER_*, plain output, private TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
        TMPDIR=str(crash_log_dir()),
    )
    env.update(extra or {})
    return env


def run_courier(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `courier ARGS...` as a subprocess and capture its output as text."""
    return subprocess.run(
        [*courier_argv(), *(str(a) for a in args)],
        cwd=cwd or REPO_ROOT,
        env=courier_env(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


_forked: subprocess.Popen[str] | None = None


def run_courier_forked(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like `run_courier`, ~20x faster: a process forked from a warm interpreter.

    `tests/forked_cli.py` imports the CLI once per session and forks one child per run, which
    calls `cli.main:run` (the console-script entry) in its own process. Tests about the installed
    script itself use `run_courier`; bulk tests use this. Without `os.fork` it is `run_courier`.
    """
    global _forked
    if not hasattr(os, "fork"):
        return run_courier(*args, cwd=cwd, env=env)
    if _forked is None or _forked.poll() is not None:
        _forked = subprocess.Popen(
            [sys.executable, "-m", "tests.forked_cli"],
            cwd=REPO_ROOT,
            env=courier_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
    assert _forked.stdin is not None and _forked.stdout is not None
    argv = [str(a) for a in args]
    request = {"args": argv, "cwd": str(cwd or REPO_ROOT), "env": courier_env(env)}
    _forked.stdin.write(json.dumps(request) + "\n")
    _forked.stdin.flush()
    line = _forked.stdout.readline()
    assert line, "the warm courier interpreter (tests/forked_cli.py) died; see stderr above"
    answer = json.loads(line)
    return subprocess.CompletedProcess(
        ["courier", *argv], answer["returncode"], answer["stdout"], answer["stderr"]
    )


def stop_forked_courier() -> None:
    """End the warm interpreter behind `run_courier_forked` (it exits when its stdin closes)."""
    global _forked
    if _forked is not None:
        assert _forked.stdin is not None
        _forked.stdin.close()
        _forked.wait(timeout=10)
        if _forked.stdout is not None:
            _forked.stdout.close()
        _forked = None


@dataclass(frozen=True)
class Reported:
    """One `path:line:col: rest` line of courier's output."""

    path: str
    line: int
    column: int
    rest: str

    @property
    def is_warning(self) -> bool:
        return self.rest.startswith("warning: ")


def reported(output: str) -> list[Reported]:
    """Every `path:line:col: ...` line of `output`, in order."""
    found = []
    for text in output.splitlines():
        m = PROBLEM_LINE.match(text)
        if m:
            found.append(Reported(m["path"], int(m["line"]), int(m["col"]), m["rest"]))
    return found


def assert_no_crash(proc: subprocess.CompletedProcess[str]) -> None:
    """No traceback, no internal error: courier failed (if at all) as a user error."""
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    assert proc.returncode != 70, output


# --- the shared Chef examples -------------------------------------------------------------


@cache
def examples_dir() -> Path | None:
    """`../shared/courier-examples` beside the repo, or $COURIER_EXAMPLES; None when absent."""
    candidates = []
    if os.environ.get("COURIER_EXAMPLES"):
        given = Path(os.environ["COURIER_EXAMPLES"])
        candidates += [given, given / "courier-examples"]
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "courier-examples")
    for candidate in candidates:
        if (candidate / "samples-courier-job-examples").is_dir():
            return candidate
    return None


NO_EXAMPLES = (
    "Chef example files not found: expected ../shared/courier-examples next to the repository "
    "or a COURIER_EXAMPLES environment variable naming that folder"
)


def example_params(
    folder: str,
    keep: Callable[[Path], bool] = lambda p: True,
    marks: Mapping[str, Any] | None = None,
) -> list[Any]:
    """pytest params (one per job file of `folder`, id = file name), or one skipped param."""
    root = examples_dir()
    if root is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_EXAMPLES), id=folder)]
    files = sorted(
        p for p in (root / folder).iterdir() if p.suffix in (".json", ".yaml", ".yml") and keep(p)
    )
    marks = marks or {}
    return [pytest.param(p, id=p.name, marks=marks.get(p.name, ())) for p in files]


def require_examples() -> Path:
    root = examples_dir()
    if root is None:
        pytest.skip(NO_EXAMPLES)
    return root


# --- job documents ------------------------------------------------------------------------

SHELL = "chef-platform/shell-interpreter"


def minimal_job(name: str = "disk-report") -> dict[str, Any]:
    """A small valid job in the current schema, as a plain document."""
    return {
        "name": name,
        "scheduleRule": "immediate",
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 300,
                    "batchSize": {"type": "number", "value": 1},
                    "distributionMethod": "batching",
                    "nodeListType": "nodes",
                    "nodeIdentifiers": ["local"],
                }
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "df",
                    "interpreter": {
                        "name": SHELL,
                        "skill": {"minVersion": "1.0.0", "maxVersion": "2.0.0"},
                    },
                    "command": {"linux": ["df -h"]},
                }
            ]
        },
    }


def rich_job(name: str = "canary-rollout") -> dict[str, Any]:
    """A valid job using most of the schema: filters, criteria, outputs, conditions, retries."""
    return {
        "name": name,
        "description": "two-group canary rollout",
        "scheduleRule": "RRULE:DTSTART=20240101T010000Z;FREQ=DAILY;INTERVAL=1",
        "exceptionRules": [{"rrule": "RRULE:FREQ=WEEKLY;BYDAY=SA,SU", "duration": 60}],
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 600,
                    "batchSize": {"type": "number", "value": 1},
                    "distributionMethod": "batching",
                    "earlyTermination": True,
                    "successCriteria": [
                        {"status": "success", "numRuns": {"type": "percent", "value": 100}}
                    ],
                    "nodeListType": "nodes",
                    "nodeIdentifiers": ["canary-1"],
                },
                {
                    "timeoutSeconds": 1200,
                    "batchSize": {"type": "percent", "value": 25},
                    "distributionMethod": "rolling",
                    "successCriteria": [
                        {"status": "success", "numRuns": {"type": "percent", "value": 90}},
                        {"status": "failure", "numRuns": {"type": "number", "value": 2}},
                    ],
                    "nodeListType": "filter",
                    "filter": {
                        "constraints": {
                            "attributes": [
                                {
                                    "name": "kernel_name",
                                    "namespace": "agent",
                                    "operator": "=",
                                    "value": ["Linux"],
                                },
                                {
                                    "name": "primary_ip",
                                    "operator": "MATCHES",
                                    "value": ["^10\\.0\\."],
                                },
                            ],
                            "skills": [{"name": "courier-runner", "version": [">= 1.0.0"]}],
                        }
                    },
                },
            ],
        },
        "actions": {
            "accessMode": "agent",
            "steps": [
                {
                    "name": "check",
                    "description": "is there room?",
                    "interpreter": {
                        "name": SHELL,
                        "skill": {"minVersion": "1.0.0", "maxVersion": "1.9.99"},
                    },
                    "command": {"linux": ["df --output=pcent / | tail -1"]},
                    "outputFieldRules": {
                        "USAGE": {
                            "sourceType": "output",
                            "source": "stdout",
                            "extractMethod": "regex",
                            "expression": "([0-9]+)%",
                            "required": True,
                            "sensitive": False,
                        }
                    },
                    "retryCount": 2,
                    "failureBehavior": {
                        "action": "retryThenFail",
                        "retryBackoffStrategy": {
                            "type": "exponential",
                            "delaySeconds": 5,
                            "arguments": [],
                        },
                    },
                    "limits": {"cores": 0, "cpu": 1, "timeoutSeconds": 30},
                },
                {
                    "name": "clean",
                    "interpreter": {
                        "name": SHELL,
                        "skill": {"minVersion": "1.0.0", "maxVersion": "1.9.99"},
                    },
                    "command": {"linux": ["rm -rf /var/tmp/courier-cache"]},
                    "inputs": {"dir": "/var/tmp"},
                    "expectedInputs": {
                        "USAGE": {"type": "string", "required": True, "sensitive": False}
                    },
                    "conditions": [
                        {"inputName": "USAGE", "operator": "gte", "value": "90", "negate": False}
                    ],
                },
            ],
        },
    }


def deep_copy_with(doc: dict[str, Any], updates: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of `doc` with each `dotted.path[0].field` set to its value."""
    result = copy.deepcopy(doc)
    for path, value in updates:
        set_path(result, path, value)
    return result


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int]:
    return [int(idx) if idx else key for key, idx in _PATH_PART.findall(path)]


def set_path(doc: Any, path: str, value: Any) -> None:
    parts = split_path(path)
    node = doc
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def del_path(doc: Any, path: str) -> None:
    parts = split_path(path)
    node = doc
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]
