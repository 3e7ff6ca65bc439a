"""``python -m resilience demo``: a dependency degrades, fails and recovers, live.

A simulated inventory service is called ten times a second for about ten seconds through a
named circuit breaker, a retry with jittered backoff and a timeout. The service is healthy,
then slow and flaky, then down, then healthy again; the timeline shows every request,
retry, rejection and state change as it happens, and a summary closes the run. While it
runs, ``/metrics`` and ``/health`` are served on loopback (with the ``prometheus`` extra).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO

from resilience._registry import default_registry
from resilience._retry import retry_with_backoff
from resilience._timeouts import timeout
from resilience.backoff import Exponential
from resilience.exceptions import CircuitOpenError

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience._breaker import CircuitBreaker
    from resilience._retry import RetryState
    from resilience._state import CircuitState
    from resilience._storage import BreakerStorage

__all__ = ["run_demo"]

BREAKER: Final = "demo.inventory"
RETRY: Final = "demo.fetch"
_TICK: Final = 0.1  # seconds between requests
_TIMEOUT: Final = 0.25  # the per-attempt timeout
# (start, phase, what the service does then)
_PHASES: Final = (
    (0.0, "healthy", "answers in ~15 ms"),
    (2.0, "degraded", "40% errors, 20% slower than the timeout"),
    (3.5, "down", "refuses every connection"),
    (6.0, "recovered", "answers in ~15 ms again"),
)
_END: Final = 10.0
_ERROR_SHARE: Final = 0.4  # of calls while degraded
_SLOW_SHARE: Final = 0.2


class ServiceUnavailableError(ConnectionError):
    """The simulated service answered 503."""


@dataclass
class _Service:
    """The simulated inventory service; its behaviour depends on the time since start."""

    started: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311  # a simulation
    calls: int = 0

    def phase(self) -> str:
        elapsed = time.monotonic() - self.started
        return [name for start, name, _ in _PHASES if elapsed >= start][-1]

    def stock(self, sku: str) -> int:
        self.calls += 1
        phase = self.phase()
        if phase == "down":
            raise ConnectionRefusedError("connection refused")
        if phase == "degraded":
            roll = self.rng.random()
            if roll < _ERROR_SHARE:
                raise ServiceUnavailableError("503 service unavailable")
            if roll < _ERROR_SHARE + _SLOW_SHARE:
                time.sleep(0.5)  # longer than the timeout: interrupted by it
        time.sleep(0.015)
        return len(sku) * 3


@dataclass
class _Tally:
    ok: int = 0
    failed: int = 0
    rejected: int = 0
    rejected_late: int = 0  # rejected after attempts of the same request had failed
    retries: int = 0
    changes: list[tuple[float, str, str]] = field(default_factory=list)


class _Timeline:
    """Prints timestamped lines; safe to call from listeners in any thread."""

    def __init__(self, out: TextIO, started: float) -> None:
        self._out = out
        self._started = started
        self._lock = threading.Lock()
        self._held: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self._started

    def say(self, text: str, *, stamp: bool = True, at: float | None = None) -> None:
        when = self.now() if at is None else at
        line = f"{when:6.2f}s  {text}" if stamp else text
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def hold(self, text: str) -> None:
        """Stamp a line now but print it with the request it belongs to."""
        with self._lock:
            self._held.append(f"{self.now():6.2f}s  {text}")

    def held(self) -> bool:
        """Whether lines are waiting for their request."""
        return bool(self._held)

    def release(self) -> None:
        """Print the held lines."""
        with self._lock:
            for line in self._held:
                self._out.write(line + "\n")
            self._held.clear()
            self._out.flush()


def _start_metrics(port: int, timeline: _Timeline) -> Any:
    try:
        from resilience.metrics import start_metrics_server  # noqa: PLC0415  # optional extra
    except ImportError:
        timeline.say(
            "metrics: off (pip install 'resilient-calls[prometheus]' to serve /metrics "
            "and /health)",
            stamp=False,
        )
        return None
    try:
        server = start_metrics_server(port=port, addr="127.0.0.1")
    except OSError as error:  # the port is taken: the demo should still run
        timeline.say(f"metrics: port {port} unavailable ({error}); using a free one", stamp=False)
        server = start_metrics_server(port=0, addr="127.0.0.1")
    timeline.say(f"metrics: {server.url}/metrics and {server.url}/health", stamp=False)
    return server


def _show_endpoints(server: Any, timeline: _Timeline) -> None:
    """Read our own /health and the breaker's state series, as a scraper would."""
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as answer:  # noqa: S310  # loopback
        health = json.load(answer)
    timeline.say(f"GET /health  -> {json.dumps(health)}", stamp=False)
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as answer:  # noqa: S310  # loopback
        lines = answer.read().decode().splitlines()
    wanted = f'resilience_circuit_breaker_state{{name="{BREAKER}",state="closed"}}'
    shown = [line for line in lines if line.startswith(wanted)]
    for line in shown:
        timeline.say(f"GET /metrics -> {line}", stamp=False)


def _breaker(storage: BreakerStorage | None) -> CircuitBreaker:
    if BREAKER in default_registry:
        default_registry.remove(BREAKER)
    options: dict[str, Any] = {
        "failure_threshold": 4,
        # A trial after 0.8 s, then 1.6 s, then every 2 s while the trials keep failing.
        "recovery_timeout": Exponential(0.8, factor=2.0, max_delay=2.0),
    }
    if storage is not None:
        options["storage"] = storage
    breaker = default_registry.get(BREAKER, **options)
    breaker.reset()
    return breaker


def run_demo(
    *,
    port: int = 9464,
    metrics: bool = True,
    storage: BreakerStorage | None = None,
    storage_shown: str = "",
    out: TextIO = sys.stdout,
) -> int:
    """Run the scenario, printing its timeline and summary to ``out``; return 0.

    With ``storage`` (made by the CLI from ``--redis``; ``storage_shown`` is where it
    points, password masked) the breaker's state is shared through it.
    """
    started = time.monotonic()
    timeline = _Timeline(out, started)
    _introduce(timeline)
    server = _start_metrics(port, timeline) if metrics else None
    if storage is not None:
        timeline.say(f"state: shared through Redis at {storage_shown}", stamp=False)
    timeline.say("", stamp=False)
    service = _Service(started=started)
    tally = _Tally()
    breaker = _breaker(storage)

    def on_change(_: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        tally.changes.append((timeline.now(), old.value, new.value))
        timeline.hold(f"        == breaker {old.value} -> {new.value} ==")

    breaker.add_listener(on_change)
    try:
        requests = _drive(_client(breaker, service, timeline, tally), service, timeline, tally)
        _summary(timeline, breaker, service, tally, requests)
        if server is not None:
            _show_endpoints(server, timeline)
    finally:
        breaker.remove_listener(on_change)
        if server is not None:
            with contextlib.suppress(Exception):
                server.close()
    return 0


def _introduce(timeline: _Timeline) -> None:
    say = timeline.say
    say("resilience demo: an inventory service degrades, fails and recovers.", stamp=False)
    for start, phase, what in _PHASES:
        say(f"  from {start:4.1f}s  {phase:<9}  {what}", stamp=False)
    say(
        f"Each request: retry (2 retries, jittered backoff) -> breaker {BREAKER!r} "
        f"(opens after 4 failures in a row) -> timeout ({_TIMEOUT * 1000:.0f} ms) -> service.",
        stamp=False,
    )


def _client(
    breaker: CircuitBreaker, service: _Service, timeline: _Timeline, tally: _Tally
) -> Callable[[str], int]:
    """Build the protected call: retry outside, then the breaker, then the timeout."""

    def on_retry(state: RetryState) -> None:
        tally.retries += 1
        error = type(state.exception).__name__ if state.exception else "a bad result"
        timeline.hold(
            f"        retry {state.attempt} after {error}, in {state.delay * 1000:.0f} ms"
        )

    @retry_with_backoff(
        max_retries=2,
        base_delay=0.05,
        max_delay=0.2,
        jitter=True,
        exceptions=(ConnectionError, TimeoutError),
        on_retry=on_retry,
        name=RETRY,
    )
    @breaker
    def fetch(sku: str) -> int:
        with timeout(_TIMEOUT):
            return service.stock(sku)

    return fetch


def _drive(
    fetch: Callable[[str], int], service: _Service, timeline: _Timeline, tally: _Tally
) -> int:
    """Send a request every tick until the scenario ends; return how many were sent.

    Runs of alike requests (all ok, or all rejected) print their first line and a count.
    """
    number = 0
    run_kind, run_length, run_end = "", 0, 0.0
    next_at = time.monotonic()
    while timeline.now() < _END:
        number += 1
        phase = service.phase()
        begun = time.monotonic()
        retried = tally.retries
        try:
            stock = fetch(f"sku-{number}")
        except CircuitOpenError as error:
            tally.rejected += 1
            kind = "rejected"
            wait = "" if error.retry_after is None else f"; trial in {error.retry_after:.1f}s"
            failed = tally.retries - retried  # attempts that failed before the circuit opened
            if failed:
                tally.rejected_late += 1
                tried = _counted(failed, "attempt", "attempts")
                line = f"{tried} failed, then rejected: circuit {error.state.value}{wait}"
            else:
                line = f"rejected at once: circuit {error.state.value}{wait}"
        except (ConnectionError, TimeoutError) as error:
            tally.failed += 1
            kind = "failed"
            attempts = tally.retries - retried + 1
            tried = _counted(attempts, "attempt", "attempts")
            line = f"failed after {tried}: {type(error).__name__}"
        else:
            tally.ok += 1
            kind = "ok"
            line = f"ok: {stock} in stock"
        # From sending the request to its answer: every attempt and backoff included.
        took = f"request took {(time.monotonic() - begun) * 1000:.0f} ms"
        plain = not timeline.held() and kind != "failed"  # no retry, no state change
        if plain and kind == run_kind:
            run_length += 1
            run_end = timeline.now()
        else:
            _end_run(run_kind, run_length, run_end, timeline)
            run_kind, run_length = (kind if plain else ""), 1
            timeline.release()
            timeline.say(f"#{number:03d} [{phase:<9}] {line} ({took})")
        next_at += _TICK
        time.sleep(max(0.0, next_at - time.monotonic()))
    _end_run(run_kind, run_length, run_end, timeline)
    return number


def _counted(number: int, singular: str, plural: str) -> str:
    """Say ``1 success`` and ``2 successes``, not ``1 successes``."""
    return f"{number} {singular if number == 1 else plural}"


def _end_run(kind: str, length: int, end: float, timeline: _Timeline) -> None:
    """Say how many alike requests followed the first one of a run, up to ``end``."""
    if kind and length > 1:
        timeline.say(f"     ... and {length - 1} more {kind} the same way", at=end)


def _summary(
    timeline: _Timeline, breaker: CircuitBreaker, service: _Service, tally: _Tally, requests: int
) -> None:
    stats = breaker.get_stats()
    say = timeline.say
    say("", stamp=False)
    say("Summary", stamp=False)
    at_once = tally.rejected - tally.rejected_late
    say(
        f"  requests: {requests}: {tally.ok} ok, {tally.failed} failed after retries, "
        f"{tally.rejected} rejected by the open circuit ({at_once} at once, "
        f"{tally.rejected_late} after a failed attempt)",
        stamp=False,
    )
    say(
        f"  retries: {tally.retries}; calls that reached the service: {service.calls}",
        stamp=False,
    )
    say(
        "  (each request's time runs from sending it to its answer, retries and their "
        "backoff included)",
        stamp=False,
    )
    say(
        f"  breaker {BREAKER!r}: now {stats['state']}; "
        f"{_counted(stats['total_calls'], 'call', 'calls')} = "
        f"{_counted(stats['total_successes'], 'success', 'successes')} + "
        f"{_counted(stats['total_failures'], 'failure', 'failures')} + "
        f"{stats['total_rejected']} rejected + {stats['total_ignored']} ignored",
        stamp=False,
    )
    changes = ", ".join(f"{old}->{new} at {at:.1f}s" for at, old, new in tally.changes)
    say(f"  state changes: {changes or 'none'}", stamp=False)
    say(
        f"  the open circuit answered {at_once} requests at once instead of sending "
        "them to a service that could not serve them.",
        stamp=False,
    )
