"""Adaptive concurrency limits: a limit that follows the latency and failures it observes.

A ``Bulkhead`` made with an ``AdaptiveLimit`` reports every finished call to it as a sample
(round-trip time, calls in flight when it started, whether it failed) and admits calls up
to the limit the algorithm computes. Three algorithms, after the descriptions published with
Netflix's concurrency-limits library (our own code, our own small simplifications, written
down below):

- ``"aimd"`` (additive increase, multiplicative decrease, as TCP Reno): on a failure the
  limit is multiplied by 0.9; on a success while the limit is in use (at least half of it
  in flight) it grows by 1. Latency alone never lowers it, so it needs failures (timeouts
  are failures) to find the service's capacity.
- ``"gradient"``: compares the latency of the last window of calls with the no-load latency
  (the lowest window average seen), ``gradient = clamp(1.5 * no_load / rtt, 0.5, 1)``, and
  sets ``limit = limit * gradient + sqrt(limit)``: while latency stays under 1.5 times the
  no-load latency the limit grows by a queue allowance of ``sqrt(limit)``; above it the
  limit shrinks in proportion (at most halving per window). Changes are smoothed (20% per
  window).
- ``"vegas"`` (after TCP Vegas): estimates the queue the calls wait in as
  ``limit * (1 - no_load / rtt)`` and keeps it between ``alpha = 3 * log10(limit)`` and
  ``beta = 6 * log10(limit)``: a shorter queue grows the limit by ``log10(limit)``, a longer one
  shrinks it by as much; a failure also shrinks it. Its steps are not smoothed.

Samples are grouped into windows of ``max(10, limit)`` calls (about one round trip of
calls), and latency-driven algorithms act once per window on its average latency; one slow
call therefore cannot move the limit, and a whole round trip of slow calls does. While
fewer than half the limit is in use, latency-driven growth pauses: an idle service says
nothing about how much more it could take. The no-load latency is re-measured every 500
windows, as Netflix's gradient limit does: the limit drops to its square root so the queue
drains, one window is skipped, and the next window's average is the new no-load latency. A
service that became slower for good is thus not throttled forever by a minimum from better
days, and a minimum measured under load cannot creep upwards.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from resilience._validate import check_int, check_sync_callable

if TYPE_CHECKING:
    from resilience._types import Clock

__all__ = ["AdaptiveLimit"]

Algorithm: TypeAlias = Literal["aimd", "gradient", "vegas"]
_ALGORITHMS: Final = ("aimd", "gradient", "vegas")

_BACKOFF: Final = 0.9  # AIMD's multiplicative decrease (SPEC §10)
_SMOOTHING: Final = 0.2  # how far one window moves the gradient and vegas limits
_TOLERANCE: Final = 1.5  # the gradient's latency tolerance (Gradient2's default)
_MIN_WINDOW: Final = 10
_PROBE_WINDOWS: Final = 500


class AdaptiveLimit:
    """A concurrency limit that moves with observed latency and failures (for ``Bulkhead``).

    Pass it as ``Bulkhead(AdaptiveLimit(...))``: the bulkhead feeds it every finished call
    and admits calls up to ``limit``. Under overload it holds latency near the no-load
    latency and goodput near capacity, where a fixed limit lets the queue and latency grow.
    One ``AdaptiveLimit`` serves one bulkhead.

    Args:
        algorithm: ``"aimd"``, ``"gradient"`` (the default) or ``"vegas"``; see
            docs/bulkhead.md for how each moves the limit.
        initial: the starting limit (int, between ``min_limit`` and ``max_limit``).
        min_limit: the limit never goes below this (int >= 1).
        max_limit: the limit never goes above this (int >= ``min_limit``).
        clock: monotonic seconds; the bulkhead times each call with it.

    Raises:
        TypeError, ValueError: an option has the wrong type or is out of range.

    Examples:
        >>> from resilience import Bulkhead
        >>> pool = Bulkhead(AdaptiveLimit("vegas", initial=10, max_limit=100), name="db")
        >>> pool.get_stats()["limit"]
        10
    """

    __slots__ = (
        "_algorithm",
        "_clock",
        "_estimate",
        "_failed",
        "_initial",
        "_lock",
        "_max",
        "_min",
        "_no_load",
        "_owner",
        "_peak",
        "_rtt_sum",
        "_samples",
        "_windows",
        "limit",
    )

    limit: int
    """The current limit (read without a lock: an int is replaced whole)."""

    def __init__(
        self,
        algorithm: Algorithm = "gradient",
        *,
        initial: int = 20,
        min_limit: int = 1,
        max_limit: int = 200,
        clock: Clock = time.monotonic,
    ) -> None:
        if algorithm not in _ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of 'aimd', 'gradient', 'vegas', got {algorithm!r}"
            )
        self._algorithm: Algorithm = algorithm
        self._min = check_int("min_limit", min_limit, minimum=1)
        self._max = check_int("max_limit", max_limit, minimum=self._min)
        check_int("initial", initial, minimum=self._min)
        if initial > self._max:
            raise ValueError(f"initial must be <= max_limit ({self._max}), got {initial!r}")
        self._initial = initial
        self._clock: Clock = check_sync_callable("clock", clock)
        self._estimate = float(initial)
        self.limit = initial
        self._lock = threading.Lock()
        self._owner: object = None
        self._no_load: float | None = None
        self._windows = 0
        self._reset_window()

    def _reset_window(self) -> None:
        self._samples = 0
        self._rtt_sum = 0.0
        self._peak = 0
        self._failed = False

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm's name."""
        return self._algorithm

    def _options(self) -> dict[str, Any]:
        return {
            "algorithm": self._algorithm,
            "initial": self._initial,
            "min_limit": self._min,
            "max_limit": self._max,
        }

    def _claim(self, owner: object) -> None:
        """Attach to one bulkhead; a second one would mix two services' samples."""
        with self._lock:
            if self._owner is not None and self._owner is not owner:
                raise ValueError(f"{self!r} already serves another bulkhead; make one per bulkhead")
            self._owner = owner

    def _sample(self, rtt: float, in_flight: int, *, failed: bool) -> int:
        """Take one finished call into account and return the limit now in force.

        Args:
            rtt: the call's duration in seconds.
            in_flight: calls in flight when it started (itself included).
            failed: whether it raised (a timeout included).
        """
        with self._lock:
            if self._algorithm == "aimd":
                self._aimd(in_flight, failed=failed)
            else:
                self._samples += 1
                self._rtt_sum += rtt
                self._peak = max(self._peak, in_flight)
                self._failed = self._failed or failed
                if self._samples >= max(_MIN_WINDOW, self.limit):
                    self._end_window()
            return self.limit

    def _set(self, estimate: float) -> None:
        self._estimate = min(float(self._max), max(float(self._min), estimate))
        self.limit = max(self._min, int(self._estimate))

    def _aimd(self, in_flight: int, *, failed: bool) -> None:
        if failed:
            self._set(self._estimate * _BACKOFF)
        elif in_flight * 2 >= self.limit:
            self._set(self._estimate + 1.0)

    def _end_window(self) -> None:
        rtt = self._rtt_sum / self._samples
        peak, failed = self._peak, self._failed
        self._reset_window()
        self._windows += 1
        if self._windows == 0:  # the draining window of a probe
            return
        if self._windows % _PROBE_WINDOWS == 0:
            # Probe: drop to a small limit so the queue drains, skip the draining window,
            # and take the one after as the new no-load latency.
            self._set(math.sqrt(self._estimate))
            self._no_load = None
            self._windows = -1
            return
        if self._no_load is None:
            self._no_load = rtt
            return
        self._no_load = min(self._no_load, rtt)
        if rtt <= 0.0:
            return
        limit = self._estimate
        app_limited = peak * 2 < limit
        if self._algorithm == "gradient":
            if failed:
                target = limit * 0.5
            else:
                gradient = max(0.5, min(1.0, _TOLERANCE * self._no_load / rtt))
                target = limit * gradient + math.sqrt(limit)
                if app_limited and target > limit:
                    return
            self._set(limit * (1.0 - _SMOOTHING) + target * _SMOOTHING)
        else:
            # Vegas moves by log10(limit) steps already; smoothing them would stall it.
            self._set(
                self._vegas(limit, self._no_load / rtt, failed=failed, app_limited=app_limited)
            )

    @staticmethod
    def _vegas(limit: float, ratio: float, *, failed: bool, app_limited: bool) -> float:
        """Vegas's next limit from the no-load/measured latency ratio."""
        step = max(1.0, math.log10(limit))
        if failed:
            return limit - step
        queue = limit * (1.0 - ratio)
        alpha, beta = 3.0 * step, 6.0 * step
        if queue < alpha:
            return limit if app_limited else limit + step
        if queue > beta:
            return limit - step
        return limit

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimit({self._algorithm!r}, initial={self._initial}, "
            f"min_limit={self._min}, max_limit={self._max})"
        )


AdaptiveLimit.__module__ = "resilience"
