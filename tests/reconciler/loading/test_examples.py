"""Chef's public example job files (../shared/courier-examples) through `load_paths`, one by one.

The JSON and YAML twins share job names, so every file is loaded on its own; the CLI tests in
tests/cli/test_examples_cli.py run the same folders through the real `courier` process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.loading import LoadResult, load_paths
from reconciler.model import canonical, spec_hash, validate_document
from tests.helpers import example_params, examples_dir

KNOWN_REFUSED: dict[str, pytest.MarkDecorator] = {}


def _job_template(path: Path) -> bool:
    return not path.name.startswith(("00_", "01_"))


def _lab_job(path: Path) -> bool:
    return path.name.startswith(("02-", "03-", "04-"))


VALID_EXAMPLES = [
    *example_params("samples-courier-job-examples", _job_template, KNOWN_REFUSED),
    *example_params("seed-docs"),
    *example_params("community"),
    *example_params("architecture-center-labs", _lab_job),
]


def load_one(path: Path) -> LoadResult:
    root = examples_dir()
    assert root is not None
    return load_paths([path], root)


@pytest.mark.parametrize("path", VALID_EXAMPLES)
def test_example_job_validates(path: Path) -> None:
    result = load_one(path)
    assert [p.render() for p in result.errors] == []
    assert len(result.jobs) == 1
    job = result.jobs[0]
    assert job.name
    assert job.hash == spec_hash(job.spec)


@pytest.mark.parametrize("path", VALID_EXAMPLES)
def test_example_canonical_form_is_a_fixed_point(path: Path) -> None:
    result = load_one(path)
    assert result.jobs, [p.render() for p in result.errors]
    again = validate_document(result.jobs[0].spec)
    assert again.job is not None
    assert spec_hash(canonical(again.job)) == result.jobs[0].hash


@pytest.mark.parametrize(
    "path",
    example_params("samples-courier-job-examples", lambda p: p.name.startswith(("00_", "01_"))),
)
def test_placeholder_templates_are_refused(path: Path) -> None:
    result = load_one(path)
    assert result.jobs == []
    assert result.errors
    for problem in result.errors:
        assert problem.line >= 1
        assert problem.column >= 1
        assert problem.message


def test_job_reboot_sample_is_accepted_with_a_warning() -> None:
    root = examples_dir()
    if root is None:
        pytest.skip("Chef examples absent")
    result = load_paths([root / "samples-courier-job-examples" / "job_reboot.json"], root)
    assert result.errors == []
    assert len(result.jobs) == 1
    [warning] = [w for w in result.warnings if "outputFieldRules" in w.field]
    assert warning.field == "actions.steps[2].outputFieldRules.required"
    assert warning.line == 109
    assert "not an output rule object" in warning.message


# Twins whose JSON and YAML say exactly the same thing (the others differ in the data itself,
# e.g. inspec_exec's maxVersion, macos-job-example's restart time).
IDENTICAL_TWINS = [
    "create-job-simple",
    "infra_client_local",
    "infra_client_run",
    "inspec_with_token",
    "job_direct_query_linux",
    "job_saved_filter_linux",
    "job_saved_list_linux",
    "job_windows_conditional_actions",
    "multi-node-multi-group-job-immediate-sequential-batched",
    "multi-node-one-group-immediate-rolling-linux",
    "multi-node-two-groups-immediate-parallel-linux",
    "nginx_install_linux",
    "nginx_patch",
    "nodeman-saved-list-immediate",
    "nodeman-saved-query-immediate-linux",
    "single-node-job-future-linux",
    "single-node-job-reoccurring-exception",
]


@pytest.mark.parametrize("stem", IDENTICAL_TWINS)
def test_json_and_yaml_twins_have_one_hash(stem: str) -> None:
    root = examples_dir()
    if root is None:
        pytest.skip("Chef examples absent")
    folder = root / "samples-courier-job-examples"
    from_json = load_paths([folder / f"{stem}.json"], root)
    from_yaml = load_paths([folder / f"{stem}.yaml"], root)
    assert from_json.jobs and from_yaml.jobs
    assert from_json.jobs[0].spec == from_yaml.jobs[0].spec
    assert from_json.jobs[0].hash == from_yaml.jobs[0].hash


@pytest.mark.parametrize("path", example_params("samples-beta-2024-06"))
def test_beta_files_load_or_give_located_errors(path: Path) -> None:
    result = load_one(path)
    if result.errors:
        assert result.jobs == []
        for problem in result.errors:
            assert problem.path.endswith(path.name)
            assert problem.line >= 1
            assert problem.column >= 1
            assert problem.field, problem.render()
    else:
        assert len(result.jobs) == 1
        assert result.warnings, "beta files use legacy forms; reading them should warn"
