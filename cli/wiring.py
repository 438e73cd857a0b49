"""The composition root's parts: the state store, the clock, who is acting, the git commit."""

from __future__ import annotations

import getpass
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cli.context import Options

if TYPE_CHECKING:
    from reconciler.evidence.filesystem import FileEvidenceStore
    from reconciler.nodes.inventory import Inventory
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
    """The commit checked out in `repo`, or None outside git (or before the first commit)."""
    if not (repo / ".git").exists() and not any((p / ".git").exists() for p in repo.parents):
        return None
    found = _read_head(repo)
    if found is not _UNKNOWN:
        return found
    import git  # gitpython takes ~0.1 s to import: only for what _read_head leaves to it

    try:
        return str(git.Repo(repo, search_parent_directories=True).head.commit.hexsha)
    except (git.exc.GitError, ValueError):
        return None


_UNKNOWN = "?"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _read_head(repo: Path) -> str | None:
    """HEAD's commit read from the files of the repository that contains `repo`, as gitpython
    reads it: the `.git` folder (or `gitdir:` file of a linked work tree), HEAD, then the
    branch's loose ref or `packed-refs`. None on an unborn branch; `_UNKNOWN` for whatever it
    does not handle (GIT_DIR, reftable, odd files), which gitpython then answers."""
    if "GIT_DIR" in os.environ:
        return _UNKNOWN
    try:
        top = next(p for p in (repo, *repo.parents) if (p / ".git").exists())
        git_dir = top / ".git"
        if git_dir.is_file():
            text = git_dir.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir: "):
                return _UNKNOWN
            git_dir = (top / text.removeprefix("gitdir: ")).resolve()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
        if (common / "reftable").exists():
            return _UNKNOWN
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if _SHA.fullmatch(head):
            return head
        if not head.startswith("ref: refs/"):
            return _UNKNOWN
        ref = head.removeprefix("ref: ")
        for folder in (git_dir, common):
            loose = folder / ref
            if loose.is_file():
                sha = loose.read_text(encoding="utf-8").strip()
                return sha if _SHA.fullmatch(sha) else _UNKNOWN
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and _SHA.fullmatch(sha):
                    return sha
        return None  # a branch without commits
    except (OSError, StopIteration, UnicodeDecodeError):
        return _UNKNOWN


def load_inventory(repo: Path) -> Inventory:
    """`nodes.yaml` (or the implicit `local` node) with this machine's gathered facts."""
    from reconciler.errors import Problem, Severity, ValidationFailed
    from reconciler.interpreters import BUILTIN_SKILLS
    from reconciler.loading.parsing import ParseError, decode, parse
    from reconciler.loading.positions import locate
    from reconciler.model import format_loc
    from reconciler.nodes.gather import gather
    from reconciler.nodes.inventory import InventoryError, inventory_from_document

    path = repo / "nodes.yaml"
    doc = None
    text = ""
    if path.is_file():
        try:
            text = decode(path.read_bytes())
            doc = parse(text, "yaml")
        except ParseError as exc:
            raise ValidationFailed(
                [Problem("nodes.yaml", exc.line or 1, exc.column or 1, "", exc.message)]
            ) from exc
        if doc is None:
            doc = {"nodes": []}
    try:
        return inventory_from_document(doc, gather(), BUILTIN_SKILLS)
    except InventoryError as exc:
        problems = []
        for finding in exc.findings:
            line, column = locate(text, "yaml", finding.loc) if text else (1, 1)
            problems.append(
                Problem(
                    "nodes.yaml",
                    line,
                    column,
                    format_loc(finding.loc),
                    finding.message,
                    Severity.ERROR,
                )
            )
        raise ValidationFailed(problems) from exc


def evidence_store(repo: Path) -> FileEvidenceStore:
    from reconciler.evidence.filesystem import FileEvidenceStore as Store

    return Store(repo / ".courier" / "evidence")


def step_env() -> dict[str, str]:
    """The environment steps start from: this process's, minus courier's own secrets."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COURIER_SECRET", "COURIER_STATE_URL"))
    }


SECRET_ENV = "COURIER_SECRET"  # noqa: S105 - the name of a variable, not a secret
SECRET_MIN_LENGTH = 16


def secret(repo: Path) -> bytes:
    """The key that signs evidence URLs: `COURIER_SECRET`, else `<repo>/.courier/secret`
    (32 random bytes as hex, created mode 0600 on first use). Every process that signs or checks
    URLs for one state needs the same key: in fleet mode, set `COURIER_SECRET` everywhere."""
    from reconciler.errors import CourierError

    given = os.environ.get(SECRET_ENV)
    if given is not None:
        if len(given) < SECRET_MIN_LENGTH:
            raise CourierError(
                f"{SECRET_ENV} must be at least {SECRET_MIN_LENGTH} characters long "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return given.encode()
    path = repo / ".courier" / "secret"
    try:
        return _read_secret(path) or _create_secret(path)
    except OSError as exc:
        raise CourierError(f"cannot read or create the signing secret {path}: {exc}") from exc


def _read_secret(path: Path) -> bytes | None:
    from reconciler.errors import CourierError

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if os.name == "posix" and mode & 0o077:
        raise CourierError(f"{path} can be read by others; run `chmod 600 {path}`")
    text = path.read_text(encoding="ascii").strip()
    if len(text) < SECRET_MIN_LENGTH:
        raise CourierError(f"{path} holds no usable secret; delete it to make a new one")
    return text.encode()


def _create_secret(path: Path) -> bytes:
    import secrets
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(32)
    # mkstemp creates the file 0600; link() then publishes it whole, or fails if another
    # process was first, in which case that process's secret wins.
    fd, partial = tempfile.mkstemp(prefix=".secret.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text + "\n")
        try:
            os.link(partial, path)
        except FileExistsError:
            return _read_secret(path) or text.encode()
    finally:
        Path(partial).unlink()
    return text.encode()


def serve_url(repo: Path) -> str | None:
    """The base URL of `courier serve` for links: `COURIER_SERVE_URL`, else courier.toml
    `[serve] url`, else None (no server: evidence URLs stay `file://`)."""
    from cli.config import read_config, setting
    from reconciler.errors import CourierError

    url = os.environ.get("COURIER_SERVE_URL") or setting(read_config(repo), "serve", "url")
    if not url:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise CourierError(f"the serve URL {url!r} must start with http:// or https://")
    return url.rstrip("/")
