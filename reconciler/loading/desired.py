"""The desired state: job files of the work tree or of a git revision, parsed only when changed.

A file whose git blob id equals the one its job was applied from reuses the stored canonical spec
(DESIGN.md §8), so a no-op plan over 10,000 jobs parses nothing. Blob ids are computed the way git
does, so the work tree needs no git index and `--ref REV` needs no file contents for unchanged jobs.
With `spec_of`, a reused job does not even need its stored spec: the caller may read the state
without specs (`read(with_specs=False)`) and the spec is fetched only if something asks for it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from reconciler.errors import CourierError, Problem
from reconciler.loading.discovery import MAX_FILE_BYTES, discover, format_of
from reconciler.loading.loader import LoadResult, _load_one, bulk_allocation
from reconciler.planning import Desired
from reconciler.ports import StoredJob


@dataclass(frozen=True, slots=True)
class Candidate:
    display: str
    format: str
    blob_id: str | None
    read: Callable[[], bytes]


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


SpecOf = Callable[[StoredJob], dict[str, Any]]
"""The stored canonical spec of a job's current version (the one with the job's hash)."""


def desired_from_worktree(
    paths: list[Path], repo: Path, known: Iterable[StoredJob] = (), spec_of: SpecOf | None = None
) -> tuple[list[Desired], LoadResult]:
    known = list(known)
    index = _GitIndex.start(repo, paths) if any(j.blob_id for j in known) else None
    try:
        sources, problems = discover(paths, repo)
    finally:  # collect the git processes whatever happens
        from_index = index.blob_ids() if index is not None else {}
    candidates: list[Candidate] = []
    for source in sources:
        blob_id = from_index.get(source.display)
        if blob_id is not None:  # read only if it must be parsed (its job has another blob)
            candidates.append(
                Candidate(source.display, source.format, blob_id, source.path.read_bytes)
            )
            continue
        try:
            data = source.path.read_bytes()
        except OSError as exc:
            problems.append(Problem(source.display, 1, 1, "", f"cannot read: {exc}"))
            continue
        candidates.append(
            Candidate(source.display, source.format, git_blob_id(data), _constant(data))
        )
    return _desired(candidates, known, problems, spec_of)


class _GitIndex:
    """The blob ids git already knows for work-tree files (DESIGN.md §8), asked of two `git`
    processes that run while `discover` walks the folders.

    `git ls-files -s -v` lists the index's blob id of every tracked file and `git diff-files`
    names those whose work-tree copy differs from the index (by git's stat check, which reads a
    racily clean file again), so every other regular tracked file has the index's blob id and
    need not be read: 10,000 files cost ~0.15 s less. Whatever git does not vouch for is read
    and hashed as before: untracked, modified, unmerged, assume-unchanged or skip-worktree
    entries, symlinks, or everything when git is missing or fails.
    """

    def __init__(self, listing: subprocess.Popen[bytes], changed: subprocess.Popen[bytes]) -> None:
        self._listing = listing
        self._changed = changed

    @classmethod
    def start(cls, repo: Path, paths: list[Path]) -> _GitIndex | None:
        if not any((p / ".git").exists() for p in (repo, *repo.parents)):
            return None
        pathspecs = ["--", *(str(p) for p in paths)]
        started: list[subprocess.Popen[bytes]] = []
        try:
            for args in (
                ["ls-files", "-s", "-v", "-z"],
                ["diff-files", "--relative", "--name-only", "-z"],
            ):
                started.append(
                    subprocess.Popen(
                        ["git", "-C", str(repo), *args, *pathspecs],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                    )
                )
        except OSError:  # no git
            for proc in started:
                proc.kill()
                proc.communicate()
            return None
        return cls(*started)

    def blob_ids(self) -> dict[str, str]:
        """Display path (relative to the repo) -> blob id, for files git vouches for."""
        listing, _ = self._listing.communicate()
        changed, _ = self._changed.communicate()
        if self._listing.returncode or self._changed.returncode:
            return {}
        modified = set(changed.split(b"\0"))
        found: dict[str, str] = {}
        for entry in listing.split(b"\0"):
            # "H 100644 <blob id> 0\t<path>": tag H = tracked, neither assume-unchanged nor
            # skip-worktree; a regular file; stage 0 = not in a merge conflict
            meta, _, path = entry.partition(b"\t")
            parts = meta.split(b" ")
            if (
                len(parts) == 4
                and parts[0] == b"H"
                and parts[1] in (b"100644", b"100755")
                and parts[3] == b"0"
                and path not in modified
            ):
                found[os.fsdecode(path)] = parts[2].decode("ascii")
        return found


def desired_from_git(
    repo: Path,
    rev: str,
    folder: str = "jobs.d",
    known: Iterable[StoredJob] = (),
    spec_of: SpecOf | None = None,
) -> tuple[list[Desired], LoadResult, str]:
    """Desired jobs at git revision `rev` (work tree untouched); also returns the commit sha."""
    import git  # gitpython is slow to import; only `--ref` needs it here

    try:
        repository = git.Repo(repo, search_parent_directories=True)
        commit = repository.commit(rev)
        root = Path(repository.working_tree_dir or repo).resolve()
        prefix = PurePosixPath(repo.resolve().relative_to(root).as_posix()) / folder
        tree = commit.tree / prefix.as_posix() if str(prefix) != "." else commit.tree
    except KeyError:
        return [], LoadResult(), commit.hexsha  # no jobs.d/ at that revision: no jobs
    except Exception as exc:  # gitpython and gitdb raise many unrelated types for a bad rev
        raise CourierError(f"cannot read git revision {rev!r} in {repo}: {exc}") from exc
    problems: list[Problem] = []
    candidates: list[Candidate] = []
    for item in tree.traverse():
        if not isinstance(item, git.Blob):
            continue
        rel = (
            PurePosixPath(item.path).relative_to(prefix.parent)
            if str(prefix.parent) != "."
            else PurePosixPath(item.path)
        )
        display = rel.as_posix()
        if any(part.startswith(".") for part in rel.parts):
            continue
        fmt = format_of(Path(item.path))
        if fmt is None:
            continue
        if item.mode == 0o120000:
            problems.append(Problem(display, 1, 1, "", "symlinks are not followed in --ref mode"))
            continue
        if item.size > MAX_FILE_BYTES:
            problems.append(
                Problem(display, 1, 1, "", f"file is {item.size} bytes; limit {MAX_FILE_BYTES}")
            )
            continue
        candidates.append(Candidate(display, fmt, item.hexsha, _blob_reader(item)))
    candidates.sort(key=lambda c: c.display)
    desired, result = _desired(candidates, known, problems, spec_of)
    return desired, result, commit.hexsha


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _blob_reader(blob: Any) -> Callable[[], bytes]:
    return lambda: bytes(blob.data_stream.read())


def _desired(
    candidates: list[Candidate],
    known: Iterable[StoredJob],
    problems: list[Problem],
    spec_of: SpecOf | None = None,
) -> tuple[list[Desired], LoadResult]:
    by_path = {j.origin_path: j for j in known if j.managed and j.origin_path and j.blob_id}
    result = LoadResult(problems=problems)
    reused: list[Desired] = []
    blobs: dict[str, str | None] = {}
    changed: list[Candidate] = []
    for c in candidates:
        stored = by_path.get(c.display)
        if stored is None or stored.blob_id != c.blob_id:
            changed.append(c)
        elif spec_of is None:
            reused.append(Desired(stored.name, c.display, stored.spec, stored.hash, c.blob_id))
        else:
            fetch = partial(spec_of, stored)
            reused.append(
                Desired(stored.name, c.display, None, stored.hash, c.blob_id, fetch=fetch)
            )
    with bulk_allocation():  # a first apply parses thousands of files: keep the GC out of it
        for c in changed:
            try:
                data = c.read()
            except OSError as exc:
                problems.append(Problem(c.display, 1, 1, "", f"cannot read: {exc}"))
                continue
            blobs[c.display] = c.blob_id
            _load_one(c.display, c.format, data, result)
    parsed = [Desired(j.name, j.path, j.spec, j.hash, blobs.get(j.path)) for j in result.jobs]
    desired = sorted(reused + parsed, key=lambda d: d.path)
    _check_names(desired, result)
    result.problems.sort(key=Problem.sort_key)
    return desired, result


def _check_names(desired: list[Desired], result: LoadResult) -> None:
    by_name: dict[str, list[str]] = {}
    for d in desired:
        by_name.setdefault(d.name, []).append(d.path)
    for name, paths in by_name.items():
        if len(paths) > 1:
            joined = ", ".join(paths)
            for path in paths:
                result.problems.append(
                    Problem(
                        path,
                        1,
                        1,
                        "name",
                        f"job name {name!r} is used by {len(paths)} files: {joined}",
                    )
                )


__all__ = ["Candidate", "SpecOf", "desired_from_git", "desired_from_worktree", "git_blob_id"]
