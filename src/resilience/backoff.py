"""Backoff strategies: how long to wait before the n-th retry.

A strategy is a small immutable object called as ``strategy(n) -> seconds`` with ``n``
counting retries from 1. Any callable of that shape works wherever a strategy is taken
(``retry_with_backoff(backoff=...)``, ``CircuitBreaker(recovery_timeout=...)``); the ones
here add validation, a cap, jitter with an injectable random source, and arithmetic that
never overflows however large ``n`` grows.

Examples:
    >>> from resilience.backoff import Constant, Exponential, Linear
    >>> [Constant(0.5)(n) for n in (1, 2, 3)]
    [0.5, 0.5, 0.5]
    >>> [Linear(1.0, 2.0, max_delay=4.0)(n) for n in (1, 2, 3)]
    [1.0, 3.0, 4.0]
    >>> [Exponential(0.1, max_delay=1.0)(n) for n in (1, 2, 3, 4, 5)]
    [0.1, 0.2, 0.4, 0.8, 1.0]
"""

from __future__ import annotations

import math
import random
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias, get_args

from resilience._types import Backoff
from resilience._validate import check_int, check_number

__all__ = ["Backoff", "Constant", "Exponential", "Jitter", "Linear", "Random"]

Jitter: TypeAlias = Literal["none", "full", "equal", "decorrelated"]
"""How an ``Exponential`` strategy randomises its delays."""

JITTERS: Final[tuple[str, ...]] = get_args(Jitter)

# Beyond this many steps a linear delay is computed as if n were this large: the int would
# not convert to a float, and no real delay needs more than 2**1000 steps to reach its cap.
_MAX_STEPS: Final = 2**1000
_FLOAT_MAX: Final = sys.float_info.max
_TABLE: Final = 32  # un-jittered delays an Exponential precomputes

# The shared default random source; strategies given `rng=` use theirs instead.
_RANDOM: Final = random.Random()  # noqa: S311  # jitter spreads load; it is not a secret

# Decorrelated jitter's previous delay per strategy (by id), one mapping per context: each
# thread and each task sees its own, and `n == 1` starts a new sequence. The mapping is
# replaced, never mutated, because copied contexts share the object they hold.
_PREVIOUS: ContextVar[dict[int, tuple[Exponential, float]]] = ContextVar(
    "resilience_backoff_previous"
)
_PREVIOUS_LIMIT: Final = 64


def _check_n(n: int) -> None:
    """Refuse an ``n`` that is not an ``int`` >= 1 (a bool or a float included)."""
    # The exact-type test keeps the common case to one comparison; check_int decides
    # (and words the error) for everything else, int subclasses included.
    if type(n) is not int or n < 1:
        check_int("n", n, minimum=1)


@dataclass(frozen=True, slots=True)
class Constant:
    """Wait the same ``delay`` seconds before every retry.

    Args:
        delay: seconds, a finite number >= 0.

    Raises:
        TypeError, ValueError: ``delay`` is not a finite number >= 0.

    Examples:
        >>> Constant(2.0)(5)
        2.0
    """

    delay: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "delay", check_number("delay", self.delay, minimum=0.0))

    def __call__(self, n: int) -> float:
        """Return the delay before retry ``n`` (from 1)."""
        _check_n(n)
        return self.delay


@dataclass(frozen=True, slots=True)
class Linear:
    """Wait ``min(max_delay, initial + step * (n - 1))`` seconds before retry ``n``.

    Args:
        initial: the first delay, a finite number >= 0.
        step: what each retry adds, a finite number >= 0.
        max_delay: the cap, a finite number >= 0.

    Raises:
        TypeError, ValueError: an argument is not a finite number >= 0.

    Examples:
        >>> [Linear(0.5, 0.5, max_delay=1.2)(n) for n in (1, 2, 3)]
        [0.5, 1.0, 1.2]
    """

    initial: float
    step: float
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial", "step", "max_delay"):
            object.__setattr__(self, name, check_number(name, getattr(self, name), minimum=0.0))

    def __call__(self, n: int) -> float:
        """Return the delay before retry ``n`` (from 1), never above ``max_delay``."""
        _check_n(n)
        steps = min(n - 1, _MAX_STEPS)
        delay = self.initial + self.step * steps
        return min(self.max_delay, delay)


@dataclass(frozen=True, slots=True)
class Exponential:
    """Wait ``min(max_delay, base * factor ** (n - 1))`` seconds before retry ``n``, jittered.

    Jitter spreads retries of many clients apart so they do not arrive in waves:

    - ``"none"``: exactly ``d = min(max_delay, base * factor ** (n - 1))``.
    - ``"full"``: uniform in ``[0, d]``; the best spread, the shortest mean wait.
    - ``"equal"``: uniform in ``[d / 2, d]``; never shorter than half.
    - ``"decorrelated"``: ``min(max_delay, uniform(base, 3 * previous))``, ``previous``
      starting at ``base`` and becoming each delay drawn. Each retry sequence (``n == 1``
      starts one) keeps its own ``previous``; sequences in different threads or asyncio
      tasks never share it.

    Args:
        base: the first (un-jittered) delay, a finite number >= 0 (> 0 for decorrelated).
        factor: what each retry multiplies the delay by, a finite number >= 1.
        max_delay: the cap, a finite number >= 0.
        jitter: one of ``"none"``, ``"full"``, ``"equal"``, ``"decorrelated"``.
        rng: the random source (a ``random.Random``); the module's own when ``None``.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is out of range.

    Examples:
        >>> import random
        >>> strategy = Exponential(1.0, max_delay=30.0, jitter="full", rng=random.Random(7))
        >>> 0.0 <= strategy(3) <= 4.0
        True
    """

    base: float
    factor: float = 2.0
    max_delay: float = 60.0
    jitter: Jitter = "none"
    rng: random.Random | None = field(default=None, compare=False)
    # From this many steps on (n - 1 >= _cap_steps) the un-jittered delay is the cap; None
    # when it never grows. Lets huge n skip the power, which would overflow.
    _cap_steps: int | None = field(init=False, repr=False, compare=False)
    # The un-jittered delays of the first retries, so the common case is a lookup.
    _table: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = check_number("base", self.base, minimum=0.0)
        factor = check_number("factor", self.factor, minimum=1.0)
        cap = check_number("max_delay", self.max_delay, minimum=0.0)
        jitter: object = self.jitter
        if not isinstance(jitter, str):
            raise TypeError(f"jitter must be one of {', '.join(JITTERS)}, got {jitter!r}")
        if jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, got {jitter!r}")
        if jitter == "decorrelated" and base <= 0:
            raise ValueError(f"base must be > 0 for decorrelated jitter, got {self.base!r}")
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, got {self.rng!r}")
        if base == 0 or factor == 1:
            cap_steps: int | None = None
        elif base >= cap:
            cap_steps = 0
        else:
            # One step past the exact crossing, so rounding in the logarithms never
            # makes a delay reach the cap early; below it the power is computed exactly.
            cap_steps = math.ceil((math.log(cap) - math.log(base)) / math.log(factor)) + 1
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "max_delay", cap)
        object.__setattr__(self, "_cap_steps", cap_steps)
        object.__setattr__(self, "_table", tuple(self.nominal(n) for n in range(1, _TABLE + 1)))

    def __call__(self, n: int) -> float:
        """Return the delay before retry ``n`` (from 1), in ``[0, max_delay]``."""
        if type(n) is not int or n < 1:
            check_int("n", n, minimum=1)
        jitter = self.jitter
        if jitter == "decorrelated":
            return self._decorrelated(n)
        table = self._table
        delay = table[n - 1] if n <= len(table) else self.nominal(n)
        if jitter == "none":
            return delay
        draw = (self.rng or _RANDOM).random()
        if jitter == "full":
            return delay * draw
        half = delay / 2
        return half + half * draw

    def nominal(self, n: int) -> float:
        """Return the un-jittered delay ``min(max_delay, base * factor ** (n - 1))``."""
        _check_n(n)
        cap = self.max_delay
        steps = n - 1
        cap_steps = self._cap_steps
        if cap_steps is None:
            return min(cap, self.base)
        if steps >= cap_steps:
            return cap
        try:
            delay = self.base * self.factor**steps
        except OverflowError:  # an extreme base/cap ratio; the true value is past the cap
            return cap
        return min(cap, delay)

    def _decorrelated(self, n: int) -> float:
        base = self.base
        key = id(self)
        state = _PREVIOUS.get(None)
        previous = base
        if n > 1 and state is not None:
            # The entry holds the strategy itself, so its id cannot be reused meanwhile.
            entry = state.get(key)
            if entry is not None and entry[0] is self:
                previous = entry[1]
        upper = min(3 * previous, _FLOAT_MAX)  # a cap near the float limit must not overflow
        delay = base + (upper - base) * (self.rng or _RANDOM).random()
        delay = min(delay, self.max_delay)
        if state is None or len(state) >= _PREVIOUS_LIMIT:
            _PREVIOUS.set({key: (self, delay)})
        else:
            _PREVIOUS.set({**state, key: (self, delay)})
        return delay


@dataclass(frozen=True, slots=True)
class Random:
    """Wait a uniformly random ``[min_delay, max_delay]`` seconds before every retry.

    tenacity's ``wait_random(min, max)``: spreads clients out without growing the wait.

    Args:
        min_delay: the shortest wait, a finite number >= 0.
        max_delay: the longest wait, a finite number >= ``min_delay``.
        rng: the random source (for reproducible tests), or ``None`` for a shared one.

    Raises:
        TypeError, ValueError: a bound is not a finite number >= 0, ``min_delay`` exceeds
            ``max_delay``, or ``rng`` is not a ``random.Random``.

    Examples:
        >>> import random
        >>> 1.0 <= Random(1.0, 3.0, rng=random.Random(7))(4) <= 3.0
        True
    """

    min_delay: float
    max_delay: float
    rng: random.Random | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        low = check_number("min_delay", self.min_delay, minimum=0.0)
        high = check_number("max_delay", self.max_delay, minimum=0.0)
        if low > high:
            raise ValueError(
                f"min_delay must be <= max_delay, got min_delay={self.min_delay!r}, "
                f"max_delay={self.max_delay!r}"
            )
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, got {self.rng!r}")
        object.__setattr__(self, "min_delay", low)
        object.__setattr__(self, "max_delay", high)

    def __call__(self, n: int) -> float:
        """Return a fresh uniform draw in ``[min_delay, max_delay]`` (``n`` from 1)."""
        _check_n(n)
        low = self.min_delay
        return low + (self.max_delay - low) * (self.rng or _RANDOM).random()
