"""The in-process circuit: ``_transition``'s state machine under a lock, on the breaker's clock.

A ``CircuitBreaker`` without storage runs its calls through a ``LocalCircuit``; one with
storage runs them through a ``_stored.StoredCircuit``, which keeps a ``LocalCircuit`` as its
cached view of the shared circuit and as the fallback it runs on while the storage cannot
be reached. Both offer the same small interface (see ``_breaker``): ``acquire`` a ticket,
record the outcome (``succeeded``, ``failed``, ``ignored``), ``operate`` an operator's
order, read ``state``, ``stats`` and ``metrics_row``.

The ticket is the circuit's generation when the call was admitted: every transition
starts a new generation, so an outcome that arrives after the state has moved on still
counts in the totals but cannot steer the new state.

Locking: the lock guards the state machine and is held only for a few integer updates,
never while the user's function runs and never across an ``await``. A success in a closed
circuit under ``ConsecutiveFailures`` takes no lock at all: it draws the next value of an
``itertools.count`` (atomic in CPython) and stores it, which is enough for a failure,
under the lock, to see that a success came between it and the failure before. A
rejection by an open circuit takes no lock either: it draws from a second counter.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Final, cast

from resilience import _events
from resilience import _transition as machine
from resilience._critical import escape, section
from resilience._policies import read_count
from resilience._settings import FAILURE, SUCCESS
from resilience._state import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    CircuitState,
)
from resilience.exceptions import CircuitOpenError

if TYPE_CHECKING:
    from resilience._breaker import CircuitBreaker
    from resilience._circuit import MetricsRow
    from resilience._policies import _Tracker
    from resilience._settings import Settings
    from resilience._transition import Change, Held

__all__ = ["UNRECORDED", "LocalCircuit"]

logger = logging.getLogger("resilience")


_TRANSITION_KEYS: Final = tuple("to_" + state.value for state in CircuitState)
_NO_TRANSITIONS: Final = (0,) * len(_TRANSITION_KEYS)

UNRECORDED: Final = -1  # the ticket of a call admitted while DISABLED
HALF_OPEN_FULL_RETRY_AFTER: Final = 0.5  # trial calls are short; look again soon
_FALLBACK_RECOVERY: Final = 30.0

# A lock per breaker would cost more memory than the breaker; hold times are a few
# integer updates, so breakers share a stripe of locks.
_LOCKS = tuple(threading.Lock() for _ in range(64))
_LOCK_PICKER = itertools.count()


@section
def log(level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log on the ``resilience`` logger.

    A section: the standard library's handlers take a lock before their ``try``, so an
    interrupt landing there would leave that handler's lock held for every logger.
    """
    logger.log(level, message, *args, exc_info=exc_info)


class LocalCircuit:
    """One circuit in this process's memory; the fields of ``_transition.Record`` and more."""

    __slots__ = (
        "failures",
        "fast",
        "gen",
        "held",
        "ignored",
        "last_ok",
        "lock",
        "name",
        "next_wait",
        "owner",
        "rejected",
        "retry_at",
        "settings",
        "shadows",
        "since",
        "state",
        "successes",
        "tracker",
        "transitions",
        "trial",
        "trial_at",
        "trial_ok",
        "trips",
    )

    def __init__(self, name: str | None, settings: Settings) -> None:
        # The breaker listeners hear about, held weakly (no cycle), once one is added.
        self.owner: weakref.ref[CircuitBreaker] | None = None
        self.name = name
        self.settings = settings
        self.lock = _LOCKS[next(_LOCK_PICKER) % len(_LOCKS)]
        self.state = CLOSED
        self.gen = 0
        self.since: float | None = None
        self.retry_at: float | None = None
        self.trips = self.trial = self.trial_ok = self.shadows = 0
        self.trial_at = 0.0
        self.held: Held | None = None
        self.successes = itertools.count()
        self.last_ok = -1  # the last success's draw from ``successes``
        self.failures = 0
        self.ignored = 0
        self.rejected = itertools.count()
        self.tracker: _Tracker = settings.policy._tracker()  # noqa: SLF001  # policies are ours
        self.tracker.watch(self.successes)
        # Transitions clear ``fast`` first and set it last; the hot paths read ``gen``
        # before it, so a call admitted on the lock-free path knows its generation.
        self.fast = settings.fast and self.tracker.lock_free
        self.transitions: dict[str, int] | None = None
        # A backoff recovery_timeout's next value, evaluated outside the lock.
        self.next_wait = self.recovery(1) if callable(settings.recovery_timeout) else None

    storage = None  # an in-process circuit shares nothing

    # ------------------------------------------------------------------ admission

    def acquire(self) -> int | CircuitOpenError:
        """Admit a call and return its ticket, or return the error that rejects it."""
        gen = self.gen  # before the state, which transitions write first
        state = self.state
        if state is CLOSED or state is METRICS_ONLY:
            return gen
        if state is DISABLED:
            return UNRECORDED
        if state is FORCED_OPEN:
            next(self.rejected)  # lock-free, like the OPEN rejection below
            return CircuitOpenError(self.name, state, None)
        now = self.settings.clock()
        retry_at = self.retry_at
        if state is OPEN and retry_at is not None and now < retry_at:
            next(self.rejected)  # lock-free rejection while open: the common case
            return CircuitOpenError(self.name, state, retry_at - now)
        # Listeners hear a due OPEN -> HALF_OPEN change before the trial is admitted: an
        # interrupt raised in a listener must not find a slot taken and not yet handed out.
        self.notify(self.observe_due(now))
        return self._admit(now)

    @section
    def observe_due(self, now: float) -> Change | None:
        """Move a due OPEN circuit to HALF_OPEN and return that change, if any."""
        with self.lock:
            return self._changed(machine.observe(self, now))

    @section
    def _admit(self, now: float) -> int | CircuitOpenError:
        """Admit a trial call, or count and return the rejection (never a transition)."""
        with self.lock:
            state = self.state
            if machine.admit(self, now, self.settings.half_open_max_calls):
                return UNRECORDED if state is DISABLED else self.gen
            next(self.rejected)
            if state is HALF_OPEN:
                return CircuitOpenError(self.name, state, HALF_OPEN_FULL_RETRY_AFTER)
            # OPEN here is due only when a trip just now set a retry time already past:
            # the next call (or read of ``state``) moves it to HALF_OPEN.
            return CircuitOpenError(self.name, state, machine.retry_after(self, now))

    # The async forms of the interface: an in-process circuit never waits, so they run
    # the sync ones; a storage-backed circuit awaits its storage there.

    async def acquire_async(self) -> int | CircuitOpenError:
        """``acquire`` for the async call forms."""
        return self.acquire()

    async def succeeded_async(self, ticket: int, started: float | None) -> None:
        """``succeeded`` for the async call forms."""
        self.succeeded(ticket, started)

    async def finish_exception_async(
        self, ticket: int, exc: BaseException, started: float | None
    ) -> None:
        """``finish_exception`` for the async call forms."""
        self.finish_exception(ticket, exc, started)

    async def finish_result_async(self, ticket: int, result: object, started: float | None) -> None:
        """``finish_result`` for the async call forms."""
        self.finish_result(ticket, result, started)

    # ------------------------------------------------------------------ outcomes

    @section
    def succeeded(self, ticket: int, started: float | None) -> None:
        """Record a successful call admitted with ``ticket``."""
        if ticket == UNRECORDED:
            return
        if ticket != self.gen:
            self.stray(next(self.successes))  # counted, but it cannot steer what it outlived
            return
        if started is None and self.state is not HALF_OPEN and self.tracker.lock_free:
            drawn = next(self.successes)  # the draw is the record: see the tracker
            if ticket == self.gen:
                self.last_ok = drawn
            else:
                self.stray(drawn)
            return
        now = self.settings.clock()
        change = None
        with self.lock:
            drawn = next(self.successes)
            if ticket == self.gen:
                self.last_ok = drawn
                change = machine.record(
                    self,
                    False,  # noqa: FBT003  # positional: the recording hot path
                    started is not None and self.is_slow(started, now),
                    now,
                    self.settings.success_threshold,
                )
                if change is not None:
                    self._changed(change)
                elif not self.fast and self.tracker.lock_free:
                    self._refast()  # the window has filled up to minimum_calls
        if change is not None:
            self.notify(change)

    @section
    def failed(self, ticket: int, started: float | None) -> None:
        """Record a failed call admitted with ``ticket``."""
        if ticket == UNRECORDED:
            return
        now = self.settings.clock()  # read before the lock: the clock may be user code
        change = None
        with self.lock:
            self.failures += 1
            if ticket == self.gen:
                change = machine.record(
                    self,
                    True,  # noqa: FBT003  # positional: the recording hot path
                    started is not None and self.is_slow(started, now),
                    now,
                    self.settings.success_threshold,
                )
                if change is not None:
                    self._changed(change)
                elif not self.fast and self.tracker.lock_free:
                    self._refast()  # the window has filled up to minimum_calls
        if change is not None:
            self.notify(change)

    @section
    def ignored_call(self, ticket: int) -> None:
        """Record a call whose outcome counts as neither success nor failure."""
        if ticket == UNRECORDED:
            return
        with self.lock:
            self.ignored += 1
            if ticket == self.gen:
                machine.release(self)  # a cancelled trial frees its slot

    @section
    def finish_exception(self, ticket: int, exc: BaseException, started: float | None) -> None:
        """Record a call that raised ``exc``, as the breaker's filters classify it."""
        outcome = self.settings.outcome_of(exc)
        if outcome == FAILURE:
            self.failed(ticket, started)
        elif outcome == SUCCESS:
            self.succeeded(ticket, started)
        else:
            self.ignored_call(ticket)

    @section
    def finish_result(self, ticket: int, result: object, started: float | None) -> None:
        """Record a call that returned ``result`` (``failure_on_result`` may fail it)."""
        settings = self.settings
        if settings.failure_on_result is not None and settings.result_failed(result, self.name):
            self.failed(ticket, started)
        else:
            self.succeeded(ticket, started)

    def record_code(self, ticket: int, code: str, started: float | None) -> None:
        """Record an outcome given as a storage's code: ``s``/``f``/``i`` (upper: slow)."""
        if code in "sS":
            self.succeeded(ticket, started)
        elif code in "fF":
            self.failed(ticket, started)
        else:
            self.ignored_call(ticket)

    def count(self, code: str) -> None:
        """Add one outcome the storage has recorded to this process's totals (lock held)."""
        if code in "sS":
            self.last_ok = next(self.successes)
        elif code in "fF":
            self.failures += 1
        else:
            self.ignored += 1

    def is_slow(self, started: float | None, now: float) -> bool:
        """Whether a call started at ``started`` and ended ``now`` counts as slow."""
        limit = self.settings.slow_after
        return started is not None and limit is not None and now - started >= limit

    # ------------------------------------------------------------------ transitions

    def _changed(self, change: Change | None) -> Change | None:
        """Book what the state machine did (the lock is held).

        A transition cleared ``fast`` first; it is set again last, once the state, the
        generation and the counts are final.
        """
        if change is None:
            return None
        if change is not machine.SHADOW_TRIP:
            transitions = self.transitions
            if transitions is None:
                transitions = self.transitions = {}
            key = "to_" + change[1].value
            transitions[key] = transitions.get(key, 0) + 1
        self._refast()
        return change

    def _refast(self) -> None:
        """Set ``fast`` again after a transition or a restart (the lock is held)."""
        state = self.state
        self.fast = (
            (state is CLOSED or state is METRICS_ONLY)
            and self.settings.fast
            and self.tracker.lock_free
        )

    @section
    def stray(self, drawn: int) -> None:
        """Note a success token drawn by a call that outlived a transition."""
        with self.lock:
            self.tracker.stray(drawn)

    def move(self, new: CircuitState, now: float) -> Change | None:
        """Move to ``new`` as a storage's reply says (the lock is held)."""
        return self._changed(machine.move(self, new, now))

    def restart(self) -> None:
        """Start a new generation in the same state, as a storage's reply says (lock held)."""
        machine.restart(self)
        self._refast()

    def wait(self, trips: int) -> float:  # noqa: ARG002  # the n is known ahead
        """The wait after trip ``trips``: a backoff was evaluated ahead, outside the lock."""
        wait = self.next_wait
        return wait if wait is not None else cast("float", self.settings.recovery_timeout)

    def recovery(self, trips: int) -> float:
        """Return the wait after trip ``trips``; a backoff runs here, never under the lock."""
        timeout = self.settings.recovery_timeout
        if not callable(timeout):
            return timeout
        try:
            wait = float(timeout(trips))
        except Exception:
            log(
                logging.ERROR,
                "recovery_timeout backoff of breaker %r raised; waiting %ss",
                self.name,
                _FALLBACK_RECOVERY,
                exc_info=True,
            )
            return _FALLBACK_RECOVERY
        if not math.isfinite(wait):
            log(
                logging.ERROR,
                "recovery_timeout backoff of breaker %r returned %r; waiting %ss",
                self.name,
                wait,
                _FALLBACK_RECOVERY,
            )
            return _FALLBACK_RECOVERY
        return max(0.0, wait)

    @escape
    def notify(self, change: Change | None) -> None:
        """Log a transition and tell the listeners, outside the lock."""
        if change is None:
            return
        name = self.name
        if change is machine.SHADOW_TRIP:
            log(logging.WARNING, "circuit breaker %r would have opened (metrics-only mode)", name)
            return
        old, new = change
        if (new is OPEN or new is CLOSED) and callable(self.settings.recovery_timeout):
            # Two trips so close together that this has not run between them share a value.
            self.next_wait = self.recovery(self.trips + 1)
        level = logging.WARNING if new is OPEN or new is FORCED_OPEN else logging.INFO
        log(level, "circuit breaker %r: %s -> %s", name, old.value, new.value)
        if _events.subscribers:
            _events.emit(
                "state_change", "circuit_breaker", name, from_state=old.value, to_state=new.value
            )
        owner = self.owner
        breaker = None if owner is None else owner()
        if breaker is None:
            return
        for listener in breaker._listeners:  # noqa: SLF001  # the facade and its circuit
            try:
                listener(breaker, old, new)
            except Exception:
                log(
                    logging.ERROR,
                    "listener %r of circuit breaker %r raised",
                    listener,
                    name,
                    exc_info=True,
                )

    # ------------------------------------------------------------------ operators, views

    @section
    def operate(self, new: CircuitState) -> None:
        """An operator's order: move to ``new`` (closing a closed circuit clears it)."""
        now = self.settings.clock()
        with self.lock:
            change = self._changed(machine.force(self, new, now))
            self._refast()  # closing a closed circuit restarts it: no change, fast cleared
        self.notify(change)

    def current_state(self) -> CircuitState:
        """The state; an open circuit whose recovery time has come moves to HALF_OPEN."""
        state = self.state
        retry_at = self.retry_at
        if state is OPEN and retry_at is not None:
            now = self.settings.clock()
            if now >= retry_at:
                self.notify(self.observe_due(now))
                return self.state
        return state

    @section
    def stats(self) -> dict[str, Any]:
        """Return ``get_stats()``'s snapshot of this circuit."""
        self.current_state()  # observes a due OPEN -> HALF_OPEN change first
        now = self.settings.clock()  # read before the lock: the clock may be user code
        with self.lock:
            state = self.state
            successes = read_count(self.successes)
            rejected = read_count(self.rejected)
            failure_count, success_count, rate, slow = machine.held_counts(self, now)
            transitions = dict(self.transitions or {})
            since = self.since
            stats: dict[str, Any] = {
                "name": self.name,
                "state": state.value,
                "failure_count": failure_count,
                "success_count": success_count,
                "total_calls": successes + self.failures + rejected + self.ignored,
                "total_successes": successes,
                "total_failures": self.failures,
                "total_rejected": rejected,
                "total_ignored": self.ignored,
                "failure_rate": rate,
                "slow_calls": slow,
            }
        stats["opened_at"] = None if since is None else time.time() - (now - since)
        stats["open_for"] = None if since is None else now - since
        stats["shadow_trips"] = self.shadows
        stats["transitions"] = {s.value: transitions.get("to_" + s.value, 0) for s in CircuitState}
        return stats

    @section
    def metrics_row(self) -> MetricsRow:
        """Return what metrics and health read, as ``stats()`` would report it, cheaply.

        ``(state, (successes, failures, rejected, ignored), failure_rate, open_for,
        transitions)``, transitions being entries into each ``CircuitState`` in
        definition order. A scrape of many breakers calls this once per breaker.
        """
        if self.state is OPEN:
            self.current_state()  # observes a due OPEN -> HALF_OPEN change first
        now = self.settings.clock()
        with self.lock:
            state = self.state
            rate = machine.held_counts(self, now)[2]
            totals = (
                read_count(self.successes),
                self.failures,
                read_count(self.rejected),
                self.ignored,
            )
            since = self.since
            transitions = self.transitions
            entered = (
                _NO_TRANSITIONS
                if transitions is None
                else tuple(transitions.get(key, 0) for key in _TRANSITION_KEYS)
            )
        return state.value, totals, rate, None if since is None else now - since, entered


_BIRTH = threading.Lock()  # makes a lazy circuit's LocalCircuit exactly once


class LazyCircuit:
    """The in-process circuit of a breaker that has not been used yet.

    Creating a breaker makes only this: its ``LocalCircuit`` (counters, tracker, the state
    machine's fields) is made on the first touch, and the breaker then holds it directly,
    so creating many breakers costs little and the hot path is unchanged. Until then it
    reads as a closed circuit off the hot path (``fast`` False, ``gen`` 0, no storage);
    any other attribute is the made circuit's (``owner`` and ``last_ok`` written too).
    """

    __slots__ = ("_born", "_name", "_owner", "_settings")

    fast = False
    gen = 0
    storage = None

    def __init__(self, owner: CircuitBreaker, name: str | None, settings: Settings) -> None:
        self._owner = weakref.ref(owner)
        self._name = name
        self._settings = settings
        self._born: LocalCircuit | None = None

    def born(self) -> LocalCircuit:
        """The circuit, made now if it was not yet; the breaker holds it from then on."""
        circuit: LocalCircuit | None = self._born
        if circuit is not None:
            return circuit
        # Made outside the lock: making it may run user code (a backoff recovery_timeout),
        # which may touch other breakers. Two threads may both make one; the first wins.
        return self._install(LocalCircuit(self._name, self._settings))

    @section
    def _install(self, made: LocalCircuit) -> LocalCircuit:
        """Keep ``made`` unless another thread was first, and hand it to the breaker."""
        with _BIRTH:
            circuit = self._born
            if circuit is None:
                circuit = self._born = made
                owner = self._owner()
                if owner is not None:
                    owner._circuit = circuit  # noqa: SLF001  # the facade's own field
        return circuit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.born(), name)

    # The fields the breaker writes as well as reads.

    @property
    def owner(self) -> weakref.ref[CircuitBreaker] | None:
        """The made circuit's ``owner``."""
        return self.born().owner

    @owner.setter
    def owner(self, ref: weakref.ref[CircuitBreaker] | None) -> None:
        self.born().owner = ref

    @property
    def last_ok(self) -> int:
        """The made circuit's ``last_ok``."""
        return self.born().last_ok

    @last_ok.setter
    def last_ok(self, drawn: int) -> None:
        self.born().last_ok = drawn
