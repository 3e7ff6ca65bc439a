"""Trip policies: when a closed circuit opens.

A policy is a small immutable description; each breaker makes its own tracker from it.
Trackers are not thread-safe by themselves: the breaker calls them under its lock.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resilience._validate import check_int, check_number
from resilience._windows import CountWindow, TimeWindow, _Ring

if TYPE_CHECKING:
    import itertools

__all__ = ["ConsecutiveFailures", "FailureRate", "TripPolicy"]


def read_count(counter: itertools.count[int]) -> int:
    """Return how many values ``counter`` has handed out, without drawing one."""
    return int(repr(counter)[6:-1])


class _Tracker(abc.ABC):
    """What a breaker keeps for its policy while closed (or in metrics-only mode).

    ``successes`` is the breaker's success token: the draw of its last success from an
    atomic counter of successes. While ``lock_free`` is true a success needs no call into
    the tracker at all: the breaker draws the token without its lock, and the tracker
    works out what it needs from the tokens it is handed at the next locked moment. A
    draw by a call that outlived a transition (a stray) is reported with ``stray``.
    """

    __slots__ = ()
    lock_free: bool = False

    def stray(self, drawn: int) -> None:  # noqa: B027  # most trackers ignore strays
        """Note that success token ``drawn`` belongs to a call of an earlier generation."""

    def watch(self, successes: itertools.count[int]) -> None:  # noqa: B027  # most ignore it
        """Be handed the breaker's counter of success tokens, to read (never to draw)."""

    @abc.abstractmethod
    def record(self, now: float, successes: int, failed: bool, slow: bool) -> bool:  # noqa: FBT001  # positional on the hot path
        """Record one outcome and return whether the circuit should trip."""

    @abc.abstractmethod
    def restart(self, successes: int) -> None:
        """Forget every outcome, as after a transition."""

    @abc.abstractmethod
    def counts(self, now: float, successes: int) -> tuple[int, int, float | None, int]:
        """Return ``(failure_count, success_count, failure_rate, slow_calls)`` held now."""


class TripPolicy(abc.ABC):
    """Decides when a closed circuit opens: ``ConsecutiveFailures`` or ``FailureRate``."""

    __slots__ = ()

    @property
    def _lock_free_successes(self) -> bool:
        """Whether closed successes can be recorded without the lock (by a draw alone)."""
        return False

    @property
    def timed(self) -> bool:
        """Whether the policy needs each call's start time, so the breaker reads the clock."""
        return False

    @abc.abstractmethod
    def _tracker(self) -> _Tracker:
        """Make a fresh tracker for one breaker."""


class _ConsecutiveTracker(_Tracker):
    __slots__ = ("_mark", "_run", "_threshold")
    lock_free = True  # a success only needs to exist: a draw says it does

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._run = 0  # failures in a row, valid while no success came after them
        # The breaker's last success token when the run last grew or restarted; the
        # breaker starts at -1, before any success.
        self._mark = -1

    def record(self, now: float, successes: int, failed: bool, slow: bool) -> bool:  # noqa: FBT001, ARG002  # positional (hot path); counts failures only
        if not failed:
            return False
        if successes != self._mark:
            self._run = 0
            self._mark = successes
        self._run += 1
        return self._run >= self._threshold

    def restart(self, successes: int) -> None:
        self._run = 0
        self._mark = successes

    def counts(self, now: float, successes: int) -> tuple[int, int, float | None, int]:  # noqa: ARG002  # time-free policy
        since = successes - self._mark
        return (self._run if since == 0 else 0), since, None, 0


@dataclass(frozen=True, slots=True)
class ConsecutiveFailures(TripPolicy):
    """Open after ``threshold`` failures in a row; any success starts the count again.

    This is the default policy: ``CircuitBreaker(failure_threshold=n)`` uses
    ``ConsecutiveFailures(n)``. Recording a success takes no lock.

    Args:
        threshold: consecutive failures that open the circuit, an int >= 1.
    """

    threshold: int = 5

    @property
    def _lock_free_successes(self) -> bool:
        return True

    def __post_init__(self) -> None:
        check_int("threshold", self.threshold, minimum=1)

    def _tracker(self) -> _Tracker:
        return _ConsecutiveTracker(self.threshold)


class _RateTracker(_Tracker):
    __slots__ = ("_minimum", "_policy", "_ring")

    def __init__(self, policy: FailureRate) -> None:
        self._policy = policy
        self._ring: _Ring = policy.window._ring()  # noqa: SLF001  # windows and policies are one unit
        window = policy.window
        self._minimum = (
            min(policy.minimum_calls, window.size)
            if isinstance(window, CountWindow)
            else policy.minimum_calls
        )

    def record(self, now: float, successes: int, failed: bool, slow: bool) -> bool:  # noqa: FBT001, ARG002  # positional (hot path); counts its own successes
        ring = self._ring
        ring.add(now, failed, slow)
        calls = ring.calls
        if calls < self._minimum:
            return False
        policy = self._policy
        # Divide rather than multiply the threshold: 3 / 10 >= 0.3 holds, 3 >= 0.3 * 10 does not.
        if ring.failures / calls >= policy.threshold:
            return True
        rate = policy.slow_call_rate
        return rate is not None and ring.slow / calls >= rate

    def restart(self, successes: int) -> None:  # noqa: ARG002  # counts its own successes
        self._ring.clear()  # in place: transitions happen under the breaker's lock

    def counts(self, now: float, successes: int) -> tuple[int, int, float | None, int]:  # noqa: ARG002  # counts its own successes
        ring = self._ring
        ring.advance(now)
        calls = ring.calls
        rate = ring.failures / calls if calls >= self._minimum else None
        return ring.failures, calls - ring.failures, rate, ring.slow


class _CountRateTracker(_RateTracker):
    """A failure rate over a ``CountWindow``, whose successes need no lock once it can.

    A success cannot raise a failure rate, so once the window holds ``minimum_calls``
    calls no success can trip the circuit: from then on (``lock_free``) the breaker
    records a closed success as a draw of its success token alone, and this tracker adds
    the successes drawn since its last locked moment to the window before anything else
    (``_CountRing.skip``, at C speed), keeping the window exact. Tokens drawn by calls
    that outlived a transition (strays) are reported and left out.
    """

    __slots__ = ("_drawn", "_seen", "_strays", "lock_free")

    def __init__(self, policy: FailureRate) -> None:
        super().__init__(policy)
        self._drawn: itertools.count[int] | None = None  # the breaker's success counter
        self.lock_free = False  # until the window holds minimum_calls calls
        self._seen = -1  # the success token up to which the window holds every success
        self._strays: list[int] = []  # stray tokens above _seen, not to be counted

    def _catch_up(self, successes: int) -> None:
        """Add the successes drawn after ``_seen`` up to token ``successes`` to the window."""
        seen = self._seen
        if successes <= seen:  # tokens are stored without a lock: one may land late
            return
        count = successes - seen
        strays = self._strays
        if strays:
            count -= sum(1 for token in strays if token <= successes)
            self._strays = [token for token in strays if token > successes]
        self._seen = successes
        ring = self._ring
        ring.skip(count)
        self.lock_free = ring.calls >= self._minimum

    def stray(self, drawn: int) -> None:
        if drawn > self._seen:
            self._strays.append(drawn)

    def watch(self, successes: itertools.count[int]) -> None:
        self._drawn = successes

    def record(self, now: float, successes: int, failed: bool, slow: bool) -> bool:  # noqa: FBT001  # positional (hot path)
        # A locked success has drawn its own token already: the ones before it are pending.
        self._catch_up(successes if failed else successes - 1)
        if not failed:
            self._seen = max(self._seen, successes)
        tripped = super().record(now, successes, failed, slow)
        self.lock_free = self._ring.calls >= self._minimum
        return tripped

    def restart(self, successes: int) -> None:
        super().restart(successes)
        self._seen = successes
        self._strays = []
        self.lock_free = False

    def counts(self, now: float, successes: int) -> tuple[int, int, float | None, int]:
        # Tokens are stored without a lock, so the last one stored may not be the last one
        # drawn: a read (not the recording path) catches up on every draw made so far.
        drawn = self._drawn
        self._catch_up(successes if drawn is None else max(successes, read_count(drawn) - 1))
        return super().counts(now, successes)


@dataclass(frozen=True, slots=True)
class FailureRate(TripPolicy):
    """Open when the share of failed (or slow) calls in a sliding window is too high.

    The rate is judged only once the window holds ``minimum_calls`` calls (for a
    ``CountWindow`` smaller than that, once it is full). Boundaries are inclusive: a rate
    equal to ``threshold`` opens, and a call lasting exactly ``slow_call_duration`` is slow.

    Args:
        threshold: the failure rate that opens the circuit, in (0, 1].
        window: ``CountWindow(size)`` or ``TimeWindow(seconds)``.
        minimum_calls: calls the window must hold before the rate counts, an int >= 1.
        slow_call_duration: seconds from which a call counts as slow, or None.
        slow_call_rate: the share of slow calls that opens the circuit, in (0, 1], or None.
            Needs ``slow_call_duration``.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.

    Examples:
        >>> policy = FailureRate(threshold=0.5, window=TimeWindow(30.0), minimum_calls=20)
    """

    threshold: float = 0.5
    window: CountWindow | TimeWindow = field(default_factory=CountWindow)
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    slow_call_rate: float | None = None

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold, positive=True, maximum=1.0)
        if not isinstance(self.window, CountWindow | TimeWindow):
            raise TypeError(f"window must be a CountWindow or a TimeWindow, got {self.window!r}")
        check_int("minimum_calls", self.minimum_calls, minimum=1)
        if self.slow_call_duration is not None:
            check_number("slow_call_duration", self.slow_call_duration, positive=True)
        if self.slow_call_rate is not None:
            check_number("slow_call_rate", self.slow_call_rate, positive=True, maximum=1.0)
            if self.slow_call_duration is None:
                raise ValueError(
                    f"slow_call_rate needs slow_call_duration, got slow_call_rate="
                    f"{self.slow_call_rate!r} and slow_call_duration=None"
                )

    @property
    def timed(self) -> bool:
        """Whether the breaker must time calls: for slow calls or a time window."""
        return self.slow_call_duration is not None or isinstance(self.window, TimeWindow)

    @property
    def _lock_free_successes(self) -> bool:
        return isinstance(self.window, CountWindow)

    def _tracker(self) -> _Tracker:
        if isinstance(self.window, CountWindow):
            return _CountRateTracker(self)
        return _RateTracker(self)


for _cls in (TripPolicy, ConsecutiveFailures, FailureRate):
    _cls.__module__ = "resilience"
