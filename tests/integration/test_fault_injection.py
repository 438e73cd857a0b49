"""Fault injection (issue 3): `kill -9` of `courier apply` at random moments. The state is always
exactly the before-state or exactly the after-state, and the next apply converges.

Kill points are seeded-random over 0 .. 1.2x the lifetime of one apply (measured first, then
followed as the machine's load changes), with a share aimed at the measured transaction window.
Each rerun must reach exactly the reference after-state (proved converged by a real `plan` when
the scenario is prepared); every fourth trial also runs `plan --detailed-exitcode` itself.
`bench/fault_injection.py` runs hundreds more.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.integration import faults

TRIALS = 20
SEED = 20261123
WORKERS = 2  # trials at a time: this machine has two cores


def test_kill_minus_nine_leaves_before_or_after(tmp_path: Path) -> None:
    scenario = faults.prepare(tmp_path, new_jobs=200, workers=WORKERS)
    assert scenario.before.serial + 1 == scenario.after.serial
    points = faults.kill_points(scenario, TRIALS, random.Random(SEED))

    report = faults.campaign(scenario, tmp_path / "trials", points, workers=WORKERS, plan_every=4)

    print(f"apply takes {scenario.duration:.2f}s, transaction at {scenario.window}")
    print(report.summary())
    assert len(report.outcomes) == TRIALS
    assert not report.failures, "\n\n".join(
        f"kill after {o.delay:.3f}s ({o.landed}): {o.detail}" for o in report.failures
    )
    # Kills landed on both sides of the commit, or the test proved nothing.
    assert report.states["before"] and report.states["after"], report.summary()
