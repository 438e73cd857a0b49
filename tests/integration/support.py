"""Plain helpers of the end-to-end tests: real git repositories, the real `courier` process, job
files in JSON, YAML and TOML, and raw reads of the SQLite state file.

The fixtures of `conftest.py` wrap these; `bench/fault_injection.py` imports them directly.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import tomlkit
from ruamel.yaml import YAML

SHELL = "chef-platform/shell-interpreter"
CRASH_LOG = "the traceback is in "


def courier_argv() -> list[str]:
    """The installed console script next to this interpreter (the real entry point)."""
    script = Path(sys.executable).with_name("courier")
    if not script.exists():
        raise RuntimeError(f"the courier console script is not installed next to {sys.executable}")
    return [str(script)]


def courier_env(tmpdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a courier process: ours without any COURIER_* setting (so a developer's
    COURIER_STATE_URL never leaks into a test), plain output, crash logs under `tmpdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
        TMPDIR=str(tmpdir),
    )
    if extra:
        env.update(extra)
    return env


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """Everything a failed assertion on a courier run should show, crash log included."""
    text = (
        f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    if CRASH_LOG in proc.stderr:
        log = Path(proc.stderr.split(CRASH_LOG, 1)[1].split()[0])
        if log.is_file():
            text += f"\n--- {log}\n{log.read_text(encoding='utf-8', errors='replace')}"
    return text


def expect(proc: subprocess.CompletedProcess[str], code: int) -> subprocess.CompletedProcess[str]:
    """Assert the exit code of a courier run, showing its output when it differs."""
    assert proc.returncode == code, describe(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, describe(proc)
    return proc


# --- job documents ------------------------------------------------------------------------


def job_doc(
    name: str,
    *,
    command: str = "echo hello",
    description: str | None = None,
    schedule: str = "immediate",
) -> dict[str, Any]:
    """A minimal valid job template (current schema) running `command` on the local node."""
    doc: dict[str, Any] = {"name": name}
    if description is not None:
        doc["description"] = description
    doc |= {
        "scheduleRule": schedule,
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 300,
                    "batchSize": {"type": "number", "value": 1},
                    "distributionMethod": "batching",
                    "nodeListType": "nodes",
                    "nodeIdentifiers": ["local"],
                }
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "say",
                    "interpreter": {
                        "name": SHELL,
                        "skill": {"minVersion": "1.0.0", "maxVersion": "2.0.0"},
                    },
                    "command": {"linux": [command]},
                }
            ]
        },
    }
    return doc


def dump_job(doc: Mapping[str, Any], fmt: str) -> str:
    """`doc` as the text of a `.json`, `.yaml`/`.yml` or `.toml` job file."""
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    if fmt in ("yaml", "yml"):
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        out = io.StringIO()
        yaml.dump(dict(doc), out)
        return out.getvalue()
    if fmt == "toml":
        return tomlkit.dumps(dict(doc))
    raise ValueError(f"unknown job file format {fmt!r}")


# --- a real git repository ----------------------------------------------------------------


class GitRepo:
    """A git repository in a temp folder with a `jobs.d/`, and courier run inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root.parent / f"{root.name}-tmp"  # courier's TMPDIR: crash logs land here
        self._stores: list[Any] = []
        (root / "jobs.d").mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Courier Tests")
        self.git("config", "user.email", "courier-tests@example.invalid")
        self.git("config", "commit.gpgsign", "false")
        self.write(".gitignore", ".courier/\n")

    # -- git ---------------------------------------------------------------------------------

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
        )
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
        return proc.stdout.strip()

    def commit(self, message: str = "change jobs") -> str:
        """Stage everything (deletions too) and commit; returns the new commit's sha."""
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    # -- files -------------------------------------------------------------------------------

    def write(self, rel: str, content: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def write_job(self, rel: str, doc: Mapping[str, Any]) -> Path:
        """Write `doc` to `jobs.d/<rel>` in the format its suffix names."""
        return self.write(f"jobs.d/{rel}", dump_job(doc, rel.rsplit(".", 1)[-1]))

    def remove(self, rel: str) -> None:
        (self.root / "jobs.d" / rel).unlink()

    def tree_digest(self) -> dict[str, bytes]:
        """Every file of the work tree outside .git/ and .courier/, with its content."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not {".git", ".courier"} & set(p.relative_to(self.root).parts)
        }

    # -- courier -----------------------------------------------------------------------------

    def argv(self, *args: str | Path) -> list[str]:
        return [*courier_argv(), *(str(a) for a in args)]

    def courier(
        self, *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `courier ARGS...` in the repository as a real process."""
        return subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=courier_env(self.tmp, env),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )

    def popen(
        self, *args: str | Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start `courier ARGS...` without waiting; the caller collects it."""
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.root,
            env=courier_env(self.tmp, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )

    # -- the state ---------------------------------------------------------------------------

    @property
    def state_db(self) -> Path:
        """The embedded default state file (`.courier/state.db`)."""
        return self.root / ".courier" / "state.db"

    @property
    def state_url(self) -> str:
        return f"sqlite:///{self.state_db}"

    def store(self, url: str | None = None) -> Any:
        """The real state store on `url` (default: the repository's SQLite file)."""
        from state import open_store

        store = open_store(url or self.state_url, self.root)
        self._stores.append(store)
        return store

    def close(self) -> None:
        for store in self._stores:
            store.engine.dispose()
        self._stores.clear()


def collect(proc: subprocess.Popen[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Wait for a process started with `GitRepo.popen` and capture its output."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# --- raw reads of the SQLite state file ---------------------------------------------------


def sqlite_rows(db: Path, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the SQLite state file, read with the standard library only."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return [tuple(row) for row in conn.execute(sql, tuple(params))]


def table_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table`, sorted, for before/after comparisons."""
    return sorted(sqlite_rows(db, f"SELECT * FROM {table}"), key=repr)  # noqa: S608 - our names
