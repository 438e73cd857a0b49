"""Execution (DESIGN.md §4): runs of an instance on nodes, and the steps of one run on one node.

`running.execute_run` is the per-node step runner: attempts, backoff, outputs, masking, evidence.
"""

from reconciler.executing.backoff import delay
from reconciler.executing.running import RunContext, RunOutcome, execute_run

__all__ = ["RunContext", "RunOutcome", "delay", "execute_run"]
