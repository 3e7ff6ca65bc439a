"""One event path: every strategy reports what it does here, and every reader listens here.

Prometheus (through scrape-time totals), OpenTelemetry and user listeners all read the same
stream, so an event cannot be seen by one and missed by another. The cost rule of SPEC §14:
a call that emits no event pays nothing, and an event with nobody subscribed costs one
attribute read, because emitters check ``_events.subscribers`` before building anything::

    from resilience import _events

    if _events.subscribers:
        _events.emit("retry", "retry", self.name, exc, attempt=n, delay=delay)

Subscribers are called in the emitting thread, outside every library lock; one that raises
is logged on the ``resilience`` logger and never reaches the caller's protected call.
"""

from __future__ import annotations

import logging
import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from resilience._context import current
from resilience._critical import escape

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_log = logging.getLogger("resilience")

#: The event names of SPEC §14.
EVENT_NAMES = frozenset(
    {
        "retry",
        "give_up",
        "hedge",
        "rejected",
        "state_change",
        "throttled",
        "limited",
        "bulkhead_full",
        "injected",
    }
)

_EMPTY: Mapping[str, object] = MappingProxyType({})


class Event(NamedTuple):
    """One thing a strategy did (immutable).

    A named tuple rather than a frozen dataclass: it is built on every event, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost half of an event
    delivered to OpenTelemetry (benchmarks/bench_otel.py).

    Attributes:
        name: one of ``EVENT_NAMES``.
        kind: the strategy's kind (``"circuit_breaker"``, ``"retry"``, ``"hedge"``,
            ``"bulkhead"``, ``"rate_limiter"``, ``"throttle"``, ``"chaos"``, ...).
        strategy: the strategy's name, or ``None``.
        exception: the exception involved, if any.
        pipeline: the enclosing pipeline's name, or ``None``.
        attributes: event-specific details (``attempt``, ``delay``, ``from_state``, ...).
    """

    name: str
    kind: str
    strategy: str | None
    exception: BaseException | None = None
    pipeline: str | None = None
    attributes: Mapping[str, object] = _EMPTY


#: The subscribers, replaced whole on every change so emitters read it without a lock.
subscribers: tuple[Callable[[Event], None], ...] = ()
_lock = threading.Lock()


def subscribe(listener: Callable[[Event], None]) -> Callable[[], None]:
    """Call ``listener(event)`` for every event from now on; return a function that stops it."""
    global subscribers  # noqa: PLW0603  # copy-on-write: readers never take the lock
    if not callable(listener):
        raise TypeError(f"listener must be callable, got {listener!r}")
    with _lock:
        subscribers = (*subscribers, listener)

    def unsubscribe() -> None:
        global subscribers  # noqa: PLW0603  # same copy-on-write tuple
        with _lock:
            kept = list(subscribers)
            if listener in kept:
                kept.remove(listener)
            subscribers = tuple(kept)

    return unsubscribe


@escape  # subscribers are user code: interruptible even when a section emits
def emit(
    name: str,
    kind: str,
    strategy: str | None,
    exception: BaseException | None = None,
    **attributes: object,
) -> None:
    """Deliver one event to every subscriber; a subscriber that raises is logged and skipped."""
    listeners = subscribers
    if not listeners:
        return
    context = current()
    event = Event(
        name,
        kind,
        strategy,
        exception,
        None if context is None else context.pipeline,
        MappingProxyType(attributes) if attributes else _EMPTY,
    )
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            _log.exception("resilience: event listener %r failed on %s", listener, name)


# ---------------------------------------------------------------------- durations
# Durations are measurements, not events: they are not counted as events and have their own
# subscribers. A strategy reads the clock for them only when ``timers`` is not empty (when
# OpenTelemetry listens), then calls ``emit_timing("attempt", kind, name, seconds,
# number=n, handled=bool)``; a pipeline reports ``emit_timing("pipeline", ...)`` per call.


class Timing(NamedTuple):
    """How long one attempt or one pipeline call took (immutable, as ``Event``).

    Attributes:
        name: ``"attempt"`` (one try of the protected call, by a retry or a hedge) or
            ``"pipeline"`` (one whole call through a pipeline).
        kind: the strategy kind that measured it (``"retry"``, ``"hedge"``, ``"pipeline"``).
        strategy: the strategy's (or pipeline's) name, or ``None``.
        seconds: the duration.
        pipeline: the enclosing pipeline's name, or ``None``.
        attributes: ``number`` (the attempt, from 1) and ``handled`` (whether the strategy
            handled the attempt's outcome as a failure) for attempts.
    """

    name: str
    kind: str
    strategy: str | None
    seconds: float
    pipeline: str | None = None
    attributes: Mapping[str, object] = _EMPTY


#: The duration subscribers, replaced whole on every change (as ``subscribers``).
timers: tuple[Callable[[Timing], None], ...] = ()


def subscribe_timings(listener: Callable[[Timing], None]) -> Callable[[], None]:
    """Call ``listener(timing)`` for every duration from now on; return its stopper."""
    global timers  # noqa: PLW0603  # copy-on-write: readers never take the lock
    if not callable(listener):
        raise TypeError(f"listener must be callable, got {listener!r}")
    with _lock:
        timers = (*timers, listener)

    def unsubscribe() -> None:
        global timers  # noqa: PLW0603  # same copy-on-write tuple
        with _lock:
            kept = list(timers)
            if listener in kept:
                kept.remove(listener)
            timers = tuple(kept)

    return unsubscribe


@escape  # subscribers are user code: interruptible even when a section emits
def emit_timing(
    name: str, kind: str, strategy: str | None, seconds: float, **attributes: object
) -> None:
    """Deliver one duration to every duration subscriber; one that raises is logged."""
    listeners = timers
    if not listeners:
        return
    context = current()
    timing = Timing(
        name,
        kind,
        strategy,
        seconds,
        None if context is None else context.pipeline,
        MappingProxyType(attributes) if attributes else _EMPTY,
    )
    for listener in listeners:
        try:
            listener(timing)
        except Exception:
            _log.exception("resilience: timing listener %r failed on %s", listener, name)
