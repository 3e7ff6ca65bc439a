"""An httpx client that retries with ``retry_api_call`` behind a circuit breaker.

A local HTTP server (the standard library's ``http.server``, in a thread, on a free port of
127.0.0.1) plays an orders service that has a bad day:

1. it is overloaded and answers ``503`` with ``Retry-After`` a few times: the client waits
   at least as long as it is asked to, then gets its answer;
2. it goes down (its port refuses connections): the breaker opens after two failures and
   later calls fail at once, without touching the network (the breaker ignores answers
   that carry a ``Retry-After``, which the retry handles: it watches for a service that
   does not answer at all);
3. it comes back: after the breaker's 30 s recovery timeout (which passes at once on a
   ``FakeClock``) one trial call closes the circuit;
4. it announces an hour of maintenance (``Retry-After: 3600``): the retry gives up at once
   instead of sleeping for an hour, since the hint is longer than the preset's
   ``max_retry_after`` of 60 s.

The server's ``Retry-After`` is scaled down to 0.5 s, so the whole run takes a few seconds.
Run it (``pip install httpx`` first)::

    python examples/http_client.py
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:
    import httpx
except ImportError:  # not in the README's first virtualenv: say what to install, no traceback
    sys.exit("http_client.py needs httpx: pip install 'httpx>=0.27'")

from resilience import CircuitBreaker, CircuitOpenError, CircuitState, retry_api_call
from resilience.testing import FakeClock

RETRY_AFTER = 0.5  # what the overloaded service asks for; real services say 1-120 s


class OrdersService:
    """A flaky HTTP service on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy_answers = 0  # the next this many requests get 503 + Retry-After
        self.retry_after = str(RETRY_AFTER)
        self.log: list[tuple[float, int]] = []  # (time.monotonic(), status) per request
        self.port = 0  # 0 until the first start: then a free port, kept across restarts
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen (again) on the service's port and answer in a background thread."""
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.answer(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
                """Keep the example's output to what it prints itself."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until ``start()``."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one GET: 503 with Retry-After while busy, else the order as JSON."""
        with self.lock:
            status = 200
            if self.busy_answers > 0:
                self.busy_answers -= 1
                status = 503
            self.log.append((time.monotonic(), status))
            retry_after = self.retry_after
        if status == 503:
            body = b'{"error": "busy"}'
            handler.send_response(503)
            handler.send_header("Retry-After", retry_after)
        else:
            order_id = handler.path.rsplit("/", 1)[-1]
            body = json.dumps({"id": order_id, "status": "shipped"}).encode()
            handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def asked_to_wait(error: BaseException) -> bool:
    """Whether ``error`` is an answer with a ``Retry-After``: the service is up and pacing us."""
    return isinstance(error, httpx.HTTPStatusError) and "Retry-After" in error.response.headers


# The retry honours Retry-After answers, so the breaker ignores them (they count as neither
# success nor failure): it is there to notice a service that does not answer at all.
# `retry_api_call(get_order, ...)` puts the retry outside the breaker, so the breaker sees
# every attempt, and the retry stops at once on the CircuitOpenError of an open circuit.
# The breaker runs on a FakeClock so that its 30 s recovery timeout can pass at once in step
# 3; the retries wait in real time.
clock = FakeClock()
breaker = CircuitBreaker(
    name="orders-api",
    failure_threshold=2,
    recovery_timeout=30.0,
    ignore=asked_to_wait,
    clock=clock,
)
breaker.add_listener(lambda b, old, new: print(f"   [breaker {b.name}] {old.value} -> {new.value}"))
sent: list[str] = []  # every request the client put on the wire


@breaker
def get_order(client: httpx.Client, order_id: int) -> dict[str, Any]:
    """GET one order; raise for an error status so the retry sees it and its Retry-After."""
    try:
        response = client.get(f"/orders/{order_id}")
    # retry_api_call retries the builtin network errors; httpx has its own, so translate.
    except httpx.TimeoutException as error:
        raise TimeoutError(str(error)) from error
    except httpx.TransportError as error:
        raise ConnectionError(f"{type(error).__name__}: {error}") from error
    response.raise_for_status()  # HTTPStatusError: .response carries status and headers
    result: dict[str, Any] = response.json()
    return result


def show_requests(service: OrdersService, since: int, start: float) -> None:
    """Print the requests the service saw from index ``since`` on, with their spacing."""
    previous = None
    for at, status in service.log[since:]:
        line = f"   request at {at - start:6.3f} s: {status}"
        if status == 503:
            line += f" (Retry-After: {service.retry_after})"
        if previous is not None:
            line += f", {at - previous:.3f} s after the previous one"
        print(line)
        previous = at


def overloaded(client: httpx.Client, service: OrdersService) -> None:
    print(f"1. The service is overloaded: its next 2 answers are 503, Retry-After: {RETRY_AFTER}")
    service.busy_answers = 2
    since, start = len(service.log), time.monotonic()
    order = retry_api_call(get_order, client, 42)
    show_requests(service, since, start)
    gaps = [
        b[0] - a[0] for a, b in zip(service.log[since:], service.log[since + 1 :], strict=False)
    ]
    assert len(gaps) == 2
    assert min(gaps) >= RETRY_AFTER
    print(f"   -> got {order} after 3 requests; each retry waited at least {RETRY_AFTER} s")
    assert breaker.state is CircuitState.CLOSED


def down(client: httpx.Client, service: OrdersService) -> None:
    print("2. The service goes down: its port refuses connections.")
    service.stop()
    before = len(sent)
    try:
        retry_api_call(get_order, client, 43)
    except CircuitOpenError as error:
        print(
            f"   call 1: {len(sent) - before} requests were refused, the breaker opened, and the "
            f"retry stopped at its {type(error).__name__}"
        )
        print(f"      ({error.__notes__[0]})")
    assert breaker.state is CircuitState.OPEN
    before = len(sent)
    started = time.perf_counter()
    for _ in range(5):
        with contextlib.suppress(CircuitOpenError):
            retry_api_call(get_order, client, 44)
    took = time.perf_counter() - started
    assert len(sent) == before
    print(
        f"   calls 2-6: rejected by the breaker without a request, {took * 1000:.2f} ms for all 5"
    )


def back(client: httpx.Client, service: OrdersService) -> None:
    print("3. The service comes back on the same port.")
    service.start()
    try:
        retry_api_call(get_order, client, 45)
    except CircuitOpenError as error:
        wait = error.retry_after or 0.0  # None only for a forced-open breaker
        print(f"   still rejected at once: a trial call is allowed in {wait:.0f} s")
        clock.advance(wait)
        print(f"   ({wait:.0f} s pass on the breaker's clock)")
    order = retry_api_call(get_order, client, 45)
    print(f"   the trial call got {order}")
    assert breaker.state is CircuitState.CLOSED


def maintenance(client: httpx.Client, service: OrdersService) -> None:
    print("4. The service announces maintenance: 503 with Retry-After: 3600.")
    service.busy_answers, service.retry_after = 1, "3600"
    before = len(sent)
    started = time.monotonic()
    try:
        retry_api_call(get_order, client, 46)
    except httpx.HTTPStatusError as error:
        print(f"   gave up at once with HTTP {error.response.status_code}, after 1 request")
        print(f"      ({error.__notes__[0]})")
    assert len(sent) == before + 1
    assert time.monotonic() - started < RETRY_AFTER


def main() -> None:
    service = OrdersService()
    service.start()
    base_url = f"http://127.0.0.1:{service.port}"
    print(f"Orders service listening on {base_url}")
    hooks: dict[str, list[Any]] = {"request": [lambda request: sent.append(str(request.url))]}
    # trust_env=False: no proxy from the environment stands between us and 127.0.0.1.
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False, event_hooks=hooks) as client:
        overloaded(client, service)
        down(client, service)
        back(client, service)
        maintenance(client, service)
    service.stop()
    stats = breaker.get_stats()
    print(
        f"Totals: the client sent {len(sent)} requests, the service answered "
        f"{len(service.log)}; the breaker saw {stats['total_calls']} calls: "
        f"{stats['total_successes']} succeeded, {stats['total_failures']} failed, "
        f"{stats['total_ignored']} ignored (Retry-After answers), "
        f"{stats['total_rejected']} rejected."
    )
    assert stats["total_calls"] == len(sent) + stats["total_rejected"]


if __name__ == "__main__":
    main()
