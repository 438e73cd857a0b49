"""Interpreters: one module per kind behind the `Interpreter` Protocol, and the registry by name.

`REGISTRY` is what the step runner uses unless it is given another; `BUILTIN_SKILLS` is what the
nodes inventory merges under each local node's declared skills.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from reconciler import __version__
from reconciler.interpreters.base import (
    Execution,
    Interpreter,
    Launch,
    Prepared,
    StepCall,
    StepRefused,
    skill_name,
)
from reconciler.interpreters.shell import SHELL_VERSION, ShellInterpreter
from reconciler.interpreters.unsupported import UNSUPPORTED, UnsupportedInterpreter

_SHELL = ShellInterpreter()

REGISTRY: Mapping[str, Interpreter] = MappingProxyType(
    {
        _SHELL.name: _SHELL,
        **{name: UnsupportedInterpreter(name, why) for name, why in UNSUPPORTED.items()},
    }
)
"""Full interpreter name -> the interpreter that runs its steps on this machine."""

BUILTIN_SKILLS: Mapping[str, str] = MappingProxyType(
    {skill_name(_SHELL.name): SHELL_VERSION, "courier-runner": __version__}
)
"""Skills every local node has: the interpreters that really run here, and the runner itself."""

__all__ = [
    "BUILTIN_SKILLS",
    "REGISTRY",
    "Execution",
    "Interpreter",
    "Launch",
    "Prepared",
    "ShellInterpreter",
    "StepCall",
    "StepRefused",
    "UnsupportedInterpreter",
    "skill_name",
]
