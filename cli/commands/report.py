"""`courier report`: write the status of every job into the repository (DESIGN.md §6)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from cli.config import read_config, setting
from cli.context import echo, options
from cli.wiring import evidence_store, open_store
from reconciler.errors import UsageError

DEFAULT_OUT = "status"


def report(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", help="Folder to write into (default: [report] out in courier.toml, status/)."
    ),
    commit: bool = typer.Option(
        False, "--commit", help="Commit the report files, and only them, when they changed."
    ),
    push: bool = typer.Option(
        False, "--push", help="Commit (as --commit) and push the branch to its upstream."
    ),
    message: str | None = typer.Option(
        None, "--message", "-m", help='Commit message (default "courier report: <n> jobs, ...").'
    ),
    last: int = typer.Option(
        10, "--last", help="Success ratio over each job's last N finished instances."
    ),
) -> None:
    """Write README.md, jobs/<name>.md, index.html and junit.xml from the state."""
    from reconciler.reporting import Links, build_report, render
    from reconciler.reporting.writing import commit_report, write_report
    from reconciler.reporting.writing import push as push_branch

    if last < 1:
        raise UsageError(f"--last needs a number of instances >= 1, not {last}")
    opts = options(ctx)
    config = read_config(opts.repo)
    out_dir = _out_dir(opts.repo, out, setting(config, "report", "out"))
    serve_url = os.environ.get("COURIER_SERVE_URL") or setting(config, "serve", "url")
    store = open_store(opts)
    evidence = evidence_store(opts.repo)
    links = Links(
        serve_url=str(serve_url).rstrip("/") if serve_url else None,
        evidence_dir=Path(os.path.relpath(evidence.root, out_dir.resolve())).as_posix(),
        repo_dir=Path(os.path.relpath(opts.repo.resolve(), out_dir.resolve())).as_posix(),
    )
    with _collector_paused():
        the_report = build_report(store, read_evidence=evidence.get, last=last)
        files = render(the_report, links)
        written = write_report(out_dir, files)
    shown = _shown(out_dir)
    echo(
        f"report: {len(the_report.jobs)} job(s), {the_report.runs} run(s) in {shown}: "
        f"{len(written.changed)} file(s) written, {len(written.removed)} removed, "
        f"{written.unchanged} unchanged"
    )
    if not (commit or push):
        return
    text = message or f"courier report: {len(the_report.jobs)} jobs, {the_report.summary}"
    author = setting(config, "report", "author")
    # Every report file, not only the ones written now: files written by an earlier run without
    # --commit are committed too. Paths HEAD already has as they are change nothing.
    paths = [*files, *written.removed]
    made = commit_report(out_dir, paths, text, str(author) if author else None)
    echo(f"committed {made[:12]}: {text.splitlines()[0]}" if made else "report unchanged")
    if push:
        echo(f"pushed to {push_branch(out_dir)}")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the report is built: it makes hundreds of thousands
    of small objects that all live until the files are written, and collection passes over
    them cost ~10% of a 100,000-run report and free nothing (bench/RESULTS.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _out_dir(repo: Path, given: Path | None, configured: object) -> Path:
    if given is not None:
        return given if given.is_absolute() else Path.cwd() / given
    return repo / str(configured or DEFAULT_OUT)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


def register(app: typer.Typer) -> None:
    app.command()(report)
