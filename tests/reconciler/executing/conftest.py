from __future__ import annotations

from pathlib import Path

import pytest

from tests.reconciler.executing.support import Runner


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    """Runs steps on a fresh local node folder; `runner.sleeps` records backoff waits."""
    workdir = tmp_path / "node"
    workdir.mkdir()
    return Runner(workdir=workdir, evidence_root=tmp_path / "evidence", sleeps=[])
