"""An event sink that never lets a down dashboard slow the application down.

The application handles orders and, for each one, sends an analytics event to a dashboard
server (the standard library's ``http.server``, in a thread, on a free port of 127.0.0.1).
Observability must never block the work it observes, so the sink sends through a
``CircuitBreaker`` whose ``fallback`` answers at once "not sent" while the circuit is open;
unsent events wait in a bounded buffer (the oldest are dropped when it is full) and are
flushed in batches once the dashboard answers again.

1. The dashboard is up: every event is delivered as it happens.
2. The dashboard hangs (it accepts connections and never answers): three events wait for the
   sink's 0.2 s timeout, the breaker opens, and from then on the application runs at full
   speed while events collect in the buffer, up to its 100 events.
3. The dashboard is back: once the breaker's recovery timeout has passed (30 s on a
   ``FakeClock``, so at once here), the next event's send is the trial call, and the
   buffer is flushed.

At the end every event is accounted for: delivered, dropped, or still buffered. Run it::

    python examples/event_sink.py
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from resilience import CircuitBreaker, CircuitState
from resilience.testing import FakeClock

Event = dict[str, Any]


class Dashboard:
    """An analytics server that can hang: it then accepts requests and never answers them."""

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.lock = threading.Lock()
        self.hung = False
        self.release = threading.Event()  # set to free the requests held while hung
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                dashboard.handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
                """Keep the example's output to what it prints itself."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def hang(self) -> None:
        """Stop answering: requests are held until ``recover()``, then dropped unanswered."""
        self.release.clear()
        self.hung = True

    def recover(self) -> None:
        """Answer again."""
        self.hung = False
        self.release.set()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Store a batch of events, or hold the request while hung."""
        if self.hung:
            self.release.wait(timeout=10.0)
            handler.close_connection = True
            return  # no answer: the events are not stored
        length = int(handler.headers.get("Content-Length", "0"))
        events = json.loads(handler.rfile.read(length))
        with self.lock:
            self.received.extend(events)
        handler.send_response(204)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


class EventSink:
    """Send events to a dashboard; buffer them while it is down; never raise, never wait long.

    Meant for one thread, as here; with several, guard ``emit`` with a lock (the breaker
    itself is thread-safe).
    """

    def __init__(
        self, url: str, *, clock: FakeClock, capacity: int = 100, batch_size: int = 50
    ) -> None:
        self.url = url
        self.capacity = capacity
        self.batch_size = batch_size
        self.pending: deque[Event] = deque()
        self.delivered = self.dropped = self.postponed = 0
        self.batches: list[int] = []  # the size of every batch delivered
        self.breaker = CircuitBreaker(
            name="dashboard",
            failure_threshold=3,
            recovery_timeout=30.0,
            fallback=self._postpone,  # called instead of _post while the circuit is open
            clock=clock,
        )
        self._post_batch = self.breaker(self._post)
        # No proxy from the environment stands between us and 127.0.0.1.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def emit(self, event: Event) -> None:
        """Queue ``event`` and send what is pending, unless the dashboard is known down."""
        if len(self.pending) >= self.capacity:
            self.pending.popleft()  # a full buffer drops its oldest event
            self.dropped += 1
        self.pending.append(event)
        while self.pending:
            batch = list(itertools.islice(self.pending, self.batch_size))
            try:
                sent = self._post_batch(batch)
            except Exception:  # the dashboard failed (the breaker counted it): keep the events
                return
            if not sent:  # the circuit is open: keep the events for later
                return
            for _ in batch:
                self.pending.popleft()
            self.delivered += len(batch)
            self.batches.append(len(batch))

    def _post(self, batch: list[Event]) -> bool:
        request = urllib.request.Request(  # noqa: S310  # a fixed http:// URL on 127.0.0.1
            self.url,
            data=json.dumps(batch).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with self._opener.open(request, timeout=0.2) as response:
            response.read()
        return True

    def _postpone(self, batch: list[Event]) -> bool:  # noqa: ARG002  # the fallback gets the call's arguments
        """Answer "not sent" at once: the breaker's fallback while the circuit is open."""
        self.postponed += 1
        return False


def handle_order(number: int) -> Event:
    """Do the application's own work for one order (1 ms) and describe it as an event."""
    time.sleep(0.001)
    return {"type": "order_handled", "order": number, "at": time.time()}


def run_orders(sink: EventSink, numbers: range) -> list[float]:
    """Handle the orders ``numbers``; return the seconds each ``emit`` took."""
    costs = []
    for number in numbers:
        event = handle_order(number)
        started = time.perf_counter()
        sink.emit(event)
        costs.append(time.perf_counter() - started)
    return costs


def report(costs: list[float], wall: float) -> str:
    """Describe how long the orders and their ``emit`` calls took."""
    return (
        f"{len(costs)} orders in {wall:.2f} s; emit took {1000 * sum(costs) / len(costs):.3f} ms "
        f"on average, {1000 * max(costs):.1f} ms at most"
    )


def main() -> None:
    clock = FakeClock()
    with Dashboard() as dashboard:
        sink = EventSink(dashboard.url, clock=clock)
        sink.breaker.add_listener(
            lambda b, old, new: print(f"   [breaker {b.name}] {old.value} -> {new.value}")
        )
        print(f"Dashboard on {dashboard.url}")

        print("1. The dashboard is up.")
        started = time.perf_counter()
        costs = run_orders(sink, range(200))
        print(f"   {report(costs, time.perf_counter() - started)}")
        print(f"   {sink.delivered} events delivered, one request each")
        assert sink.delivered == 200

        print("2. The dashboard hangs: it accepts requests and never answers.")
        dashboard.hang()
        started = time.perf_counter()
        costs = run_orders(sink, range(200, 500))
        wall = time.perf_counter() - started
        slow = [cost for cost in costs if cost >= 0.1]
        fast = costs[len(slow) :]
        assert len(slow) == 3
        assert costs[:3] == slow
        assert sink.breaker.get_stats()["state"] == "open"
        print(f"   {report(costs, wall)}")
        print(f"   the first {len(slow)} events waited for the sink's 0.2 s timeout;")
        print(
            f"   the other {len(fast)} were buffered at once: "
            f"{1000 * sum(fast) / len(fast):.3f} ms on average, {1000 * max(fast):.3f} ms at most"
        )
        print(
            f"   buffer: {len(sink.pending)} events (its capacity), {sink.dropped} oldest dropped"
        )
        assert len(sink.pending) == sink.capacity

        print("3. The dashboard is back.")
        dashboard.recover()
        clock.advance(30.0)
        print("   (30 s pass on the breaker's clock: its next call is a trial)")
        before = len(sink.batches)
        (first,) = run_orders(sink, range(500, 501))
        flushed = sink.batches[before:]
        print(
            f"   the next order's emit flushed the buffer in {1000 * first:.1f} ms: "
            f"{' + '.join(map(str, flushed))} events, in batches of up to {sink.batch_size}"
        )
        started = time.perf_counter()
        costs = run_orders(sink, range(501, 600))
        print(f"   then {report(costs, time.perf_counter() - started)}")
        assert sink.breaker.state is CircuitState.CLOSED
        assert not sink.pending

        emitted = 600
        print(
            f"Totals: {emitted} events = {sink.delivered} delivered + {sink.dropped} dropped + "
            f"{len(sink.pending)} still buffered; the dashboard stored {len(dashboard.received)}."
        )
        assert emitted == sink.delivered + sink.dropped + len(sink.pending)
        assert len(dashboard.received) == sink.delivered


if __name__ == "__main__":
    main()
