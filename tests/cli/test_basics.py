"""The installed `courier` script: --version, usage errors (exit 64), `courier schema`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    assert_no_crash,
    courier_env,
    examples_dir,
    rich_job,
    run_courier,
    run_courier_forked,
)


def test_version() -> None:
    proc = run_courier("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"courier {version('courier')}\n"
    assert proc.stderr == ""


def test_module_entry_point_matches_the_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"],
        capture_output=True,
        text=True,
        env=courier_env(),
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout == f"courier {version('courier')}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-option"],
        ["validate", "--no-such-option"],
        ["fmt", "--chek"],
        ["no-such-command"],
        ["--repo"],
    ],
    ids=["global-option", "validate-option", "fmt-option", "command", "missing-value"],
)
def test_usage_errors_exit_64(args: list[str], tmp_path: Path) -> None:
    run = run_courier if args == ["--no-such-option"] else run_courier_forked
    proc = run(*args, cwd=tmp_path)
    assert_no_crash(proc)
    assert proc.returncode == 64, proc.stderr
    assert "Error: " in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["validate", "--help"], ["fmt", "-h"]])
def test_help_exits_0(args: list[str]) -> None:
    proc = run_courier_forked(*args)
    assert proc.returncode == 0
    assert "Usage:" in proc.stdout


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    proc = run_courier("schema")
    assert proc.returncode == 0, proc.stderr
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def test_schema_is_a_json_schema_of_a_job(schema: dict[str, Any]) -> None:
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert {"name", "scheduleRule", "target", "actions"} <= set(schema["properties"])
    assert {"name", "scheduleRule", "target", "actions"} <= set(schema["required"])


def test_schema_refs_resolve(schema: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_schema_lists_the_enums(schema: dict[str, Any]) -> None:
    text = json.dumps(schema)
    for value in ["sequential", "parallel", "savedFilter", "retryThenIgnore", "polynomial"]:
        assert f'"{value}"' in text


def test_a_job_validates_against_the_schema(schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(rich_job(), schema)
    root = examples_dir()
    if root is not None:
        sample = root / "samples-courier-job-examples" / "nginx_patch.json"
        jsonschema.validate(json.loads(sample.read_text(encoding="utf-8")), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**rich_job(), "scheduelRule": "immediate"}, schema)
