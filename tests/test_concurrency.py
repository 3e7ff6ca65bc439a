"""One breaker shared by real threads and real event-loop tasks loses no counts."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from resilience import CircuitBreaker, CircuitOpenError, CircuitState, CountWindow, FailureRate
from resilience.testing import FakeClock

THREADS = 8
CALLS = 10_000


def _hammer(
    breaker: CircuitBreaker, seed: int, tally: dict[str, int], lock: threading.Lock
) -> None:
    rng = random.Random(seed)
    mine = dict.fromkeys(("ok", "fail", "ign", "rej"), 0)

    def succeed() -> int:
        return 1

    def fail() -> int:
        raise ConnectionError

    def ignored() -> int:
        raise KeyError

    for _ in range(CALLS):
        roll = rng.random()
        func = succeed if roll < 0.6 else fail if roll < 0.9 else ignored
        try:
            breaker.call(func)
            mine["ok"] += 1
        except ConnectionError:
            mine["fail"] += 1
        except KeyError:
            mine["ign"] += 1
        except CircuitOpenError:
            mine["rej"] += 1
        if roll > 0.999:
            breaker.reset()
    with lock:
        for key, value in mine.items():
            tally[key] += value


@pytest.mark.parametrize(
    "policy",
    [None, FailureRate(threshold=0.5, window=CountWindow(50), minimum_calls=10)],
    ids=["consecutive", "failure_rate"],
)
def test_thread_hammer_keeps_every_counter_exact(policy: FailureRate | None) -> None:
    """8 threads x 10,000 mixed calls: each total equals what the callers saw."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=3, recovery_timeout=1.0, policy=policy, ignore=KeyError, clock=clock
    )
    tally = dict.fromkeys(("ok", "fail", "ign", "rej"), 0)
    lock = threading.Lock()
    stop = threading.Event()

    def ticker() -> None:  # moves time so the circuit keeps cycling through its states
        while not stop.is_set():
            clock.advance(0.5)
            time.sleep(0.001)

    threads = [
        threading.Thread(target=_hammer, args=(breaker, seed, tally, lock))
        for seed in range(THREADS)
    ]
    tick = threading.Thread(target=ticker)
    tick.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    tick.join()
    stats = breaker.get_stats()
    assert stats["total_calls"] == THREADS * CALLS
    assert stats["total_successes"] == tally["ok"]
    assert stats["total_failures"] == tally["fail"]
    assert stats["total_ignored"] == tally["ign"]
    assert stats["total_rejected"] == tally["rej"]
    assert tally["rej"] > 0  # the circuit really opened under load
    assert sum(stats["transitions"].values()) > 0


def test_asyncio_hammer_keeps_every_counter_exact() -> None:
    """500 tasks sharing one breaker: every outcome is counted once."""
    breaker = CircuitBreaker(failure_threshold=1_000_000, ignore=KeyError)
    outcomes = {"ok": 0, "fail": 0, "ign": 0}

    async def one(i: int) -> None:
        for j in range(20):
            kind = (i + j) % 3

            async def work(kind: int = kind) -> None:
                await asyncio.sleep(0)
                if kind == 1:
                    raise ConnectionError
                if kind == 2:
                    raise KeyError

            try:
                await breaker.call_async(work)
                outcomes["ok"] += 1
            except ConnectionError:
                outcomes["fail"] += 1
            except KeyError:
                outcomes["ign"] += 1

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(500)))

    asyncio.run(main())
    stats = breaker.get_stats()
    assert stats["total_calls"] == 500 * 20
    assert stats["total_successes"] == outcomes["ok"]
    assert stats["total_failures"] == outcomes["fail"]
    assert stats["total_ignored"] == outcomes["ign"]


def test_half_open_admits_exactly_one_trial_among_sixteen_threads() -> None:
    """With ``half_open_max_calls=1``, 16 threads released at once run one trial call."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(_raise)
    clock.advance(1.0)
    barrier = threading.Barrier(16)
    inside = threading.Event()
    release = threading.Event()
    ran: list[int] = []
    rejected: list[int] = []

    def trial() -> str:
        ran.append(1)
        inside.set()
        release.wait(10)
        return "ok"

    def worker() -> None:
        barrier.wait()
        try:
            breaker.call(trial)
        except CircuitOpenError:
            rejected.append(1)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert inside.wait(10)
    # Everyone but the trial has been turned away while it is still running.
    deadline = time.monotonic() + 10
    while len(rejected) < 15 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join()
    assert len(ran) == 1
    assert len(rejected) == 15
    assert breaker.state is CircuitState.CLOSED


def test_async_half_open_admits_exactly_one_trial_among_many_tasks() -> None:
    """The same limit holds for tasks on one event loop."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(_raise)
    clock.advance(1.0)
    ran: list[int] = []

    async def trial() -> None:
        ran.append(1)
        await asyncio.sleep(0.01)

    async def attempt() -> str:
        try:
            await breaker.call_async(trial)
        except CircuitOpenError:
            return "rejected"
        return "ran"

    async def main() -> list[str]:
        return await asyncio.gather(*(attempt() for _ in range(50)))

    results = asyncio.run(main())
    assert results.count("ran") == 1
    assert results.count("rejected") == 49
    assert ran == [1]


def _raise() -> None:
    raise ConnectionError


def test_a_failure_rate_window_holds_every_call_of_a_thread_storm() -> None:
    """8 threads of lock-free successes and locked failures: the window misses none."""
    policy = FailureRate(threshold=1.0, window=CountWindow(100_000), minimum_calls=5)
    breaker = CircuitBreaker(policy=policy, clock=FakeClock())

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(5_000):
            if rng.random() < 0.1:
                with pytest.raises(ConnectionError):
                    breaker.call(_raise_connection_error)
            else:
                breaker.call(int)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = breaker.get_stats()
    assert stats["state"] == "closed"
    assert stats["failure_count"] == stats["total_failures"] > 0
    assert stats["success_count"] == stats["total_successes"] > 0
    assert stats["total_calls"] == THREADS * 5_000


def _raise_connection_error() -> None:
    raise ConnectionError
