"""Fault injection: make a share of calls fail, slow down, lie or misbehave, on purpose.

``Chaos`` (SPEC §13) is a strategy and a decorator. Each call, with probability ``rate``,
it injects what it was given, in this order: ``behavior()`` runs; the call waits
``latency`` seconds; then ``fault`` is raised, or ``result`` is returned, without calling
the function. Otherwise the call runs untouched. Put it innermost in a ``Pipeline``, so
every strategy outside it (retry, breaker, timeout, fallback) sees the injected trouble as
if the dependency had caused it.

Three switches, strongest first: ``RESILIENCE_CHAOS=off`` in the environment disarms every
``Chaos`` in the process; ``enabled=False`` makes one inert (its decorator returns the
function itself, so it costs nothing); ``enabled=callable`` is asked on every call (a
feature flag, a header, a time of day).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar

from resilience import _events, _observed
from resilience._validate import (
    check_callable,
    check_name,
    check_number,
    check_sync_callable,
    is_coroutine_function,
)
from resilience._wrap import wrap

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from resilience._observed import Family
    from resilience._strategy import StrategyInfo

__all__ = ["Chaos"]

_log = logging.getLogger("resilience")

P = ParamSpec("P")
R = TypeVar("R")

InjectionKind = Literal["fault", "latency", "result", "behavior"]
KINDS: Final[tuple[InjectionKind, ...]] = ("fault", "latency", "result", "behavior")

#: The environment variable that disarms every Chaos in the process.
KILL_SWITCH: Final = "RESILIENCE_CHAOS"
_OFF: Final = frozenset({"off", "0", "false", "no"})


class _Unset(Enum):
    """The marker for "no ``result`` given" (``None`` is a result one may inject)."""

    UNSET = "unset"


UNSET: Final = _Unset.UNSET


def killed() -> bool:
    """Return True when ``RESILIENCE_CHAOS`` says off (``off``, ``0``, ``false``, ``no``)."""
    value = os.environ.get(KILL_SWITCH)
    return value is not None and value.strip().lower() in _OFF


async def _asyncio_sleep(seconds: float) -> None:
    """``asyncio.sleep``, imported when async code first sleeps rather than at import."""
    import asyncio  # noqa: PLC0415  # already loaded by then: the caller is async

    await asyncio.sleep(seconds)


def _close_awaitable(value: object, what: str) -> None:
    """Refuse an awaitable returned to sync code, closing it so no warning is left behind."""
    if hasattr(value, "__await__"):
        close = getattr(value, "close", None)
        if close is not None:
            close()
        raise TypeError(f"{what} returned an awaitable; it can only be used with async code")


class Chaos:
    """Inject faults, latency, results or behaviour into a share of calls.

    Args:
        fault: an exception to raise, or a callable (an exception class, say) returning a
            fresh one each time. A class or factory is best: one instance raised over and
            over keeps growing the same object.
        latency: seconds to wait before the call (or before the fault or result).
        result: a value returned in place of calling the function.
        behavior: a function run first, for side effects (drop a connection, fill a
            disk). In async code an awaitable it returns is awaited. What it raises
            propagates as the call's error.
        rate: the probability, in [0, 1], that a call is injected.
        enabled: a bool, or a callable asked on every call; False leaves calls untouched.
            A callable that raises is logged and counts as False.
        rng: the random source (seed it to make the injections reproducible).
        sleep: how to wait ``latency`` (``time.sleep``; async code uses ``asyncio.sleep``
            unless given a coroutine function, which is awaited).
        name: names the strategy in metrics, events and ``health()``.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: nothing to inject, both ``fault`` and ``result`` given, or a number
            out of range.

    Examples:
        >>> import random
        >>> from resilience.chaos import Chaos
        >>> chaos = Chaos(fault=ConnectionError, rate=1.0, rng=random.Random(1))
        >>> @chaos
        ... def fetch() -> str:
        ...     return "ok"
        >>> try:
        ...     fetch()
        ... except ConnectionError:
        ...     print("injected")
        injected
        >>> chaos.get_stats()["total_injected"]["fault"]
        1
    """

    __slots__ = (
        "__weakref__",
        "_behavior",
        "_calls",
        "_enabled",
        "_fault",
        "_injected",
        "_latency",
        "_lock",
        "_name",
        "_rate",
        "_result",
        "_rng",
        "_sleep",
        "_steps",
    )

    def __init__(
        self,
        *,
        fault: BaseException | Callable[[], BaseException] | None = None,
        latency: float | None = None,
        result: Any = UNSET,
        behavior: Callable[[], Any] | None = None,
        rate: float = 0.001,
        enabled: bool | Callable[[], bool] = True,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        name: str | None = None,
    ) -> None:
        if fault is not None and not isinstance(fault, BaseException):
            if isinstance(fault, type) and not issubclass(fault, BaseException):
                raise TypeError(
                    f"fault must be an exception, an exception class or a function "
                    f"returning one, got {fault!r}"
                )
            check_sync_callable("fault", fault)
        if latency is not None:
            latency = check_number("latency", latency, minimum=0.0)
        check_callable("behavior", behavior, optional=True)
        if fault is not None and result is not UNSET:
            raise ValueError(f"give fault or result, not both: fault={fault!r}, result={result!r}")
        if fault is None and latency is None and result is UNSET and behavior is None:
            raise ValueError("Chaos needs something to inject: fault, latency, result or behavior")
        if not isinstance(enabled, bool):
            check_sync_callable("enabled", enabled)
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, got {rng!r}")
        self._fault = fault
        self._latency = latency
        self._result = result
        self._behavior = behavior
        self._rate = check_number("rate", rate, minimum=0.0, maximum=1.0)
        self._enabled = enabled
        self._rng = random.Random() if rng is None else rng  # noqa: S311  # not cryptography
        self._sleep = check_callable("sleep", sleep)
        self._name = check_name(name, optional=True)
        # The kinds this Chaos injects, in the order they happen; counted together.
        given: dict[InjectionKind, bool] = {
            "behavior": behavior is not None,
            "latency": latency is not None,
            "fault": fault is not None,
            "result": result is not UNSET,
        }
        self._steps = tuple(kind for kind, present in given.items() if present)
        self._lock = threading.Lock()
        self._calls = 0
        self._injected = dict.fromkeys(KINDS, 0)
        if self._name is not None:
            _observed.observe(self)

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str | None:
        """The name given, or ``None``."""
        return self._name

    @property
    def rate(self) -> float:
        """The probability that a call is injected."""
        return self._rate

    # ------------------------------------------------------------------ deciding

    def _decide(self) -> bool:
        """Return True if this call is injected, counting it (enabled calls only).

        The kill switch is read only for a call that would be injected: reading the
        environment costs about a microsecond, which the calls left alone never pay.
        """
        enabled = self._enabled
        if enabled is False or (enabled is not True and not self._ask(enabled)):
            return False
        inject = self._rng.random() < self._rate and not killed()
        with self._lock:
            self._calls += 1
            if inject:
                injected = self._injected
                for kind in self._steps:
                    injected[kind] += 1
        if inject and _events.subscribers:
            _events.emit("injected", "chaos", self._name, None, injected=self._steps)
        return inject

    def _ask(self, enabled: Callable[[], bool]) -> bool:
        """Ask the ``enabled`` callable; one that raises disarms the call (and is logged).

        Chaos must never add trouble nobody planned: a broken switch means no injection.
        """
        try:
            return bool(enabled())
        except Exception:
            _log.exception("resilience: chaos %r: enabled=%r raised; not injecting", self, enabled)
            return False

    def _new_fault(self) -> BaseException:
        """Return the exception to raise: the one given, or a fresh one from the factory."""
        fault = self._fault
        if isinstance(fault, BaseException):
            # Raised again and again: drop the previous traceback so it does not pile up.
            return fault.with_traceback(None)
        made = fault() if fault is not None else None
        if not isinstance(made, BaseException):
            raise TypeError(f"fault={fault!r} returned {made!r}, which is not an exception")
        return made

    # ------------------------------------------------------------------ running

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``func(*args, **kwargs)``, or inject instead of (or before) it.

        Raises:
            BaseException: the injected fault, or whatever ``func`` or ``behavior`` raise.
        """
        return self._run(func, args, kwargs)  # type: ignore[no-any-return]  # func's result

    async def call_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``func(*args, **kwargs)``, or inject instead of (or before) it.

        Raises:
            BaseException: the injected fault, or whatever ``func`` or ``behavior`` raise.
        """
        return await self._arun(func, args, kwargs)  # type: ignore[no-any-return]  # its result

    def _run(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The one sync path, shared by ``call`` and the decorator."""
        if not self._decide():
            return func(*args, **kwargs)
        if self._behavior is not None:
            _close_awaitable(self._behavior(), "behavior")
        if self._latency is not None:
            _close_awaitable(self._sleep(self._latency), "sleep")
        if self._fault is not None:
            raise self._new_fault()
        if self._result is not UNSET:
            return self._result
        return func(*args, **kwargs)

    async def _arun(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The one async path, shared by ``call_async`` and the decorator."""
        if not self._decide():
            return await func(*args, **kwargs)
        if self._behavior is not None:
            done = self._behavior()
            if hasattr(done, "__await__"):
                await done
        if self._latency is not None:
            sleep = _asyncio_sleep if self._sleep is time.sleep else self._sleep
            pending = sleep(self._latency)
            if hasattr(pending, "__await__"):
                await pending
        if self._fault is not None:
            raise self._new_fault()
        if self._result is not UNSET:
            return self._result
        return await func(*args, **kwargs)

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate ``func`` (sync or async) so its calls go through this Chaos.

        A Chaos made with ``enabled=False`` returns ``func`` itself: no effect, no cost.

        Raises:
            TypeError: ``func`` is not callable, is a generator function, or is sync while
                ``sleep`` is a coroutine function.
        """
        if self._enabled is False:
            check_callable("func", func)
            return func
        if is_coroutine_function(self._sleep) and not is_coroutine_function(func):
            raise TypeError(
                f"sleep={self._sleep!r} is a coroutine function, which only async functions "
                f"can await; {getattr(func, '__qualname__', func)!r} is not async"
            )
        return wrap(func, self._run, self._arun)

    # ------------------------------------------------------------------ reading

    def get_stats(self) -> dict[str, Any]:
        """Return ``{"total_calls": int, "total_injected": {kind: int}}``.

        ``total_calls`` counts the calls made while ``enabled`` held (the kill switch only
        stops injections); a Chaos switched off by ``enabled`` counts nothing.
        ``total_injected`` has the four kinds ``fault``, ``latency``, ``result`` and
        ``behavior``; one injected call counts once for each kind it injected.
        """
        with self._lock:
            return {"total_calls": self._calls, "total_injected": dict(self._injected)}

    def _strategy_info(self) -> StrategyInfo:
        options: dict[str, Any] = {
            "fault": self._fault,
            "latency": self._latency,
            "behavior": self._behavior,
            "rate": self._rate,
            "enabled": self._enabled,
            "rng": self._rng,
            "sleep": self._sleep,
            "name": self._name,
        }
        if self._result is not UNSET:
            options["result"] = self._result
        return {"kind": "chaos", "name": self._name, "options": options}

    def _families(self) -> list[Family]:
        stats = self.get_stats()
        name = self._name or ""
        return [
            _observed.Family(
                "resilience_chaos_calls_total",
                "counter",
                "Calls through a chaos strategy while it was enabled.",
                ("name",),
                [((name,), float(stats["total_calls"]))],
            ),
            _observed.Family(
                "resilience_chaos_injected_total",
                "counter",
                "Injections made by a chaos strategy, by kind.",
                ("name", "kind"),
                [((name, kind), float(count)) for kind, count in stats["total_injected"].items()],
            ),
        ]

    def _health(self) -> dict[str, Any] | None:
        # Injected trouble is deliberate: it shows in metrics, never as degraded health.
        return None

    def __repr__(self) -> str:
        return f"Chaos(rate={self._rate!r}, injects={list(self._steps)!r}, name={self._name!r})"


# Shown and pickled as `resilience.Chaos`, where most users import it from.
Chaos.__module__ = "resilience"
