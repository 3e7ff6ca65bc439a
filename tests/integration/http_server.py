"""A scripted HTTP server on 127.0.0.1 for tests with real HTTP clients.

Each request to ``/<script>`` takes the next step of that script: answer a status with an
optional ``Retry-After`` (seconds or an HTTP date), drop the connection without answering,
stall (answer only after the client has given up), or answer 200. A step list is set with
``server.script(name, steps)``; the URL to fetch is ``server.url(name)``.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Step:
    """One scripted answer: ``kind`` is "status", "drop", "stall" or "ok"."""

    kind: str
    status: int = 200
    retry_after: str | None = None


def status(code: int, retry_after: float | None = None, *, as_date: bool = False) -> Step:
    """Answer ``code``, with ``Retry-After`` in seconds or (``as_date``) as an HTTP date."""
    if retry_after is None:
        return Step("status", code)
    if as_date:
        return Step("status", code, email.utils.formatdate(time.time() + retry_after, usegmt=True))
    return Step("status", code, f"{retry_after:g}")


DROP = Step("drop")
STALL = Step("stall")
OK = Step("ok")


@dataclass
class ScriptedServer:
    """The running server: scripts, what it served, and a switch that ends every stall."""

    port: int = 0
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    served: list[tuple[str, str]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, name: str, steps: list[Step]) -> str:
        """Give ``name`` its steps; return its URL."""
        with self.lock:
            self.scripts[name] = list(steps)
        return self.url(name)

    def url(self, name: str) -> str:
        """The URL of script ``name``."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def next_step(self, name: str) -> Step:
        """Take the next step of ``name`` (200 once the script is used up)."""
        with self.lock:
            steps = self.scripts.get(name)
            step = steps.pop(0) if steps else OK
            self.served.append((name, step.kind))
            return step


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            step = server.next_step(self.path.lstrip("/"))
            if step.kind == "drop":
                self.close_connection = True
                return  # nothing written: the client sees the connection closed
            if step.kind == "stall":
                server.released.wait(10.0)
                self.close_connection = True
                return
            body = b"ok" if step.kind == "ok" else b"busy"
            self.send_response(step.status)
            if step.retry_after is not None:
                self.send_header("Retry-After", step.retry_after)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # base's name
            return  # quiet

    return Handler


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server on a free loopback port, stopped after the test."""
    server = ScriptedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
