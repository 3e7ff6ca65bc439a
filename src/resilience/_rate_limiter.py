"""RateLimiter: an exact GCRA limit on how often calls start, in one process or a fleet.

GCRA (the generic cell rate algorithm) keeps one number per limit, the theoretical
arrival time ``tat``: when the next unit would be due if calls came exactly at the rate.
With the emission interval ``T = per / rate`` and the tolerance ``burst * T``, a request of
cost ``c`` at time ``t`` is allowed when ``max(tat, t) + c*T - t <= burst*T``, and then
``tat`` becomes ``max(tat, t) + c*T``. From idle ``burst`` units pass at once, then one per
``T``; over any interval of length ``L`` at most ``burst + L/T`` units pass. A ``tat`` at
or before ``now`` is the same as no ``tat`` at all, which is why idle keys need no memory.

A waiting ``acquire`` reserves its slot at once (``tat`` moves as for an allowed call) and
sleeps until the slot is due, outside the lock: one decision per call, first come first
served, and no herd of sleepers waking to race for one slot.

With ``storage=`` the decision runs in the storage (one Redis script call on the server's
clock) so every process shares the limit; while the storage fails, each process limits
locally and logs once per outage.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Protocol, TypeVar

from resilience import _events, _observed
from resilience._critical import section
from resilience._validate import check_callable, check_int, check_name, check_number
from resilience._wrap import wrap
from resilience.exceptions import RateLimitedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from resilience._strategy import StrategyInfo

__all__ = ["RateLimiter"]

logger = logging.getLogger("resilience")

P = ParamSpec("P")
R = TypeVar("R")

# On a real clock (t + T) - t can exceed T by a rounding error of t's magnitude: allow a
# few ulps of the numbers compared ("slack"), so a caller exactly at the rate is never
# refused. A tat within the slack of now counts as now (each admission gains at most the
# slack: a few ulps), and a tat is kept as anchor + units * T rather than summed call by
# call, so the rounding errors of a long run at the rate never pile up.
_ULPS: Final = 4 * sys.float_info.epsilon
# Whether a section of bytecode without calls or backward jumps runs atomically: true
# with the GIL (CPython switches threads and runs signal handlers only at those points),
# false on a free-threaded build, where the unkeyed fast path takes the lock instead.
_ATOMIC_SECTIONS: Final = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
_PROBE_INTERVAL: Final = 1.0  # while the storage fails, ask it again this often
_SWEEP: Final = 2  # idle keys dropped per keyed decision: they drain faster than they come
_MAX_KEY: Final = 200
_IDLE: Final = (-float("inf"), 0, -float("inf"))  # a key not held: no tat
_MAX_BURST: Final = 2**53  # beyond this, counts of units stop being exact floats


class _LimiterStorage(Protocol):
    """What a storage offers a fleet-wide limiter (``RedisStorage`` does)."""

    def _gcra(
        self,
        name: str,
        key: str | None,
        interval: float,
        tolerance: float,
        *,
        cost: int,
        max_wait: float,
    ) -> tuple[bool, float]: ...

    async def _gcra_async(
        self,
        name: str,
        key: str | None,
        interval: float,
        tolerance: float,
        *,
        cost: int,
        max_wait: float,
    ) -> tuple[bool, float]: ...


def _check_key(key: object) -> None:
    """Refuse a key that is not a non-empty printable ``str`` of at most 200 characters."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str or None, got {key!r}")
    if not key or len(key) > _MAX_KEY or not key.isprintable():
        raise ValueError(f"key must be 1 to {_MAX_KEY} printable characters, got {key!r}")


class RateLimiter:
    """Let calls start at most ``rate`` times per ``per`` seconds, with bursts of ``burst``.

    An exact GCRA: from idle, ``burst`` units pass at once, then one every
    ``T = per / rate`` seconds; over any interval of length ``L`` no more than
    ``burst + L / T`` units pass. A request may cost several units. ``key=`` partitions
    one limiter (per tenant, per host): each key has its own limit, and a key that has
    been idle long enough to be back at full burst takes no memory.

    Use it directly (``try_acquire``, ``acquire``, ``await acquire_async``), as a
    decorator of sync or async functions, or as a strategy in a ``Pipeline``; the last
    two acquire one unit per call. Thread-safe and asyncio-friendly: the decision is a
    few arithmetic steps under a lock, and waiting happens outside it.

    Args:
        rate: units allowed per ``per`` seconds (a finite number > 0).
        per: the period ``rate`` is counted over, in seconds.
        burst: units that may pass at once from idle (an int >= 1); default
            ``ceil(rate)``.
        max_wait: the longest ``acquire`` waits for its turn before raising
            ``RateLimitedError`` (0: never wait).
        name: the limiter's name: it labels metrics, events and errors, and names the
            shared limit with ``storage``.
        clock: monotonic seconds, for the local decisions and waits.
        storage: a ``resilience.redis.RedisStorage`` to share the limit with every
            process using the same Redis and name; needs ``name``.
        sleep: what waits in ``acquire`` (default ``time.sleep``) and ``acquire_async``
            (default ``asyncio.sleep``; a plain function is called, a coroutine
            function awaited), e.g. a ``FakeClock``'s ``sleep``.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is out of range.

    Examples:
        >>> from resilience import RateLimiter
        >>> limiter = RateLimiter(2, per=1.0, name="search")
        >>> limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire()
        (True, True, False)
    """

    __slots__ = (
        "__weakref__",
        "_allowed",
        "_anchor",
        "_burst",
        "_clock",
        "_down",
        "_inline",
        "_interval",
        "_limited",
        "_lock",
        "_max_wait",
        "_name",
        "_per",
        "_probe_at",
        "_rate",
        "_slack",
        "_sleep",
        "_storage",
        "_tats",
        "_tolerance",
        "_units",
    )

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        *,
        burst: int | None = None,
        max_wait: float = 0.0,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        storage: Any = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self._rate = check_number("rate", rate, positive=True)
        self._per = check_number("per", per, positive=True)
        interval = self._per / self._rate
        if not interval > 0 or interval == float("inf"):
            raise ValueError(f"per / rate must be a positive finite interval, got {interval!r}")
        if burst is None:
            burst = max(1, -int(-self._rate // 1))  # ceil(rate), at least 1
        self._burst = check_int("burst", burst, minimum=1)
        if self._burst > _MAX_BURST:
            raise ValueError(f"burst must be <= 2**53, got {burst!r}")
        self._max_wait = check_number("max_wait", max_wait, minimum=0.0)
        self._name = check_name(name, optional=True)
        self._clock = _plain_callable("clock", clock)
        self._sleep = None if sleep is None else check_callable("sleep", sleep)
        if storage is not None:
            if not callable(getattr(storage, "_gcra", None)):
                raise TypeError(
                    f"storage must be a RedisStorage(...) or None, got storage={storage!r}"
                )
            if self._name is None:
                raise ValueError("name is required when storage is set, got name=None")
        self._storage: _LimiterStorage | None = storage
        self._interval = interval
        self._tolerance = self._burst * interval
        self._slack = self._tolerance * _ULPS  # enough on a clock near 0; else see below
        self._inline = storage is None and _ATOMIC_SECTIONS
        self._lock = threading.Lock()
        # The unkeyed limit's tat is anchor + units * T, computed afresh each time so
        # rounding errors never pile up; idle (-inf) at first.
        self._anchor = -float("inf")
        self._units = 0
        # Keyed limits: key -> (anchor, units, tat), in the order they were last set.
        self._tats: dict[str, tuple[float, int, float]] = {}
        self._allowed = 0
        self._limited = 0
        self._down = False
        self._probe_at = 0.0
        if self._name is not None:
            _observed.observe(self)

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str | None:
        """The limiter's name, or ``None``."""
        return self._name

    @property
    def rate(self) -> float:
        """Units allowed per ``per`` seconds."""
        return self._rate

    @property
    def per(self) -> float:
        """The period ``rate`` is counted over, in seconds."""
        return self._per

    @property
    def burst(self) -> int:
        """Units that may pass at once from idle."""
        return self._burst

    @property
    def max_wait(self) -> float:
        """The longest ``acquire`` waits for its turn."""
        return self._max_wait

    # ------------------------------------------------------------------ acquiring

    def try_acquire(self, cost: int = 1, *, key: str | None = None) -> bool:
        """Take ``cost`` units now if the limit allows it; never wait.

        Returns:
            True if the units were taken, False if the limit refused them.

        Raises:
            TypeError: ``cost`` is not an int, or ``key`` not a str.
            ValueError: ``cost`` is < 1 or larger than ``burst`` (it could never fit).
        """
        if key is None and self._inline and cost.__class__ is int and 0 < cost <= self._burst:
            # The common case, inline and without a lock: from reading the state to
            # storing it there is no call and no backward jump, the only places where
            # CPython switches threads or runs a signal handler, so the section is atomic
            # (a lock would cost 5x a bare call on its own; see _ATOMIC_SECTIONS).
            now = self._clock()
            interval = self._interval
            units = self._units
            ahead = self._anchor - now  # tat - now is ahead + units * T
            if ahead + units * interval <= self._slack:
                # At or behind now: idle, so the request fits (cost <= burst).
                self._anchor = now
                self._units = cost
                self._allowed += 1
                return True
            units += cost
            excess = ahead + units * interval - self._tolerance
            if (
                excess <= self._slack
                or excess <= ((now if now > 0 else -now) + self._tolerance) * _ULPS
            ):
                self._units = units
                self._allowed += 1
                return True
            self._limited += 1
            if _events.subscribers:
                self._report(key, cost, excess)
            return False
        granted, seconds = self._decide(cost, key, 0.0)
        if not granted and _events.subscribers:
            self._report(key, cost, seconds)
        return granted

    def acquire(self, cost: int = 1, *, key: str | None = None) -> None:
        """Take ``cost`` units, waiting up to ``max_wait`` for them.

        The wait is reserved at once (later callers queue behind it) and slept outside
        every lock.

        Raises:
            RateLimitedError: the units would not be free within ``max_wait``; its
                ``retry_after`` says when they would be.
            TypeError, ValueError: as for ``try_acquire``.
        """
        wait = self._take(cost, key)
        if wait > 0:
            (self._sleep or time.sleep)(wait)

    async def acquire_async(self, cost: int = 1, *, key: str | None = None) -> None:
        """Take ``cost`` units without blocking the event loop, waiting up to ``max_wait``.

        Raises:
            RateLimitedError: the units would not be free within ``max_wait``.
            TypeError, ValueError: as for ``try_acquire``.
        """
        if cost.__class__ is not int or not 0 < cost <= self._burst:
            self._check_cost(cost)
        if key is not None:
            _check_key(key)
        storage = self._storage
        if storage is not None and self._storage_up():
            try:
                granted, seconds = await storage._gcra_async(  # noqa: SLF001  # our storage hook
                    self._name or "",
                    key,
                    self._interval,
                    self._tolerance,
                    cost=cost,
                    max_wait=self._max_wait,
                )
            except Exception as exc:
                self._lost(exc)
                granted, seconds = self._local(cost, key, self._max_wait)
            else:
                self._reached()
                self._count(granted=granted)
        else:
            granted, seconds = self._local(cost, key, self._max_wait)
        if not granted:
            raise self._refused(key, cost, seconds)
        if seconds > 0:
            await _asleep(self._sleep, seconds)

    def _take(self, cost: int, key: str | None) -> float:
        """Reserve ``cost`` units within ``max_wait``; return the wait, or raise."""
        granted, seconds = self._decide(cost, key, self._max_wait)
        if not granted:
            raise self._refused(key, cost, seconds)
        return seconds

    def _decide(self, cost: int, key: str | None, limit: float) -> tuple[bool, float]:
        """Decide a request: ``(True, wait)`` when granted, ``(False, retry_after)``."""
        if cost.__class__ is not int or not 0 < cost <= self._burst:
            self._check_cost(cost)
        if key is not None and (key.__class__ is not str or key not in self._tats):
            _check_key(key)  # a key held already was checked when it came
        storage = self._storage
        if storage is not None and self._storage_up():
            try:
                granted, seconds = storage._gcra(  # noqa: SLF001  # our storage hook
                    self._name or "",
                    key,
                    self._interval,
                    self._tolerance,
                    cost=cost,
                    max_wait=limit,
                )
            except Exception as exc:
                self._lost(exc)
            else:
                self._reached()
                self._count(granted=granted)
                return granted, seconds
        return self._local(cost, key, limit)

    @section
    def _local(self, cost: int, key: str | None, limit: float) -> tuple[bool, float]:
        """Decide in this process (the lock is taken here, and only here)."""
        now = self._clock()
        interval, tolerance = self._interval, self._tolerance
        slack = ((now if now > 0 else -now) + tolerance + limit) * _ULPS
        with self._lock:
            tats = self._tats
            if key is None:
                anchor, units = self._anchor, self._units
            else:
                anchor, units, _ = tats.get(key, _IDLE)
            # No call from here to the stores: CPython runs a signal handler (and
            # switches threads) only at calls and backward jumps, so an exception raised
            # by one (a timeout()) cannot leave the state moved without its count.
            ahead = anchor - now
            if ahead + units * interval <= slack:
                ahead, anchor, units = 0.0, now, cost
            else:
                units += cost
            excess = ahead + units * interval - tolerance
            granted = excess <= limit + slack
            if granted:
                self._allowed += 1
                if key is None:
                    self._anchor, self._units = anchor, units
                else:
                    if key in tats:
                        del tats[key]
                    # Inserted last, so the dict is ordered by last use.
                    tats[key] = (anchor, units, now + ahead + units * interval)
            else:
                self._limited += 1
            if key is not None:
                self._sweep(now)
        return granted, (excess if excess > 0 else 0.0)

    def _sweep(self, now: float) -> None:
        """Drop up to ``_SWEEP`` keys, least recently used first, that are idle at ``now``.

        The lock is held. A key's tat is at most its last use plus ``burst * T``, so the
        least recently used keys go idle first; each decision removes up to two of them,
        so idle keys drain faster than decisions add keys.
        """
        tats = self._tats
        for _ in range(_SWEEP):
            if not tats:
                return
            oldest = next(iter(tats))
            if tats[oldest][2] > now:
                return
            del tats[oldest]

    def _check_cost(self, cost: Any) -> None:
        if cost.__class__ is not int:
            raise TypeError(f"cost must be an int, got {cost!r}")
        if cost < 1:
            raise ValueError(f"cost must be >= 1, got {cost!r}")
        raise ValueError(
            f"cost must be <= burst={self._burst} (it could never be allowed), got {cost!r}"
        )

    def _refused(self, key: str | None, cost: int, retry_after: float) -> RateLimitedError:
        self._report(key, cost, retry_after)
        return RateLimitedError(self._name, key, retry_after)

    def _report(self, key: str | None, cost: int, retry_after: float) -> None:
        if _events.subscribers:
            _events.emit(
                "limited",
                "rate_limiter",
                self._name,
                None,
                key=key,
                cost=cost,
                retry_after=retry_after,
            )

    @section
    def _count(self, *, granted: bool) -> None:
        with self._lock:
            if granted:
                self._allowed += 1
            else:
                self._limited += 1

    # ------------------------------------------------------------------ storage faults

    def _storage_up(self) -> bool:
        """Whether to ask the storage: yes unless it failed and no probe is due."""
        if not self._down:
            return True
        now = self._clock()
        with self._lock:
            if now < self._probe_at:
                return False
            self._probe_at = now + _PROBE_INTERVAL  # this call probes; the others wait
            return True

    def _lost(self, exc: Exception) -> None:
        now = self._clock()
        with self._lock:
            first = not self._down
            self._down = True
            self._probe_at = now + _PROBE_INTERVAL
        if first:
            logger.warning(
                "rate limiter %r cannot reach its storage (%s: %s); limiting locally until "
                "it returns",
                self._name,
                type(exc).__name__,
                exc,
            )

    def _reached(self) -> None:
        if self._down:
            with self._lock:
                back, self._down = self._down, False
            if back:
                logger.info("rate limiter %r: storage reachable again", self._name)

    # ------------------------------------------------------------------ strategy

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Acquire one unit (waiting up to ``max_wait``), then return ``func(*args, **kwargs)``.

        Raises:
            RateLimitedError: the limit refused the call; ``func`` did not run.
        """
        wait = self._take(1, None)
        if wait > 0:
            (self._sleep or time.sleep)(wait)
        return func(*args, **kwargs)

    async def call_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Acquire one unit without blocking the loop, then await ``func(*args, **kwargs)``.

        Raises:
            RateLimitedError: the limit refused the call; ``func`` did not run.
        """
        await self.acquire_async()
        return await func(*args, **kwargs)

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a sync or async function: each call acquires one unit first."""

        def run(inner: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return self.call(inner, *args, **kwargs)

        async def run_async(
            inner: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            return await self.call_async(inner, *args, **kwargs)

        return wrap(func, run, run_async)

    def _strategy_info(self) -> StrategyInfo:
        return {
            "kind": "rate_limiter",
            "name": self._name,
            "options": {
                "rate": self._rate,
                "per": self._per,
                "burst": self._burst,
                "max_wait": self._max_wait,
                "storage": self._storage,
            },
        }

    # ------------------------------------------------------------------ observing

    def get_stats(self) -> dict[str, Any]:
        """Return a snapshot: the options, ``total_allowed`` and ``total_limited`` calls.

        Also ``keys`` (partition keys this process holds: the idle ones are dropped as it
        goes) and, with ``storage``, ``storage``: ``"ok"`` or ``"degraded"`` while the
        storage fails and the limit is kept locally.
        """
        now = self._clock()
        with self._lock:
            stale = [key for key, state in self._tats.items() if state[2] <= now]
            for key in stale:
                del self._tats[key]
            stats: dict[str, Any] = {
                "name": self._name,
                "rate": self._rate,
                "per": self._per,
                "burst": self._burst,
                "total_allowed": self._allowed,
                "total_limited": self._limited,
                "keys": len(self._tats),
            }
        if self._storage is not None:
            stats["storage"] = "degraded" if self._down else "ok"
        return stats

    def _families(self) -> list[_observed.Family]:
        name = self._name or ""
        return [
            _observed.Family(
                "resilience_rate_limiter_calls_total",
                "counter",
                "Calls a rate limiter allowed or limited.",
                ("name", "outcome"),
                [
                    ((name, "allowed"), float(self._allowed)),
                    ((name, "limited"), float(self._limited)),
                ],
            )
        ]

    def _health(self) -> dict[str, Any] | None:
        return None  # a limit that refuses calls is working, not unhealthy

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self._rate!r}, per={self._per!r}, burst={self._burst!r}, "
            f"max_wait={self._max_wait!r}, name={self._name!r})"
        )


def _plain_callable(name: str, value: object) -> Callable[[], float]:
    """Return ``value`` if it is a plain (not async) callable."""
    check_callable(name, value)
    import inspect  # noqa: PLC0415  # ~15 ms to import: only when a limiter is made

    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
        getattr(value, "__call__", None)  # noqa: B004  # an object whose __call__ is async
    ):
        raise TypeError(f"{name} must be a plain function, not a coroutine function: {value!r}")
    return value  # type: ignore[return-value]  # callable, checked above


async def _asleep(sleep: Callable[[float], object] | None, seconds: float) -> None:
    """Wait ``seconds`` in asyncio: ``sleep`` awaited if it returns an awaitable."""
    if sleep is None:
        import asyncio  # noqa: PLC0415  # asyncio stays off import time

        await asyncio.sleep(seconds)
        return
    result = sleep(seconds)
    if hasattr(result, "__await__"):
        await result


RateLimiter.__module__ = "resilience"
