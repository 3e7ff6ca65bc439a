"""A hypothesis state machine drives real breakers against a small reference model.

After every step (success, failure, ignored error, slow call, clock advance, reset and
the operator states) the breaker's state and counters must equal the model's.

One model, three circuits (SPEC §6): the same machine runs against the in-process
breaker, a breaker with ``storage=InMemoryStorage(...)`` (here) and one with
``storage=RedisStorage(...)`` on a real redis-server
(tests/integration/test_redis_model.py), with the same expectations.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from resilience import (
    BreakerStorage,
    CircuitBreaker,
    CircuitOpenError,
    ConsecutiveFailures,
    CountWindow,
    FailureRate,
    TimeWindow,
    TripPolicy,
)
from resilience._windows import bucket_count
from resilience.testing import FakeClock, InMemoryStorage

RECOVERY = 5.0
SUCCESS_THRESHOLD = 2

POLICIES: list[TripPolicy] = [
    ConsecutiveFailures(3),
    FailureRate(threshold=0.5, window=CountWindow(4), minimum_calls=3),
    FailureRate(threshold=0.3, window=CountWindow(10), minimum_calls=20),  # capped at 10
    FailureRate(threshold=0.6, window=TimeWindow(3.0), minimum_calls=2),
    FailureRate(threshold=1.0, window=TimeWindow(2.5), minimum_calls=1),
    FailureRate(
        threshold=0.9,
        window=CountWindow(5),
        minimum_calls=2,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
    ),
]


@dataclass
class Model:
    """What a breaker should hold, computed the obvious way (lists, no rings)."""

    policy: TripPolicy
    now: float
    state: str = "closed"
    retry_at: float = 0.0
    since: float | None = None
    trial_ok: int = 0
    fail_run: int = 0
    ok_run: int = 0
    window: list[tuple[float, bool, bool]] = field(default_factory=list)
    totals: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "fail", "rej", "ign"), 0)
    )
    shadow: int = 0
    held: tuple[int, int, float | None] | None = None

    def restart(self) -> None:
        self.trial_ok = self.fail_run = self.ok_run = 0
        self.window = []

    def to(self, state: str) -> None:
        if state == self.state:
            return
        if state in {"open", "forced_open"} and self.state != "open":
            # SPEC §8: while open, the counts that opened it (a failed trial: that one).
            self.held = (
                (int(state == "open"), self.trial_ok, None)
                if self.state == "half_open"
                else self.counts()
            )
        old, self.state = self.state, state
        self.restart()
        if state in {"open", "half_open", "forced_open"}:
            if old not in {"open", "half_open", "forced_open"}:
                self.since = self.now
            if state == "open":
                self.retry_at = self.now + RECOVERY
        else:
            self.since = None

    def observe(self) -> None:
        if self.state == "open" and self.now >= self.retry_at:
            self.to("half_open")

    def in_window(self) -> list[tuple[float, bool, bool]]:
        policy = self.policy
        if isinstance(policy, FailureRate) and isinstance(policy.window, TimeWindow):
            count = bucket_count(policy.window.seconds)
            width = policy.window.seconds / count
            current = math.floor(self.now / width)
            return [c for c in self.window if math.floor(c[0] / width) > current - count]
        if isinstance(policy, FailureRate) and isinstance(policy.window, CountWindow):
            return self.window[-policy.window.size :]
        return self.window

    def minimum(self) -> int:
        policy = self.policy
        assert isinstance(policy, FailureRate)
        if isinstance(policy.window, CountWindow):
            return min(policy.minimum_calls, policy.window.size)
        return policy.minimum_calls

    def record(self, *, failed: bool, slow: bool) -> bool:
        policy = self.policy
        if isinstance(policy, ConsecutiveFailures):
            if failed:
                self.fail_run += 1
                self.ok_run = 0
            else:
                self.fail_run = 0
                self.ok_run += 1
            return self.fail_run >= policy.threshold
        assert isinstance(policy, FailureRate)
        self.window.append((self.now, failed, slow))
        calls = self.in_window()
        if len(calls) < self.minimum():
            return False
        fails = sum(c[1] for c in calls)
        slows = sum(c[2] for c in calls)
        if fails / len(calls) >= policy.threshold:
            return True
        return policy.slow_call_rate is not None and slows / len(calls) >= policy.slow_call_rate

    def call(self, outcome: str, duration: float) -> None:
        self.observe()
        if self.state in {"open", "forced_open"}:
            self.totals["rej"] += 1
            return
        self.now += duration
        if self.state == "disabled":
            return
        slow = (
            isinstance(self.policy, FailureRate)
            and self.policy.slow_call_duration is not None
            and duration >= self.policy.slow_call_duration
        )
        if outcome == "ignored":
            self.totals["ign"] += 1
            return
        failed = outcome == "failure"
        self.totals["fail" if failed else "ok"] += 1
        if self.state == "half_open":
            if failed:
                self.to("open")
            else:
                self.trial_ok += 1
                if self.trial_ok >= SUCCESS_THRESHOLD:
                    self.to("closed")
            return
        if self.record(failed=failed, slow=slow):
            if self.state == "metrics_only":
                self.shadow += 1
                self.restart()
            else:
                self.to("open")

    def counts(self) -> tuple[int, int, float | None]:
        if self.state == "half_open":
            return 0, self.trial_ok, None
        if self.state in {"open", "forced_open"} and self.held is not None:
            return self.held
        if isinstance(self.policy, ConsecutiveFailures):
            return self.fail_run, self.ok_run, None
        calls = self.in_window()
        fails = sum(c[1] for c in calls)
        rate = fails / len(calls) if len(calls) >= self.minimum() else None
        return fails, len(calls) - fails, rate


class BreakerMachine(RuleBasedStateMachine):
    """Drive a breaker and a model with the same steps; compare after each."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(1000.0)
        self.model: Model
        self.breaker: CircuitBreaker

    def storage(self) -> BreakerStorage | None:
        """The storage of the circuit under test; None: the in-process breaker."""
        return None

    @initialize(policy=st.sampled_from(POLICIES))
    def make(self, policy: TripPolicy) -> None:
        storage = self.storage()
        shared: dict[str, Any] = {} if storage is None else {"name": "model", "storage": storage}
        self.breaker = CircuitBreaker(
            policy=policy,
            recovery_timeout=RECOVERY,
            success_threshold=SUCCESS_THRESHOLD,
            ignore=KeyError,
            clock=self.clock,
            **shared,
        )
        self.model = Model(policy=policy, now=self.clock())

    def _call(self, outcome: str, duration: float) -> None:
        def work() -> str:
            self.clock.advance(duration)
            if outcome == "failure":
                raise ConnectionError
            if outcome == "ignored":
                raise KeyError
            return "ok"

        with contextlib.suppress(ConnectionError, KeyError, CircuitOpenError):
            self.breaker.call(work)
        self.model.call(outcome, duration)

    @rule(duration=st.sampled_from([0.0, 0.5]))
    def success(self, duration: float) -> None:
        self._call("success", duration)

    @rule(duration=st.sampled_from([0.0, 0.5]))
    def failure(self, duration: float) -> None:
        self._call("failure", duration)

    @rule()
    def ignored_error(self) -> None:
        self._call("ignored", 0.0)

    @rule(duration=st.sampled_from([1.0, 1.5, 3.0]))
    def slow_success(self, duration: float) -> None:
        self._call("success", duration)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 4.0, 5.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now += seconds

    @rule(operation=st.sampled_from(["reset", "close", "open", "disable", "metrics_only"]))
    def operate(self, operation: str) -> None:
        getattr(self.breaker, operation)()
        target = {
            "reset": "closed",
            "close": "closed",
            "open": "forced_open",
            "disable": "disabled",
            "metrics_only": "metrics_only",
        }[operation]
        if target == "closed" and self.model.state == "closed":
            self.model.restart()
        self.model.observe()
        self.model.to(target)

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "breaker"):
            return
        model = self.model
        model.observe()
        stats: dict[str, Any] = self.breaker.get_stats()
        assert stats["state"] == model.state
        failure_count, success_count, rate = model.counts()
        assert stats["failure_count"] == failure_count
        assert stats["success_count"] == success_count
        if rate is None:
            assert stats["failure_rate"] is None
        else:
            assert stats["failure_rate"] == pytest.approx(rate)
        totals = model.totals
        assert stats["total_successes"] == totals["ok"]
        assert stats["total_failures"] == totals["fail"]
        assert stats["total_rejected"] == totals["rej"]
        assert stats["total_ignored"] == totals["ign"]
        assert stats["total_calls"] == sum(totals.values())
        assert stats["shadow_trips"] == model.shadow
        assert (stats["opened_at"] is None) == (model.since is None)
        if model.since is not None:
            assert stats["open_for"] == pytest.approx(model.now - model.since)

    def teardown(self) -> None:
        """A shared circuit's fleet totals end equal to this, its only process's, totals."""
        breaker = getattr(self, "breaker", None)
        if breaker is None or self.storage() is None:
            return
        breaker._circuit.push()  # what the atexit flush sends (SPEC §6)
        stats = breaker.get_stats()
        fleet = {key: value for key, value in stats.items() if key.startswith("total_")}
        assert stats["fleet"] == fleet


BreakerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_breaker_matches_reference_model = BreakerMachine.TestCase


class InMemoryStorageMachine(BreakerMachine):
    """The same steps and model, against a breaker whose circuit is an InMemoryStorage's."""

    def storage(self) -> BreakerStorage | None:
        """One storage per example, on the machine's clock."""
        if not hasattr(self, "_storage"):
            self._storage = InMemoryStorage(clock=self.clock)
        return self._storage


InMemoryStorageMachine.TestCase.settings = BreakerMachine.TestCase.settings
test_in_memory_storage_matches_reference_model = InMemoryStorageMachine.TestCase
