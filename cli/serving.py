"""The HTTP side of `courier serve`: evidence by signed URL, stable evidence links, a JSON API.

Built on the standard library's `ThreadingHTTPServer`, not a web framework: the API is small,
read-only and GET-only, so a framework would add dependencies (and their CVEs) for no gain.
`Api.respond` maps (method, request target) to a `Reply` without touching sockets, so the routing
is plain code; `make_server` wraps it in a server. Ids are matched by strict patterns after one
round of percent-decoding, so no request can name a file outside the evidence store.
Only the zip downloads need a signature: the JSON API and the stable links (which mint signed
URLs) are open to whoever reaches the server, so it listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import math
import re
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import orjson

from cli.shapes import instance_item, job_item, page_of, parse_time, run_item, step_item
from reconciler import __version__
from reconciler.errors import CourierError, NotFound, StateError
from reconciler.evidence import signing
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus
from reconciler.ports import Clock, EvidenceStore, evidence_key

if TYPE_CHECKING:
    from state import SqlStateStore

_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # UUIDs and friends; never `.` or `..`
_NUM = r"[1-9][0-9]{0,5}"  # no leading zeros: one spelling per number, so one signature
_EVIDENCE_FILE = re.compile(
    rf"/evidence/run/(?P<run>{_ID})/step/(?P<step>{_NUM})/attempt/(?P<attempt>{_NUM})"
    r"/evidence-run-(?P<frun>[^/]+)-step-(?P<fstep>[^/-]+)-attempt-(?P<fattempt>[^/-]+)\.zip"
)
_EXPIRES = re.compile(r"[0-9]{1,12}")
_GET = frozenset({"GET", "HEAD"})
_MAX_PAGE_SIZE = 1000


class HttpError(Exception):
    """A request that ends with `status` and a JSON error body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Reply:
    status: HTTPStatus
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def json_reply(value: Any, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    body = orjson.dumps(value, option=orjson.OPT_SORT_KEYS) + b"\n"
    return Reply(status, body, {"Content-Type": "application/json"})


def error_reply(status: HTTPStatus, message: str) -> Reply:
    return json_reply({"error": {"code": int(status), "message": message}}, status)


Handler = Callable[[re.Match[str], dict[str, str]], Reply]


class Api:
    """The routes of `courier serve` over one opened state store and evidence store."""

    def __init__(
        self,
        store: SqlStateStore,
        evidence: EvidenceStore,
        secret: bytes,
        base_url: str,
        clock: Clock,
    ) -> None:
        self.store = store
        self.evidence = evidence
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        run, num = rf"(?P<run>{_ID})", rf"(?P<step>{_NUM})"
        self.routes: list[tuple[re.Pattern[str], Handler]] = [
            (re.compile(r"/healthz"), self.healthz),
            (_EVIDENCE_FILE, self.evidence_file),
            (
                re.compile(rf"/evidence/run/{run}/step/{num}/attempt/(?P<attempt>{_NUM})"),
                self.evidence_link,
            ),
            (re.compile(r"/api/v1/jobs"), self.jobs),
            (re.compile(rf"/api/v1/jobs/(?P<id>{_ID})"), self.job),
            (re.compile(r"/api/v1/instances"), self.instances),
            (re.compile(rf"/api/v1/instances/(?P<id>{_ID})"), self.instance),
            (re.compile(rf"/api/v1/instances/(?P<id>{_ID})/runs"), self.instance_runs),
            (re.compile(rf"/api/v1/runs/{run}"), self.run),
            (re.compile(rf"/api/v1/runs/{run}/steps"), self.steps),
            (
                re.compile(
                    rf"/api/v1/runs/{run}/steps/{num}/attempts/(?P<attempt>{_NUM})/evidence"
                ),
                self.evidence_api,
            ),
        ]

    def respond(self, method: str, target: str) -> Reply:
        """The reply to `method target` (target as in the request line: path and query)."""
        if method not in _GET:
            reply = error_reply(HTTPStatus.METHOD_NOT_ALLOWED, "courier serve is read-only")
            return Reply(reply.status, reply.body, {**reply.headers, "Allow": "GET, HEAD"})
        try:
            parts = urlsplit(target)
        except ValueError:  # an absolute-form target with a broken host, like `http://[::1`
            return error_reply(HTTPStatus.BAD_REQUEST, "malformed request target")
        # Decoded once; a second encoding (%252e) or a bad byte then fails every pattern.
        path = unquote(parts.path, errors="replace")
        try:
            for pattern, handler in self.routes:
                found = pattern.fullmatch(path)
                if found:
                    return handler(found, _query(parts.query))
            raise HttpError(HTTPStatus.NOT_FOUND, "no such resource")
        except HttpError as exc:
            return error_reply(exc.status, exc.message)
        except NotFound as exc:
            return error_reply(HTTPStatus.NOT_FOUND, exc.message)
        except StateError as exc:
            return error_reply(HTTPStatus.SERVICE_UNAVAILABLE, exc.message)
        except CourierError as exc:  # a bad filter value and the like
            return error_reply(HTTPStatus.BAD_REQUEST, exc.message)

    # -- evidence ---------------------------------------------------------------------------

    def evidence_file(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        run_id, step, attempt = found["run"], int(found["step"]), int(found["attempt"])
        if (found["frun"], found["fstep"], found["fattempt"]) != (
            run_id,
            str(step),
            str(attempt),
        ):
            raise HttpError(HTTPStatus.NOT_FOUND, "the file name does not match the path")
        expires, given = query.get("expires", ""), query.get("signature", "")
        if not _EXPIRES.fullmatch(expires):
            raise HttpError(HTTPStatus.FORBIDDEN, "missing or malformed signature")
        verdict = signing.verify(
            self.secret, run_id, step, attempt, int(expires), given, now=self.clock.now()
        )
        if verdict is not signing.Verdict.VALID:
            # Existence is only revealed to a valid signature: 403 comes before 404.
            raise HttpError(HTTPStatus.FORBIDDEN, f"evidence URL refused: {verdict}")
        name = found.string.rsplit("/", 1)[-1]
        data = self.evidence.get(evidence_key(run_id, step, attempt))
        return Reply(
            HTTPStatus.OK,
            data,
            {
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "private, no-store",
            },
        )

    def evidence_link(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        url = self._signed(found)
        return Reply(HTTPStatus.FOUND, b"", {"Location": url, "Cache-Control": "no-store"})

    def evidence_api(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        return json_reply({"item": {"artifactUrl": self._signed(found)}})

    def _signed(self, found: re.Match[str]) -> str:
        run_id, step, attempt = found["run"], int(found["step"]), int(found["attempt"])
        if not self.store.attempt(run_id, step, attempt).evidence_key:
            raise HttpError(
                HTTPStatus.NOT_FOUND,
                f"attempt {attempt} of step {step} of run {run_id} kept no evidence",
            )
        return signing.signed_url(
            self.base_url, self.secret, run_id, step, attempt, now=self.clock.now()
        )

    # -- the JSON API -----------------------------------------------------------------------

    def healthz(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        return json_reply({"status": "ok", "stateSerial": self.store.serial()})

    def jobs(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        page, size = _paging(query)
        sort, order = query.get("sortKey", "name"), query.get("sortOrder", "asc")
        if sort not in ("name", "createdAt") or order not in ("asc", "desc"):
            raise HttpError(HTTPStatus.BAD_REQUEST, "sortKey: name|createdAt, sortOrder: asc|desc")
        status = _status(JobStatus, query.get("status"))
        found_jobs = self.store.list_jobs(
            status=status, sort=sort, order=order, page=page, size=size
        )
        items = [job_item(j) for j in found_jobs.items]
        return json_reply(_page(items, found_jobs.total, page, size, "/api/v1/jobs", query))

    def job(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        return json_reply({"item": job_item(self.store.job_by_id(found["id"]))})

    def instances(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        page, size = _paging(query)
        after, before = query.get("runAfter"), query.get("runBefore")
        listed = self.store.list_instances(
            job_id=query.get("jobId") or None,
            status=_status(InstanceStatus, query.get("status")),
            created_after=parse_time(after, "runAfter") if after else None,
            created_before=parse_time(before, "runBefore") if before else None,
            page=page,
            size=size,
        )
        items = [instance_item(i, self.store.instance_spec(i)) for i in listed.items]
        return json_reply(_page(items, listed.total, page, size, "/api/v1/instances", query))

    def instance(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        got = self.store.instance(found["id"])
        return json_reply({"item": instance_item(got, self.store.instance_spec(got))})

    def instance_runs(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        page, size = _paging(query)
        group = query.get("groupNum")
        if group is not None and not group.isdigit():
            raise HttpError(HTTPStatus.BAD_REQUEST, "groupNum must be a number from 0")
        self.store.instance(found["id"])  # 404 for an unknown id rather than an empty list
        listed = self.store.list_runs(
            found["id"],
            group=int(group) if group is not None else None,
            status=_status(RunStatus, query.get("status")),
            page=page,
            size=size,
        )
        # Chef's list-instance-runs answers `totalItems` without a pagination block (SPEC §6.2).
        return json_reply(
            {"items": [run_item(r) for r in listed.items], "totalItems": listed.total}
        )

    def run(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        return json_reply({"item": run_item(self.store.run(found["run"]))})

    def steps(self, found: re.Match[str], query: dict[str, str]) -> Reply:
        page, size = _paging(query)
        steps = self.store.steps(found["run"])
        chunk = steps[(page - 1) * size : page * size]
        return json_reply({"items": [step_item(s) for s in chunk], "totalItems": len(steps)})


def _query(raw: str) -> dict[str, str]:
    try:
        parsed = parse_qs(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "the query string is not UTF-8") from None
    repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
    if repeated:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"parameters given twice: {', '.join(repeated)}")
    return {k: v[0] for k, v in parsed.items()}


def _paging(query: dict[str, str]) -> tuple[int, int]:
    page, size = query.get("page", "1"), query.get("size", "10")
    if not (page.isdigit() and size.isdigit()) or int(page) < 1:
        raise HttpError(HTTPStatus.BAD_REQUEST, "page and size must be numbers from 1")
    if not 1 <= int(size) <= _MAX_PAGE_SIZE:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"size must be from 1 to {_MAX_PAGE_SIZE}")
    return int(page), int(size)


def _status(enum: Any, value: str | None) -> Any:
    if not value:
        return None
    try:
        return enum("canceled" if value == "cancelled" else value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise HttpError(
            HTTPStatus.BAD_REQUEST, f"status {value!r} is not one of {allowed}"
        ) from None


def _page(
    items: list[Any], total: int, page: int, size: int, path: str, query: dict[str, str]
) -> dict[str, Any]:
    """Chef's paginated shape, with the links Chef's API leaves empty filled in."""
    shaped = page_of(items, total, page, size)
    pages = math.ceil(total / size)

    def link(number: int) -> str:
        return f"{path}?{urlencode({**query, 'page': str(number), 'size': str(size)})}"

    shaped["pagination"]["nextLink"] = link(page + 1) if page < pages else ""
    shaped["pagination"]["previousLink"] = link(max(1, min(page - 1, pages))) if page > 1 else ""
    return shaped


# -- the server -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    api: Api  # set on the subclass `make_server` builds
    timeout = 10  # seconds a client may take per read or write: a stalled one cannot pin a thread

    def version_string(self) -> str:
        return f"courier/{__version__}"

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer(body=False)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _answer(self, *, body: bool = True) -> None:
        try:
            reply = self.api.respond(self.command, self.path)
        except Exception:  # a bug: answer 500, keep serving, and show the traceback
            traceback.print_exc(file=sys.stderr)
            reply = error_reply(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(reply.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, HTTPStatus) else code
        method = getattr(self, "command", None) or "-"
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        target = _loggable(getattr(self, "path", "-"))
        line = f"{when} {self.client_address[0]} {method} {target} {status}"
        sys.stderr.write(_printable(line) + "\n")

    def log_message(self, format: str, *args: Any) -> None:
        # Only http.server's own errors (a malformed request line, a timeout) come here.
        sys.stderr.write(_printable(f"{self.client_address[0]} {format % args}") + "\n")


def _loggable(target: str) -> str:
    """The request target without its signature: logs must not hand out downloads."""
    if "?" not in target:
        return target
    path, _, raw = target.partition("?")
    kept = [p for p in raw.split("&") if not p.lower().startswith("signature=")]
    return f"{path}?{'&'.join(kept)}" if kept else path


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def make_server(host: str, port: int, api: Api) -> ThreadingHTTPServer:
    """A threading HTTP server for `api` bound to host:port (port 0: any free port)."""
    handler = type("Handler", (_Handler,), {"api": api})

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Track request threads so a graceful stop lets the ones in flight finish.
        daemon_threads = False
        block_on_close = True

    return Server((host, port), handler)


def base_url_for(host: str, port: int) -> str:
    """`http://host:port`, with an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
