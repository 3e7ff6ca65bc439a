"""A WSGI app that serves ``/metrics`` and ``/health`` next to its own routes.

It uses only the standard library's ``wsgiref`` and prometheus_client's WSGI app, so the
same two mounts fit any WSGI framework. ``/work`` calls a flaky dependency through the
named breaker ``demo-dependency``; ``--simulate`` keeps calling it from a background
thread, with outages now and then, so the Grafana dashboard in ``monitoring/`` has
something to show.

Run it (``pip install 'resilient-calls[prometheus]'`` first)::

    python examples/metrics_app.py --port 8000 --simulate
    curl http://127.0.0.1:8000/metrics
    curl http://127.0.0.1:8000/health
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import prometheus_client

from resilience import (
    BreakerRegistry,
    CircuitOpenError,
    FailureRate,
    TimeWindow,
    default_registry,
)
from resilience.metrics import health, register_metrics

if TYPE_CHECKING:
    from collections.abc import Iterable
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment


class Dependency:
    """A stand-in for a remote service that fails often while it is "down"."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.down_until = 0.0

    def call(self) -> str:
        """Return "ok", or raise ``ConnectionError`` as a failing service would."""
        now = time.monotonic()
        if now >= self.down_until and self.rng.random() < 0.002:  # an outage now and then
            self.down_until = now + self.rng.uniform(20.0, 90.0)
        failure_chance = 0.9 if now < self.down_until else 0.02
        if self.rng.random() < failure_chance:
            raise ConnectionError("dependency unavailable")
        return "ok"


def make_app(
    registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY,
    breakers: BreakerRegistry = default_registry,
    dependency: Dependency | None = None,
) -> WSGIApplication:
    """Return the example's WSGI app, exporting ``breakers`` on ``registry``."""
    register_metrics(registry, breakers)
    metrics_app = prometheus_client.make_wsgi_app(registry)
    # A failure-rate policy, so the dashboard's failure-rate panel has a series to show.
    policy = FailureRate(threshold=0.5, window=TimeWindow(30.0), minimum_calls=20)
    breaker = breakers.get("demo-dependency", policy=policy, recovery_timeout=10.0)
    dependency = dependency or Dependency(random.Random())

    def respond(start_response: StartResponse, status: str, body: Any) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [data]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]  # untyped
        if path == "/health":
            return respond(start_response, "200 OK", health(breakers))
        if path == "/work":
            try:
                return respond(start_response, "200 OK", {"result": breaker.call(dependency.call)})
            except CircuitOpenError as exc:
                return respond(start_response, "503 Service Unavailable", {"error": str(exc)})
            except ConnectionError as exc:
                return respond(start_response, "502 Bad Gateway", {"error": str(exc)})
        return respond(start_response, "404 Not Found", {"error": f"no route {path}"})

    return app


def simulate(app: WSGIApplication, stop: threading.Event) -> None:
    """Call ``/work`` about twenty times a second until ``stop`` is set."""
    environ = {"PATH_INFO": "/work", "REQUEST_METHOD": "GET"}
    while not stop.wait(0.05):
        app(environ, lambda _status, _headers, _exc_info=None: lambda _data: None)


class QuietHandler(WSGIRequestHandler):
    """A request handler that does not log every request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
        """Log nothing: Prometheus scrapes would fill the terminal."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--simulate", action="store_true", help="generate traffic to /work")
    args = parser.parse_args(argv)
    app = make_app()
    stop = threading.Event()
    if args.simulate:
        threading.Thread(target=simulate, args=(app, stop), daemon=True).start()
    with make_server(args.host, args.port, app, handler_class=QuietHandler) as server:
        print(f"serving on http://{args.host}:{server.server_port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()


if __name__ == "__main__":
    main()
