from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.interpreters import (
    BUILTIN_SKILLS,
    REGISTRY,
    ShellInterpreter,
    StepCall,
    StepRefused,
    skill_name,
)
from reconciler.interpreters.base import Launch, Prepared, kill_group, run_commands
from reconciler.interpreters.shell import powershell_quote, working_directory
from reconciler.model.job import Step
from reconciler.model.versions import parse_version


def shell_step(**command: list[str]) -> Step:
    return Step.model_validate(
        {
            "name": "s",
            "interpreter": {"name": "chef-platform/shell-interpreter"},
            "command": command,
            "inputs": {"dir": "sub"},
        }
    )


def call(step: Step, workdir: Path, values: dict[str, str]) -> StepCall:
    def render(text: str, quote: object) -> str:
        for name, value in values.items():
            text = text.replace(f"{{{{.{name}}}}}", quote(value))  # type: ignore[operator]
        return text

    return StepCall(step, {"dir": "sub"}, workdir, render)


def test_builtin_skills_are_the_interpreters_that_run_here() -> None:
    assert dict(BUILTIN_SKILLS) == {"shell-interpreter": "1.4.0", "courier-runner": __version__}
    for version in BUILTIN_SKILLS.values():
        parse_version(version)


def test_the_registry_knows_chefs_interpreters() -> None:
    assert sorted(REGISTRY) == [
        "chef-platform/ansible-interpreter",
        "chef-platform/chef-client-interpreter",
        "chef-platform/inspec-interpreter",
        "chef-platform/restart-interpreter",
        "chef-platform/shell-interpreter",
    ]
    for name, interpreter in REGISTRY.items():
        assert interpreter.name == name


def test_skill_name_is_the_package_name() -> None:
    assert skill_name("chef-platform/shell-interpreter") == "shell-interpreter"
    assert skill_name("shell-interpreter") == "shell-interpreter"


def test_linux_lines_become_sh_dash_c_argvs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shell = ShellInterpreter("linux")
    prepared = shell.prepare(
        call(shell_step(linux=["echo {{.V}}", "ls"]), tmp_path, {"V": "a b; c"})
    )
    assert prepared.argvs == ((shell.path, "-c", "echo 'a b; c'"), (shell.path, "-c", "ls"))
    assert prepared.cwd == (tmp_path / "sub").resolve()
    assert prepared.command == "echo 'a b; c'\nls"
    assert shlex.split(prepared.argvs[0][2]) == ["echo", "a b; c"]


def test_windows_lines_run_in_powershell_with_its_quoting(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shell = ShellInterpreter("windows")
    prepared = shell.prepare(call(shell_step(windows=["echo {{.V}}"]), tmp_path, {"V": "it's $x"}))
    (argv,) = prepared.argvs
    assert argv[1:] == ("-NoLogo", "-NoProfile", "-NonInteractive", "-Command", "echo 'it''s $x'")
    assert powershell_quote("") == "''"


def test_a_missing_os_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StepRefused, match=r"^no command for darwin$"):
        ShellInterpreter("darwin").prepare(call(shell_step(linux=["true"]), tmp_path, {}))


def test_an_exec_payload_is_refused_by_the_shell(tmp_path: Path) -> None:
    step = Step.model_validate(
        {"name": "s", "interpreter": {"name": "x"}, "command": {"exec": "run"}}
    )
    with pytest.raises(StepRefused, match="not an exec payload"):
        ShellInterpreter("linux").prepare(StepCall(step, {}, tmp_path, lambda t, q: t))


@pytest.mark.parametrize("name", ["restart", "chef-client", "inspec", "ansible"])
def test_unsupported_interpreters_refuse_to_prepare(tmp_path: Path, name: str) -> None:
    full = f"chef-platform/{name}-interpreter"
    step = Step.model_validate(
        {"name": "s", "interpreter": {"name": full}, "command": {"exec": "run"}}
    )
    with pytest.raises(StepRefused, match=f"^{full} cannot run on a local node: "):
        REGISTRY[full].prepare(StepCall(step, {}, tmp_path, lambda t, q: t))
    outcome = REGISTRY[full].run(Prepared((), tmp_path, ""), Launch({}, None, None))  # type: ignore[arg-type]
    assert outcome.exit_code is None
    assert "cannot run on a local node" in outcome.reason


def test_working_directory_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert working_directory(tmp_path, "") == tmp_path
    assert working_directory(tmp_path, "a/.") == (tmp_path / "a").resolve()
    with pytest.raises(StepRefused, match="outside"):
        working_directory(tmp_path / "a", "..")


def test_a_program_that_cannot_start_is_a_failure(tmp_path: Path) -> None:
    with (tmp_path / "o").open("w+b") as out:
        prepared = Prepared(((str(tmp_path / "no-such-shell"), "-c", "true"),), tmp_path, "true")
        done = run_commands(prepared, Launch({}, out, out))
    assert done.exit_code is None
    assert done.reason.startswith(f"could not start {tmp_path / 'no-such-shell'}: ")


def test_a_signal_death_is_named(tmp_path: Path) -> None:
    with (tmp_path / "o").open("w+b") as out:
        prepared = Prepared((("sh", "-c", "kill -9 $$"),), tmp_path, "")
        done = run_commands(prepared, Launch({"PATH": "/usr/bin:/bin"}, out, out))
    assert (done.exit_code, done.reason) == (-9, "the command was killed by signal SIGKILL")


def test_kill_group_returns_at_once_when_the_group_obeys() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    time.sleep(0.05)
    started = time.monotonic()
    kill_group(proc)
    assert time.monotonic() - started < 1
    assert proc.returncode is not None
