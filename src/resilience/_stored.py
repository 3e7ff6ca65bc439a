"""The storage-backed circuit: one circuit in a ``BreakerStorage``, shared across processes.

A ``StoredCircuit`` offers the same small interface as ``_local.LocalCircuit`` (see
``_breaker``) and holds one, composed rather than inherited, as its cache of the shared
state and as the fallback it runs on while the storage cannot be reached. Each reply
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
from typing import TYPE_CHECKING, Any, Final

from resilience import _named
from resilience import _transition as machine
from resilience._critical import escape, section
from resilience._local import HALF_OPEN_FULL_RETRY_AFTER, UNRECORDED, LocalCircuit
from resilience._policies import ConsecutiveFailures, FailureRate
from resilience._settings import FAILURE, IGNORED, Settings
from resilience._state import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    CircuitState,
)
from resilience._storage import BreakerStorage, StoredState
from resilience._windows import CountWindow
from resilience.exceptions import CircuitOpenError

if TYPE_CHECKING:
    import asyncio
    import itertools
    import threading
    import weakref
    from collections.abc import Callable

    from resilience._breaker import CircuitBreaker
    from resilience._circuit import MetricsRow
    from resilience._transition import Change

__all__ = ["StoredCircuit", "storage_config"]


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


_AT_EXIT: list[bool] = []  # whether the exit flush is registered (a list: no global)


def _flush_at_exit_once() -> None:
    """Register, once per process, the flush that sends what shared breakers hold back."""
    if not _AT_EXIT:
        _AT_EXIT.append(True)
        atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    """Send every live shared breaker's unsent rejections and outcomes (SPEC §6)."""
    for breaker in _named.live():
        circuit = breaker._circuit  # noqa: SLF001  # the facade and its circuit
        if isinstance(circuit, StoredCircuit) and (
            circuit.unsent or circuit.batch or circuit.stale
        ):
            circuit.push()


def storage_config(settings: Settings, recovery: Callable[[int], float]) -> dict[str, Any]:
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
    ticket: int = UNRECORDED  # the call whose outcome this is, for the local fallback
    started: float | None = None


class StoredCircuit:
    """A circuit kept in a ``BreakerStorage``: one circuit for every process sharing it."""

    __slots__ = (
        "batch",
        "batch_gen",
        "config",
        "down",
        "local",
        "name",
        "probe_at",
        "rate",
        "rate_at",
        "reading",
        "refresh",
        "rgen",
        "rgen_at",
        "settings",
        "stale",
        "storage",
        "synced",
        "unsent",
        "warned",
    )

    # The facade's hot path reads these: a shared circuit never takes it.
    fast = False
    gen = 0

    def __init__(self, name: str | None, settings: Settings, storage: BreakerStorage) -> None:
        if not isinstance(storage, BreakerStorage):
            raise TypeError(
                f"storage must be a BreakerStorage such as RedisStorage(...), got {storage!r}"
            )
        if name is None:
            raise ValueError("name is required when storage is set, got name=None")
        self.name: str = name
        self.settings = settings
        self.local = LocalCircuit(name, settings)  # the cached view, and the fallback
        self.config = storage_config(settings, self.local.recovery)
        self.storage = storage
        self.refresh = storage.cache_ttl if storage.cache_ttl > 0 else storage.refresh_after
        self.rgen = 0  # the storage's generation of the circuit ...
        self.rgen_at = -1  # ... valid while the local generation is this one
        self.synced = -math.inf  # the clock's time of the last reply
        self.down = False
        self.warned = False  # an outage was logged and its end not yet
        self.reading = False  # a refresh of the view is under way (one at a time)
        self.probe_at = 0.0
        self.unsent = 0  # calls rejected from the cache, not yet reported
        self.batch: list[str] = []  # outcomes of generation batch_gen, not yet sent
        self.batch_gen = -1
        self.stale: list[str] = []  # outcomes of older generations, not yet sent
        # The shared failure rate for metrics, read at most once per refresh interval.
        self.rate: float | None = None
        self.rate_at = -math.inf
        _flush_at_exit_once()

    @property
    def state(self) -> CircuitState:
        """The cached state, as last heard (``current_state`` refreshes it)."""
        return self.local.state

    @property
    def lock(self) -> threading.Lock:
        """The lock of the cached view, which guards this circuit's bookkeeping too."""
        return self.local.lock

    @property
    def owner(self) -> weakref.ref[CircuitBreaker] | None:
        """The breaker listeners hear about (kept by the cached view, which tells them)."""
        return self.local.owner

    @owner.setter
    def owner(self, ref: weakref.ref[CircuitBreaker] | None) -> None:
        self.local.owner = ref

    @property
    def successes(self) -> itertools.count[int]:
        """This process's successes (the interface's hot-path field; never fast here)."""
        return self.local.successes

    @property
    def last_ok(self) -> int:
        """The last success's draw, as the cached view keeps it."""
        return self.local.last_ok

    @last_ok.setter
    def last_ok(self, drawn: int) -> None:
        self.local.last_ok = drawn

    # ------------------------------------------------------------------ the interface

    def stray(self, drawn: int) -> None:
        """Never called: a shared circuit takes no hot path. Kept for the interface."""
        self.local.stray(drawn)

    def succeeded(self, ticket: int, started: float | None) -> None:
        """Record a success (one round trip, or a batch)."""
        self._record(ticket, self._slow_code("s", started), started)

    def finish_exception(self, ticket: int, exc: BaseException, started: float | None) -> None:
        """Record a call that raised ``exc``."""
        self._record(ticket, self._exception_code(exc, started), started)

    def finish_result(self, ticket: int, result: object, started: float | None) -> None:
        """Record a call that returned ``result``."""
        self._record(ticket, self._result_code(result, started), started)

    def ignored_call(self, ticket: int) -> None:
        """Record a call that counts as neither success nor failure (frees a trial slot)."""
        self._record(ticket, "i", None)

    async def succeeded_async(self, ticket: int, started: float | None) -> None:
        """``succeeded`` for the async call forms."""
        await self._record_async(ticket, self._slow_code("s", started), started)

    async def finish_exception_async(
        self, ticket: int, exc: BaseException, started: float | None
    ) -> None:
        """``finish_exception`` for the async call forms."""
        await self._record_async(ticket, self._exception_code(exc, started), started)

    async def finish_result_async(self, ticket: int, result: object, started: float | None) -> None:
        """``finish_result`` for the async call forms."""
        await self._record_async(ticket, self._result_code(result, started), started)

    # ------------------------------------------------------------------ primitives

    def acquire(self) -> int | CircuitOpenError:
        """Admit a call: from the fresh cached view, or with one round trip."""
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

    async def acquire_async(self) -> int | CircuitOpenError:
        """``acquire`` for the async call forms: the round trip is awaited."""
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

    def _record(self, ticket: int, code: str, started: float | None) -> None:
        step = self._recording(ticket, code, started)
        if step is not None:
            self._exchange(step)

    def _exchange(self, step: _Request) -> None:
        """Send a record and mirror the reply, or fall back if the storage fails."""
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
        gen = self.local.gen  # before the state, which transitions write first
        state = self.local.current_state()  # the cached view; observes a due change
        now = self.settings.clock()
        with self.local.lock:
            if self.down:
                if now < self.probe_at:
                    return None
                self.probe_at = now + _PROBE_INTERVAL  # this call probes; the others wait
            elif now - self.synced < self.refresh:
                if state is CLOSED or state is METRICS_ONLY:
                    return gen
                if state is DISABLED:
                    return UNRECORDED
                if state is FORCED_OPEN or state is OPEN:
                    next(self.local.rejected)
                    self.unsent += 1
                    retry_at = self.local.retry_at
                    wait = None if retry_at is None else max(0.0, retry_at - now)
                    return CircuitOpenError(self.name, state, wait)
            step = self._flush() if self.batch or self.stale else None
            if step is None:
                step = _Request(admit=True, rejected=self.unsent)
                self.unsent = 0
            return step

    def _while_down(self) -> int | CircuitOpenError:
        """Admit a call while the storage cannot be reached, as ``on_storage_error`` says."""
        mode = self.storage.on_storage_error
        if mode == "local" or not self.down:
            return self.local.acquire()  # this process's own copy of the circuit decides
        if mode == "closed":
            return _COUNT_ONLY
        now = self.settings.clock()
        next(self.local.rejected)  # atomic, as on the lock-free rejection path
        return CircuitOpenError(self.name, OPEN, max(0.0, self.probe_at - now))

    @section
    def _recording(self, ticket: int, code: str, started: float | None) -> _Request | None:
        """Plan sending an outcome, or keep it (batched, or local while the storage is down)."""
        if ticket == UNRECORDED:
            return None
        if self.down:
            self.local.record_code(ticket, code, started)
            return None
        with self.local.lock:
            current = ticket == self.local.gen and self.rgen_at == ticket
            if self.storage.cache_ttl > 0 and not (current and self.local.state is HALF_OPEN):
                self.local.count(code)
                if current:
                    if self.batch_gen != self.rgen:
                        self.stale.extend(self.batch)
                        self.batch.clear()
                        self.batch_gen = self.rgen
                    self.batch.append(code)
                else:
                    self.stale.append(code)
                if len(self.batch) + len(self.stale) < _BATCH_LIMIT:
                    return None
                return self._flush()
            step = _Request(
                admit=False,
                generation=self.rgen if current else -1,
                outcomes=code if current else "",
                stale="" if current else code,
                rejected=self.unsent,
                count=code,
                ticket=ticket,
                started=started,
            )
            self.unsent = 0
            return step

    def _flush(self) -> _Request:
        """Plan sending the batched outcomes (the lock is held)."""
        step = _Request(
            admit=False,
            generation=self.batch_gen,
            outcomes="".join(self.batch),
            stale="".join(self.stale),
            rejected=self.unsent,
        )
        self.batch.clear()
        self.stale.clear()
        self.unsent = 0
        return step

    # ------------------------------------------------------------------ freshness

    def current_state(self) -> CircuitState:
        """The shared circuit's state, as of at most ``refresh_after`` seconds ago.

        A view older than that is refreshed with one round trip first (at most one per
        interval; calls through the breaker refresh it too), which also hands the
        storage the rejections and batched outcomes this process has not sent yet.
        """
        self._refresh_view()
        return self.local.current_state()

    def metrics_row(self) -> MetricsRow:
        """The local view's row, refreshed, with the shared circuit's failure rate.

        The rate is read from the storage at most once per ``refresh_after``, so a
        scrape reports the rate the fleet holds (while OPEN, the rate that opened it).
        """
        self._refresh_view()
        state, totals, rate, open_for, entered = self.local.metrics_row()
        if self.settings.clock() - self.rate_at >= self.refresh and not self.down:
            self._read()
        if not self.down:
            rate = self.rate
        return state, totals, rate, open_for, entered

    def _refresh_view(self) -> None:
        """Read the shared circuit again if this process's view is older than the limit."""
        now = self.settings.clock()
        if now - self.synced < self.refresh or (self.down and now < self.probe_at):
            return
        claimed = False
        try:  # opened first: an interrupt after the claim must still give it back
            with self.local.lock:
                if self.reading:  # another thread is refreshing it right now
                    return
                self.reading = claimed = True
                if self.down:
                    self.probe_at = now + _PROBE_INTERVAL
            if self.unsent or self.batch or self.stale:
                self.push()  # a record that hands over what is held back, and reads
            else:
                self._read()
        finally:
            if claimed:
                self.reading = False

    def push(self) -> None:
        """Send what this process holds back (rejections, batches) and mirror the reply.

        An empty record is a read that also carries those counts, so a view refresh
        and the fleet's totals need one round trip between them.
        """
        with self.local.lock:
            step = self._flush()
        self._exchange(step)

    @escape  # a round trip may hang: the caller's timeout must be able to interrupt it
    def _read(self) -> dict[str, Any] | None:
        """Read the shared circuit's stats and mirror them; None if unknown or unreachable.

        Also keeps the shared failure rate for ``metrics_row``.
        """
        try:
            remote = self.storage.read(self.name)
        except Exception as exc:
            self._lost(exc, None)
            return None
        now = self.settings.clock()
        self.rate_at = now
        if remote is None:  # no process has used the circuit yet: an empty record makes it
            self.rate = None
            self.push()
            return None
        self.rate = remote["failure_rate"]
        reply = StoredState(
            state=remote["state"],
            generation=remote["generation"],
            retry_after=remote["retry_after"],
            open_for=remote["open_for"],
            opened_at=remote["opened_at"],
        )
        self._adopt(reply, wrote=False)
        return remote

    def _log_back(self) -> None:
        """Log the end of an outage: the storage answered a write again."""
        logger.info("circuit breaker %r: storage reachable again; state resynced", self.name)

    @section
    def _adopt(self, reply: StoredState, *, wrote: bool) -> None:
        """Mirror a reply to a read or an operator's order, then tell the listeners."""
        now = self.settings.clock()
        with self.local.lock:
            change, back = self._mirror(reply, now, wrote=wrote)
        if back:
            self._log_back()
        self.local.notify(change)

    # ------------------------------------------------------------------ round trips

    @escape  # a round trip may hang: the caller's timeout must be able to interrupt it
    def _send(self, step: _Request) -> StoredState:
        storage, name = self.storage, self.name
        if step.admit:
            return storage.admit(name, self.config, rejected=step.rejected)
        return storage.record(
            name,
            self.config,
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
        if step.admit and isinstance(ticket, int) and ticket != UNRECORDED:
            # The admitted call will never run: free what it holds without waiting.
            release = done.get_loop().create_task(self._record_async(ticket, "i", None))
            _RELEASES.add(release)
            release.add_done_callback(_RELEASES.discard)

    async def _send_async(self, step: _Request) -> StoredState:
        storage, name = self.storage, self.name
        if step.admit:
            return await storage.admit_async(name, self.config, rejected=step.rejected)
        return await storage.record_async(
            name,
            self.config,
            generation=step.generation,
            outcomes=step.outcomes,
            stale=step.stale,
            rejected=step.rejected,
        )

    @section
    def _answered(self, step: _Request, reply: StoredState) -> int | CircuitOpenError | None:
        """Mirror a reply; for an admission return the ticket or the error, else None."""
        now = self.settings.clock()
        with self.local.lock:
            for code in step.count:
                self.local.count(code)
            change, back = self._mirror(reply, now, wrote=not step.admit)
            ticket: int | None = None
            if step.admit:
                if not reply.admitted:
                    next(self.local.rejected)
                elif reply.state is DISABLED:
                    ticket = UNRECORDED
                else:
                    ticket = self.local.gen
        if back:
            self._log_back()
        self.local.notify(change)
        if not step.admit:
            return None
        if ticket is not None:
            return ticket
        retry_after = reply.retry_after
        if reply.state is HALF_OPEN:
            retry_after = HALF_OPEN_FULL_RETRY_AFTER
        return CircuitOpenError(self.name, reply.state, retry_after)

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
        if reply.state is not self.local.state:
            change = self.local.move(reply.state, now)
        elif reply.generation != self.rgen or self.rgen_at != self.local.gen:
            self.local.restart()
        if reply.generation != self.batch_gen and self.batch:
            self.stale.extend(self.batch)
            self.batch.clear()
        self.rgen = reply.generation
        self.rgen_at = self.local.gen
        local = self.local
        if local.since is not None:  # away from CLOSED: the storage knows the times
            local.retry_at = None if reply.retry_after is None else now + reply.retry_after
            if reply.open_for is not None:
                local.since = now - reply.open_for
        self.synced = now
        if reply.shadow_trip:
            local.shadows += 1
            if change is None:  # notify logs it, outside the lock, as for a local one
                change = machine.SHADOW_TRIP
        self.down = False
        back = wrote and self.warned
        if back:
            self.warned = False
        return change, back

    @section
    def _lost(self, exc: Exception, step: _Request | None) -> None:
        """Fall back to the local state machine after the storage failed."""
        now = self.settings.clock()
        with self.local.lock:
            first = not self.warned
            self.warned = self.down = True
            self.probe_at = now + _PROBE_INTERVAL
            self.batch.clear()  # counted locally already; the storage will not hear of them
            self.stale.clear()
            if step is not None:
                self.unsent += step.rejected
        if first:
            logger.warning(
                "circuit breaker %r cannot reach its storage (%s: %s); "
                "using local state until it returns",
                self.name,
                type(exc).__name__,
                exc,
            )
        if step is not None and step.count:
            self.local.record_code(step.ticket, step.count, step.started)

    # ------------------------------------------------------------------ outcomes

    def _slow_code(self, code: str, started: float | None) -> str:
        if started is not None and self.local.is_slow(started, self.settings.clock()):
            return code.upper()
        return code

    def _exception_code(self, exc: BaseException, started: float | None) -> str:
        outcome = self.settings.outcome_of(exc)
        if outcome == IGNORED:
            return "i"
        return self._slow_code("f" if outcome == FAILURE else "s", started)

    def _result_code(self, result: object, started: float | None) -> str:
        failed = self.settings.result_failed(result, self.name)
        return self._slow_code("f" if failed else "s", started)

    # ------------------------------------------------------------------ operators, stats

    def operate(self, new: CircuitState) -> None:
        """An operator's order, given to the storage (or, while it is down, locally)."""
        try:
            reply = self.storage.force(self.name, new)
        except Exception as exc:
            self._lost(exc, None)
            self.local.operate(new)
            return
        if reply is None:  # a storage may refuse to create; ours never do here
            self.local.operate(new)
            return
        self._adopt(reply, wrote=True)

    def stats(self) -> dict[str, Any]:
        """Return ``get_stats()``'s snapshot: the shared circuit and this process's calls."""
        remote: dict[str, Any] | None = None
        now = self.settings.clock()
        if not self.down or now >= self.probe_at:
            if self.down:
                self.probe_at = now + _PROBE_INTERVAL  # one probe at a time
            remote = self._read()
        stats = self.local.stats()
        if remote is not None:
            for key in ("failure_count", "success_count", "failure_rate", "slow_calls"):
                stats[key] = remote[key]
            stats["opened_at"] = remote["opened_at"]
            stats["fleet"] = {
                key: value for key, value in remote.items() if key.startswith("total_")
            }
        stats["storage"] = "degraded" if self.down else "ok"
        return stats
