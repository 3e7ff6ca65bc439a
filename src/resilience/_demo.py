"""``python -m resilience demo``: the whole toolkit on one live timeline, in about ten seconds.

A checkout calls a simulated inventory service ten times a second through
``Pipeline.standard(...)``: a rate limiter, a deadline, a retry, a circuit breaker, a
bulkhead and an attempt timeout, with a hedge next to the service. Seeded ``Chaos``
strategies decide what the service does: a slow tail all along, then 503s, then an
outage, then recovery; a burst of requests arriving at once meets the limiter and the
bulkhead. The timeline shows every request, retry, hedge, rejection and state change as
it happens; a summary closes the run, each of its lines an equation that adds up.

While it runs, ``/metrics`` and ``/health`` are served on loopback (with the
``prometheus`` extra); every strategy is named, so each has its series. With a Redis
(``--redis``), a second process of the demo sends the same traffic through the same
breaker and rate limit, shared through Redis (see ``resilience._demo_peer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO

from resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitOpenError,
    Hedge,
    Pipeline,
    RateLimitedError,
    RateLimiter,
    Retry,
    default_registry,
)
from resilience._demo_metrics import show_endpoints, show_health, start_metrics
from resilience._demo_peer import Peer, PeerTimeline
from resilience._demo_timeline import Timeline
from resilience.backoff import Exponential
from resilience.chaos import Chaos

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from resilience import BreakerStorage, CircuitBreaker, CircuitState, RetryState

__all__ = ["run_demo", "run_peer"]

PIPELINE: Final = "demo.checkout"
LIMITER: Final = "demo.limit"
RETRY: Final = "demo.retry"
BREAKER: Final = "demo.inventory"
BULKHEAD: Final = "demo.pool"
HEDGE: Final = "demo.hedge"
CHAOS_SLOW: Final = "demo.chaos.slow"
CHAOS_ERRORS: Final = "demo.chaos.errors"
CHAOS_OUTAGE: Final = "demo.chaos.outage"

_TICK: Final = 0.1  # seconds between requests
_END: Final = 10.0  # when the last request is sent
_RATE: Final = 30  # the limiter's requests per second: three times the steady traffic
_BURST: Final = 12  # ... and its burst
_BURST_AT: Final = 2.0  # when the burst of requests arrives
_BURST_SIZE: Final = 16
_SLOTS: Final = 4  # the bulkhead's calls at once
_QUEUE: Final = 4  # ... and callers waiting for a slot
_TOTAL: Final = 1.0  # the deadline of a whole request, retries included
_ATTEMPT: Final = 0.25  # the timeout of each attempt
_HEDGE_AFTER: Final = 0.06  # the service answers in ~15 ms: 60 ms is its slow tail
_SLOW: Final = 0.4  # what chaos adds to a slow call: longer than the attempt timeout
_SLOW_SHARE: Final = 0.15
_ERROR_SHARE: Final = 0.4
_HEALTH_AT: Final = 5.5  # when the timeline reads /health, in the outage
# (start, phase, what the service does then)
_PHASES: Final = (
    (0.0, "healthy", f"answers in ~15 ms; chaos slows {_SLOW_SHARE:.0%} of calls by 400 ms"),
    (3.0, "degraded", f"chaos answers {_ERROR_SHARE:.0%} of calls with 503 as well"),
    (4.5, "down", "chaos refuses every call"),
    (6.0, "recovered", "healthy again (the slow tail stays)"),
)
_KILL_SWITCH: Final = "RESILIENCE_CHAOS"


class ServiceUnavailableError(ConnectionError):
    """The simulated service answered 503."""


@dataclass
class _Request:
    """One request of the checkout: what happened to it, told by the strategies' hooks."""

    number: int
    phase: str
    retries: int = 0
    in_flight: int = 0  # calls of this attempt running at the service (2 once hedged)
    hedge_won: bool = False
    kind: str = ""  # ok, failed, rejected, shed, limited
    line: str = ""


# The request a task serves: each request runs in its own task, which sets it first.
_CURRENT: contextvars.ContextVar[_Request] = contextvars.ContextVar("resilience_demo_request")

_KINDS: Final = ("ok", "failed", "rejected", "shed", "limited")


@dataclass
class _Tally:
    """What the checkout saw, counted by the demo itself (the strategies count apart)."""

    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_KINDS, 0))
    rejected_late: int = 0  # rejected after attempts of the same request had failed
    retries: int = 0
    hedged_calls: int = 0  # calls that entered the hedge
    hedge_cut: int = 0  # ... and were cancelled by the attempt timeout
    service_calls: int = 0
    burst_allowed: int = 0  # requests of the burst the rate limiter let through
    changes: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Every request sent."""
        return sum(self.kinds.values())


class _Phases:
    """Which phase of the scenario the service is in, from the time since the start."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def __call__(self) -> str:
        elapsed = self._timeline.now()
        return [name for start, name, _ in _PHASES if elapsed >= start][-1]


@dataclass
class _Strategies:
    """The named strategies of the scenario."""

    limiter: RateLimiter
    retry: Retry
    breaker: CircuitBreaker
    bulkhead: Bulkhead
    hedge: Hedge
    chaos: dict[str, Chaos]
    pipeline: Pipeline


def _build(
    phase: Callable[[], str],
    storage: BreakerStorage | None,
    on_retry: Callable[[RetryState], None],
) -> _Strategies:
    """Make the strategies; with ``storage``, the breaker and the limiter are shared."""
    limiter = RateLimiter(_RATE, per=1.0, burst=_BURST, name=LIMITER, storage=storage)
    retry = Retry(
        max_retries=2,
        base_delay=0.05,
        max_delay=0.2,
        exceptions=(ConnectionError, TimeoutError),
        on_retry=on_retry,
        name=RETRY,
    )
    if BREAKER in default_registry:
        default_registry.remove(BREAKER)
    options: dict[str, Any] = {
        "failure_threshold": 4,
        # A trial after 0.6 s, then every 1.2 s while the trials keep failing.
        "recovery_timeout": Exponential(0.6, factor=2.0, max_delay=1.2),
        # A call the bulkhead sheds never reached the service: it says nothing of its health.
        "ignore": BulkheadFullError,
    }
    if storage is not None:
        options["storage"] = storage
    breaker = default_registry.get(BREAKER, **options)
    bulkhead = Bulkhead(_SLOTS, max_queue=_QUEUE, max_wait=0.2, name=BULKHEAD)
    # on=(): a failed call is the retry's business; the hedge only races a slow one.
    hedge = Hedge(delay=_HEDGE_AFTER, on=(), name=HEDGE)
    chaos = {
        CHAOS_SLOW: Chaos(
            latency=_SLOW,
            rate=_SLOW_SHARE,
            rng=random.Random(1),  # noqa: S311  # a simulation
            name=CHAOS_SLOW,
        ),
        CHAOS_ERRORS: Chaos(
            fault=lambda: ServiceUnavailableError("503 service unavailable"),
            rate=_ERROR_SHARE,
            enabled=lambda: phase() == "degraded",
            rng=random.Random(2),  # noqa: S311  # a simulation
            name=CHAOS_ERRORS,
        ),
        CHAOS_OUTAGE: Chaos(
            fault=lambda: ConnectionRefusedError("connection refused"),
            rate=1.0,
            enabled=lambda: phase() == "down",
            name=CHAOS_OUTAGE,
        ),
    }
    pipeline = Pipeline.standard(
        name=PIPELINE,
        rate_limiter=limiter,
        total_timeout=_TOTAL,
        retry=retry,
        breaker=breaker,
        bulkhead=bulkhead,
        attempt_timeout=_ATTEMPT,
    )
    return _Strategies(limiter, retry, breaker, bulkhead, hedge, chaos, pipeline)


class _Scene:
    """The scenario's moving parts: the service, the strategies, the tallies."""

    def __init__(self, timeline: Timeline, storage: BreakerStorage | None) -> None:
        self.timeline = timeline
        self.tally = _Tally()
        self.phase = _Phases(timeline)
        self.parts = _build(self.phase, storage, self._on_retry)
        chaos = self.parts.chaos
        # Chaos innermost, where its faults look like the service's own; the hedge races
        # whole calls of it. The pipeline runs `_dependency` once per attempt.
        self._hedged = self.parts.hedge(
            self._counted_call(
                chaos[CHAOS_SLOW](chaos[CHAOS_ERRORS](chaos[CHAOS_OUTAGE](self._stock)))
            )
        )
        self._numbers = 0
        self.fleet_before: dict[str, int] | None = None

    # ------------------------------------------------------------------ the service

    async def _stock(self, sku: str) -> int:
        """The inventory service itself: healthy, unless chaos says otherwise."""
        self.tally.service_calls += 1
        await asyncio.sleep(0.015)
        return len(sku) * 3

    def _counted_call(
        self, func: Callable[[str], Coroutine[Any, Any, int]]
    ) -> Callable[[str], Coroutine[Any, Any, int]]:
        """Tell the request which of its calls answered: the first, or the hedge."""

        async def call(sku: str) -> int:
            request = _CURRENT.get()
            hedging = request.in_flight > 0  # the first call of this attempt still runs
            request.in_flight += 1
            try:
                value = await func(sku)
            finally:
                request.in_flight -= 1
            if hedging:
                request.hedge_won = True
            return value

        return call

    async def _dependency(self, sku: str) -> int:
        """One attempt: the hedged call, counted (the attempt timeout may cut it off)."""
        self.tally.hedged_calls += 1
        try:
            return await self._hedged(sku)
        except asyncio.CancelledError:
            self.tally.hedge_cut += 1
            raise

    def _on_retry(self, state: RetryState) -> None:
        """Print a retry as it happens, with the request it belongs to."""
        self.tally.retries += 1
        request = _CURRENT.get()
        request.retries += 1
        error = type(state.exception).__name__ if state.exception else "a bad result"
        self.timeline.note(
            f"        #{request.number:03d} retry {state.attempt} after {error}, "
            f"in {state.delay * 1000:.0f} ms"
        )

    # ------------------------------------------------------------------ requests

    def _next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    async def _send(self, request: _Request) -> None:
        """Send one request through the pipeline and record how it ended."""
        _CURRENT.set(request)  # this task's own context: its hooks find it
        tally = self.tally
        begun = time.monotonic()
        try:
            stock = await self.parts.pipeline.call_async(self._dependency, f"sku-{request.number}")
        except RateLimitedError as error:
            request.kind = "limited"
            request.line = (
                f"rate-limited by {LIMITER!r} ({_RATE}/s, bursts of {_BURST}); "
                f"a turn in {error.retry_after * 1000:.0f} ms"
            )
        except BulkheadFullError:
            request.kind = "shed"
            request.line = f"shed by bulkhead {BULKHEAD!r}: {_SLOTS} running, {_QUEUE} waiting"
        except CircuitOpenError as error:
            request.kind = "rejected"
            wait = "" if error.retry_after is None else f"; trial in {error.retry_after:.1f}s"
            if request.retries:  # attempts of this request failed before the circuit opened
                tally.rejected_late += 1
                tried = _counted(request.retries, "attempt", "attempts")
                request.line = f"{tried} failed, then rejected: circuit {error.state.value}{wait}"
            else:
                request.line = f"rejected at once: circuit {error.state.value}{wait}"
        except (ConnectionError, TimeoutError) as error:
            request.kind = "failed"
            tried = _counted(request.retries + 1, "attempt", "attempts")
            request.line = f"failed after {tried}: {type(error).__name__}"
        else:
            request.kind = "ok"
            hedged = (
                "; the hedge answered first, the first call was slow" if request.hedge_won else ""
            )
            request.line = f"ok: {stock} in stock{hedged}"
        tally.kinds[request.kind] += 1
        # From sending the request to its answer: every attempt and backoff included.
        request.line += f" (request took {(time.monotonic() - begun) * 1000:.0f} ms)"

    async def one(self) -> None:
        """Send one request and print it on the timeline."""
        request = _Request(self._next_number(), self.phase())
        await self._send(request)
        # A request that only went through folds into a run of alike ones.
        plain = request.kind != "failed" and not request.hedge_won and not request.retries
        self.timeline.request(
            request.kind, f"#{request.number:03d} [{request.phase:<9}] {request.line}", plain=plain
        )

    async def burst(self) -> None:
        """Send ``_BURST_SIZE`` requests at once; print them as one line."""
        requests = [_Request(self._next_number(), "burst") for _ in range(_BURST_SIZE)]
        await asyncio.gather(*(self._send(request) for request in requests))
        kinds = {kind: sum(r.kind == kind for r in requests) for kind in _KINDS}
        self.tally.burst_allowed += _BURST_SIZE - kinds["limited"]
        words = {
            "ok": "ok",
            "failed": "failed",
            "rejected": "rejected by the open circuit",
            "shed": f"shed by bulkhead {BULKHEAD!r} ({_SLOTS} running, {_QUEUE} waiting)",
            "limited": f"rate-limited by {LIMITER!r} (bursts of {_BURST})",
        }
        parts = ", ".join(f"{kinds[kind]} {words[kind]}" for kind in _KINDS if kinds[kind])
        first, last = requests[0].number, requests[-1].number
        self.timeline.request(
            "burst",
            f"#{first:03d}-#{last:03d} [burst    ] {_BURST_SIZE} requests at once: {parts}",
            plain=False,
        )

    def on_change(self, _: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        """Print a state change of the breaker as it happens."""
        self.tally.changes.append((self.timeline.now(), old.value, new.value))
        self.timeline.say(f"        == breaker {old.value} -> {new.value} ==")


def _counted(number: int, singular: str, plural: str) -> str:
    """Say ``1 success`` and ``2 successes``, not ``1 successes``."""
    return f"{number} {singular if number == 1 else plural}"


# One series of each strategy, to show that a scrape sees them all: (metric, labels).
_SHOWN_SERIES: Final = (
    ("resilience_circuit_breaker_state", {"name": BREAKER, "state": "closed"}),
    ("resilience_rate_limiter_calls_total", {"name": LIMITER, "outcome": "limited"}),
    ("resilience_retry_attempts_total", {"name": RETRY}),
    ("resilience_bulkhead_calls_total", {"name": BULKHEAD, "outcome": "rejected"}),
    ("resilience_hedge_calls_total", {"name": HEDGE, "outcome": "hedge_won"}),
    ("resilience_chaos_injected_total", {"name": CHAOS_OUTAGE, "kind": "fault"}),
)


# ---------------------------------------------------------------------- the run


def run_demo(
    *,
    port: int = 9464,
    metrics: bool = True,
    storage: BreakerStorage | None = None,
    storage_shown: str = "",
    peer: Peer | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the scenario, printing its timeline and summary to ``out``; return 0.

    With ``storage`` (made by the CLI from ``--redis``; ``storage_shown`` is where it
    points, password masked) the breaker and the rate limit are shared through it, and
    ``peer`` (how to start a second process of the demo) sends the same traffic through
    them from another process.
    """
    timeline = Timeline(out, time.monotonic())
    scene = _Scene(timeline, storage)
    _introduce(timeline, scene)
    server = start_metrics(port, timeline) if metrics else None
    if storage is None:
        _say_redis_skipped(timeline)
    else:
        timeline.say(
            f"shared: breaker {BREAKER!r} and rate limit {LIMITER!r} through Redis at "
            f"{storage_shown}",
            stamp=False,
        )
    scene.parts.breaker.reset()  # a clean circuit, whatever an earlier run left behind
    # A shared circuit's fleet totals outlive a run: this run's are the difference.
    scene.fleet_before = scene.parts.breaker.get_stats().get("fleet")
    running = peer.start(timeline) if peer is not None else None
    timeline.say("", stamp=False)
    breaker = scene.parts.breaker
    breaker.add_listener(scene.on_change)
    try:
        if running is not None:
            running.go(timeline)
        else:
            timeline.restart(time.monotonic())
        asyncio.run(_drive(scene, server))
        peer_summary = running.finish() if running is not None else None
        _summary(scene, peer_summary)
        if server is not None:
            show_endpoints(server, timeline, _SHOWN_SERIES)
    finally:
        breaker.remove_listener(scene.on_change)
        if running is not None:
            running.stop()
        if server is not None:
            with contextlib.suppress(Exception):
                server.close()
    return 0


def run_peer(*, storage: BreakerStorage, out: TextIO = sys.stdout) -> int:
    """Run the scenario as the second process of ``--redis``: key lines only, for the first.

    It says ``ready`` once its strategies are made, waits on stdin for the shared start
    time, runs, and ends with a summary line the first process reads.
    """
    timeline = PeerTimeline(out)
    scene = _Scene(timeline, storage)
    breaker = scene.parts.breaker
    breaker.add_listener(scene.on_change)
    try:
        timeline.ready()
        asyncio.run(_drive(scene, None))
        timeline.summary(
            {
                **scene.tally.kinds,
                "requests": scene.tally.requests,
                "burst_allowed": scene.tally.burst_allowed,
                "breaker_calls": breaker.get_stats()["total_calls"],
                "pid": os.getpid(),
            }
        )
    finally:
        breaker.remove_listener(scene.on_change)
    return 0


async def _drive(scene: _Scene, server: Any) -> None:
    """Send a request every tick until the scenario ends, the burst and a /health read."""
    loop = asyncio.get_running_loop()
    timeline = scene.timeline
    tasks: set[asyncio.Task[None]] = set()

    def spawn(work: Coroutine[Any, Any, None]) -> None:
        # Each request runs in its own task, with its own copy of the context.
        task = loop.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    burst_sent = health_read = False
    next_at = loop.time()
    while timeline.now() < _END:
        spawn(scene.one())
        if not burst_sent and timeline.now() >= _BURST_AT:
            burst_sent = True
            spawn(scene.burst())
        if server is not None and not health_read and timeline.now() >= _HEALTH_AT:
            health_read = True
            spawn(show_health(server, timeline))
        next_at += _TICK
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    while tasks:
        await asyncio.gather(*tasks)
    timeline.flush()


def _introduce(timeline: Timeline, scene: _Scene) -> None:
    say = timeline.say
    say("resilience demo: a checkout calls an inventory service for ten seconds.", stamp=False)
    say("Seeded chaos decides what the service does:", stamp=False)
    events = [
        (start, f"  from {start:4.1f}s  {phase:<9}  {what}") for start, phase, what in _PHASES
    ]
    events.append(
        (_BURST_AT, f"  at   {_BURST_AT:4.1f}s  burst      {_BURST_SIZE} extra requests at once")
    )
    for _, text in sorted(events):
        say(text, stamp=False)
    if os.environ.get(_KILL_SWITCH, "").strip().lower() in {"off", "0", "false", "no"}:
        say(
            f"  ({_KILL_SWITCH}=off is set: chaos injects nothing, the service stays healthy)",
            stamp=False,
        )
    say("Each request, ten a second, goes through Pipeline.standard(...):", stamp=False)
    for number, info in enumerate(scene.parts.pipeline.describe()):
        say(f"  {'-> ' if number else '   '}{_step(info)}", stamp=False)
    say(
        f"  -> hedge {HEDGE!r} (a second call after {_HEDGE_AFTER * 1000:.0f} ms) "
        "-> chaos -> the service",
        stamp=False,
    )


def _step(info: dict[str, Any]) -> str:
    """Describe one strategy of the pipeline in a few words."""
    kind, name, options = info["kind"], info["name"], info["options"]
    named = f" {name!r}" if name else ""
    words = {
        "rate_limiter": f"rate limiter{named} ({_RATE}/s, bursts of {_BURST})",
        "deadline": f"deadline ({options.get('seconds', _TOTAL):g} s)",
        "retry": f"retry{named} (2 retries, jittered backoff)",
        "circuit_breaker": f"breaker{named} (opens after 4 failures in a row)",
        "bulkhead": f"bulkhead{named} ({_SLOTS} at once, {_QUEUE} waiting)",
        "timeout": f"attempt timeout ({options.get('seconds', _ATTEMPT) * 1000:.0f} ms)",
    }
    return words.get(kind, f"{kind}{named}")


def _say_redis_skipped(timeline: Timeline) -> None:
    """Say that the two-process scene is left out, and what it needs."""
    import shutil  # noqa: PLC0415  # only here

    where = (
        "redis-server is on this machine: start it and pass --redis redis://127.0.0.1:6379/0"
        if shutil.which("redis-server")
        else "needs a Redis server: pass --redis URL"
    )
    timeline.say(
        f"skipped: two processes sharing one breaker and one rate limit ({where})", stamp=False
    )


def _summary(scene: _Scene, peer: dict[str, Any] | None) -> None:
    tally, parts = scene.tally, scene.parts
    say = scene.timeline.say

    def line(text: str) -> None:
        say(f"  {text}", stamp=False)

    kinds = tally.kinds
    limiter = parts.limiter.get_stats()
    breaker = parts.breaker.get_stats()
    bulkhead = parts.bulkhead.get_stats()
    hedge = parts.hedge.get_stats()
    at_once = kinds["rejected"] - tally.rejected_late
    say("", stamp=False)
    say("Summary (every sum adds up: the demo's own counts on the left of each '=',", stamp=False)
    say("the strategies' get_stats() on the right, unless the line says otherwise)", stamp=False)
    line(
        f"requests: {tally.requests} = {kinds['ok']} ok + {kinds['failed']} failed after "
        f"retries + {kinds['rejected']} rejected by the open circuit + {kinds['shed']} shed "
        f"by the bulkhead + {kinds['limited']} rate-limited   (all counted by the demo)"
    )
    line(
        f"rejected by the open circuit: {kinds['rejected']} = {at_once} at once + "
        f"{tally.rejected_late} after a failed attempt   (counted by the demo)"
    )
    line(
        f"rate limiter {LIMITER!r}: {tally.requests} asked = {limiter['total_allowed']} allowed "
        f"+ {limiter['total_limited']} limited"
    )
    allowed = tally.requests - kinds["limited"]
    line(
        f"breaker {BREAKER!r}: {allowed} allowed requests + {tally.retries} retries = "
        f"{breaker['total_calls']} calls = {breaker['total_successes']} successes + "
        f"{breaker['total_failures']} failures + {breaker['total_rejected']} rejected + "
        f"{breaker['total_ignored']} ignored (shed); now {breaker['state']}"
    )
    admitted = breaker["total_calls"] - breaker["total_rejected"]
    line(
        f"bulkhead {BULKHEAD!r}: {admitted} calls past the breaker = "
        f"{bulkhead['total_admitted']} admitted + {bulkhead['total_rejected']} shed"
    )
    line(
        f"hedge {HEDGE!r}: {tally.hedged_calls} calls = {hedge['primary_won']} first call won + "
        f"{hedge['hedge_won']} hedge won + {hedge['failed']} failed + {tally.hedge_cut} cut off "
        f"by the attempt timeout (counted by the demo); {hedge['hedges']} hedges started"
    )
    verbs = {
        CHAOS_SLOW: ("latency", f"slowed by {_SLOW * 1000:.0f} ms"),
        CHAOS_ERRORS: ("fault", "answered 503"),
        CHAOS_OUTAGE: ("fault", "refused"),
    }
    for name, chaos in parts.chaos.items():
        stats = chaos.get_stats()
        kind, verb = verbs[name]
        line(
            f"chaos {name!r}: {stats['total_injected'][kind]} of its "
            f"{stats['total_calls']} calls {verb}"
        )
    line(f"the service answered {tally.service_calls} calls (counted by the demo)")
    changes = ", ".join(f"{old}->{new} at {at:.1f}s" for at, old, new in tally.changes)
    line(f"breaker state changes: {changes or 'none'}")
    if peer is not None:
        _peer_summary(scene, peer, breaker)


def _peer_summary(scene: _Scene, peer: dict[str, Any], breaker: dict[str, Any]) -> None:
    """Say what the second process did, and what the two shared."""
    say = scene.timeline.say

    def line(text: str) -> None:
        say(f"  {text}", stamp=False)

    line(
        f"the peer (pid {peer['pid']}): {peer['requests']} = {peer['ok']} ok + "
        f"{peer['failed']} failed + {peer['rejected']} rejected + {peer['shed']} shed + "
        f"{peer['limited']} rate-limited   (its own count)"
    )
    both = scene.tally.burst_allowed + peer["burst_allowed"]
    line(
        f"shared rate limit {LIMITER!r}: {both} of the two bursts' {2 * _BURST_SIZE} requests "
        f"got through = {scene.tally.burst_allowed} here + {peer['burst_allowed']} in the peer "
        f"(one limit: bursts of {_BURST}, refilling {_RATE}/s)"
    )
    fleet, before = breaker.get("fleet"), scene.fleet_before
    if fleet is not None:
        if before is not None:
            fleet = {key: value - before.get(key, 0) for key, value in fleet.items()}
        line(
            f"shared breaker {BREAKER!r}, every process, this run: {fleet['total_calls']} calls = "
            f"{fleet['total_successes']} successes + {fleet['total_failures']} failures + "
            f"{fleet['total_rejected']} rejected + {fleet['total_ignored']} ignored "
            f"(this process {breaker['total_calls']}, the peer {peer['breaker_calls']})"
        )
