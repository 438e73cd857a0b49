"""The composition root's parts: the state store, the clock, who is acting, the git commit."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cli.context import Options

if TYPE_CHECKING:
    from state import SqlStateStore


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def open_store(opts: Options) -> SqlStateStore:
    from state import open_store as _open  # SQLAlchemy is slow to import: only when needed

    return _open(opts.state_url, opts.repo)


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def head_commit(repo: Path) -> str | None:
    """The commit checked out in `repo`, or None outside git."""
    if not (repo / ".git").exists() and not any((p / ".git").exists() for p in repo.parents):
        return None
    import git

    try:
        return str(git.Repo(repo, search_parent_directories=True).head.commit.hexsha)
    except (git.exc.GitError, ValueError):
        return None
