"""A circuit breaker whose circuit lives in a ``BreakerStorage``, shared across processes.

The breaker keeps its in-memory state machine as a cache of the shared state. Each reply
from the storage (to an admission, a recorded outcome or an operator's order) is mirrored
into it, and listeners hear the transitions this mirroring reveals. Admission is decided
from that cache while it is fresh, so a closed circuit costs one round trip per call: the
record of its outcome. A call is sent to the storage first when the cached state needs the
storage's word (a half-open trial, a recovery time that has come) or when the cache is
older than ``storage.refresh_after`` (``storage.cache_ttl`` when set).

With ``storage.cache_ttl`` set, outcomes of a closed circuit are batched and sent by the
first call after ``cache_ttl`` has passed, which also refreshes the cache.

When the storage fails (it is down, slow or refuses), the call goes on under the local
state machine, the breaker logs once, and every ``_PROBE_INTERVAL`` seconds one call asks
the storage again; its first answer resyncs the cache.
"""

from __future__ import annotations

import atexit
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from resilience import _named
from resilience._breaker import (
    _CLOSED,
    _DISABLED,
    _FAILURE,
    _FORCED_OPEN,
    _HALF_OPEN,
    _HALF_OPEN_FULL_RETRY_AFTER,
    _IGNORED,
    _METRICS_ONLY,
    _OPEN,
    _UNRECORDED,
    Change,
    CircuitBreaker,
    _Settings,
)
from resilience._critical import section
from resilience._policies import ConsecutiveFailures, FailureRate
from resilience._storage import BreakerStorage, StoredState
from resilience._windows import CountWindow
from resilience.exceptions import CircuitOpenError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from resilience._state import CircuitState

__all__ = ["SharedBreaker", "storage_config"]

logger = logging.getLogger("resilience")

_PROBE_INTERVAL: Final = 1.0  # while the storage is unreachable, ask it again this often
_BATCH_LIMIT: Final = 1000  # outcomes held before a batch is sent whatever its age
_BACKOFF_SAMPLES: Final = 16  # trips of a backoff recovery_timeout sent to the storage

# Releases of cancelled admissions in flight: the event loop keeps only weak references
# to tasks, so they are held here until done.
_RELEASES: set[asyncio.Task[None]] = set()

# The ticket of a call let through while the storage is down with on_storage_error="closed":
# like a ticket of a past generation, its outcome counts in the totals and steers nothing.
_COUNT_ONLY: Final = -2

_SUCCESS_CODES: Final = frozenset("sS")
_FAILURE_CODES: Final = frozenset("fF")


_AT_EXIT: list[bool] = []  # whether the exit flush is registered (a list: no global)


def _flush_at_exit_once() -> None:
    """Register, once per process, the flush that sends what shared breakers hold back."""
    if not _AT_EXIT:
        _AT_EXIT.append(True)
        atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    """Send every live shared breaker's unsent rejections and outcomes (SPEC §6)."""
    for breaker in _named.live():
        if isinstance(breaker, SharedBreaker) and (
            breaker._unsent or breaker._batch or breaker._stale  # noqa: SLF001  # one unit
        ):
            breaker._push()  # noqa: SLF001  # one unit


def storage_config(settings: _Settings, recovery: Callable[[int], float]) -> dict[str, Any]:
    """Describe a breaker's policy in the serialisable form storages receive.

    Raises:
        TypeError: the policy is not one a storage can evaluate.
    """
    policy = settings.policy
    config: dict[str, Any] = {
        "success_threshold": settings.success_threshold,
        "half_open_max_calls": settings.half_open_max_calls,
        "recovery": (
            [recovery(n) for n in range(1, _BACKOFF_SAMPLES + 1)]
            if callable(settings.recovery_timeout)
            else [settings.recovery_timeout]
        ),
    }
    if isinstance(policy, ConsecutiveFailures):
        config.update(
            policy="consecutive",
            threshold=policy.threshold,
            window=None,
            window_size=None,
            minimum_calls=None,
            slow_call_rate=None,
        )
    elif isinstance(policy, FailureRate):
        window = policy.window
        counted = isinstance(window, CountWindow)
        config.update(
            policy="rate",
            threshold=policy.threshold,
            window="count" if counted else "time",
            window_size=window.size if isinstance(window, CountWindow) else window.seconds,
            minimum_calls=(
                min(policy.minimum_calls, window.size)
                if isinstance(window, CountWindow)
                else policy.minimum_calls
            ),
            slow_call_rate=policy.slow_call_rate,
        )
    else:
        raise TypeError(
            "a breaker with storage needs a ConsecutiveFailures or FailureRate policy, "
            f"got policy={policy!r}"
        )
    return config


@dataclass(slots=True)
class _Request:
    """One round trip to the storage, planned under the lock and sent outside it."""

    admit: bool  # an admission; else a record
    generation: int = -1
    outcomes: str = ""
    stale: str = ""
    rejected: int = 0
    count: str = ""  # outcomes to add to the local totals once the storage has them
    ticket: int = _UNRECORDED  # the call whose outcome this is, for the local fallback
    started: float | None = None


class SharedBreaker(CircuitBreaker):
    """A ``CircuitBreaker`` made with ``storage=``: one circuit for every process."""

    __slots__ = (
        "_batch",
        "_batch_gen",
        "_config",
        "_down",
        "_probe_at",
        "_reading",
        "_refresh",
        "_rgen",
        "_rgen_at",
        "_stale",
        "_storage",
        "_synced",
        "_unsent",
        "_warned",
    )

    _storage: BreakerStorage

    def _attach(self, storage: BreakerStorage) -> None:
        if not isinstance(storage, BreakerStorage):
            raise TypeError(
                f"storage must be a BreakerStorage such as RedisStorage(...), got {storage!r}"
            )
        if self._name is None:
            raise ValueError("name is required when storage is set, got name=None")
        self._config = storage_config(self._settings, self._recovery)
        self._storage = storage
        self._fast = False  # every call must reach the storage
        self._refresh = storage.cache_ttl if storage.cache_ttl > 0 else storage.refresh_after
        self._rgen = 0  # the storage's generation of the circuit ...
        self._rgen_at = -1  # ... valid while the local generation is this one
        self._synced = -math.inf  # the clock's time of the last reply
        self._down = False
        self._warned = False  # an outage was logged and its end not yet
        self._reading = False  # a refresh of the view is under way (one at a time)
        _flush_at_exit_once()
        self._probe_at = 0.0
        self._unsent = 0  # calls rejected from the cache, not yet reported
        self._batch: list[str] = []  # outcomes of generation _batch_gen, not yet sent
        self._batch_gen = -1
        self._stale: list[str] = []  # outcomes of older generations, not yet sent

    def _fast_allowed(self) -> bool:
        return False  # every call must reach the storage

    @property
    def storage(self) -> BreakerStorage:
        """The storage that shares this circuit."""
        return self._storage

    # ------------------------------------------------------------------ calling

    async def _succeeded_async(self, ticket: int, started: float | None) -> None:
        await self._record_async(ticket, self._slow_code("s", started), started)

    async def _finish_exception_async(
        self, ticket: int, exc: BaseException, started: float | None
    ) -> None:
        await self._record_async(ticket, self._exception_code(exc, started), started)

    async def _finish_result_async(
        self, ticket: int, result: object, started: float | None
    ) -> None:
        await self._record_async(ticket, self._result_code(result, started), started)

    # ------------------------------------------------------------------ primitives

    def _acquire(self) -> int | CircuitOpenError:
        step = self._admission()
        while isinstance(step, _Request):
            try:
                reply = self._send(step)
            except Exception as exc:
                self._lost(exc, step)
                step = None
            else:
                step = self._answered(step, reply)
                if step is None:  # a flush refreshed the cache: decide again
                    step = self._admission()
        return self._while_down() if step is None else step

    async def _acquire_async(self) -> int | CircuitOpenError:
        step = self._admission()
        while isinstance(step, _Request):
            try:
                reply = await self._send_shielded(step)
            except Exception as exc:
                self._lost(exc, step)
                step = None
            else:
                step = self._answered(step, reply)
                if step is None:
                    step = self._admission()
        return self._while_down() if step is None else step

    def _succeeded(self, ticket: int, started: float | None) -> None:
        self._record(ticket, self._slow_code("s", started), started)

    def _failed(self, ticket: int, started: float | None) -> None:
        self._record(ticket, self._slow_code("f", started), started)

    def _ignored_call(self, ticket: int) -> None:
        self._record(ticket, "i", None)

    def _record(self, ticket: int, code: str, started: float | None) -> None:
        step = self._recording(ticket, code, started)
        if step is None:
            return
        try:
            reply = self._send(step)
        except Exception as exc:
            self._lost(exc, step)
            return
        self._answered(step, reply)

    async def _record_async(self, ticket: int, code: str, started: float | None) -> None:
        step = self._recording(ticket, code, started)
        if step is None:
            return
        try:
            reply = await self._send_shielded(step)
        except Exception as exc:
            self._lost(exc, step)
            return
        self._answered(step, reply)

    # ------------------------------------------------------------------ planning

    @section
    def _admission(self) -> int | CircuitOpenError | _Request | None:
        """Decide from the cache, plan the round trip that will decide, or None: go local."""
        gen = self._gen  # before the state, which transitions write first
        state = super().state  # the cached view; observes a due OPEN -> HALF_OPEN change
        now = self._settings.clock()
        with self._lock:
            if self._down:
                if now < self._probe_at:
                    return None
                self._probe_at = now + _PROBE_INTERVAL  # this call probes; the others wait
            elif now - self._synced < self._refresh:
                if state is _CLOSED or state is _METRICS_ONLY:
                    return gen
                if state is _DISABLED:
                    return _UNRECORDED
                if state is _FORCED_OPEN or state is _OPEN:
                    self._count_rejection()
                    self._unsent += 1
                    episode = self._episode
                    retry_at = None if episode is None else episode.retry_at
                    wait = None if retry_at is None else max(0.0, retry_at - now)
                    return CircuitOpenError(self._name, state, wait)
            step = self._flush() if self._batch or self._stale else None
            if step is None:
                step = _Request(admit=True, rejected=self._unsent)
                self._unsent = 0
            return step

    def _while_down(self) -> int | CircuitOpenError:
        """Admit a call while the storage cannot be reached, as ``on_storage_error`` says."""
        mode = self._storage.on_storage_error
        if mode == "local" or not self._down:
            return super()._acquire()  # this process's own copy of the circuit decides
        if mode == "closed":
            return _COUNT_ONLY
        now = self._settings.clock()
        with self._lock:
            self._count_rejection()
        return CircuitOpenError(self._name, _OPEN, max(0.0, self._probe_at - now))

    @section
    def _recording(self, ticket: int, code: str, started: float | None) -> _Request | None:
        """Plan sending an outcome, or keep it (batched, or local while the storage is down)."""
        if ticket == _UNRECORDED:
            return None
        if self._down:
            self._record_locally(ticket, code, started)
            return None
        with self._lock:
            current = ticket == self._gen and self._rgen_at == ticket
            if self._storage.cache_ttl > 0 and not (current and self._state is _HALF_OPEN):
                self._count(code)
                if current:
                    if self._batch_gen != self._rgen:
                        self._stale.extend(self._batch)
                        self._batch.clear()
                        self._batch_gen = self._rgen
                    self._batch.append(code)
                else:
                    self._stale.append(code)
                if len(self._batch) + len(self._stale) < _BATCH_LIMIT:
                    return None
                return self._flush()
            step = _Request(
                admit=False,
                generation=self._rgen if current else -1,
                outcomes=code if current else "",
                stale="" if current else code,
                rejected=self._unsent,
                count=code,
                ticket=ticket,
                started=started,
            )
            self._unsent = 0
            return step

    def _flush(self) -> _Request:
        """Plan sending the batched outcomes (the lock is held)."""
        step = _Request(
            admit=False,
            generation=self._batch_gen,
            outcomes="".join(self._batch),
            stale="".join(self._stale),
            rejected=self._unsent,
        )
        self._batch.clear()
        self._stale.clear()
        self._unsent = 0
        return step

    # ------------------------------------------------------------------ freshness

    @property
    def state(self) -> CircuitState:
        """The shared circuit's state, as of at most ``refresh_after`` seconds ago.

        A view older than that is refreshed with one round trip first (at most one per
        interval; calls through the breaker refresh it too), which also hands the
        storage the rejections and batched outcomes this process has not sent yet.
        """
        self._refresh_view()
        return super().state

    def _metrics_row(
        self,
    ) -> tuple[str, tuple[int, int, int, int], float | None, float | None, tuple[int, ...]]:
        self._refresh_view()
        return super()._metrics_row()

    def _refresh_view(self) -> None:
        """Read the shared circuit again if this process's view is older than the limit."""
        now = self._settings.clock()
        if now - self._synced < self._refresh or (self._down and now < self._probe_at):
            return
        with self._lock:
            if self._reading:  # another thread is refreshing it right now
                return
            self._reading = True
            if self._down:
                self._probe_at = now + _PROBE_INTERVAL
        try:
            self._push()
        finally:
            self._reading = False

    def _push(self) -> None:
        """Send what this process holds back (rejections, batches) and mirror the reply.

        An empty record is a read that also carries those counts, so a view refresh
        and the fleet's totals need one round trip between them.
        """
        with self._lock:
            step = self._flush()
        try:
            reply = self._send(step)
        except Exception as exc:
            self._lost(exc, step)
            return
        self._answered(step, reply)

    # ------------------------------------------------------------------ round trips

    def _send(self, step: _Request) -> StoredState:
        storage, name = self._storage, cast("str", self._name)
        if step.admit:
            return storage.admit(name, self._config, rejected=step.rejected)
        return storage.record(
            name,
            self._config,
            generation=step.generation,
            outcomes=step.outcomes,
            stale=step.stale,
            rejected=step.rejected,
        )

    async def _send_shielded(self, step: _Request) -> StoredState:
        """Send ``step`` so that cancelling the caller does not lose what it does.

        The round trip runs in a task of its own. When the caller is cancelled meanwhile
        (a timeout, a cancelled request) the round trip still completes and its reply is
        settled: the outcomes it carried join the local totals, and a call it admitted
        (perhaps the fleet's only half-open trial) is at once recorded as ignored, which
        frees its slot in the shared circuit instead of holding it until it expires.
        """
        import asyncio  # noqa: PLC0415  # loaded already: we are in a coroutine

        trip = asyncio.ensure_future(self._send_async(step))
        try:
            return await asyncio.shield(trip)
        except asyncio.CancelledError:
            trip.add_done_callback(lambda done: self._settle(step, done))
            raise

    def _settle(self, step: _Request, done: asyncio.Future[StoredState]) -> None:
        """Finish a round trip whose caller was cancelled (see ``_send_shielded``)."""
        if done.cancelled():  # the loop is closing: nothing left to settle with
            return
        error = done.exception()
        if isinstance(error, Exception):
            self._lost(error, step)
            return
        if error is not None:
            return
        ticket = self._answered(step, done.result())
        if step.admit and isinstance(ticket, int) and ticket != _UNRECORDED:
            # The admitted call will never run: free what it holds without waiting.
            release = done.get_loop().create_task(self._record_async(ticket, "i", None))
            _RELEASES.add(release)
            release.add_done_callback(_RELEASES.discard)

    async def _send_async(self, step: _Request) -> StoredState:
        storage, name = self._storage, cast("str", self._name)
        if step.admit:
            return await storage.admit_async(name, self._config, rejected=step.rejected)
        return await storage.record_async(
            name,
            self._config,
            generation=step.generation,
            outcomes=step.outcomes,
            stale=step.stale,
            rejected=step.rejected,
        )

    @section
    def _answered(self, step: _Request, reply: StoredState) -> int | CircuitOpenError | None:
        """Mirror a reply; for an admission return the ticket or the error, else None."""
        now = self._settings.clock()
        with self._lock:
            for code in step.count:
                self._count(code)
            change, back = self._mirror(reply, now, wrote=not step.admit)
            ticket: int | None = None
            if step.admit:
                if not reply.admitted:
                    self._count_rejection()
                elif reply.state is _DISABLED:
                    ticket = _UNRECORDED
                else:
                    ticket = self._gen
        if back:
            logger.info("circuit breaker %r: storage reachable again; state resynced", self._name)
        self._notify(change)
        if not step.admit:
            return None
        if ticket is not None:
            return ticket
        retry_after = reply.retry_after
        if reply.state is _HALF_OPEN:
            retry_after = _HALF_OPEN_FULL_RETRY_AFTER
        return CircuitOpenError(self._name, reply.state, retry_after)

    def _mirror(
        self, reply: StoredState, now: float, *, wrote: bool = True
    ) -> tuple[Change | None, bool]:
        """Make the cache match the storage's state (the lock is held).

        Any reply makes the breaker use the storage again, but only a reply to a write
        (``wrote``: outcomes recorded, an operator's order) ends a logged outage. A
        storage that answers reads and admissions but refuses writes (``maxmemory``, a
        read-only replica) is thus one outage, logged once, and once on recovery.
        """
        change = None
        if reply.state is not self._state:
            change = self._to(reply.state, now)
        elif reply.generation != self._rgen or self._rgen_at != self._gen:
            self._restart()
        if reply.generation != self._batch_gen and self._batch:
            self._stale.extend(self._batch)
            self._batch.clear()
        self._rgen = reply.generation
        self._rgen_at = self._gen
        episode = self._episode
        if episode is not None:  # away from CLOSED: the storage knows the times
            episode.retry_at = None if reply.retry_after is None else now + reply.retry_after
            if reply.open_for is not None:
                episode.since = now - reply.open_for
        self._synced = now
        if reply.shadow_trip:
            extras = self._extras_dict()
            extras["shadow_trips"] = extras.get("shadow_trips", 0) + 1
            logger.warning("circuit breaker %r would have opened (metrics-only mode)", self._name)
        self._down = False
        back = wrote and self._warned
        if back:
            self._warned = False
        return change, back

    @section
    def _lost(self, exc: Exception, step: _Request | None) -> None:
        """Fall back to the local state machine after the storage failed."""
        now = self._settings.clock()
        with self._lock:
            first = not self._warned
            self._warned = self._down = True
            self._probe_at = now + _PROBE_INTERVAL
            self._batch.clear()  # counted locally already; the storage will not hear of them
            self._stale.clear()
            if step is not None:
                self._unsent += step.rejected
        if first:
            logger.warning(
                "circuit breaker %r cannot reach its storage (%s: %s); "
                "using local state until it returns",
                self._name,
                type(exc).__name__,
                exc,
            )
        if step is not None and step.count:
            self._record_locally(step.ticket, step.count, step.started)

    def _record_locally(self, ticket: int, code: str, started: float | None) -> None:
        if code in _SUCCESS_CODES:
            super()._succeeded(ticket, started)
        elif code in _FAILURE_CODES:
            super()._failed(ticket, started)
        else:
            super()._ignored_call(ticket)

    def _count(self, code: str) -> None:
        """Add one outcome to this process's totals (the lock is held)."""
        if code in _SUCCESS_CODES:
            self._last_ok = next(self._successes)
        elif code in _FAILURE_CODES:
            self._failures += 1
        else:
            self._ignored += 1

    # ------------------------------------------------------------------ outcomes

    def _slow_code(self, code: str, started: float | None) -> str:
        if started is not None and self._is_slow(started, self._settings.clock()):
            return code.upper()
        return code

    def _exception_code(self, exc: BaseException, started: float | None) -> str:
        outcome = self._settings.outcome_of(exc)
        if outcome == _IGNORED:
            return "i"
        return self._slow_code("f" if outcome == _FAILURE else "s", started)

    def _result_code(self, result: object, started: float | None) -> str:
        return self._slow_code("f" if self._result_failed(result) else "s", started)

    # ------------------------------------------------------------------ operators, stats

    def _operate(self, new: CircuitState) -> None:
        try:
            reply = self._storage.force(cast("str", self._name), new)
        except Exception as exc:
            self._lost(exc, None)
            super()._operate(new)
            return
        if reply is None:  # a storage may refuse to create; ours never do here
            super()._operate(new)
            return
        now = self._settings.clock()
        with self._lock:
            change, back = self._mirror(reply, now)
        if back:
            logger.info("circuit breaker %r: storage reachable again; state resynced", self._name)
        self._notify(change)

    def get_stats(self) -> dict[str, Any]:
        """Return a snapshot of the shared circuit and of this process's calls.

        As ``CircuitBreaker.get_stats()``, but ``state``, ``failure_count``,
        ``success_count``, ``failure_rate``, ``slow_calls``, ``opened_at`` and
        ``open_for`` are the shared circuit's (read from the storage: one round trip),
        the ``total_*`` counts are this process's, ``fleet`` holds the totals of every
        process, and ``storage`` is ``"ok"``, or ``"degraded"`` while the storage cannot
        be reached and the local state stands in.
        """
        remote: dict[str, Any] | None = None
        now = self._settings.clock()
        if not self._down or now >= self._probe_at:
            if self._down:
                self._probe_at = now + _PROBE_INTERVAL  # one probe at a time
            try:
                remote = self._storage.read(cast("str", self._name))
            except Exception as exc:
                self._lost(exc, None)
        if remote is not None:
            reply = StoredState(
                state=remote["state"],
                generation=remote["generation"],
                retry_after=remote["retry_after"],
                open_for=remote["open_for"],
                opened_at=remote["opened_at"],
            )
            now = self._settings.clock()
            with self._lock:
                change, back = self._mirror(reply, now, wrote=False)
            if back:
                logger.info(
                    "circuit breaker %r: storage reachable again; state resynced", self._name
                )
            self._notify(change)
        stats = super().get_stats()
        if remote is not None:
            for key in ("failure_count", "success_count", "failure_rate", "slow_calls"):
                stats[key] = remote[key]
            stats["opened_at"] = remote["opened_at"]
            stats["fleet"] = {
                key: value for key, value in remote.items() if key.startswith("total_")
            }
        stats["storage"] = "degraded" if self._down else "ok"
        return stats
