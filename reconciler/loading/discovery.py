"""Find job files: `jobs.d/**/*.{json,yaml,yml,toml}` in a stable order, refusing unsafe paths.

Hidden files and folders are skipped. A symlink that resolves outside the repository is refused
(it would let a pull request make `apply` read any file on the CI machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Problem

EXTENSIONS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """One job file: its path as shown to users (relative to the repo) and its format."""

    path: Path
    display: str
    format: str


def format_of(path: Path) -> str | None:
    return EXTENSIONS.get(path.suffix.lower())


def discover(paths: list[Path], repo: Path) -> tuple[list[Source], list[Problem]]:
    """Expand files and folders into sources; problems for unsafe or unreadable paths."""
    repo = repo.resolve()
    sources: dict[str, Source] = {}
    problems: list[Problem] = []
    for given in paths:
        if not given.exists() and not given.is_symlink():
            problems.append(Problem(str(given), 1, 1, "", "no such file or directory"))
            continue
        candidates = _walk(given) if given.is_dir() else [given]
        for path in candidates:
            display = _display(path, repo)
            fmt = format_of(path)
            if fmt is None:
                problems.append(
                    Problem(display, 1, 1, "", "not a job file (.json, .yaml, .yml or .toml)")
                )
                continue
            problem = _check_path(path, display, repo)
            if problem:
                problems.append(problem)
                continue
            sources.setdefault(display, Source(path, display, fmt))
    return [sources[k] for k in sorted(sources)], problems


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or format_of(Path(name)) is None:
                continue
            found.append(Path(dirpath) / name)
    return found


def _display(path: Path, repo: Path) -> str:
    # abspath, not resolve(): a symlink is shown under its own name, not its target's.
    absolute = Path(os.path.abspath(path))  # noqa: PTH100
    try:
        return absolute.relative_to(repo).as_posix()
    except ValueError:
        return path.as_posix()


def _check_path(path: Path, display: str, repo: Path) -> Problem | None:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(repo):
            return Problem(display, 1, 1, "", f"symlink leaves the repository (to {target})")
    if not path.is_file():
        return Problem(display, 1, 1, "", "not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return Problem(
            display, 1, 1, "", f"file is {size} bytes; job files are limited to {MAX_FILE_BYTES}"
        )
    return None
