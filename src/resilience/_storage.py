"""Where a breaker keeps its state: the ``BreakerStorage`` interface of shared backends.

A breaker without storage keeps its state in its own memory. A breaker with storage asks
the storage, which may be shared by many processes, to admit calls, record outcomes and
force states, so every process using the same storage and name shares one circuit. The
breaker's own state machine stays as its cache of the shared state and as the fallback it
runs on while the storage cannot be reached.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from collections.abc import Mapping

    from resilience._state import CircuitState

__all__ = ["BreakerStorage", "StoredState", "check_storage_error_mode"]

_ERROR_MODES = ("local", "closed", "open")


def check_storage_error_mode(value: object) -> Literal["local", "closed", "open"]:
    """Return a valid ``on_storage_error`` value, or raise naming the parameter."""
    if not isinstance(value, str):
        raise TypeError(f"on_storage_error must be a str, got {value!r}")
    if value not in _ERROR_MODES:
        raise ValueError(f"on_storage_error must be 'local', 'closed' or 'open', got {value!r}")
    return cast("Literal['local', 'closed', 'open']", value)


@dataclass(frozen=True, slots=True)
class StoredState:
    """A storage's answer: where the shared circuit stands after an operation.

    Attributes:
        state: the circuit's state.
        generation: the circuit's generation; every transition starts a new one.
        admitted: whether the call asking to be admitted was (``admit`` only; True for
            the other operations).
        retry_after: seconds until a trial call is allowed when OPEN, else None.
        open_for: seconds since the circuit last left CLOSED, or None.
        opened_at: wall-clock epoch seconds (on the storage's clock) when it left
            CLOSED, or None.
        shadow_trip: whether the outcomes just recorded made a metrics-only circuit
            count a trip it would have made.
    """

    state: CircuitState
    generation: int
    admitted: bool = True
    retry_after: float | None = None
    open_for: float | None = None
    opened_at: float | None = None
    shadow_trip: bool = False


class BreakerStorage(abc.ABC):
    """A backend that keeps named circuits' state where many breakers can share it.

    Each operation concerns one named circuit and must be atomic: two processes admitting
    a call or recording an outcome at once must never lose an update or both take the
    last half-open trial slot. Time (recovery timeouts, time windows) is read from the
    storage's own clock, so processes on different hosts agree.

    ``config`` is the breaker's policy in a serialisable form, a mapping with the keys
    ``policy`` (``"consecutive"`` or ``"rate"``), ``threshold`` (failures in a row, or the
    failure rate), ``window`` (``None``, ``"count"`` or ``"time"``), ``window_size``
    (calls, or seconds), ``minimum_calls`` (already capped at a count window's size),
    ``slow_call_rate`` (or None), ``success_threshold``, ``half_open_max_calls`` and
    ``recovery`` (seconds to stay open after the 1st, 2nd, … trip in a row; the last
    value repeats). A ``recovery_timeout`` given as a backoff is sampled for its first 16
    trips, since a function cannot run inside the storage.

    Outcomes are strings with one character per call: ``"s"`` success, ``"f"`` failure,
    ``"i"`` ignored (a cancelled trial call releases its slot), upper case for a slow
    success or failure. Only those recorded with the circuit's current ``generation`` can
    change its state; the rest count in its totals only.

    Every method may raise whatever the backend raises; the breaker catches it, falls
    back to its local state and logs once per outage, so a protected call never sees it.
    The ``*_async`` variants default to calling the blocking ones; a backend with an
    asyncio client overrides them.

    Attributes:
        cache_ttl: seconds a breaker may decide admission from its cached copy of the
            shared state while it batches outcomes (0: send each outcome at once).
        refresh_after: seconds after which a breaker that has heard nothing from the
            storage asks it again before admitting a call, or before reporting its state.
        on_storage_error: what a breaker does while the storage cannot be reached:
            ``"local"`` runs the breaker's own copy of the circuit, ``"closed"`` lets
            every call through (counted in this process's totals, never tripping), and
            ``"open"`` rejects every call.
    """

    cache_ttl: float = 0.0
    refresh_after: float = 1.0
    on_storage_error: Literal["local", "closed", "open"] = "local"

    @abc.abstractmethod
    def admit(self, name: str, config: Mapping[str, Any], *, rejected: int = 0) -> StoredState:
        """Ask to admit one call, taking a half-open trial slot when one is due and free.

        ``rejected`` counts the calls this process rejected from its cache since it last
        reported; they join the circuit's totals.
        """

    @abc.abstractmethod
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
        """Record ``outcomes`` of calls admitted in ``generation``.

        Args:
            name: the circuit's name.
            config: the breaker's policy (see the class docstring).
            generation: the generation the calls were admitted in.
            outcomes: their outcomes, in the order they finished.
            stale: outcomes of calls admitted in earlier generations (totals only).
            rejected: calls this process rejected from its cache since it last reported.
        """

    @abc.abstractmethod
    def force(self, name: str, state: CircuitState, *, create: bool = True) -> StoredState | None:
        """Move the circuit to an operator-chosen ``state``, as ``open()``/``reset()`` do.

        Forcing CLOSED when already closed still clears the policy's counts. With
        ``create=False`` an unknown circuit is left alone and None returned.
        """

    @abc.abstractmethod
    def read(self, name: str) -> dict[str, Any] | None:
        """Return the shared circuit's stats, or None if the storage has no such circuit.

        Keys: those of ``StoredState`` (``state`` as the enum) plus ``failure_count``,
        ``success_count``, ``failure_rate``, ``slow_calls``, ``shadow_trips`` and the
        fleet-wide ``total_calls``, ``total_successes``, ``total_failures``,
        ``total_rejected`` and ``total_ignored``.
        """

    async def admit_async(
        self, name: str, config: Mapping[str, Any], *, rejected: int = 0
    ) -> StoredState:
        """``admit`` for asyncio code; this default blocks the event loop while it runs."""
        return self.admit(name, config, rejected=rejected)

    async def record_async(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        generation: int,
        outcomes: str,
        stale: str = "",
        rejected: int = 0,
    ) -> StoredState:
        """``record`` for asyncio code; this default blocks the event loop while it runs."""
        return self.record(
            name, config, generation=generation, outcomes=outcomes, stale=stale, rejected=rejected
        )


BreakerStorage.__module__ = StoredState.__module__ = "resilience"
