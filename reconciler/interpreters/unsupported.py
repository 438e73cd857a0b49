"""Chef interpreters that cannot run on a local node: they fail the step with the reason.

Pretending (reporting success without rebooting, scanning or converging) would make evidence lie,
so `prepare` refuses and the runner records a failure without starting anything.
"""

from __future__ import annotations

from reconciler.interpreters.base import Execution, Launch, Prepared, StepCall, StepRefused

UNSUPPORTED: dict[str, str] = {
    "chef-platform/restart-interpreter": (
        "rebooting the machine courier runs on would end the run that asked for it"
    ),
    "chef-platform/chef-client-interpreter": (
        "courier ships no Chef Infra Client; call chef-client from a shell-interpreter step"
    ),
    "chef-platform/inspec-interpreter": (
        "courier ships no InSpec; call `inspec exec` from a shell-interpreter step"
    ),
    "chef-platform/ansible-interpreter": (
        "courier ships no Ansible; call ansible-playbook from a shell-interpreter step"
    ),
}
"""Full interpreter name -> why it cannot run here."""


class UnsupportedInterpreter:
    """A known Chef interpreter that refuses every step, saying why."""

    version = ""
    path = ""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def prepare(self, call: StepCall) -> Prepared:
        raise StepRefused(f"{self.name} cannot run on a local node: {self.why}")

    def run(self, prepared: Prepared, launch: Launch) -> Execution:
        return Execution(None, f"{self.name} cannot run on a local node: {self.why}")
