"""The small internal interface between ``CircuitBreaker`` and the circuit behind it.

``CircuitBreaker`` (the facade: call forms, listeners, stats) picks one circuit in its
``__init__`` and talks to it only through this interface:

- ``_local.LocalCircuit``: the circuit in this process's memory;
- ``_stored.StoredCircuit``: the circuit in a ``BreakerStorage``, shared by every process
  using the same storage and name; it holds a ``LocalCircuit`` as its cached view and as
  its fallback (composed, not subclassed).

Both run the one state machine of ``_transition``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import itertools
    import threading
    import weakref

    from resilience._breaker import CircuitBreaker
    from resilience._state import CircuitState
    from resilience._storage import BreakerStorage
    from resilience.exceptions import CircuitOpenError

__all__ = ["Circuit", "MetricsRow"]

# What metrics and health() read of a breaker, once per scrape:
# (state, (successes, failures, rejected, ignored), failure_rate, open_for, transitions).
MetricsRow = tuple[str, tuple[int, int, int, int], float | None, float | None, tuple[int, ...]]


class Circuit(Protocol):
    """What a circuit offers its breaker.

    A call is admitted with ``acquire()``, which hands out a ticket (or the
    ``CircuitOpenError`` that rejects it), and its outcome recorded with that ticket.
    ``fast`` says the closed circuit takes the lock-free hot path that ``call`` inlines:
    read ``gen`` before ``fast``, run the call, draw from ``successes`` and store the draw
    in ``last_ok`` if ``gen`` has not moved (else report it with ``stray``). A shared
    circuit is never ``fast``.
    """

    fast: bool
    gen: int
    last_ok: int
    owner: weakref.ref[CircuitBreaker] | None  # whom listeners hear about, once they exist

    @property
    def successes(self) -> itertools.count[int]:
        """Draws, one per success, atomic without a lock."""

    @property
    def state(self) -> CircuitState:
        """The state as last known, without refreshing or observing anything."""

    @property
    def lock(self) -> threading.Lock:
        """The lock that guards the breaker's bookkeeping (its listeners too)."""

    @property
    def storage(self) -> BreakerStorage | None:
        """The storage sharing the circuit, or None."""

    def stray(self, drawn: int) -> None:
        """Note a success token drawn by a hot-path call that outlived a transition."""

    def acquire(self) -> int | CircuitOpenError:
        """Admit a call: its ticket, or the error that rejects it."""

    async def acquire_async(self) -> int | CircuitOpenError:
        """``acquire`` for the async call forms."""

    def succeeded(self, ticket: int, started: float | None) -> None:
        """Record a success."""

    def finish_exception(self, ticket: int, exc: BaseException, started: float | None) -> None:
        """Record a call that raised ``exc``, as the breaker's filters classify it."""

    def finish_result(self, ticket: int, result: object, started: float | None) -> None:
        """Record a call that returned ``result``."""

    def ignored_call(self, ticket: int) -> None:
        """Record a call that counts as neither success nor failure."""

    async def succeeded_async(self, ticket: int, started: float | None) -> None:
        """``succeeded`` for the async call forms."""

    async def finish_exception_async(
        self, ticket: int, exc: BaseException, started: float | None
    ) -> None:
        """``finish_exception`` for the async call forms."""

    async def finish_result_async(self, ticket: int, result: object, started: float | None) -> None:
        """``finish_result`` for the async call forms."""

    def operate(self, new: CircuitState) -> None:
        """An operator's order: move to ``new``."""

    def current_state(self) -> CircuitState:
        """The state, observing a due OPEN -> HALF_OPEN change (and refreshing a stale view)."""

    def stats(self) -> dict[str, Any]:
        """``get_stats()``'s snapshot."""

    def metrics_row(self) -> MetricsRow:
        """What metrics and health read, cheaply."""
