"""`courier serve`: evidence downloads by signed URL and a read-only JSON API over HTTP.

The composition root of the server: opens the state store once, builds `cli.serving.Api`, serves
until SIGTERM or SIGINT, then lets the requests in flight finish and exits 0.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import typer

from cli.context import options, warn
from cli.wiring import SystemClock, evidence_store, open_store, secret, serve_url
from reconciler.errors import CourierError

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    url: str | None = typer.Option(
        None,
        "--url",
        help="Base URL of the links it hands out (default: COURIER_SERVE_URL, courier.toml "
        "[serve] url, else http://HOST:PORT).",
    ),
) -> None:
    """Serve evidence by signed URL, stable evidence links and a read-only JSON API."""
    from cli.serving import Api, base_url_for, make_server  # http.server: only when serving

    opts = options(ctx)
    base = url.rstrip("/") if url else serve_url(opts.repo)
    key = secret(opts.repo)
    store = open_store(opts)
    try:
        api = Api(store, evidence_store(opts.repo), key, base or "", SystemClock())
        try:
            server = make_server(host, port, api)
        except OSError as exc:
            raise CourierError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound = base_url_for(str(server.server_address[0]), int(server.server_address[1]))
        api.base_url = base or bound  # known only once bound when --port is 0
        _serve_until_signal(server, bound, api.base_url)
    finally:
        store.engine.dispose()


def _serve_until_signal(server: ThreadingHTTPServer, bound: str, links: str) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    loop = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="courier-serve",
        daemon=True,
    )
    loop.start()
    try:
        warn(f"courier serve: listening on {bound}; links use {links}")
        # A timed wait, so the main thread wakes up to run the signal handler.
        while not stop.wait(0.5):
            pass
        warn("courier serve: stopping")
    finally:
        server.shutdown()
        server.server_close()  # joins the request threads still in flight
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
