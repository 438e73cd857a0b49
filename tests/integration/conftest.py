"""Fixtures of the end-to-end tests: a real git repository, the real `courier` process, job-file
builders, and a throw-away PostgreSQL database when `COURIER_TEST_PG_URL` is set.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import GitRepo, dump_job, job_doc

PG_ENV = "COURIER_TEST_PG_URL"
Courier = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def git_repo(tmp_path: Path) -> Iterator[GitRepo]:
    """A fresh git repository (local user config, empty `jobs.d/`) in the test's temp folder."""
    repo = GitRepo(tmp_path / "repo")
    yield repo
    repo.close()


@pytest.fixture
def courier(git_repo: GitRepo) -> Courier:
    """`courier(*args, env=None)`: the real console script run in `git_repo`, as a subprocess,
    returning its CompletedProcess (without COURIER_STATE_URL unless `env` sets it)."""
    return git_repo.courier


@pytest.fixture
def make_job() -> Callable[..., dict[str, Any]]:
    """`make_job(name, command=..., description=..., schedule=...)`: a minimal valid job dict."""
    return job_doc


@pytest.fixture
def render_job() -> Callable[[dict[str, Any], str], str]:
    """`render_job(doc, "json" | "yaml" | "toml")`: the text of a job file."""
    return dump_job


def _pg_base() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to run this test against")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, uniquely named PostgreSQL database, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(_pg_base())
    name = f"courier_it_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
