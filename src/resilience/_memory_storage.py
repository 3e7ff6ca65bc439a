"""``InMemoryStorage``: the Redis script's state machine in Python, behind ``BreakerStorage``.

It runs the same pure state machine as the in-process breaker (``_transition``), with the
storage's own time in integer microseconds, a lease on half-open trial slots, the policy's
counts kept as the script keeps them (``_Window``) and the fleet's totals. It is the
executable specification of ``_redis_lua.SCRIPT``: each method does what one script call
does, so a test can hold the two side by side (tests/test_state_machine.py runs one
reference model against the in-process breaker, this storage and ``RedisStorage`` on a
real server). A change to the script's behaviour is made here first.

Differences that are not behaviour: circuits never expire (the script's keys have a TTL),
and the window is kept in Python lists rather than a Redis string and list.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal

from resilience import _transition as machine
from resilience._critical import section
from resilience._policies import _Tracker
from resilience._state import CLOSED, CircuitState
from resilience._storage import BreakerStorage, StoredState, check_storage_error_mode
from resilience._validate import check_name, check_number, check_sync_callable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from resilience._transition import Change, Held

__all__ = ["InMemoryStorage"]

_LEASE: Final = 30_000_000  # a trial slot not given back within 30 s is presumed lost
_DEFAULT_RECOVERY: Final = 30_000_000
_MAX_CACHE_TTL: Final = 0.1

_OPERATOR_STATES: Final = frozenset(
    {CLOSED, CircuitState.FORCED_OPEN, CircuitState.DISABLED, CircuitState.METRICS_ONLY}
)

# The window kinds of the script's ``wkk``: none, a count window, a time window.
_NO_WINDOW, _COUNT, _TIME = 0, 1, 3
# What the stats report (the script's ``pol``): run and ok, or the window's counts.
_RUN, _RATE = 1, 2


class _Window(_Tracker):
    """The policy's counts as the script keeps them: a ``_Tracker`` for ``_transition``.

    Consecutive failures and successes, or a count window (a slot per call: 1 failed +
    2 slow) or a time window (buckets of whole seconds, the current one apart), all in
    integer microseconds. ``config`` is the policy of the operation running now; the
    stats read ``pol`` and ``mc``, left by the last outcome recorded.
    """

    __slots__ = (
        "buckets",
        "calls",
        "cc",
        "cf",
        "config",
        "cs",
        "fails",
        "head",
        "kind",
        "mc",
        "nxt",
        "ok",
        "pol",
        "run",
        "size",
        "slots",
        "slow",
    )

    def __init__(self) -> None:
        self.config: Mapping[str, Any] | None = None
        self.run = 0  # consecutive failures
        self.ok = 0  # consecutive successes
        self.kind = _NO_WINDOW
        self.size: float = 0  # the window's size: calls, or seconds
        self.pol = 0  # _RUN or _RATE: which counts the stats report
        self.mc = 0  # minimum calls
        self.slots: list[int] = []  # count window: 1 failed + 2 slow
        self.buckets: deque[tuple[int, int, int, int]] = deque()  # time window: closed ones
        self.calls = self.fails = self.slow = self.nxt = self.cc = self.cf = self.cs = 0
        self.head = -1  # time window: the current bucket's index, or -1

    def _policy(self) -> Mapping[str, Any]:
        if self.config is None:  # pragma: no cover - only admit and record record outcomes
            raise AssertionError("this operation has no policy")
        return self.config

    def clear_window(self) -> None:
        self.calls = self.fails = self.slow = self.nxt = self.cc = self.cf = self.cs = 0
        self.head = -1
        self.slots = []
        self.buckets.clear()

    def restart(self, successes: int) -> None:  # noqa: ARG002  # no success tokens here
        self.run = self.ok = 0
        self.clear_window()

    def advance(self, now: int, seconds: float) -> None:
        """Move a time window to the current bucket, dropping those that left it."""
        n = math.ceil(seconds)
        index = math.floor(now / (seconds * 1000000 / n))
        if self.head < 0:
            self.head = index
            return
        if index <= self.head:  # the same bucket (or a clock that stepped back)
            return
        horizon = index - n  # buckets at or before it have left the window
        if self.head <= horizon:
            self.clear_window()
        else:
            if self.cc > 0:
                self.buckets.append((self.head, self.cc, self.cf, self.cs))
            self.cc = self.cf = self.cs = 0
            while self.buckets and self.buckets[0][0] <= horizon:
                _, calls, fails, slow = self.buckets.popleft()
                self.calls -= calls
                self.fails -= fails
                self.slow -= slow
        self.head = index

    def record(self, now: float, successes: int, failed: bool, slow: bool) -> bool:  # noqa: ARG002, FBT001  # the _Tracker signature
        if self._policy()["policy"] == "rate":
            return self._rate_record(int(now), int(failed), int(slow))
        return self._consecutive_record(int(failed))

    def _rate_record(self, now: int, failed: int, slow: int) -> bool:
        policy = self._policy()
        counted = policy["window"] == "count"
        kind = _COUNT if counted else _TIME
        size = policy["window_size"]
        if self.kind != kind or self.size != size:
            self.clear_window()
            self.kind, self.size = kind, size
        if counted:
            code = failed + 2 * slow
            if self.calls >= size:
                old = self.slots[self.nxt]
                self.fails -= old % 2
                self.slow -= old // 2
                self.slots[self.nxt] = code
            else:
                self.calls += 1
                self.slots.append(code)
            self.nxt = (self.nxt + 1) % size
        else:
            self.advance(now, size)
            self.cc += 1
            self.cf += failed
            self.cs += slow
            self.calls += 1
        self.fails += failed
        self.slow += slow
        self.pol, self.mc = _RATE, int(policy["minimum_calls"])
        if self.calls < self.mc:
            return False
        # Divide rather than multiply, as the in-memory breaker does: 3 / 10 >= 0.3 holds.
        if self.fails / self.calls >= policy["threshold"]:
            return True
        slow_rate = policy["slow_call_rate"]
        return slow_rate is not None and self.slow / self.calls >= slow_rate

    def _consecutive_record(self, failed: int) -> bool:
        self.pol, self.mc = _RUN, 0
        if failed:
            self.run += 1
            self.ok = 0
            return self.run >= int(self._policy()["threshold"])
        self.run = 0
        self.ok += 1
        return False

    def counts(self, now: float, successes: int) -> Held:  # noqa: ARG002  # the _Tracker signature
        if self.kind == _TIME:
            self.advance(int(now), self.size)
        if self.pol == _RATE:
            calls, fails = self.calls, self.fails
            rate = fails / calls if calls >= max(1, self.mc) else None
            return fails, calls - fails, rate, self.slow
        return self.run, self.ok, None, self.slow


class _Circuit:
    """One circuit: the fields of ``_transition.Record``, the storage's extras beside them."""

    __slots__ = (
        "changed",
        "fast",
        "gen",
        "held",
        "last_ok",
        "n_f",
        "n_i",
        "n_r",
        "n_s",
        "retry_at",
        "shadows",
        "since",
        "state",
        "tracker",
        "trial",
        "trial_at",
        "trial_ok",
        "trips",
    )

    def __init__(self, now: int) -> None:
        self.state = CLOSED
        self.gen = now  # a circuit made anew never reuses a generation: it starts at the time
        self.changed = now  # when it last changed state (µs)
        self.since: float | None = None  # when it left CLOSED (µs)
        self.retry_at: float | None = None  # when a trial is allowed (µs)
        self.trips = self.trial = self.trial_ok = self.shadows = 0
        self.trial_at: float = 0  # when the last slot was taken (µs)
        self.held: Held | None = None
        self.tracker = _Window()
        self.last_ok = 0  # the window counts its own successes
        self.fast = False  # a storage has no lock-free hot path
        self.n_s = self.n_f = self.n_r = self.n_i = 0  # the fleet's totals

    def wait(self, trips: int) -> float:
        """The wait after trip ``trips`` in a row (µs): the policy's list, the last repeating."""
        config = self.tracker.config
        given = () if config is None else config["recovery"]
        waits = [max(0, round(float(w) * 1e6)) for w in given]
        return waits[min(trips, len(waits)) - 1] if waits else _DEFAULT_RECOVERY


class _Run:
    """One operation on one circuit: the body of one script call."""

    __slots__ = ("c", "config", "now", "shadow_trip")

    def __init__(self, circuit: _Circuit, config: Mapping[str, Any] | None, now: int) -> None:
        self.c = circuit
        self.config = config
        circuit.tracker.config = config
        self.now = now
        self.shadow_trip = False

    def did(self, change: Change | None) -> None:
        """Note what a transition did: when the state changed, or a shadow trip."""
        if change is machine.SHADOW_TRIP:
            self.shadow_trip = True
        elif change is not None:
            self.c.changed = self.now

    def observe(self) -> None:
        """The lazy OPEN -> HALF_OPEN change every operation starts with."""
        self.did(machine.observe(self.c, self.now))

    def admit(self, rejected: int) -> bool:
        c = self.c
        c.n_r += rejected
        slots = int(self.config["half_open_max_calls"]) if self.config is not None else 1
        admitted = machine.admit(c, self.now, slots, _LEASE)
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

    def total(self, code: str) -> None:
        c = self.c
        if code in "sS":
            c.n_s += 1
        elif code in "fF":
            c.n_f += 1
        else:
            c.n_i += 1

    def outcome(self, code: str) -> None:
        """Apply one outcome of the circuit's current generation."""
        if code == "i":
            machine.release(self.c)  # a cancelled trial gives its slot back
            return
        threshold = int(self.config["success_threshold"]) if self.config is not None else 1
        failed, slow = code in "fF", code in "SF"
        self.did(machine.record(self.c, failed, slow, self.now, threshold))

    def force(self, new: CircuitState) -> None:
        self.did(machine.force(self.c, new, self.now))

    def reply(self, *, admitted: bool = True) -> StoredState:
        c = self.c
        retry_in = machine.retry_after(c, self.now)
        since = c.since
        return StoredState(
            state=c.state,
            generation=c.gen,
            admitted=admitted,
            retry_after=None if retry_in is None else retry_in / 1e6,
            open_for=None if since is None else max(0.0, (self.now - since) / 1e6),
            opened_at=None if since is None else since / 1e6,
            shadow_trip=self.shadow_trip,
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
            circuit = self._circuits[name] = _Circuit(now)
        return circuit

    @section
    def admit(self, name: str, config: Mapping[str, Any], *, rejected: int = 0) -> StoredState:
        """Ask to admit one call; see ``BreakerStorage.admit``."""
        with self._lock:
            now = self._now()
            op = _Run(self._circuit(name, now), config, now)
            op.observe()
            admitted = op.admit(rejected)
            return op.reply(admitted=admitted)

    @section
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

    @section
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

    @section
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
            stored = op.reply()
            failures, successes, rate, slow = machine.held_counts(c, now)
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
                "failure_rate": rate,
                "slow_calls": slow,
                "shadow_trips": c.shadows,
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
        """Show how many circuits the storage holds."""
        return f"InMemoryStorage(circuits={len(self._circuits)})"


InMemoryStorage.__module__ = "resilience.testing"
