"""Asyncio fan-out: hundreds of concurrent requests share one breaker and one retry.

A simulated async dependency (a catalog service) answers a request every 2 ms, each request
in its own task, while it goes through four phases: healthy, degraded (one call in five
fails), down (every call fails) and recovered. Every request goes through the same
``retry_with_backoff`` (outside) and the same ``CircuitBreaker`` (inside), whose
``FailureRate`` policy opens at a 50 % failure rate over the last 50 calls:

- while the dependency is healthy or degraded, the retry hides its failures and the breaker
  stays closed (a 20 % failure rate is below its threshold);
- once it is down, the breaker opens within a few dozen calls, and the requests that follow
  are refused at once instead of piling three attempts each onto a dead service;
- after it recovers, a trial call closes the circuit.

At the end the counts are checked against each other: every request ended exactly one way,
and every call the breaker let through reached the dependency. It runs for about 1.5 s::

    python examples/asyncio_fanout.py
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass

from resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    FailureRate,
    retry_with_backoff,
)


@dataclass(frozen=True)
class Phase:
    """A stretch of time during which the dependency behaves one way."""

    name: str
    starts_at: float  # seconds from the start of the run
    failure_chance: float
    latency: float  # seconds per call


PHASES = (
    Phase("healthy", 0.0, 0.02, 0.005),
    Phase("degraded", 0.3, 0.2, 0.02),
    Phase("down", 0.6, 1.0, 0.005),
    Phase("recovered", 1.0, 0.0, 0.005),
)
DURATION = 1.4  # seconds of traffic
INTERVAL = 0.002  # a new request every 2 ms


def phase_at(elapsed: float) -> Phase:
    """Return the phase the run is in ``elapsed`` seconds after its start."""
    return [phase for phase in PHASES if phase.starts_at <= elapsed][-1]


class Catalog:
    """The simulated async dependency: its health follows ``PHASES``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.started = loop.time()
        self.rng = random.Random(7)  # seeded: the same failures for the same call order
        self.calls: Counter[str] = Counter()  # calls that reached it, per phase

    def phase(self) -> Phase:
        """Return the phase the dependency is in now."""
        return phase_at(self.loop.time() - self.started)

    async def fetch(self, item: int) -> str:
        """Return the item's description, or raise ``ConnectionError`` as a failing service."""
        phase = self.phase()
        self.calls[phase.name] += 1
        await asyncio.sleep(phase.latency)
        if self.rng.random() < phase.failure_chance:
            raise ConnectionError(f"catalog is {phase.name}")
        return f"item {item}"


async def run() -> None:
    loop = asyncio.get_running_loop()
    catalog = Catalog(loop)
    breaker = CircuitBreaker(
        name="catalog",
        policy=FailureRate(threshold=0.5, window=CountWindow(50), minimum_calls=10),
        recovery_timeout=0.1,
    )
    breaker.add_listener(
        lambda _b, old, new: print(
            f"  {loop.time() - catalog.started:5.3f} s  [breaker] {old.value} -> {new.value}"
        )
    )

    # The retry is outside the breaker, so the breaker sees every attempt; an open circuit's
    # CircuitOpenError is not retried (retry_with_backoff's default give_up_on).
    @retry_with_backoff(max_retries=2, base_delay=0.01, max_delay=0.05)
    @breaker
    async def fetch(item: int) -> str:
        return await catalog.fetch(item)

    outcomes: dict[str, Counter[str]] = {phase.name: Counter() for phase in PHASES}

    async def request(item: int) -> None:
        phase = catalog.phase().name
        try:
            await fetch(item)
        except CircuitOpenError:
            outcomes[phase]["rejected"] += 1
        except ConnectionError:
            outcomes[phase]["failed"] += 1
        else:
            outcomes[phase]["ok"] += 1

    print("Timeline:")
    current = None
    async with asyncio.TaskGroup() as tasks:
        for item in range(round(DURATION / INTERVAL)):
            await asyncio.sleep(max(0.0, catalog.started + item * INTERVAL - loop.time()))
            if (phase := catalog.phase()) is not current:
                current = phase
                print(f"  {loop.time() - catalog.started:5.3f} s  the catalog is {phase.name}")
            tasks.create_task(request(item))

    print("\nphase      failing  requests     ok  failed  rejected  calls that reached it")
    for phase in PHASES:
        counts = outcomes[phase.name]
        print(
            f"{phase.name:<10} {phase.failure_chance:6.0%}  {counts.total():8}  {counts['ok']:5}  "
            f"{counts['failed']:6}  {counts['rejected']:8}  {catalog.calls[phase.name]:21}"
        )
    total = sum(outcomes.values(), Counter[str]())
    requests = total.total()
    print(
        f"{'total':<10} {'':6}  {requests:8}  {total['ok']:5}  {total['failed']:6}  "
        f"{total['rejected']:8}  {catalog.calls.total():21}"
    )

    down = outcomes["down"].total()
    print(
        f"\nWhile the catalog was down, {down} requests could have sent it up to {3 * down} "
        f"calls (3 attempts each); the breaker let {catalog.calls['down']} through."
    )
    assert catalog.calls["down"] < down

    stats = breaker.get_stats()
    attempts = stats["total_calls"]
    print("The counts add up:")
    print(
        f"  {requests} requests = {total['ok']} ok + {total['failed']} failed + "
        f"{total['rejected']} rejected"
    )
    print(f"  {attempts} attempts = {requests} requests + {attempts - requests} retries")
    print(
        f"  {attempts} attempts = {catalog.calls.total()} calls that reached the catalog + "
        f"{stats['total_rejected']} rejected by the breaker"
    )
    print(
        f"  {catalog.calls.total()} calls = {stats['total_successes']} successes + "
        f"{stats['total_failures']} failures"
    )
    assert requests == round(DURATION / INTERVAL)
    assert attempts == catalog.calls.total() + stats["total_rejected"]
    assert catalog.calls.total() == stats["total_successes"] + stats["total_failures"]
    assert total["ok"] == stats["total_successes"]
    assert stats["state"] == "closed"


if __name__ == "__main__":
    asyncio.run(run())
