"""The circuit's state machine as pure transitions: no lock, no clock, no I/O.

Every circuit runs these functions: the in-process one (``_local.LocalCircuit``, under its
lock, with its clock's time) and ``resilience.testing.InMemoryStorage`` (under the
storage's lock, with the storage's time in microseconds), which is in turn the executable
specification of the Redis script. Each function takes the circuit's record and the time
``now`` read by the caller, and returns what it decided: an admission, or the change of
state it made, if any. The callers own everything around it: locking, reading the clock,
counting totals, telling listeners.

A circuit's record is any object with the attributes of ``Record``: the state, its
generation (every transition starts a new one, and so does ``reset()`` of a closed
circuit), when it left CLOSED (``since``), when a trial call is due (``retry_at``), trips
in a row, the half-open trial slots taken and the successful trials, when the last slot was
taken (for a storage's lease), the counts held while OPEN (SPEC §8) and shadow trips.

Time is a plain number in the caller's unit (seconds in process, microseconds in the
storage); the record's ``wait(n)`` gives, in the same unit, the wait after the n-th trip in
a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from resilience._state import CLOSED, FORCED_OPEN, HALF_OPEN, METRICS_ONLY, OPEN, CircuitState

if TYPE_CHECKING:
    from resilience._policies import _Tracker

__all__ = [
    "SHADOW_TRIP",
    "Change",
    "Held",
    "Record",
    "admit",
    "force",
    "held_counts",
    "move",
    "observe",
    "record",
    "release",
    "restart",
    "retry_after",
]

Change = tuple[CircuitState, CircuitState]
# What a policy holds: (failure_count, success_count, failure_rate, slow_calls).
Held = tuple[int, int, float | None, int]


# What ``record`` returns for a trip that metrics-only mode only counts: not a change.
SHADOW_TRIP: Final[Change] = (METRICS_ONLY, OPEN)


class Record(Protocol):
    """The fields one circuit keeps; the callers' classes provide them as attributes."""

    state: CircuitState
    gen: int
    since: float | None  # when it left CLOSED, while away from it
    retry_at: float | None  # when OPEN: when a trial call is allowed
    trips: int  # trips in a row: the n of a backoff recovery
    trial: int  # half-open trial slots taken
    trial_ok: int  # successful trial calls in this HALF_OPEN
    trial_at: float  # when the last trial slot was taken
    held: Held | None  # while OPEN or FORCED_OPEN: the counts that opened it
    shadows: int  # trips a metrics-only circuit would have made
    last_ok: int  # the success token the tracker reads (see ``_Tracker``)
    # Whether a closed circuit takes its owner's lock-free hot path. Every transition
    # clears it first, before anything else moves; the owner sets it again afterwards.
    fast: bool

    def wait(self, trips: int) -> float:
        """The wait before a trial call after trip ``trips`` in a row (pure: no user code)."""

    @property
    def tracker(self) -> _Tracker:
        """What the policy counts while CLOSED or METRICS_ONLY."""


def move(c: Record, new: CircuitState, now: float) -> Change | None:
    """Move the circuit to ``new`` (nothing when it is there already) and return the change.

    Every change starts a new generation and the policy's counts afresh. Opening keeps the
    counts that opened it (``held``) for the stats, and sets when a trial call is due.
    """
    old = c.state
    if old is new:
        return None
    c.fast = False
    if new is OPEN or new is FORCED_OPEN or new is HALF_OPEN:
        if c.since is None:
            c.since = now
        if new is not HALF_OPEN and old is not OPEN:
            # Operators look at the counts that opened it: keep them while it is open.
            c.held = (
                (int(new is OPEN), c.trial_ok, None, 0)  # a failed trial
                if old is HALF_OPEN
                else c.tracker.counts(now, c.last_ok)
            )
        if new is OPEN:
            c.trips += 1
            c.retry_at = now + c.wait(c.trips)
        elif new is FORCED_OPEN:
            c.retry_at = None
    else:
        c.since = c.retry_at = c.held = None
        c.trips = 0
    c.state = new
    restart(c)
    return old, new


def restart(c: Record) -> None:
    """Start a new generation: the policy's counts and the trial slots begin afresh."""
    c.fast = False
    c.gen += 1
    c.trial = c.trial_ok = 0
    c.tracker.restart(c.last_ok)


def observe(c: Record, now: float) -> Change | None:
    """Make the lazy OPEN -> HALF_OPEN change once the recovery time has come."""
    retry_at = c.retry_at
    if c.state is OPEN and retry_at is not None and now >= retry_at:
        return move(c, HALF_OPEN, now)
    return None


def admit(c: Record, now: float, slots: int, lease: float | None = None) -> bool:
    """Decide whether one call is admitted, taking a half-open trial slot when one is free.

    ``lease``: a slot taken longer ago than this is presumed lost (a process that took it
    died) and the slots are given back; None keeps slots until they are released.
    Call ``observe`` first: an OPEN circuit whose recovery time has come rejects here.
    """
    state = c.state
    if state is HALF_OPEN:
        if c.trial >= slots and lease is not None and now - c.trial_at >= lease:
            c.trial = 0
        if c.trial < slots:
            c.trial += 1
            c.trial_at = now
            return True
        return False
    return state is not OPEN and state is not FORCED_OPEN


def retry_after(c: Record, now: float) -> float | None:
    """Time until a trial call is allowed while OPEN (never negative), else None."""
    retry_at = c.retry_at
    if c.state is OPEN and retry_at is not None:
        return max(0.0, retry_at - now)
    return None


def record(
    c: Record,
    failed: bool,  # noqa: FBT001  # positional: the recording hot path
    slow: bool,  # noqa: FBT001
    now: float,
    success_threshold: int,
) -> Change | None:
    """Apply the outcome of a call admitted in the current generation.

    Returns the change it made, ``SHADOW_TRIP`` for a trip a metrics-only circuit only
    counts, or None.
    """
    state = c.state
    if state is HALF_OPEN:
        c.trial = max(0, c.trial - 1)
        if failed:
            return move(c, OPEN, now)
        c.trial_ok += 1
        if c.trial_ok >= success_threshold:
            return move(c, CLOSED, now)
        return None
    if (state is CLOSED or state is METRICS_ONLY) and c.tracker.record(
        now, c.last_ok, failed, slow
    ):
        if state is METRICS_ONLY:
            c.shadows += 1
            restart(c)
            return SHADOW_TRIP
        return move(c, OPEN, now)
    return None


def release(c: Record) -> None:
    """Give back the trial slot of a call that counts as neither success nor failure."""
    if c.state is HALF_OPEN:
        c.trial = max(0, c.trial - 1)


def force(c: Record, new: CircuitState, now: float) -> Change | None:
    """An operator's order: move to ``new``; closing a closed circuit still clears it."""
    change = move(c, new, now)
    if change is None and new is CLOSED:
        restart(c)
    return change


def held_counts(c: Record, now: float) -> Held:
    """What the stats report as the policy's counts (SPEC §8).

    In HALF_OPEN the successful trials so far; while OPEN or FORCED_OPEN the counts that
    opened it; else what the policy holds now.
    """
    if c.state is HALF_OPEN:
        return 0, c.trial_ok, None, 0
    held = c.held
    if held is not None:
        return held
    return c.tracker.counts(now, c.last_ok)
