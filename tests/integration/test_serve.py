"""`courier serve` end to end: a real git repo, `apply --wait`, the real server as a process.

Evidence downloads only with a valid, unexpired signature for exactly that run, step and attempt;
no request path reaches a file outside the evidence store; stable links redirect to fresh signed
URLs; the JSON API answers in Chef's shapes. Traffic goes to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import signal
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from reconciler.evidence import signing
from tests.integration.support import GitRepo, courier_env, expect, job_doc, sqlite_rows

SECRET = "test-secret-0123456789abcdef0123456789"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 30.0

pytestmark = pytest.mark.slow


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self
        return json.loads(self.body)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def request(self, target: str, method: str = "GET") -> Reply:
        """Send `target` exactly as given (no client-side normalization of `..` or `%2e`)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.request(method, target)
            response = conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, headers, response.read())
        finally:
            conn.close()

    def get_url(self, url: str) -> Reply:
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("http", HOST, self.port), url
        return self.request(target_of(url))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                # In-flight requests may finish first: a stalled one for the server's 10 s.
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return int(self.proc.returncode)


def target_of(url: str) -> str:
    """The request target (path and query) of `url`."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def start_server(repo: GitRepo, log: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """`courier serve --port 0` in `repo` (COURIER_SECRET set unless `env` is given); returns
    once /healthz answers 200."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            repo.argv("serve", "--host", HOST, "--port", "0", *args),
            cwd=repo.root,
            env=courier_env(repo.tmp, {"COURIER_SECRET": SECRET} if env is None else env),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    server = Server(proc, 0, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"courier serve exited: {log.read_text()}"
            found = re.search(rf"listening on http://{re.escape(HOST)}:(\d+)", log.read_text())
            if found:
                server.port = int(found[1])
                try:
                    if server.request("/healthz").status == 200:
                        return server
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(
            f"courier serve did not answer in {START_TIMEOUT_S}s: {log.read_text()}"
        )
    except BaseException:
        server.stop()
        raise


@dataclass
class Fleet:
    """The repository after `apply --wait` of two one-step jobs on the local node."""

    repo: GitRepo
    server: Server
    run: str  # the run of job `alpha`
    other_run: str  # the run of job `beta`
    _signed: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, serve_url: str | None = None, secret: str | None = SECRET
    ) -> subprocess.CompletedProcess[str]:
        env = {"COURIER_SECRET": secret} if secret else {}
        if serve_url:
            env["COURIER_SERVE_URL"] = serve_url
        return self.repo.courier(*args, env=env)

    def evidence_url(self, run: str, step: int = 1, attempt: int = 1, **kw: Any) -> str:
        """`artifactUrl` of `courier state run get-step-attempt-evidence`."""
        proc = expect(
            self.cli(
                "state",
                "run",
                "get-step-attempt-evidence",
                "--runId",
                run,
                "--stepNo",
                str(step),
                "--attemptNo",
                str(attempt),
                **kw,
            ),
            0,
        )
        url: str = json.loads(proc.stdout)["item"]["artifactUrl"]
        return url

    def signed(self, run: str) -> str:
        """The server URL `get-step-attempt-evidence` gives for step 1, attempt 1 of `run`
        (asked once per run: a CLI start is slow, and the URL is valid for 15 minutes)."""
        if run not in self._signed:
            self._signed[run] = self.evidence_url(run, serve_url=self.server.url)
        return self._signed[run]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("serve")
    repo = GitRepo(base / "repo")
    repo.write_job("alpha.json", job_doc("alpha", command="echo hello-evidence"))
    repo.write_job("beta.json", job_doc("beta", command="echo other-evidence"))
    repo.commit("two jobs")
    expect(repo.courier("apply", "--wait", env={"COURIER_SECRET": SECRET}, timeout=120), 0)
    runs = dict(
        sqlite_rows(
            repo.state_db,
            "SELECT jobs.name, runs.id FROM runs JOIN instances ON runs.instance_id = instances.id"
            " JOIN jobs ON instances.job_id = jobs.id",
        )
    )
    server = start_server(repo, base / "serve.log")
    try:
        yield Fleet(repo, server, runs["alpha"], runs["beta"])
    finally:
        server.stop()
        repo.close()


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def evidence_target(run: str, step: int, attempt: int, query: dict[str, str]) -> str:
    return f"{signing.evidence_path(run, step, attempt)}?{urlencode(query)}"


def assert_refused(reply: Reply, status: int = 403) -> None:
    assert reply.status == status, reply
    assert reply.json()["error"]["code"] == status
    assert not reply.body.startswith(b"PK")


# --- signed downloads ---------------------------------------------------------------------


def test_the_signed_url_downloads_the_zip(fleet: Fleet) -> None:
    url = fleet.signed(fleet.run)
    assert url.startswith(f"{fleet.server.url}/evidence/run/{fleet.run}/step/1/attempt/1/")
    assert re.search(r"\?expires=\d+&signature=[0-9a-f]{64}$", url), url
    expires = int(re.search(r"expires=(\d+)", url)[1])  # type: ignore[index]
    assert 14 * 60 <= expires - time.time() <= 15 * 60 + 5

    reply = fleet.server.get_url(url)
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/zip"
    assert reply.headers["content-disposition"] == (
        f'attachment; filename="evidence-run-{fleet.run}-step-1-attempt-1.zip"'
    )
    members = zip_members(reply.body)
    assert b"hello-evidence" in members["stdout.txt"]


def test_without_a_serve_url_the_cli_keeps_the_file_url(fleet: Fleet) -> None:
    url = fleet.evidence_url(fleet.run)
    assert url.startswith("file://")
    assert Path(urlsplit(url).path).is_file()


def test_a_tampered_signature_is_refused(fleet: Fleet) -> None:
    url = fleet.signed(fleet.run)
    last = url[-1]
    assert_refused(fleet.server.get_url(url[:-1] + ("0" if last != "0" else "1")))


def test_a_tampered_expiry_is_refused(fleet: Fleet) -> None:
    url = fleet.signed(fleet.run)
    later = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m[1]) + 3600}", url)
    assert_refused(fleet.server.get_url(later))


def test_an_expired_signature_is_refused(fleet: Fleet) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    query = signing.sign(SECRET.encode(), fleet.run, 1, 1, now=past)
    reply = fleet.server.request(evidence_target(fleet.run, 1, 1, query))
    assert_refused(reply)
    assert "expired" in reply.json()["error"]["message"]


def test_a_signature_for_another_run_is_refused(fleet: Fleet) -> None:
    url = fleet.signed(fleet.run)
    query = urlsplit(url).query
    assert_refused(fleet.server.request(f"{signing.evidence_path(fleet.other_run, 1, 1)}?{query}"))
    # ... while that run's own signed URL works.
    other = fleet.server.get_url(fleet.signed(fleet.other_run))
    assert other.status == 200
    assert b"other-evidence" in zip_members(other.body)["stdout.txt"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "expires=99999999999",
        "signature=" + "a" * 64,
        "expires=abc&signature=" + "a" * 64,
        "expires=99999999999&signature=xyz",
        "expires=99999999999&signature=" + "A" * 64,
    ],
)
def test_a_missing_or_malformed_signature_is_refused(fleet: Fleet, query: str) -> None:
    path = signing.evidence_path(fleet.run, 1, 1)
    assert_refused(fleet.server.request(f"{path}?{query}" if query else path))


def test_a_valid_signature_for_missing_evidence_is_404(fleet: Fleet) -> None:
    query = signing.sign(SECRET.encode(), fleet.run, 9, 1, now=datetime.now(UTC))
    assert_refused(fleet.server.request(evidence_target(fleet.run, 9, 1, query)), 404)


def _traversals(run: str, query: str) -> list[str]:
    zip_name = f"evidence-run-{run}-step-1-attempt-1.zip"
    return [
        "/evidence/run/../../../etc/passwd",
        f"/evidence/run/{run}/step/1/attempt/1/../../../../../state.db?{query}",
        f"/evidence/run/%2e%2e/step/1/attempt/1/evidence-run-%2e%2e-step-1-attempt-1.zip?{query}",
        f"/evidence/run/%252e%252e/step/1/attempt/1/{zip_name}?{query}",
        f"/evidence/run/{run}%2F..%2F..%2F..%2F..%2Fstate.db?{query}",
        f"/evidence/run/{run}/step/1/attempt/1/..%2F..%2F..%2F..%2F..%2Fstate.db?{query}",
        f"/evidence/run/{run}/step/1/attempt/1/%2e%2e%2f%2e%2e%2fstate.db?{query}",
        f"/evidence/run/{run}/step/1/attempt/1/{zip_name}/..?{query}",
        f"/evidence/run/{run}/step/1/attempt/1/{zip_name}%00.zip?{query}",
        f"/evidence/run/{run}/step/1/attempt/1/{zip_name}%2F..%2F..?{query}",
        "/evidence/run/..%5C..%5C..%5Cstate.db/step/1/attempt/1",
        "/evidence/run/../step/1/attempt/1",
        "/api/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/runs/../../state.db",
        "//etc/passwd",
    ]


def test_path_traversal_never_succeeds(fleet: Fleet) -> None:
    query = urlsplit(fleet.signed(fleet.run)).query
    for target in _traversals(fleet.run, query):
        reply = fleet.server.request(target)
        assert reply.status in (403, 404), (target, reply)
        assert b"SQLite format" not in reply.body
        assert not reply.body.startswith(b"PK"), target


def test_a_file_name_for_another_run_is_404(fleet: Fleet) -> None:
    query = urlsplit(fleet.signed(fleet.run)).query
    path = signing.evidence_path(fleet.run, 1, 1).replace(
        f"evidence-run-{fleet.run}-", f"evidence-run-{fleet.other_run}-"
    )
    assert_refused(fleet.server.request(f"{path}?{query}"), 404)


@pytest.mark.parametrize("run_id", ["..", ".", "...", "..%2F.."])
def test_even_a_validly_signed_dot_run_id_is_refused(fleet: Fleet, run_id: str) -> None:
    query = urlencode(signing.sign(SECRET.encode(), run_id, 1, 1, now=datetime.now(UTC)))
    name = f"evidence-run-{run_id}-step-1-attempt-1.zip"
    reply = fleet.server.request(f"/evidence/run/{run_id}/step/1/attempt/1/{name}?{query}")
    assert reply.status in (403, 404), reply


# --- stable links -------------------------------------------------------------------------


def test_the_stable_link_redirects_to_a_fresh_signed_url(fleet: Fleet) -> None:
    stable = signing.stable_url(fleet.server.url, fleet.run, 1, 1)
    reply = fleet.server.get_url(stable)
    assert reply.status == 302, reply
    assert reply.headers["cache-control"] == "no-store"
    location = reply.headers["location"]
    assert location.startswith(f"{fleet.server.url}/evidence/run/{fleet.run}/step/1/attempt/1/")
    assert "signature=" in location
    download = fleet.server.get_url(location)
    assert download.status == 200
    assert b"hello-evidence" in zip_members(download.body)["stdout.txt"]


def test_a_stable_link_to_nothing_is_404(fleet: Fleet) -> None:
    assert_refused(fleet.server.request(f"/evidence/run/{fleet.run}/step/9/attempt/1"), 404)
    assert_refused(fleet.server.request("/evidence/run/no-such-run/step/1/attempt/1"), 404)


# --- the JSON API -------------------------------------------------------------------------


def test_jobs_are_listed_in_chefs_paginated_shape(fleet: Fleet) -> None:
    body = fleet.server.request("/api/v1/jobs").json()
    assert set(body) == {"items", "pagination"}
    assert [job["name"] for job in body["items"]] == ["alpha", "beta"]
    assert body["pagination"]["totalItems"] == 2
    assert body["pagination"]["page"] == 1

    second = fleet.server.request("/api/v1/jobs?page=2&size=1").json()
    assert [job["name"] for job in second["items"]] == ["beta"]
    assert second["pagination"] | {"nextLink": "", "previousLink": ""} == {
        "itemsPerPage": 1,
        "nextLink": "",
        "page": 2,
        "pageItemCount": 1,
        "previousLink": "",
        "startIndex": 2,
        "totalItems": 2,
        "totalPages": 2,
    }
    assert fleet.server.request("/api/v1/jobs?status=canceled").json()["items"] == []


def test_the_api_walks_from_job_to_evidence(fleet: Fleet) -> None:
    server = fleet.server
    job = next(j for j in server.request("/api/v1/jobs").json()["items"] if j["name"] == "alpha")
    assert server.request(f"/api/v1/jobs/{job['id']}").json()["item"]["id"] == job["id"]

    instances = server.request(f"/api/v1/instances?jobId={job['id']}").json()
    assert instances["pagination"]["totalItems"] == 1
    instance = instances["items"][0]
    assert instance["jobId"] == job["id"]
    assert server.request(f"/api/v1/instances/{instance['id']}").json()["item"] == instance

    runs = server.request(f"/api/v1/instances/{instance['id']}/runs").json()
    assert runs["totalItems"] == 1
    assert runs["items"][0]["runId"] == fleet.run
    run = server.request(f"/api/v1/runs/{fleet.run}").json()["item"]
    assert run["status"] == "success"

    steps = server.request(f"/api/v1/runs/{fleet.run}/steps").json()
    assert [s["stepNumber"] for s in steps["items"]] == [1]

    evidence = server.request(f"/api/v1/runs/{fleet.run}/steps/1/attempts/1/evidence").json()
    download = server.get_url(evidence["item"]["artifactUrl"])
    assert download.status == 200
    assert "stdout.txt" in zip_members(download.body)


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/jobs/no-such-job",
        "/api/v1/instances/no-such-instance",
        "/api/v1/instances/no-such-instance/runs",
        "/api/v1/runs/no-such-run",
        "/api/v1/runs/no-such-run/steps",
        "/api/v1/runs/no-such-run/steps/1/attempts/1/evidence",
        "/api/v1/nothing",
        "/",
    ],
)
def test_unknown_ids_are_404_json(fleet: Fleet, target: str) -> None:
    assert_refused(fleet.server.request(target), 404)


@pytest.mark.parametrize("target", ["/api/v1/jobs?page=1&page=2", "/api/v1/jobs?size=%ff"])
def test_malformed_queries_are_400(fleet: Fleet, target: str) -> None:
    assert_refused(fleet.server.request(target), 400)


def test_a_malformed_absolute_target_is_400_not_500(fleet: Fleet) -> None:
    # http.client refuses to send this target, so it goes over a plain socket.
    with socket.create_connection((HOST, fleet.server.port), timeout=HTTP_TIMEOUT_S) as sock:
        sock.sendall(b"GET http://[::1/api/v1/jobs HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 400 "), answer


@pytest.mark.parametrize(
    "target", ["/api/v1/jobs?page=0", "/api/v1/jobs?size=5000", "/api/v1/jobs?status=sleepy"]
)
def test_bad_query_parameters_are_400(fleet: Fleet, target: str) -> None:
    assert_refused(fleet.server.request(target), 400)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_is_allowed(fleet: Fleet, method: str) -> None:
    reply = fleet.server.request("/api/v1/jobs", method=method)
    assert_refused(reply, 405)
    assert reply.headers["allow"] == "GET, HEAD"


def test_healthz(fleet: Fleet) -> None:
    reply = fleet.server.request("/healthz")
    assert reply.status == 200
    assert reply.json()["status"] == "ok"


def test_requests_are_logged_without_their_signature(fleet: Fleet) -> None:
    url = fleet.signed(fleet.run)
    assert fleet.server.get_url(url).status == 200
    signature = re.search(r"signature=([0-9a-f]+)", url)[1]  # type: ignore[index]
    deadline = time.monotonic() + 5
    path = urlsplit(url).path
    while path not in (log := fleet.server.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(rf"GET {re.escape(path)}\?expires=\d+ 200", log), log
    assert signature not in log


# --- the signing secret ------------------------------------------------------------------


def test_without_courier_secret_the_cli_and_server_share_the_secret_file(
    fleet: Fleet, tmp_path: Path
) -> None:
    secret_file = fleet.repo.root / ".courier" / "secret"
    assert not secret_file.exists()
    server = start_server(fleet.repo, tmp_path / "serve.log", env={})
    try:
        assert secret_file.stat().st_mode & 0o777 == 0o600
        url = fleet.evidence_url(fleet.run, serve_url=server.url, secret=None)
        assert server.get_url(url).status == 200
        # A URL signed with COURIER_SECRET is not valid for this server's key, and vice versa.
        assert_refused(server.request(target_of(fleet.signed(fleet.run))))
        assert_refused(fleet.server.request(target_of(url)))
    finally:
        server.stop()
        secret_file.unlink()


def test_a_secret_file_others_can_read_is_refused(fleet: Fleet) -> None:
    secret_file = fleet.repo.root / ".courier" / "secret"
    secret_file.write_text("f" * 64 + "\n")
    secret_file.chmod(0o644)
    try:
        proc = fleet.cli(
            "state", "run", "get-step-attempt-evidence", "--runId", fleet.run, "--stepNo", "1",
            "--attemptNo", "1", serve_url=fleet.server.url, secret=None,
        )  # fmt: skip
        expect(proc, 1)
        assert "chmod 600" in proc.stderr
    finally:
        secret_file.unlink()


def test_a_short_courier_secret_is_refused(fleet: Fleet) -> None:
    proc = fleet.repo.courier("serve", "--port", "0", env={"COURIER_SECRET": "short"}, timeout=60)
    expect(proc, 1)
    assert "COURIER_SECRET must be at least 16 characters" in proc.stderr


# --- stopping -----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_stops_the_server_with_exit_0(
    fleet: Fleet, tmp_path: Path, signum: signal.Signals
) -> None:
    server = start_server(fleet.repo, tmp_path / "serve.log")
    try:
        assert server.request("/healthz").status == 200
    finally:
        code = server.stop(signum)
    assert code == 0, server.log.read_text()
    assert "stopping" in server.log.read_text()
