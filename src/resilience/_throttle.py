"""Stopping retry storms at the client: ``AdaptiveThrottle`` and ``RetryThrottle``.

Two complementary rules, both shareable by name (objects made with one name share one
state, so every call site of a dependency reads and feeds the same numbers) and both
observed by the metrics for as long as they are alive:

- ``AdaptiveThrottle`` (client-side throttling, as in Google's SRE book): when the backend
  accepts fewer than ``1/k`` of the requests sent, calls are rejected locally, before they
  reach it, with a probability that grows with the gap. The backend then receives about
  ``k`` times what it accepts, however hard the clients push.
- ``RetryThrottle`` (gRPC's retry throttling): a token bucket fed by successes and drained
  by failures; retries are allowed only while more than half the tokens are left, so a
  dependency that fails steadily sees first attempts only.
"""

from __future__ import annotations

import math
import random
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

from resilience import _events, _observed
from resilience._critical import section
from resilience._validate import check_name, check_number, check_sync_callable
from resilience._wrap import wrap
from resilience.exceptions import ThrottledError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from resilience._strategy import StrategyInfo
    from resilience._types import Clock

__all__ = ["AdaptiveThrottle", "RetryThrottle"]

P = ParamSpec("P")
R = TypeVar("R")

_BUCKETS: Final = 100  # the window is kept in this many buckets: fixed memory
_RANDOM: Final = random.Random()  # noqa: S311  # load shedding, not a secret


class _Window:
    """Requests and accepts over the last ``window`` seconds, in 100 buckets (lock held).

    Like ``RetryBudget``: an event stays for between 99% and 100% of the window, and every
    change is one store of an int, so an interrupt between two leaves each count whole.
    """

    __slots__ = ("_accepts", "_latest", "_requests", "_stamps", "_width")

    def __init__(self, window: float) -> None:
        self._width = window / _BUCKETS
        self._stamps = [-1] * _BUCKETS
        self._requests = [0] * _BUCKETS
        self._accepts = [0] * _BUCKETS
        self._latest = -1

    def slot(self, now: float) -> int:
        bucket = max(math.floor(now / self._width), self._latest)  # a clock stepping back stands
        self._latest = bucket
        slot = bucket % _BUCKETS
        if self._stamps[slot] != bucket:
            self._requests[slot] = 0
            self._accepts[slot] = 0
            self._stamps[slot] = bucket
        return slot

    def totals(self) -> tuple[int, int]:
        oldest = self._latest - _BUCKETS
        requests = accepts = 0
        for slot, stamp in enumerate(self._stamps):
            if stamp > oldest:
                requests += self._requests[slot]
                accepts += self._accepts[slot]
        return requests, accepts

    def add(self, now: float, *, accepted: bool) -> None:
        slot = self.slot(now)
        self._requests[slot] += 1
        if accepted:
            self._accepts[slot] += 1


class _ThrottleState:
    """What throttles of one name share: the window, the totals, the lock."""

    __slots__ = ("__weakref__", "accepts", "k", "lock", "rejected", "requests", "window")

    def __init__(self, k: float, window: float) -> None:
        self.k = k
        self.window = _Window(window)
        self.lock = threading.Lock()
        self.requests = 0  # totals since the state was made, for the metrics
        self.accepts = 0
        self.rejected = 0


_SHARED: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()
_SHARED_LOCK: Final = threading.Lock()


def _shared(kind: str, name: str | None, make: Callable[[], Any], options: dict[str, Any]) -> Any:
    """The state of ``(kind, name)``: made once, shared while any holder lives.

    A second object with the same name must have the same options; anything else is a
    ValueError naming the difference, since one state cannot follow two rules.
    """
    if name is None:
        state = make()
        state.options = options
        return state
    with _SHARED_LOCK:
        state = _SHARED.get((kind, name))
        if state is None:
            state = make()
            state.options = options
            _SHARED[(kind, name)] = state
            return state
    if state.options != options:
        differ = ", ".join(
            f"{key}={options[key]!r} (shared: {state.options[key]!r})"
            for key in options
            if options[key] != state.options[key]
        )
        raise ValueError(f"{kind} {name!r} already exists with other options: {differ}")
    return state


class _SharedThrottle(_ThrottleState):
    __slots__ = ("options",)


class AdaptiveThrottle:
    """Reject calls locally while the backend accepts too few of them (SRE client throttling).

    Over the last ``window`` seconds it counts ``requests`` and ``accepts``, and rejects a
    new call with probability ``max(0, (requests - k * accepts) / (requests + 1))``,
    raising ``ThrottledError``: the call does not run. A locally rejected call counts as a
    request, not an accept. An accept is a call that returned; one that raised an
    ``Exception`` is a request only. (A cancelled or interrupted call counts as neither: it
    says nothing about the backend.) At steady overload the backend receives about ``k``
    times the requests it accepts: ``k=2`` lets through twice what it can take, so it
    recovers quickly when it can take more.

    Throttles made with one ``name`` share their counts (every call site of a backend
    feeds one throttle); a second one must have the same ``k`` and ``window``. A named
    throttle is exported as ``resilience_throttle_requests_total``,
    ``resilience_throttle_accepts_total`` and ``resilience_throttle_rejected_total`` while
    it is alive. Use it as a decorator, with ``call``/``call_async``, or in a ``Pipeline``.

    Args:
        k: how many requests per accept the backend may receive, a finite number >= 1.
        window: seconds counted over, a finite number > 0 (kept in 100 buckets, so an
            event counts for between 99% and 100% of it).
        name: shares the throttle and names it in metrics and events, or ``None``.
        clock: monotonic seconds.

    Raises:
        TypeError, ValueError: an option is invalid, or a throttle of that name exists
            with another ``k`` or ``window``.

    Examples:
        >>> throttle = AdaptiveThrottle(k=2.0)
        >>> throttle.call(lambda: "served")
        'served'
        >>> throttle.rejection_probability()
        0.0
    """

    __slots__ = ("__weakref__", "_clock", "_k", "_random", "_state", "_window", "name")

    def __init__(
        self,
        *,
        k: float = 2.0,
        window: float = 120.0,
        name: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._k = check_number("k", k, minimum=1.0)
        self._window = check_number("window", window, positive=True)
        self.name = check_name(name, optional=True)
        self._clock: Clock = check_sync_callable("clock", clock)
        self._random: Callable[[], float] = _RANDOM.random
        options = {"k": self._k, "window": self._window}
        self._state: _SharedThrottle = _shared(
            "adaptive_throttle",
            self.name,
            lambda: _SharedThrottle(self._k, self._window),
            options,
        )
        if self.name is not None:
            _observed.observe(self)

    @property
    def k(self) -> float:
        """Requests the backend may receive per request it accepts."""
        return self._k

    @property
    def window(self) -> float:
        """The seconds counted over."""
        return self._window

    def _probability(self, requests: int, accepts: int) -> float:
        return max(0.0, (requests - self._k * accepts) / (requests + 1))

    def rejection_probability(self) -> float:
        """The probability that a call made now is rejected locally."""
        state = self._state
        with state.lock:
            state.window.slot(self._clock())
            requests, accepts = state.window.totals()
        return self._probability(requests, accepts)

    def stats(self) -> dict[str, float]:
        """Return ``{"requests", "accepts", "rejection_probability"}`` over the window."""
        state = self._state
        with state.lock:
            state.window.slot(self._clock())
            requests, accepts = state.window.totals()
        return {
            "requests": requests,
            "accepts": accepts,
            "rejection_probability": self._probability(requests, accepts),
        }

    @section
    def _admit(self) -> None:
        """Reject the call now (counted, emitted) or let it through."""
        state = self._state
        draw = self._random()
        with state.lock:
            now = self._clock()
            state.window.slot(now)
            requests, accepts = state.window.totals()
            rejected = draw < self._probability(requests, accepts)
            if rejected:
                state.window.add(now, accepted=False)
                state.requests += 1
                state.rejected += 1
        if rejected:
            if _events.subscribers:
                _events.emit("throttled", "adaptive_throttle", self.name, None, requests=requests)
            raise ThrottledError(self.name)

    @section
    def _record(self, *, accepted: bool) -> None:
        state = self._state
        with state.lock:
            state.window.add(self._clock(), accepted=accepted)
            state.requests += 1
            if accepted:
                state.accepts += 1

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``func(*args, **kwargs)`` unless throttled.

        Raises:
            ThrottledError: the call was rejected locally and did not run.
        """
        self._admit()
        try:
            result = func(*args, **kwargs)
        except Exception:
            self._record(accepted=False)
            raise
        self._record(accepted=True)
        return result

    async def call_async(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``func(*args, **kwargs)`` unless throttled.

        Raises:
            ThrottledError: the call was rejected locally and did not run.
        """
        self._admit()
        try:
            result = await func(*args, **kwargs)
        except Exception:
            self._record(accepted=False)
            raise
        self._record(accepted=True)
        return result

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]:
        """Decorate a function or coroutine function so its calls go through the throttle."""
        return wrap(
            func,
            lambda f, args, kwargs: self.call(f, *args, **kwargs),
            lambda f, args, kwargs: self.call_async(f, *args, **kwargs),
        )

    def _strategy_info(self) -> StrategyInfo:
        """Describe the throttle: kind ``"adaptive_throttle"``, its name and options."""
        return {
            "kind": "adaptive_throttle",
            "name": self.name,
            "options": {
                "k": self._k,
                "window": self._window,
                "name": self.name,
                "clock": self._clock,
            },
        }

    def _families(self) -> list[_observed.Family]:
        state = self._state
        with state.lock:
            totals = (state.requests, state.accepts, state.rejected)
        labels = (cast("str", self.name),)
        return [
            _observed.Family(
                f"resilience_throttle_{what}_total",
                "counter",
                documentation,
                ("name",),
                [(labels, float(value))],
            )
            for what, documentation, value in zip(
                ("requests", "accepts", "rejected"),
                (
                    "Calls seen by a named adaptive throttle, rejected ones included.",
                    "Calls a named adaptive throttle saw the backend accept.",
                    "Calls a named adaptive throttle rejected locally.",
                ),
                totals,
                strict=True,
            )
        ]

    def _health(self) -> dict[str, Any] | None:
        """Degraded while calls are being rejected locally."""
        probability = self.rejection_probability()
        if probability <= 0.0:
            return None
        return {
            "name": self.name,
            "kind": "adaptive_throttle",
            "rejection_probability": probability,
        }

    def __repr__(self) -> str:
        return f"AdaptiveThrottle(k={self._k!r}, window={self._window!r}, name={self.name!r})"


class _Tokens:
    """The token count a ``RetryThrottle`` name shares."""

    __slots__ = ("__weakref__", "lock", "options", "tokens")

    def __init__(self, max_tokens: float) -> None:
        self.lock = threading.Lock()
        self.tokens = max_tokens
        self.options: dict[str, Any] = {}


class RetryThrottle:
    """gRPC's retry throttling: retries stop while a dependency fails more than it succeeds.

    Pass it as ``budget=`` to any retry. Tokens start at ``max_tokens``; every failed
    attempt that could be retried takes one, every successful call gives back
    ``token_ratio`` (up to ``max_tokens``), and a retry is allowed only while more than
    ``max_tokens / 2`` tokens are left. Under a steady outage retries stop after a handful
    of failures, so the dependency sees first attempts only (load 1x, not 27x through
    three layers of retries); they resume as successes refill the bucket.

    Throttles made with one ``name`` share their tokens; a second one must have the same
    options. A named throttle exports ``resilience_retry_throttle_tokens{name}`` while it is
    alive.

    Args:
        max_tokens: the bucket's size, a finite number > 0 (gRPC allows up to 1000).
        token_ratio: tokens a success gives back, a finite number > 0.
        name: shares the throttle and names it in metrics, or ``None``.

    Raises:
        TypeError, ValueError: an option is invalid, or a throttle of that name exists
            with other options.

    Examples:
        >>> from resilience import retry_with_backoff
        >>> throttle = RetryThrottle(max_tokens=10, token_ratio=0.1)
        >>> @retry_with_backoff(budget=throttle, base_delay=0.0)
        ... def ping() -> str:
        ...     return "pong"
        >>> ping(), throttle.tokens
        ('pong', 10.0)
    """

    __slots__ = ("__weakref__", "_max", "_ratio", "_state", "name")

    def __init__(
        self, max_tokens: float = 10.0, token_ratio: float = 0.1, *, name: str | None = None
    ) -> None:
        self._max = check_number("max_tokens", max_tokens, positive=True)
        self._ratio = check_number("token_ratio", token_ratio, positive=True)
        self.name = check_name(name, optional=True)
        options = {"max_tokens": self._max, "token_ratio": self._ratio}
        self._state: _Tokens = _shared(
            "retry_throttle", self.name, lambda: _Tokens(self._max), options
        )
        if self.name is not None:
            _observed.observe(self)

    @property
    def tokens(self) -> float:
        """The tokens left."""
        with self._state.lock:
            return self._state.tokens

    @property
    def max_tokens(self) -> float:
        """The bucket's size."""
        return self._max

    @property
    def token_ratio(self) -> float:
        """Tokens a success gives back."""
        return self._ratio

    def _failure(self) -> None:
        """A failed attempt that could be retried: take a token."""
        state = self._state
        with state.lock:
            state.tokens = max(0.0, state.tokens - 1.0)

    def _success(self) -> None:
        """A successful call: give back ``token_ratio``."""
        state = self._state
        with state.lock:
            state.tokens = min(self._max, state.tokens + self._ratio)

    def _allows(self) -> bool:
        """Whether a retry may be made now."""
        state = self._state
        with state.lock:
            return state.tokens > self._max / 2

    def _families(self) -> list[_observed.Family]:
        return [
            _observed.Family(
                "resilience_retry_throttle_tokens",
                "gauge",
                "Tokens left in a named retry throttle; retries stop at half.",
                ("name",),
                [((cast("str", self.name),), self.tokens)],
            )
        ]

    def _health(self) -> dict[str, Any] | None:
        """Degraded while retries are switched off."""
        if self._allows():
            return None
        return {"name": self.name, "kind": "retry_throttle", "tokens": self.tokens}

    def __repr__(self) -> str:
        return (
            f"RetryThrottle(max_tokens={self._max!r}, token_ratio={self._ratio!r}, "
            f"name={self.name!r})"
        )


AdaptiveThrottle.__module__ = RetryThrottle.__module__ = "resilience"
