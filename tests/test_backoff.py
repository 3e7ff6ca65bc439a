import asyncio
import dataclasses
import enum
import random
import re
import statistics
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience.backoff import Constant, Exponential, Linear

delays = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
factors = st.floats(min_value=1.0, max_value=10.0, allow_nan=False)
attempts = st.integers(min_value=1, max_value=200)
huge = st.integers(min_value=1, max_value=10**400)
jitters = st.sampled_from(["none", "full", "equal", "decorrelated"])


class _Ceiling(random.Random):
    """A random source that always draws just under 1, so each draw is its upper bound."""

    def random(self) -> float:
        return 0.999999


@given(delay=delays, n=huge)
def test_constant_is_the_delay(delay, n):
    """Constant(delay)(n) is delay for every n."""
    assert Constant(delay)(n) == delay


@given(initial=delays, step=delays, cap=delays, n=st.integers(min_value=1, max_value=10**6))
def test_linear_is_the_capped_line(initial, step, cap, n):
    """Linear is min(max_delay, initial + step * (n - 1))."""
    assert Linear(initial, step, cap)(n) == min(cap, initial + step * (n - 1))


@given(base=delays, factor=factors, cap=delays, n=attempts)
def test_exponential_without_jitter_is_the_exact_sequence(base, factor, cap, n):
    """Without jitter the delay is exactly min(max_delay, base * factor ** (n - 1))."""
    assert Exponential(base, factor, cap)(n) == min(cap, base * factor ** (n - 1))


@given(base=positive, factor=factors, cap=delays, jitter=jitters, n=huge)
def test_delays_stay_between_zero_and_the_cap_for_any_n(base, factor, cap, jitter, n):
    """Every strategy's delay is in [0, max_delay], without overflow even for huge n."""
    assert 0.0 <= Exponential(base, factor, cap, jitter)(n) <= cap
    assert 0.0 <= Linear(base, base, cap)(n) <= cap


@given(base=positive, factor=factors, cap=delays, n=attempts, seed=st.integers(0, 2**32))
def test_full_jitter_draws_from_zero_to_the_nominal_delay(base, factor, cap, n, seed):
    """Full jitter stays in [0, d] with d the un-jittered delay."""
    strategy = Exponential(base, factor, cap, "full", random.Random(seed))
    assert 0.0 <= strategy(n) <= strategy.nominal(n)


@given(base=positive, factor=factors, cap=delays, n=attempts, seed=st.integers(0, 2**32))
def test_equal_jitter_draws_from_half_to_the_nominal_delay(base, factor, cap, n, seed):
    """Equal jitter stays in [d / 2, d]."""
    strategy = Exponential(base, factor, cap, "equal", random.Random(seed))
    nominal = strategy.nominal(n)
    assert nominal / 2 <= strategy(n) <= nominal


@settings(max_examples=25)
@given(base=positive, cap=delays, n=st.integers(1, 20), seed=st.integers(0, 2**32))
def test_full_jitter_averages_half_the_nominal_delay(base, cap, n, seed):
    """Over many draws full jitter's mean is close to half the un-jittered delay."""
    strategy = Exponential(base, 2.0, cap, "full", random.Random(seed))
    mean = statistics.fmean(strategy(n) for _ in range(4000))
    assert mean == pytest.approx(strategy.nominal(n) / 2, rel=0.05, abs=1e-9)


@given(
    base=positive,
    extra=delays,
    steps=st.lists(st.integers(1, 30), min_size=1, max_size=30),
    seed=st.integers(0, 2**32),
)
def test_decorrelated_jitter_stays_between_base_and_cap(base, extra, steps, seed):
    """Decorrelated jitter stays in [base, max_delay] whatever the order of n."""
    cap = base + extra
    strategy = Exponential(base, max_delay=cap, jitter="decorrelated", rng=random.Random(seed))
    for n in steps:
        assert base <= strategy(n) <= cap


def test_decorrelated_jitter_grows_from_the_previous_delay():
    """Each decorrelated delay is drawn from [base, 3 * previous], previous starting at base."""
    strategy = Exponential(1.0, max_delay=1000.0, jitter="decorrelated", rng=_Ceiling())
    assert [round(strategy(n), 3) for n in (1, 2, 3, 4)] == [3.0, 9.0, 27.0, 81.0]


def test_decorrelated_jitter_restarts_at_n_equal_one():
    """N == 1 starts a new sequence from previous = base."""
    strategy = Exponential(1.0, max_delay=1000.0, jitter="decorrelated", rng=_Ceiling())
    strategy(1)
    strategy(2)
    assert round(strategy(1), 3) == 3.0


def test_decorrelated_jitter_is_not_shared_between_threads():
    """A sequence in another thread starts from base, not from this thread's delays."""
    strategy = Exponential(1.0, max_delay=1000.0, jitter="decorrelated", rng=_Ceiling())
    for n in (1, 2, 3, 4):
        strategy(n)
    seen: list[float] = []
    thread = threading.Thread(target=lambda: seen.append(strategy(2)))
    thread.start()
    thread.join()
    assert round(seen[0], 3) == 3.0
    assert strategy(5) == pytest.approx(243.0, rel=1e-4)


@pytest.mark.asyncio
async def test_decorrelated_jitter_is_not_shared_between_tasks():
    """Interleaved sequences in two tasks each grow from their own previous delay."""
    strategy = Exponential(1.0, max_delay=1000.0, jitter="decorrelated", rng=_Ceiling())

    async def sequence() -> list[float]:
        drawn = []
        for n in (1, 2, 3):
            drawn.append(round(strategy(n), 3))
            await asyncio.sleep(0)
        return drawn

    first, second = await asyncio.gather(sequence(), sequence())
    assert first == second == [3.0, 9.0, 27.0]


def test_a_seeded_random_source_makes_jitter_reproducible():
    """Two strategies with equally seeded sources draw the same delays."""
    one = Exponential(1.0, jitter="full", rng=random.Random(42))
    two = Exponential(1.0, jitter="full", rng=random.Random(42))
    assert [one(n) for n in range(1, 10)] == [two(n) for n in range(1, 10)]


@pytest.mark.parametrize(
    ("strategy", "field"),
    [(Constant(1.0), "delay"), (Linear(1.0, 1.0), "step"), (Exponential(1.0), "max_delay")],
    ids=["constant", "linear", "exponential"],
)
def test_strategies_are_immutable(strategy, field):
    """Assigning to a strategy's field raises."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(strategy, field, 5.0)


def test_equal_strategies_compare_equal():
    """Strategies with the same settings are equal and hash alike."""
    assert Exponential(1.0, jitter="full") == Exponential(1, jitter="full")
    assert hash(Linear(1, 2)) == hash(Linear(1.0, 2.0))


@pytest.mark.parametrize(
    "strategy",
    [Constant(1.0), Linear(1.0, 1.0), Exponential(1.0), Exponential(1.0, jitter="decorrelated")],
    ids=["constant", "linear", "exponential", "decorrelated"],
)
def test_n_below_one_is_refused(strategy):
    """Retries count from 1; n = 0 raises ValueError."""
    with pytest.raises(ValueError, match="n must be >= 1"):
        strategy(0)


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: Constant(-1.0), ValueError, "delay must be >= 0, got -1.0"),
        (lambda: Constant(True), TypeError, "delay must be a number, got True"),
        (lambda: Constant(float("nan")), ValueError, "delay must not be NaN"),
        (lambda: Constant(float("inf")), ValueError, "delay must be finite"),
        (lambda: Linear("1", 1.0), TypeError, "initial must be a number, got '1'"),
        (lambda: Linear(1.0, -2.0), ValueError, "step must be >= 0, got -2.0"),
        (lambda: Linear(1.0, 1.0, max_delay=-1), ValueError, "max_delay must be >= 0, got -1"),
        (lambda: Exponential(-1.0), ValueError, "base must be >= 0, got -1.0"),
        (lambda: Exponential(1.0, factor=0.5), ValueError, "factor must be >= 1, got 0.5"),
        (lambda: Exponential(1.0, factor=False), TypeError, "factor must be a number, got False"),
        (lambda: Exponential(1.0, max_delay=float("inf")), ValueError, "max_delay must be finite"),
        (lambda: Exponential(1.0, jitter="fuzzy"), ValueError, "jitter must be one of"),
        (lambda: Exponential(1.0, jitter=True), TypeError, "jitter must be one of"),
        (
            lambda: Exponential(0.0, jitter="decorrelated"),
            ValueError,
            "base must be > 0 for decorrelated jitter, got 0.0",
        ),
        (lambda: Exponential(1.0, rng=random), TypeError, "rng must be a random.Random"),
    ],
    ids=[
        "constant-negative",
        "constant-bool",
        "constant-nan",
        "constant-inf",
        "linear-str",
        "linear-negative-step",
        "linear-negative-cap",
        "exponential-negative-base",
        "exponential-shrinking",
        "exponential-bool-factor",
        "exponential-infinite-cap",
        "exponential-unknown-jitter",
        "exponential-bool-jitter",
        "decorrelated-zero-base",
        "exponential-module-as-rng",
    ],
)
def test_bad_arguments_are_refused_at_construction(make, error, words):
    """Bad arguments raise TypeError/ValueError naming the parameter and the value."""
    with pytest.raises(error, match=words.replace("(", r"\(").replace(".", r"\.")):
        make()


_STRATEGIES = [
    Constant(1.0),
    Linear(1.0, 1.0),
    Exponential(1.0),
    Exponential(1.0, jitter="full"),
    Exponential(1.0, jitter="decorrelated"),
]
_STRATEGY_IDS = ["constant", "linear", "exponential", "full-jitter", "decorrelated"]


@pytest.mark.parametrize("strategy", _STRATEGIES, ids=_STRATEGY_IDS)
@pytest.mark.parametrize(
    ("n", "shown"),
    [(True, "True"), (False, "False"), (1.0, "1.0"), (2.5, "2.5"), ("3", "'3'"), (None, "None")],
    ids=["true", "false", "whole-float", "fraction", "str", "none"],
)
def test_an_n_that_is_not_an_int_is_refused_naming_it(strategy, n, shown):
    """A bool, float or other non-int n raises TypeError naming n and the value."""
    with pytest.raises(TypeError, match=f"^n must be an int, got {re.escape(shown)}$"):
        strategy(n)


@pytest.mark.parametrize(
    "strategy", [*_STRATEGIES, Exponential(1.0).nominal], ids=[*_STRATEGY_IDS, "nominal"]
)
@pytest.mark.parametrize("n", [0, -1, -(10**400)], ids=["zero", "minus-one", "huge-negative"])
def test_an_n_below_one_is_refused_naming_it(strategy, n):
    """Retries count from 1: a smaller n raises ValueError naming n and the value."""
    with pytest.raises(ValueError, match=r"^n must be >= 1, got -?[0-9]"):
        strategy(n)


def test_nominal_refuses_a_float_n():
    """Exponential.nominal checks n like the strategy does."""
    with pytest.raises(TypeError, match=r"n must be an int, got 1\.0"):
        Exponential(1.0).nominal(1.0)  # type: ignore[arg-type]


def test_an_int_subclass_is_a_valid_n():
    """An int subclass (an IntEnum member, say) is an attempt number."""

    class Attempt(enum.IntEnum):
        SECOND = 2

    assert Exponential(1.0)(Attempt.SECOND) == 2.0
    assert Linear(1.0, 1.0)(Attempt.SECOND) == 2.0
    assert Constant(1.0)(Attempt.SECOND) == 1.0


def test_an_extreme_base_to_cap_ratio_does_not_overflow():
    """A power too large for a float is the cap."""
    strategy = Exponential(5e-324, factor=1e10, max_delay=1e300)
    assert strategy(63) == 1e300
