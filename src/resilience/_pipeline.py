"""Pipeline: strategies composed in an explicit, inspectable order, outermost first.

``Pipeline(a, b, c).call(fn, *args)`` runs ``a.call(b.call-of(c.call-of(fn)), *args)``: each
strategy gets the next one's runner as its function. The chain is made of
``functools.partial`` objects (built once per decorated function, or once per ``call``), so
a pipeline adds no Python frame of its own between strategies. Each call opens one
``CallContext`` (the pipeline's name and the attempt, which a ``Retry`` moves forward) that
every strategy inside and every event they emit can read.
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from resilience import _context, _events
from resilience._strategy import Strategy
from resilience._time_limits import Deadline, Timeout
from resilience._validate import check_name
from resilience._wrap import wrap
from resilience.exceptions import ResilienceWarning

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

    from resilience._strategy import StrategyInfo

__all__ = ["Pipeline"]

P = ParamSpec("P")
R = TypeVar("R")

# (outer kind, inner kind, why the inner one should not be inside the outer one)
_RISKY: tuple[tuple[str, str, str], ...] = (
    (
        "circuit_breaker",
        "retry",
        (
            "the breaker sees only whole retry sequences, not the failures inside them; "
            "put the retry outside the breaker"
        ),
    ),
    (
        "bulkhead",
        "retry",
        (
            "a slot is held while the retry sleeps between attempts; put the retry outside "
            "the bulkhead"
        ),
    ),
)


def _who(info: StrategyInfo) -> str:
    name = info["name"]
    return info["kind"] if name is None else f"{info['kind']} {name!r}"


def _risks(infos: Sequence[StrategyInfo]) -> list[str]:
    """Say what is risky about this order, one sentence per pair of strategies."""
    found = []
    for i, outer in enumerate(infos):
        for inner in infos[i + 1 :]:
            for outer_kind, inner_kind, why in _RISKY:
                if outer["kind"] == outer_kind and inner["kind"] == inner_kind:
                    found.append(f"{_who(inner)} is inside {_who(outer)}: {why}")
        if outer["kind"] == "chaos" and i < len(infos) - 1:
            found.append(
                f"{_who(outer)} is outside {_who(infos[i + 1])}: fault injection belongs "
                "innermost, where the faults look like the dependency's own"
            )
    return found


def _chain(strategies: Sequence[Strategy], func: Callable[..., Any]) -> Callable[..., Any]:
    for strategy in reversed(strategies):
        func = functools.partial(strategy.call, func)
    return func


def _achain(strategies: Sequence[Strategy], func: Callable[..., Any]) -> Callable[..., Any]:
    for strategy in reversed(strategies):
        func = functools.partial(strategy.call_async, func)
    return func


class Pipeline:
    """Run calls through strategies in an explicit order: the first listed is outermost.

    ``Pipeline(a, b, c)`` runs ``a(b(c(fn)))``. A strategy is any object with ``call``,
    ``call_async`` and ``_strategy_info``: ``Fallback``, ``Timeout``, ``Deadline``,
    ``Retry``, ``CircuitBreaker``, ``Bulkhead`` and the other strategies of this library.
    Each call opens one context (the pipeline's name, the attempt number, the deadline)
    that the strategies inside see: a bulkhead inside a retry is asked once per attempt.

    Orders that work but are risky are allowed and warned about once, here, with
    ``ResilienceWarning``: a retry inside a circuit breaker (the breaker sees only whole
    retry sequences) or inside a bulkhead (a slot is held while sleeping), and a chaos
    strategy that is not innermost. ``Pipeline.standard(...)`` builds the recommended order.

    Use it as ``pipeline.call(fn, ...)``, ``await pipeline.call_async(fn, ...)`` or
    ``@pipeline`` (exact types kept); ``describe()`` lists the strategies, outermost first.

    Args:
        *strategies: the strategies, outermost first.
        name: names the pipeline in the call context and in the events of its strategies.

    Raises:
        TypeError: an argument is not a strategy, or ``name`` is not a str.
        ValueError: ``name`` is empty or too long.

    Examples:
        >>> from resilience import Bulkhead, CircuitBreaker, Retry
        >>> pipeline = Pipeline(
        ...     Retry(max_retries=2, base_delay=0.0), CircuitBreaker(), Bulkhead(10), name="api"
        ... )
        >>> pipeline.call(lambda x: x + 1, 41)
        42
        >>> [step["kind"] for step in pipeline.describe()]
        ['retry', 'circuit_breaker', 'bulkhead']
    """

    __slots__ = ("_name", "_strategies")

    def __init__(self, *strategies: Strategy, name: str | None = None) -> None:
        for position, strategy in enumerate(strategies):
            if not isinstance(strategy, Strategy):
                raise TypeError(
                    f"strategy {position} must be a strategy (with call, call_async and "
                    f"_strategy_info), got {strategy!r}"
                )
        self._strategies = strategies
        self._name = check_name(name, optional=True)
        for risk in _risks(self._infos()):
            warnings.warn(risk, ResilienceWarning, stacklevel=2)

    @classmethod
    def standard(
        cls,
        *,
        name: str | None,
        rate_limiter: Strategy | None = None,
        total_timeout: float | Deadline | None = None,
        retry: Strategy | None = None,
        breaker: Strategy | None = None,
        attempt_timeout: float | Timeout | None = None,
        bulkhead: Strategy | None = None,
    ) -> Pipeline:
        """Build the recommended order, leaving out what is ``None``.

        rate limiter → total timeout (a ``Deadline``) → retry → circuit breaker → bulkhead →
        attempt timeout. docs/pipeline.md explains why each sits where it does.

        Args:
            name: the pipeline's name (``None`` for none).
            rate_limiter: a ``RateLimiter``, asked once per call.
            total_timeout: seconds (or a ``Deadline``) for the whole call, retries included.
            retry: a ``Retry``.
            breaker: a ``CircuitBreaker``, which sees every attempt.
            attempt_timeout: seconds (or a ``Timeout``) for each attempt.
            bulkhead: a ``Bulkhead``, asked once per attempt.

        Raises:
            TypeError: an argument is not a strategy of the kind its slot expects.
        """
        if total_timeout is not None and not isinstance(total_timeout, Deadline):
            total_timeout = Deadline(total_timeout)
        if attempt_timeout is not None and not isinstance(attempt_timeout, Timeout):
            attempt_timeout = Timeout(attempt_timeout)
        slots: list[tuple[str, str, Strategy | None]] = [
            ("rate_limiter", "rate_limiter", rate_limiter),
            ("total_timeout", "deadline", total_timeout),
            ("retry", "retry", retry),
            ("breaker", "circuit_breaker", breaker),
            ("bulkhead", "bulkhead", bulkhead),
            ("attempt_timeout", "timeout", attempt_timeout),
        ]
        chosen = []
        for param, kind, strategy in slots:
            if strategy is None:
                continue
            if not isinstance(strategy, Strategy) or strategy._strategy_info()["kind"] != kind:  # noqa: SLF001  # the strategy protocol
                raise TypeError(f"{param} must be a strategy of kind {kind!r}, got {strategy!r}")
            chosen.append(strategy)
        return cls(*chosen, name=name)

    @property
    def name(self) -> str | None:
        """The pipeline's name, or ``None``."""
        return self._name

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        """The strategies, outermost first."""
        return self._strategies

    def describe(self) -> list[dict[str, Any]]:
        """Return each strategy's ``kind``, ``name`` and ``options``, outermost first.

        ``options`` are keyed by the strategy's constructor parameters, with the values in
        force, so a test can assert the order and the configuration.
        """
        return [dict(info) for info in self._infos()]

    def _infos(self) -> list[StrategyInfo]:
        return [strategy._strategy_info() for strategy in self._strategies]  # noqa: SLF001  # the strategy protocol

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through every strategy and return its result.

        Raises:
            BaseException: what the strategies raise (``CircuitOpenError``,
                ``BulkheadFullError``, ``TimeoutError``, ...) or what ``func`` raises.
        """
        if _events.timers:  # someone measures pipeline calls (OpenTelemetry)
            return self._timed(_chain(self._strategies, func), args, kwargs)  # type: ignore[no-any-return]  # func's result
        token = _context._current.set(_context.CallContext(self._name))  # noqa: SLF001  # our context
        try:
            return _chain(self._strategies, func)(*args, **kwargs)  # type: ignore[no-any-return]  # the chain returns func's result
        finally:
            _context._current.reset(token)  # noqa: SLF001

    def _timed(
        self, chain: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run one call and report its duration, successful or not, inside its context."""
        token = _context._current.set(_context.CallContext(self._name))  # noqa: SLF001  # our context
        began = time.perf_counter()
        try:
            return chain(*args, **kwargs)
        finally:
            _events.emit_timing("pipeline", "pipeline", self._name, time.perf_counter() - began)
            _context._current.reset(token)  # noqa: SLF001

    def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Await ``func(*args, **kwargs)`` through every strategy and return its result.

        Raises:
            BaseException: what the strategies raise or what ``func`` raises.
        """
        return self._run_async(_achain(self._strategies, func), args, kwargs)

    async def _run_async(
        self, chain: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if _events.timers:  # someone measures pipeline calls (OpenTelemetry)
            return await self._atimed(chain, args, kwargs)
        token = _context._current.set(_context.CallContext(self._name))  # noqa: SLF001  # our context
        try:
            return await chain(*args, **kwargs)
        finally:
            _context._current.reset(token)  # noqa: SLF001

    async def _atimed(
        self, chain: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The same as ``_timed`` for an awaited call."""
        token = _context._current.set(_context.CallContext(self._name))  # noqa: SLF001  # our context
        began = time.perf_counter()
        try:
            return await chain(*args, **kwargs)
        finally:
            _events.emit_timing("pipeline", "pipeline", self._name, time.perf_counter() - began)
            _context._current.reset(token)  # noqa: SLF001

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so each call runs through the pipeline.

        The chain of strategies is built once, here; the wrapper keeps the function's exact
        signature and type and has ``.pipeline``.
        """
        chain = _chain(self._strategies, func)
        achain = _achain(self._strategies, func)
        name = self._name
        current = _context._current  # noqa: SLF001  # our context
        make_context = _context.CallContext

        def runner(_: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if _events.timers:  # someone measures pipeline calls (OpenTelemetry)
                return self._timed(chain, args, kwargs)
            token = current.set(make_context(name))
            try:
                return chain(*args, **kwargs)
            finally:
                current.reset(token)

        def arunner(_: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return self._run_async(achain, args, kwargs)

        wrapped = wrap(func, runner, arunner)
        wrapped.pipeline = self  # type: ignore[attr-defined]  # documented attribute
        return wrapped

    def __repr__(self) -> str:
        inner = ", ".join(_who(info) for info in self._infos())
        return f"Pipeline({inner}, name={self._name!r})"


Pipeline.__module__ = "resilience"
