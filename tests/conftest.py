"""Fixtures shared by the whole suite: temp repositories and the shared Chef examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import remove_crash_log_dir_if_empty, require_examples, stop_forked_courier


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty courier repository: a folder with an empty `jobs.d/`."""
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    return root


@pytest.fixture(scope="session")
def examples() -> Path:
    """`courier-examples/` of the shared folder (the test is skipped when it is absent)."""
    return require_examples()


@pytest.fixture(scope="session", autouse=True)
def _forked_courier_ends() -> Iterator[None]:
    """Stop the warm courier of `run_courier_forked` and tidy its TMPDIR when the session ends."""
    yield
    stop_forked_courier()
    remove_crash_log_dir_if_empty()
