"""Fault injection at scale: `kill -9` of `courier apply` at hundreds of random moments.

    .venv/bin/python bench/fault_injection.py [--trials 200] [--jobs 200] [--workers 2] [--seed N]
                                              [--targeted 0.3] [--plan-every 10] [--keep]

Prepares a git repository whose HEAD adds `--jobs` jobs (plus an update that re-runs, a metadata
update and a removal) to a seeded SQLite state, times one apply, then kills applies after seeded
random delays over 0 .. 1.2x that lifetime (a `--targeted` share aimed at the transaction window).
Prints where the kills landed (before / during / after the transaction, or after the process had
finished) and checks that every outcome was exactly the before- or the after-state and that every
rerun converged. Exit 0 when all did, 1 otherwise. Not part of the test suite (the suite runs 20).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the machinery lives with the integration tests

from tests.integration import faults  # noqa: E402 - needs the path above


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=200, help="new jobs the apply creates")
    parser.add_argument("--workers", type=int, default=2, help="trials at a time")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--targeted", type=float, default=0.3, help="share aimed at the commit")
    parser.add_argument("--plan-every", type=int, default=10, help="run a real plan every N")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="courier-faults-"))
    started = time.monotonic()
    scenario = faults.prepare(workdir, new_jobs=args.jobs, workers=args.workers)
    window = (
        f"{scenario.window[0]:.3f}s .. {scenario.window[1]:.3f}s"
        if scenario.window
        else "not observed"
    )
    print(f"scenario: before = {scenario.before.describe()}")
    print(f"          after  = {scenario.after.describe()}")
    print(f"one apply takes {scenario.duration:.2f}s; its transaction ran {window}")
    rng = random.Random(args.seed)
    points = faults.kill_points(scenario, args.trials, rng, targeted=args.targeted)

    def progress(index: int, outcome: faults.Outcome) -> None:
        mark = "ok" if outcome.ok else "FAIL"
        print(
            f"  trial {index + 1:4d}: kill at {outcome.point:4.2f} of a lifetime "
            f"({outcome.delay:6.3f}s) landed {outcome.landed:8s} state {outcome.state:7s} {mark}",
            flush=True,
        )

    report = faults.campaign(
        scenario,
        workdir / "trials",
        points,
        workers=args.workers,
        plan_every=args.plan_every,
        progress=progress,
    )
    landed = report.landed
    print()
    print(f"{len(report.outcomes)} trials in {time.monotonic() - started:.0f}s (seed {args.seed})")
    print(f"kills landed before the transaction: {landed['before']}")
    print(f"kills landed during the transaction: {landed['during']}")
    print(f"kills landed after the commit:       {landed['after']}")
    print(f"process had already finished:        {landed['finished']}")
    states = report.states
    print(
        f"state found: before {states['before']}, after {states['after']}, "
        f"in between {states['neither']}"
    )
    converged = sum(o.converged for o in report.outcomes)
    print(f"reruns that converged: {converged}/{len(report.outcomes)}")
    for outcome in report.failures:
        print(f"\nFAILED: kill at {outcome.delay:.3f}s ({outcome.landed}):\n{outcome.detail}")
    if report.failures:
        print(f"\n{len(report.failures)} trial(s) FAILED; their state files are under {workdir}")
        return 1
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        "every outcome was exactly the before-state or the after-state, and every rerun converged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
