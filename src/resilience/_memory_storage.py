"""``InMemoryStorage``: the Redis script's state machine in Python, behind ``BreakerStorage``.

This module is the executable specification of ``_redis_lua.SCRIPT``: each method runs
what one script call runs, step for step and with the same integer microseconds, so a
test can hold the two side by side (tests/test_state_machine.py runs one reference model
against the in-process breaker, this storage and ``RedisStorage`` on a real server). A
change to the script's behaviour is made here too, in the same words.

Differences that are not behaviour: circuits never expire (the script's keys have a TTL),
and the window is kept in Python lists rather than a Redis string and list.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from resilience._state import CircuitState
from resilience._storage import BreakerStorage, StoredState, check_storage_error_mode
from resilience._validate import check_name, check_number, check_sync_callable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["InMemoryStorage"]

_LEASE: Final = 30_000_000  # a trial slot not given back within 30 s is presumed lost
_DEFAULT_RECOVERY: Final = 30_000_000
_MAX_CACHE_TTL: Final = 0.1

_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN
_FORCED_OPEN: Final = CircuitState.FORCED_OPEN
_DISABLED: Final = CircuitState.DISABLED
_METRICS_ONLY: Final = CircuitState.METRICS_ONLY
_OPERATOR_STATES: Final = frozenset({_CLOSED, _FORCED_OPEN, _DISABLED, _METRICS_ONLY})
_AWAY: Final = frozenset({_OPEN, _FORCED_OPEN, _HALF_OPEN})

# The window kinds of the script's ``wkk``: none, a count window, a time window.
_NO_WINDOW, _COUNT, _TIME = 0, 1, 3
# What the stats report (the script's ``pol``): run and ok, or the window's counts.
_RUN, _RATE = 1, 2


@dataclass(slots=True)
class _Circuit:
    """One circuit: the script's packed fields, with the window beside them."""

    state: CircuitState
    gen: int
    changed: int
    since: int = -1  # when it left CLOSED (µs), or -1
    retry: int = -1  # when a trial is allowed (µs), or -1
    trips: int = 0  # trips in a row
    run: int = 0  # consecutive failures (or the held counts of a trial)
    ok: int = 0  # consecutive successes, or successful trials in HALF_OPEN
    trial: int = 0  # trial slots taken
    trial_at: int = 0  # when the last slot was taken (µs)
    kind: int = _NO_WINDOW
    size: float = 0  # the window's size: calls, or seconds
    calls: int = 0
    fails: int = 0
    slow: int = 0
    slots: list[int] = field(default_factory=list)  # count window: 1 failed + 2 slow
    nxt: int = 0  # count window: the next slot to write
    buckets: deque[tuple[int, int, int, int]] = field(default_factory=deque)  # closed ones
    head: int = -1  # time window: the current bucket's index, or -1
    cc: int = 0  # the current bucket's calls, failures, slow calls
    cf: int = 0
    cs: int = 0
    shadow: int = 0
    pol: int = 0  # _RUN or _RATE: which counts the stats report
    mc: int = 0  # minimum calls
    n_s: int = 0  # the fleet's totals
    n_f: int = 0
    n_r: int = 0
    n_i: int = 0


class _Run:
    """One operation on one circuit: the body of one script call."""

    __slots__ = ("c", "config", "now", "shadow_flag")

    def __init__(self, circuit: _Circuit, config: Mapping[str, Any] | None, now: int) -> None:
        self.c = circuit
        self.config = config
        self.now = now
        self.shadow_flag = False

    def _policy(self) -> Mapping[str, Any]:
        if self.config is None:  # pragma: no cover - only admit and record read the policy
            raise AssertionError("this operation has no policy")
        return self.config

    def clear_window(self) -> None:
        c = self.c
        c.calls = c.fails = c.slow = c.nxt = c.cc = c.cf = c.cs = 0
        c.head = -1
        c.slots = []
        c.buckets.clear()

    def restart(self) -> None:
        c = self.c
        c.gen += 1
        c.run = c.ok = c.trial = 0
        self.clear_window()

    def recovery(self, n: int) -> int:
        waits = [max(0, round(float(w) * 1e6)) for w in self._policy()["recovery"]]
        return waits[min(n, len(waits)) - 1] if waits else _DEFAULT_RECOVERY

    def hold(self, old: CircuitState) -> None:
        """Keep the counts that opened the circuit while OPEN or FORCED_OPEN (SPEC §8)."""
        c = self.c
        c.gen += 1
        c.trial = 0
        if old is _OPEN:
            return
        if old is _HALF_OPEN:  # a failed trial (or an order): the trial's counts
            c.run, c.pol = int(c.state is _OPEN), _RUN
            return
        calls, fails, slow = c.calls, c.fails, c.slow
        self.clear_window()
        c.calls, c.fails, c.slow = calls, fails, slow

    def to(self, new: CircuitState) -> bool:
        c = self.c
        if c.state is new:
            return False
        old, c.state = c.state, new
        c.changed = self.now
        if new is _OPEN or new is _FORCED_OPEN:
            self.hold(old)
        else:
            self.restart()
        if new in _AWAY:
            if c.since < 0:
                c.since = self.now
            if new is _OPEN:
                c.trips += 1
                c.retry = self.now + self.recovery(c.trips)
            elif new is _FORCED_OPEN:
                c.retry = -1
        else:
            c.since = c.retry = -1
            c.trips = 0
        return True

    def advance(self, seconds: float) -> None:
        """Move a time window to the current bucket, dropping those that left it."""
        c = self.c
        n = math.ceil(seconds)
        index = math.floor(self.now / (seconds * 1000000 / n))
        if c.head < 0:
            c.head = index
            return
        if index <= c.head:  # the same bucket (or a clock that stepped back)
            return
        horizon = index - n  # buckets at or before it have left the window
        if c.head <= horizon:
            self.clear_window()
        else:
            if c.cc > 0:
                c.buckets.append((c.head, c.cc, c.cf, c.cs))
            c.cc = c.cf = c.cs = 0
            while c.buckets and c.buckets[0][0] <= horizon:
                _, calls, fails, slow = c.buckets.popleft()
                c.calls -= calls
                c.fails -= fails
                c.slow -= slow
        c.head = index

    def rate_record(self, failed: int, slow: int) -> bool:
        c, policy = self.c, self._policy()
        counted = policy["window"] == "count"
        kind = _COUNT if counted else _TIME
        size = policy["window_size"]
        if c.kind != kind or c.size != size:
            self.clear_window()
            c.kind, c.size = kind, size
        if counted:
            code = failed + 2 * slow
            if c.calls >= size:
                old = c.slots[c.nxt]
                c.fails -= old % 2
                c.slow -= old // 2
                c.slots[c.nxt] = code
            else:
                c.calls += 1
                c.slots.append(code)
            c.nxt = (c.nxt + 1) % size
        else:
            self.advance(size)
            c.cc += 1
            c.cf += failed
            c.cs += slow
            c.calls += 1
        c.fails += failed
        c.slow += slow
        c.pol, c.mc = _RATE, int(policy["minimum_calls"])
        if c.calls < c.mc:
            return False
        # Divide rather than multiply, as the in-memory breaker does: 3 / 10 >= 0.3 holds.
        if c.fails / c.calls >= policy["threshold"]:
            return True
        slow_rate = policy["slow_call_rate"]
        return slow_rate is not None and c.slow / c.calls >= slow_rate

    def consecutive_record(self, failed: int) -> bool:
        c = self.c
        c.pol, c.mc = _RUN, 0
        if failed:
            c.run += 1
            c.ok = 0
            return c.run >= int(self._policy()["threshold"])
        c.run = 0
        c.ok += 1
        return False

    def trip(self) -> None:
        c = self.c
        if c.state is _METRICS_ONLY:
            c.shadow += 1
            self.shadow_flag = True
            self.restart()
        else:
            self.to(_OPEN)

    def total(self, code: str) -> None:
        c = self.c
        if code in "sS":
            c.n_s += 1
        elif code in "fF":
            c.n_f += 1
        else:
            c.n_i += 1

    def observe(self) -> None:
        """The lazy OPEN -> HALF_OPEN change every operation starts with."""
        c = self.c
        if c.state is _OPEN and c.retry >= 0 and self.now >= c.retry:
            self.to(_HALF_OPEN)

    def admit(self, rejected: int) -> bool:
        c = self.c
        c.n_r += rejected
        admitted = True
        if c.state is _HALF_OPEN:
            slots = int(self._policy()["half_open_max_calls"])
            if c.trial >= slots and self.now - c.trial_at >= _LEASE:
                c.trial = 0
            if c.trial < slots:
                c.trial += 1
                c.trial_at = self.now
            else:
                admitted = False
        elif c.state is _OPEN or c.state is _FORCED_OPEN:
            admitted = False
        if not admitted:
            c.n_r += 1
        return admitted

    def record(self, generation: int, outcomes: str, stale: str, rejected: int) -> None:
        c = self.c
        c.n_r += rejected
        for code in stale:
            self.total(code)
        for code in outcomes:
            self.total(code)
            if generation == c.gen:  # a transition mid-batch makes the rest stale
                self.outcome(code)

    def outcome(self, code: str) -> None:
        """Apply one outcome of the circuit's current generation."""
        c = self.c
        if code == "i":
            if c.state is _HALF_OPEN:
                c.trial = max(0, c.trial - 1)  # a cancelled trial gives its slot back
            return
        failed = int(code in "fF")
        if c.state is _HALF_OPEN:
            c.trial = max(0, c.trial - 1)
            if failed:
                self.to(_OPEN)
            else:
                c.ok += 1
                if c.ok >= int(self._policy()["success_threshold"]):
                    self.to(_CLOSED)
        elif c.state is _CLOSED or c.state is _METRICS_ONLY:
            if self._policy()["policy"] == "rate":
                trips = self.rate_record(failed, int(code in "SF"))
            else:
                trips = self.consecutive_record(failed)
            if trips:
                self.trip()

    def force(self, new: CircuitState) -> None:
        c = self.c
        # The counts FORCED_OPEN holds are those of the window as it stands now.
        if (
            new is _FORCED_OPEN
            and c.kind == _TIME
            and (c.state is _CLOSED or c.state is _METRICS_ONLY)
        ):
            self.advance(c.size)
        if not self.to(new) and new is _CLOSED:
            self.restart()

    def reply(self, *, admitted: bool = True) -> StoredState:
        c = self.c
        retry_in = max(0, c.retry - self.now) if c.state is _OPEN and c.retry >= 0 else -1
        return StoredState(
            state=c.state,
            generation=c.gen,
            admitted=admitted,
            retry_after=None if retry_in < 0 else retry_in / 1e6,
            open_for=None if c.since < 0 else max(0.0, (self.now - c.since) / 1e6),
            opened_at=None if c.since < 0 else c.since / 1e6,
            shadow_trip=self.shadow_flag,
        )


class InMemoryStorage(BreakerStorage):
    """A ``BreakerStorage`` in this process's memory: the Redis script, in Python.

    It runs the same state machine as ``RedisStorage``'s Lua script — admission,
    outcomes, generations, half-open trial slots and their lease, operator states,
    metrics-only shadow trips, count and time windows, fleet totals, the counts held
    while OPEN — and answers with the same ``StoredState``, so a test can drive a
    breaker made with ``storage=`` without a server. Its time is its own ``clock``,
    standing in for the Redis server's ``TIME``; pass the ``FakeClock`` your breakers
    use to move both at once. Every operation runs whole under one lock, as a script
    runs atomically in Redis, so breakers in many threads can share one storage.

    It is the executable specification of the script: tests run one reference model
    against the in-process breaker, this storage and ``RedisStorage`` on a real
    redis-server (see docs/testing.md). Circuits never expire.

    Args:
        clock: seconds since the epoch (or any fixed origin), read once per operation
            that needs the time; ``time.time`` by default.
        cache_ttl: None to send every outcome at once, or seconds (0 < s <= 0.1) for
            breakers to batch outcomes and decide admission locally for that long.
        on_storage_error: what a breaker does when the storage raises (see
            ``BreakerStorage``): ``"local"``, ``"closed"`` or ``"open"``.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.

    Examples:
        >>> from resilience import CircuitBreaker
        >>> from resilience.testing import FakeClock, InMemoryStorage
        >>> clock = FakeClock(1000.0)
        >>> storage = InMemoryStorage(clock=clock)
        >>> a = CircuitBreaker(name="db", failure_threshold=1, clock=clock, storage=storage)
        >>> b = CircuitBreaker(name="db", failure_threshold=1, clock=clock, storage=storage)
        >>> a.open()
        >>> storage.read("db")["state"].value
        'forced_open'
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float | None = None,
        on_storage_error: Literal["local", "closed", "open"] = "local",
    ) -> None:
        self._clock: Callable[[], float] = check_sync_callable("clock", clock)
        if cache_ttl is not None:
            self.cache_ttl = check_number(
                "cache_ttl", cache_ttl, positive=True, maximum=_MAX_CACHE_TTL
            )
        self.on_storage_error = check_storage_error_mode(on_storage_error)
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {}

    def _now(self) -> int:
        """The storage's time in whole microseconds, as the script reads ``TIME``."""
        return round(self._clock() * 1e6)

    def _circuit(self, name: str, now: int) -> _Circuit:
        circuit = self._circuits.get(name)
        if circuit is None:
            check_name(name)
            # A circuit made anew never reuses a generation: it starts at the time.
            circuit = self._circuits[name] = _Circuit(state=_CLOSED, gen=now, changed=now)
        return circuit

    def admit(self, name: str, config: Mapping[str, Any], *, rejected: int = 0) -> StoredState:
        """Ask to admit one call; see ``BreakerStorage.admit``."""
        with self._lock:
            now = self._now()
            op = _Run(self._circuit(name, now), config, now)
            op.observe()
            admitted = op.admit(rejected)
            return op.reply(admitted=admitted)

    def record(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        generation: int,
        outcomes: str,
        stale: str = "",
        rejected: int = 0,
    ) -> StoredState:
        """Record outcomes of calls admitted in ``generation``; see ``BreakerStorage.record``."""
        with self._lock:
            now = self._now()
            op = _Run(self._circuit(name, now), config, now)
            op.observe()
            op.record(generation, outcomes, stale, rejected)
            return op.reply()

    def force(self, name: str, state: CircuitState, *, create: bool = True) -> StoredState | None:
        """Force an operator state; see ``BreakerStorage.force``.

        Raises:
            ValueError: ``state`` is not CLOSED, FORCED_OPEN, DISABLED or METRICS_ONLY.
        """
        if state not in _OPERATOR_STATES:
            raise ValueError(
                f"state must be CLOSED, FORCED_OPEN, DISABLED or METRICS_ONLY, got state={state!r}"
            )
        with self._lock:
            now = self._now()
            if not create and name not in self._circuits:
                return None
            op = _Run(self._circuit(name, now), None, now)
            op.observe()
            op.force(state)
            return op.reply()

    def read(self, name: str) -> dict[str, Any] | None:
        """Return the circuit's stats, or None if unknown; see ``BreakerStorage.read``."""
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None:
                return None
            now = self._now()
            op = _Run(circuit, None, now)
            op.observe()
            c = circuit
            if c.kind == _TIME and c.state is not _OPEN and c.state is not _FORCED_OPEN:
                op.advance(c.size)  # held while open
            stored = op.reply()
            failures, successes, calls = c.run, c.ok, -1
            if c.state is _HALF_OPEN:
                failures, successes = 0, c.ok
            elif c.pol == _RATE:
                failures, successes, calls = c.fails, c.calls - c.fails, c.calls
            return {
                "name": name,
                "state": stored.state,
                "generation": stored.generation,
                "retry_after": stored.retry_after,
                "open_for": stored.open_for,
                "opened_at": stored.opened_at,
                "changed_at": c.changed / 1e6,
                "failure_count": failures,
                "success_count": successes,
                "failure_rate": failures / calls if calls >= max(1, c.mc) else None,
                "slow_calls": c.slow,
                "shadow_trips": c.shadow,
                "total_calls": c.n_s + c.n_f + c.n_r + c.n_i,
                "total_successes": c.n_s,
                "total_failures": c.n_f,
                "total_rejected": c.n_r,
                "total_ignored": c.n_i,
            }

    def names(self) -> list[str]:
        """Return the names of every circuit this storage holds, sorted."""
        with self._lock:
            return sorted(self._circuits)

    def __repr__(self) -> str:
        return f"InMemoryStorage(circuits={len(self._circuits)})"


InMemoryStorage.__module__ = "resilience.testing"
