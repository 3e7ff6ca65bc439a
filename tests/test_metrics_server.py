"""The metrics server answers only ``/metrics`` and ``/health``, and idle clients cannot pin it.

Real servers on loopback, real sockets and real threads; waits poll for a condition
instead of asserting how long anything took.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry  # after the skip above

from resilience import BreakerRegistry
from resilience.metrics import MetricsServer, health, start_metrics_server
from resilience.testing import FakeClock


@pytest.fixture
def breakers() -> BreakerRegistry:
    """A registry with one closed breaker ``svc``."""
    breakers = BreakerRegistry()
    breakers.get("svc")
    return breakers


@pytest.fixture
def server(breakers: BreakerRegistry) -> Iterator[MetricsServer]:
    """A metrics server on a free loopback port, closed after the test."""
    with start_metrics_server(port=0, registry=CollectorRegistry(), breakers=breakers) as server:
        yield server


def request(
    server: MetricsServer, method: str, path: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """Send one request; return the status, the headers and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.02)


def handler_threads(server: MetricsServer) -> int:
    """The threads of ``server`` serving one connection each."""
    return sum(
        "process_request_thread" in thread.name
        and getattr(getattr(thread, "_target", None), "__self__", None) is server._server
        for thread in threading.enumerate()
    )


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/nope", "/", "/metrics/x", "/healthz", "/favicon.ico"])
def test_other_paths_answer_404(server, method, path, encoding):
    """Only /metrics and /health are served: any other path is 404, for GET, HEAD and gzip."""
    status, headers, body = request(server, method, path, **{"Accept-Encoding": encoding})
    assert status == 404
    assert b"resilience_" not in body
    if method == "GET":
        assert b"/metrics and /health" in body
    else:
        assert body == b""
        assert int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", ["/metrics", "/health"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_head_answers_what_get_would_without_a_body(server, path, encoding):
    """HEAD gets GET's status and headers (gzip included) and an empty body."""
    got = request(server, "GET", path, **{"Accept-Encoding": encoding})
    head = request(server, "HEAD", path, **{"Accept-Encoding": encoding})
    assert head[0] == got[0] == 200
    assert head[2] == b""
    for name in ("Content-Type", "Content-Length", "Content-Encoding"):
        assert head[1].get(name) == got[1].get(name)
    body = gzip.decompress(got[2]) if encoding == "gzip" else got[2]
    assert body.startswith(b"{" if path == "/health" else b"# HELP")


def test_health_is_compressed_when_asked(server):
    """/health honours Accept-Encoding: gzip like /metrics does."""
    status, headers, body = request(server, "GET", "/health", **{"Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert json.loads(gzip.decompress(body)) == {"status": "ok", "open": []}


def test_openmetrics_is_served_when_asked(server):
    """A scrape asking for OpenMetrics gets it from /metrics."""
    accept = "application/openmetrics-text; version=1.0.0"
    status, headers, body = request(server, "GET", "/metrics", Accept=accept)
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    assert b'resilience_circuit_breaker_state{name="svc",state="closed"} 1' in body


@pytest.mark.parametrize(("method", "status"), [("OPTIONS", 200), ("POST", 405), ("PUT", 405)])
def test_other_methods_are_told_what_is_allowed(server, method, status):
    """OPTIONS lists the methods; other methods are 405 with the same Allow header."""
    got, headers, _ = request(server, method, "/metrics")
    assert got == status
    assert headers["Allow"] == "GET, HEAD, OPTIONS"


def test_idle_connections_cannot_pin_a_thread_each(breakers):
    """100 silent clients hold max_connections threads; the others get a 503 at once."""
    limit, clients = 8, 100
    server = start_metrics_server(
        port=0, registry=CollectorRegistry(), breakers=breakers, max_connections=limit
    )
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(clients)]
    try:
        for sock in idle:
            sock.setblocking(False)

        def refused() -> int:
            count = 0
            for sock in idle:
                with contextlib.suppress(BlockingIOError):
                    count += sock.recv(200, socket.MSG_PEEK).startswith(b"HTTP/1.0 503")
            return count

        wait_for(lambda: refused() == clients - limit, "every extra connection refused with 503")
        assert handler_threads(server) == limit
    finally:
        for sock in idle:
            sock.close()
    # The slots come back once the idle clients are gone: scrapes are served again.
    wait_for(lambda: handler_threads(server) == 0, "the idle connections' threads ended")
    assert request(server, "GET", "/metrics")[0] == 200
    server.close()


def test_a_silent_connection_is_dropped_after_the_read_timeout(breakers):
    """A client that sends nothing is disconnected after read_timeout, freeing its thread."""
    with start_metrics_server(
        port=0, registry=CollectorRegistry(), breakers=breakers, read_timeout=0.2
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            assert sock.recv(100) == b""  # the server hung up on us
        wait_for(lambda: handler_threads(server) == 0, "the silent connection's thread ended")
        assert request(server, "GET", "/health")[0] == 200


def test_the_default_limit_bounds_500_idle_connections(breakers):
    """With the defaults, 500 idle connections hold no more than 64 threads."""
    with start_metrics_server(port=0, registry=CollectorRegistry(), breakers=breakers) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(500)]
        try:
            wait_for(lambda: handler_threads(server) == 64, "64 slots taken")
            assert max(handler_threads(server) for _ in range(50)) == 64
        finally:
            for sock in idle:
                sock.close()
        wait_for(lambda: handler_threads(server) == 0, "the idle connections' threads ended")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_connections": 0}, ValueError, "max_connections must be >= 1, got 0"),
        ({"max_connections": 2.0}, TypeError, "max_connections"),
        ({"max_connections": True}, TypeError, "max_connections"),
        ({"read_timeout": 0}, ValueError, "read_timeout"),
        ({"read_timeout": "1"}, TypeError, "read_timeout"),
    ],
    ids=["limit-zero", "limit-float", "limit-bool", "timeout-zero", "timeout-str"],
)
def test_bad_limits_are_refused_before_binding(kwargs, error, match):
    """max_connections and read_timeout are checked when the server is started."""
    with pytest.raises(error, match=match):
        start_metrics_server(port=0, registry=CollectorRegistry(), **kwargs)


def test_open_for_is_rounded_to_the_millisecond():
    """health() reports 2.887 s, not the float noise 2.8871923600000002."""
    clock = FakeClock(1000.0)
    breakers = BreakerRegistry()
    breakers.get("svc", clock=clock).open()
    clock.advance(2.8871923600000002)
    (listed,) = health(breakers)["open"]
    assert listed["open_for"] == 2.887
    assert json.dumps(listed["open_for"]) == "2.887"


def test_the_busy_answer_declares_its_own_length() -> None:
    """The 503 sent to connections over the limit has a Content-Length that fits its body."""
    from resilience.metrics import _BUSY  # the refusal as sent

    head, _, body = _BUSY.partition(b"\r\n\r\n")
    declared = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert declared == len(body) > 0
