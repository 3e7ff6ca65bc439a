"""Bulkhead: slots, a FIFO queue shared by threads and tasks, release on every exit path."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilience import AdaptiveLimit, Bulkhead, BulkheadFullError, deadline, timeout
from resilience._events import Event, subscribe


class _Gate:
    """Calls that block in a slot until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.opened = threading.Event()
        self.ran: list[Any] = []

    def hold(self, tag: Any = None) -> Any:
        self.ran.append(tag)
        self.entered.release()
        assert self.opened.wait(30)
        return tag


def _start(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _until(condition: Callable[[], bool]) -> None:
    """Wait (politely, on another thread's progress) until ``condition`` holds."""
    event = threading.Event()
    for _ in range(30_000):
        if condition():
            return
        event.wait(0.001)
    raise AssertionError("condition never held")


@pytest.fixture
def events() -> Iterator[list[Event]]:
    """Collect every event emitted during the test."""
    seen: list[Event] = []
    stop = subscribe(seen.append)
    yield seen
    stop()


def test_call_returns_the_result_and_counts_it() -> None:
    """A call with a free slot runs at once and is counted as admitted."""
    pool = Bulkhead(2)
    assert pool.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert pool.get_stats() == {
        "name": None,
        "in_flight": 0,
        "queued": 0,
        "limit": 2,
        "total_admitted": 1,
        "total_rejected": 0,
    }


def test_a_full_bulkhead_without_queue_rejects_and_does_not_run(events: list[Event]) -> None:
    """With every slot taken and no queue, a call raises BulkheadFullError and never runs."""
    pool = Bulkhead(1, name="db")
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold, "first"))
    gate.entered.acquire()
    ran: list[int] = []
    with pytest.raises(BulkheadFullError) as info:
        pool.call(ran.append, 1)
    assert (info.value.name, info.value.limit) == ("db", 1)
    assert ran == []
    assert [(e.name, e.kind, e.strategy, e.attributes["limit"]) for e in events] == [
        ("bulkhead_full", "bulkhead", "db", 1)
    ]
    gate.opened.set()
    holder.join()
    assert pool.get_stats()["total_rejected"] == 1
    assert pool.get_stats()["in_flight"] == 0


def test_the_error_pickles_and_reads_well() -> None:
    """BulkheadFullError keeps its fields through pickling and says what happened."""
    error = pickle.loads(pickle.dumps(BulkheadFullError("db", 4)))  # noqa: S301  # our own bytes
    assert (error.name, error.limit) == ("db", 4)
    assert str(error) == "bulkhead 'db' is full (4 calls in flight)"


def test_queued_threads_are_admitted_first_in_first_out() -> None:
    """Threads waiting for one slot get it in the order they arrived."""
    pool = Bulkhead(1, max_queue=5)
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold, "holder"))
    gate.entered.acquire()
    order: list[int] = []
    threads = []
    for i in range(5):
        threads.append(_start(lambda i=i: pool.call(order.append, i)))
        _until(lambda i=i: pool.get_stats()["queued"] == i + 1)
    with pytest.raises(BulkheadFullError):
        pool.call(order.append, 99)  # the queue is full
    gate.opened.set()
    for thread in [holder, *threads]:
        thread.join()
    assert order == [0, 1, 2, 3, 4]
    assert pool.get_stats()["total_admitted"] == 6


def test_no_more_than_the_limit_run_at_once_under_many_threads() -> None:
    """Sixteen threads hammering a 3-slot bulkhead never have more than 3 calls inside."""
    pool = Bulkhead(3, max_queue=100)
    inside = 0
    peak = 0
    lock = threading.Lock()
    pause = threading.Event()

    def work() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        pause.wait(0.0005)
        with lock:
            inside -= 1

    def caller() -> None:
        for _ in range(50):
            pool.call(work)

    threads = [_start(caller) for _ in range(16)]
    for thread in threads:
        thread.join()
    assert peak == 3
    assert pool.get_stats()["total_admitted"] == 800
    assert pool.get_stats()["in_flight"] == 0


def test_a_slot_is_released_when_the_call_raises() -> None:
    """An exception from the call propagates unchanged and frees the slot."""
    pool = Bulkhead(1)

    def boom() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        pool.call(boom)
    assert pool.get_stats()["in_flight"] == 0
    assert pool.call(lambda: "again") == "again"


def test_max_wait_rejects_a_queued_thread_that_waited_too_long(events: list[Event]) -> None:
    """A queued call whose max_wait passes is rejected, leaves the queue and never runs."""
    pool = Bulkhead(1, max_queue=1, max_wait=0.01, name="slow")
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold))
    gate.entered.acquire()
    with pytest.raises(BulkheadFullError):
        pool.call(gate.ran.append, "late")
    assert "late" not in gate.ran
    assert pool.get_stats()["queued"] == 0
    assert pool.get_stats()["total_rejected"] == 1
    assert [e.name for e in events] == ["bulkhead_full"]
    gate.opened.set()
    holder.join()


def test_a_queued_call_never_waits_past_the_deadline() -> None:
    """Without max_wait, an enclosing deadline bounds the wait in the queue."""
    pool = Bulkhead(1, max_queue=1)
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold))
    gate.entered.acquire()
    with deadline(0.01), pytest.raises(BulkheadFullError):
        pool.call(print, "never")
    gate.opened.set()
    holder.join()
    assert pool.get_stats()["queued"] == 0


def test_a_timeout_interrupting_a_queued_thread_leaves_no_trace() -> None:
    """A sync timeout() that interrupts the wait removes the waiter; nothing leaks."""
    pool = Bulkhead(1, max_queue=2)
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold))
    gate.entered.acquire()
    with pytest.raises(TimeoutError), timeout(0.02):
        pool.call(print, "never")
    assert pool.get_stats()["queued"] == 0
    gate.opened.set()
    holder.join()
    assert pool.get_stats()["in_flight"] == 0
    assert pool.call(lambda: 5) == 5


def test_a_timeout_interrupting_a_running_call_frees_its_slot() -> None:
    """A sync timeout() that interrupts the call itself frees the slot."""
    pool = Bulkhead(1)
    stop = threading.Event()
    with pytest.raises(TimeoutError), timeout(0.02):
        pool.call(stop.wait, 5)
    assert pool.get_stats()["in_flight"] == 0


def test_tasks_wait_without_blocking_the_loop_and_in_order() -> None:
    """Queued tasks suspend (other tasks keep running) and are admitted FIFO."""
    pool = Bulkhead(1, max_queue=10)
    order: list[int] = []

    async def main() -> None:
        release = asyncio.Event()

        async def holder() -> None:
            await release.wait()

        async def job(i: int) -> None:
            order.append(i)

        first = asyncio.create_task(pool.call_async(holder))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(pool.call_async(job, i)) for i in range(4)]
        for _ in range(3):
            await asyncio.sleep(0)  # the loop still runs while they wait
        assert pool.get_stats()["queued"] == 4
        release.set()
        await asyncio.gather(first, *waiting)

    asyncio.run(main())
    assert order == [0, 1, 2, 3]
    assert pool.get_stats()["in_flight"] == 0


def test_threads_and_tasks_share_one_queue() -> None:
    """A slot freed by a task goes to a waiting thread, and one freed by a thread to a task."""
    pool = Bulkhead(1, max_queue=4)
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold, "thread-holder"))
    gate.entered.acquire()
    results: list[str] = []

    async def task_work() -> None:
        results.append("task")

    def in_loop() -> None:
        asyncio.run(pool.call_async(task_work))

    loop_thread = _start(in_loop)
    _until(lambda: pool.get_stats()["queued"] == 1)
    waiter = _start(lambda: pool.call(results.append, "thread"))
    _until(lambda: pool.get_stats()["queued"] == 2)
    gate.opened.set()
    for thread in (holder, loop_thread, waiter):
        thread.join()
    assert results == ["task", "thread"]
    assert pool.get_stats()["in_flight"] == 0


def test_cancelling_a_queued_task_removes_it() -> None:
    """A task cancelled while queued leaves the queue; it is neither admitted nor rejected."""
    pool = Bulkhead(1, max_queue=3)

    async def main() -> None:
        release = asyncio.Event()
        first = asyncio.create_task(pool.call_async(release.wait))
        await asyncio.sleep(0)
        queued = asyncio.create_task(pool.call_async(asyncio.sleep, 0))
        await asyncio.sleep(0)
        assert pool.get_stats()["queued"] == 1
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert pool.get_stats()["queued"] == 0
        release.set()
        await first

    asyncio.run(main())
    stats = pool.get_stats()
    assert (stats["in_flight"], stats["total_admitted"], stats["total_rejected"]) == (0, 1, 0)


def test_a_task_cancelled_after_its_slot_was_handed_over_passes_it_on() -> None:
    """A slot handed to a task that is cancelled before it runs goes to the next waiter."""
    pool = Bulkhead(1, max_queue=3)
    ran: list[str] = []

    async def main() -> None:
        async def job(tag: str) -> None:
            ran.append(tag)

        async with pool:
            second = asyncio.create_task(pool.call_async(job, "second"))
            third = asyncio.create_task(pool.call_async(job, "third"))
            await asyncio.sleep(0)
            assert pool.get_stats()["queued"] == 2
        # Leaving the block handed the slot to `second`; it is cancelled before it runs.
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        await third

    asyncio.run(main())
    assert ran == ["third"]
    assert pool.get_stats()["in_flight"] == 0


def test_cancelling_a_running_task_frees_its_slot() -> None:
    """A task cancelled inside its slot frees it."""
    pool = Bulkhead(1)

    async def main() -> None:
        started = asyncio.Event()

        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(pool.call_async(forever))
        await started.wait()
        assert pool.get_stats()["in_flight"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert pool.get_stats()["in_flight"] == 0


def test_max_wait_rejects_a_queued_task() -> None:
    """A task whose max_wait passes in the queue is rejected without running."""
    pool = Bulkhead(1, max_queue=1, max_wait=0.01)

    async def main() -> None:
        release = asyncio.Event()
        first = asyncio.create_task(pool.call_async(release.wait))
        await asyncio.sleep(0)
        with pytest.raises(BulkheadFullError):
            await pool.call_async(asyncio.sleep, 0)
        release.set()
        await first

    asyncio.run(main())
    assert pool.get_stats()["total_rejected"] == 1
    assert pool.get_stats()["queued"] == 0


def test_a_full_async_queue_rejects_at_once() -> None:
    """A task arriving at a full queue is rejected immediately."""
    pool = Bulkhead(1, max_queue=0)

    async def main() -> None:
        release = asyncio.Event()
        first = asyncio.create_task(pool.call_async(release.wait))
        await asyncio.sleep(0)
        with pytest.raises(BulkheadFullError):
            await pool.call_async(asyncio.sleep, 0)
        release.set()
        await first

    asyncio.run(main())


def test_with_and_async_with_hold_a_slot_for_the_block() -> None:
    """The block forms take a slot on entry and free it on exit, exception or not."""
    pool = Bulkhead(1)
    with pool:
        assert pool.get_stats()["in_flight"] == 1
        with pytest.raises(BulkheadFullError), pool:
            pass
    assert pool.get_stats()["in_flight"] == 0
    with pytest.raises(KeyError), pool:
        raise KeyError

    async def main() -> None:
        async with pool:
            assert pool.get_stats()["in_flight"] == 1
        assert pool.get_stats()["in_flight"] == 0

    asyncio.run(main())
    assert pool.get_stats()["in_flight"] == 0


def test_block_forms_wait_in_the_queue() -> None:
    """``with`` and ``async with`` queue like calls do when every slot is taken."""
    pool = Bulkhead(1, max_queue=2)
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold))
    gate.entered.acquire()
    entered: list[str] = []

    def sync_block() -> None:
        with pool:
            entered.append("sync")

    async def async_block() -> None:
        async with pool:
            entered.append("async")

    first = _start(sync_block)
    _until(lambda: pool.get_stats()["queued"] == 1)
    second = _start(lambda: asyncio.run(async_block()))
    _until(lambda: pool.get_stats()["queued"] == 2)
    gate.opened.set()
    for thread in (holder, first, second):
        thread.join()
    assert entered == ["sync", "async"]


@pytest.mark.parametrize("limit", [1, AdaptiveLimit()], ids=["fixed", "adaptive"])
def test_exiting_a_block_never_entered_is_an_error(limit: Any) -> None:
    """``__exit__`` without ``__enter__`` raises RuntimeError instead of adding a slot."""
    pool = Bulkhead(limit)
    with pytest.raises(RuntimeError, match="without being entered"):
        pool.__exit__(None, None, None)
    assert pool.get_stats()["in_flight"] == 0


def test_the_decorator_keeps_sync_and_async_functions_as_they_are() -> None:
    """``@bulkhead`` keeps names, coroutine-ness and exposes ``.bulkhead``."""
    pool = Bulkhead(2)

    @pool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    @pool
    async def aadd(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    assert asyncio.run(aadd(2, 3)) == 5
    assert inspect.iscoroutinefunction(aadd)
    assert not inspect.iscoroutinefunction(add)
    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert add.bulkhead is pool  # type: ignore[attr-defined]
    assert pool.get_stats()["total_admitted"] == 2


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0,), {}, ValueError, "max_concurrent must be >= 1, got 0"),
        ((True,), {}, TypeError, "max_concurrent must be an int or an AdaptiveLimit"),
        ((2.0,), {}, TypeError, "max_concurrent must be an int or an AdaptiveLimit"),
        ((1,), {"max_queue": -1}, ValueError, "max_queue must be >= 0, got -1"),
        ((1,), {"max_queue": 1.0}, TypeError, "max_queue must be an int"),
        ((1,), {"max_wait": -1}, ValueError, "max_wait must be >= 0"),
        ((1,), {"max_wait": float("nan")}, ValueError, "max_wait must not be NaN"),
        ((1,), {"name": ""}, ValueError, "name must not be empty"),
    ],
    ids=["zero", "bool", "float", "neg-queue", "float-queue", "neg-wait", "nan-wait", "name"],
)
def test_bad_options_fail_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Bad options raise TypeError/ValueError naming the parameter and the value."""
    with pytest.raises(error, match=match):
        Bulkhead(*args, **kwargs)


def test_strategy_info_and_repr_describe_the_options() -> None:
    """``_strategy_info`` gives kind, name and constructor options; repr matches."""
    limit = AdaptiveLimit("aimd")
    pool = Bulkhead(limit, max_queue=3, max_wait=1.5, name="api")
    assert pool._strategy_info() == {
        "kind": "bulkhead",
        "name": "api",
        "options": {"max_concurrent": limit, "max_queue": 3, "max_wait": 1.5},
    }
    assert repr(pool) == (
        "Bulkhead(AdaptiveLimit('aimd', initial=20, min_limit=1, max_limit=200), "
        "max_queue=3, max_wait=1.5, name='api')"
    )
    assert pool.name == "api"
    assert pool.limit == 20


def test_a_saturated_named_bulkhead_is_in_health_and_metrics() -> None:
    """Metrics show calls, in-flight, queued and limit; health lists a saturated bulkhead."""
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest

    from resilience import BreakerRegistry
    from resilience.metrics import health, register_metrics

    pool = Bulkhead(1, name="exports")
    registry = CollectorRegistry()
    register_metrics(registry, BreakerRegistry())
    pool.call(int)
    with pool:
        with pytest.raises(BulkheadFullError):
            pool.call(int)
        text = generate_latest(registry).decode()
        report = health(BreakerRegistry())
    assert 'resilience_bulkhead_calls_total{name="exports",outcome="admitted"} 2.0' in text
    assert 'resilience_bulkhead_calls_total{name="exports",outcome="rejected"} 1.0' in text
    assert 'resilience_bulkhead_in_flight{name="exports"} 1.0' in text
    assert 'resilience_bulkhead_queued{name="exports"} 0.0' in text
    assert 'resilience_bulkhead_limit{name="exports"} 1.0' in text
    assert report["status"] == "degraded"
    assert {
        "name": "exports",
        "kind": "bulkhead",
        "reason": "saturated",
        "in_flight": 1,
        "queued": 0,
        "limit": 1,
    } in report["degraded"]
    assert health(BreakerRegistry()) == {"status": "ok", "open": []}


def test_a_slot_handed_to_a_task_of_a_closed_loop_is_passed_on() -> None:
    """A waiter whose event loop was closed cannot take its slot; the next waiter gets it."""
    pool = Bulkhead(1, max_queue=2)
    gate = _Gate()
    holder = _start(lambda: pool.call(gate.hold))
    gate.entered.acquire()
    loop = asyncio.new_event_loop()

    def run_loop_until_queued() -> None:
        task = loop.create_task(pool.call_async(asyncio.sleep, 0))
        loop.run_until_complete(asyncio.sleep(0.001))
        assert not task.done()

    looper = _start(run_loop_until_queued)
    looper.join()
    loop.close()  # the queued task never runs again
    ran: list[str] = []
    waiter = _start(lambda: pool.call(ran.append, "thread"))
    _until(lambda: pool.get_stats()["queued"] == 2)
    gate.opened.set()
    holder.join()
    waiter.join()
    assert ran == ["thread"]
    assert pool.get_stats()["in_flight"] == 0


def test_the_decorated_form_frees_the_slot_when_the_call_raises() -> None:
    """A decorated function that raises frees its slot; the error propagates unchanged."""
    pool = Bulkhead(1)

    @pool
    def boom() -> None:
        raise LookupError

    with pytest.raises(LookupError):
        boom()
    assert pool.get_stats()["in_flight"] == 0


def test_joining_the_queue_just_as_a_slot_frees_takes_the_slot() -> None:
    """A caller that reaches the queue after a slot freed is handed it at once."""
    from resilience._bulkhead import _Waiter

    pool = Bulkhead(1, max_queue=1)
    waiter = _Waiter()
    pool._enqueue(waiter)
    assert waiter.granted
    assert waiter.lock.acquire(blocking=False)  # already woken
    assert (pool.get_stats()["in_flight"], pool.get_stats()["queued"]) == (1, 0)
    second = _Waiter()
    pool._enqueue(second)
    assert not second.granted
    with pytest.raises(BulkheadFullError):
        pool._enqueue(_Waiter())  # the queue filled up meanwhile
    assert pool.get_stats()["total_rejected"] == 1


def test_a_waiter_whose_wait_ran_out_as_its_slot_came_keeps_the_slot() -> None:
    """A slot handed over just as max_wait ran out is kept, not dropped."""
    from resilience._bulkhead import _Waiter

    pool = Bulkhead(1, max_queue=1)
    waiter = _Waiter()
    pool._enqueue(waiter)
    pool._leave(waiter, cancelled=False)
    assert pool.get_stats()["in_flight"] == 1
    pool._release(None, None)
    assert pool.get_stats()["in_flight"] == 0


@pytest.mark.parametrize("limit", [2, AdaptiveLimit("vegas", initial=2)], ids=["fixed", "adaptive"])
def test_timeouts_landing_anywhere_never_leak_or_forge_a_slot(limit: Any) -> None:
    """Hundreds of SIGALRM interrupts at arbitrary points of tight call loops leave no trace."""
    import random

    pool = Bulkhead(limit)
    rng = random.Random(12)
    interrupted = 0

    def spin() -> int:
        return sum(range(rng.randrange(1, 200)))

    for round_ in range(150):
        try:
            with timeout(0.0002 + rng.random() * 0.0005):
                # Bounded: a timeout() that cannot interrupt still raises as the block ends.
                for _ in range(1500):
                    if round_ % 2:
                        pool.call(spin)
                    else:
                        with pool:
                            spin()
        except TimeoutError:
            interrupted += 1
    assert interrupted == 150
    stats = pool.get_stats()
    assert stats["in_flight"] == 0
    assert len(pool._pool) == pool.limit  # no token lost, none forged
