"""RedisStorage against a real redis-server: one circuit shared by many breakers."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import pytest

from resilience import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    FailureRate,
    TimeWindow,
)
from resilience.testing import FakeClock

redis = pytest.importorskip("redis")
from redis.crc import key_slot  # noqa: E402  # after the skip above

from resilience.redis import RedisStorage  # noqa: E402  # after the skip above

if TYPE_CHECKING:
    from redis_server import RedisServer


def ok() -> int:
    """Succeed."""
    return 1


def fail() -> int:
    """Fail with ValueError."""
    raise ValueError("boom")


def failing(breaker: CircuitBreaker, times: int = 1) -> None:
    """Make ``times`` failing calls through ``breaker``."""
    for _ in range(times):
        with pytest.raises(ValueError, match="boom"):
            breaker.call(fail)


# What the script itself runs: commandstats counts these too, under their own names.
INSIDE_SCRIPT = {
    "time",
    "get",
    "set",
    "pexpire",
    "del",
    "getrange",
    "setrange",
    "rpush",
    "lpop",
    "lindex",
}


def wait(clock: FakeClock, seconds: float) -> None:
    """Let time pass on the Redis server (real time) and on the breakers' clock."""
    time.sleep(seconds)
    clock.advance(seconds)


def evalsha_calls(client: redis.Redis) -> int:
    """Return how many EVALSHA commands the server ran since its stats were reset."""
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock shared by the breakers of a test."""
    return FakeClock()


@pytest.fixture
def pair(redis_server: RedisServer, clock: FakeClock):
    """Return a factory of two breakers on one name, each with its own client."""

    def make(**options: object) -> tuple[CircuitBreaker, CircuitBreaker]:
        return tuple(  # type: ignore[return-value]
            CircuitBreaker(
                name="svc", clock=clock, storage=RedisStorage(redis_server.client()), **options
            )
            for _ in range(2)
        )

    return make


# ---------------------------------------------------------------------- sharing


def test_two_storages_share_one_circuit(pair, clock) -> None:
    """A trip recorded through one client rejects calls made through another."""
    a, b = pair(failure_threshold=2)
    failing(a, 2)
    assert a.state is CircuitState.OPEN
    clock.advance(1.0)  # b's cached copy is now stale: it asks Redis
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.state is CircuitState.OPEN
    assert 0 < info.value.retry_after <= 30


def test_a_trip_elsewhere_is_seen_at_the_next_reply(pair) -> None:
    """A breaker whose cache is fresh admits one more call, whose reply tells it of the trip."""
    a, b = pair(failure_threshold=2)
    assert b.call(ok) == 1
    failing(a, 2)
    assert b.call(ok) == 1
    assert b.state is CircuitState.OPEN


def test_failures_from_two_breakers_add_up(pair) -> None:
    """Consecutive failures count across breakers sharing the circuit."""
    a, b = pair(failure_threshold=3)
    failing(a)
    failing(b)
    failing(a)
    assert a.state is CircuitState.OPEN


def test_a_success_anywhere_breaks_the_run(pair) -> None:
    """A success through one breaker restarts the consecutive count for all."""
    a, b = pair(failure_threshold=2)
    failing(a)
    b.call(ok)
    failing(a)
    assert a.get_stats()["failure_count"] == 1
    assert a.state is CircuitState.CLOSED


def test_listeners_hear_transitions_read_back_from_redis(pair, clock) -> None:
    """A listener of one breaker hears a trip made through another."""
    a, b = pair(failure_threshold=1)
    heard: list[tuple[CircuitState, CircuitState]] = []
    b.add_listener(lambda _breaker, old, new: heard.append((old, new)))
    failing(a)
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    assert heard == [(CircuitState.CLOSED, CircuitState.OPEN)]


def test_get_stats_shows_shared_counts_local_totals_and_storage(pair) -> None:
    """Stats hold the circuit's counts, this process's totals and the fleet's."""
    a, b = pair(failure_threshold=5)
    failing(a)
    failing(b)
    stats = b.get_stats()
    assert stats["failure_count"] == 2
    assert stats["total_failures"] == 1
    assert stats["fleet"]["total_failures"] == 2
    assert stats["storage"] == "ok"


def test_registry_with_storage_shares_every_breaker(redis_server, clock) -> None:
    """Every breaker a registry with storage makes shares its circuit."""
    first = BreakerRegistry(
        defaults={"failure_threshold": 1, "clock": clock},
        storage=RedisStorage(redis_server.client()),
    )
    second = BreakerRegistry(
        defaults={"failure_threshold": 1, "clock": clock},
        storage=RedisStorage(redis_server.client()),
    )
    failing(first.get("db"))
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        second.get("db").call(ok)


def test_one_script_call_per_call_while_closed(redis_server) -> None:
    """A call through a closed circuit costs one round trip: the EVALSHA of its outcome."""
    client = redis_server.client()
    breaker = CircuitBreaker(name="svc", storage=RedisStorage(client))
    breaker.call(ok)
    client.config_resetstat()
    for _ in range(100):
        breaker.call(ok)
    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 100
    issued = {name.removeprefix("cmdstat_") for name in stats} - INSIDE_SCRIPT
    assert issued == {"evalsha", "config|resetstat"}


def test_a_flushed_script_cache_is_reloaded(redis_server) -> None:
    """After SCRIPT FLUSH the next call reloads the script and goes on."""
    client = redis_server.client()
    breaker = CircuitBreaker(name="svc", failure_threshold=1, storage=RedisStorage(client))
    breaker.call(ok)
    client.script_flush()
    failing(breaker)
    assert breaker.get_stats()["storage"] == "ok"
    assert breaker.state is CircuitState.OPEN


# ---------------------------------------------------------------------- half-open


def test_half_open_trial_slots_are_shared(pair, clock) -> None:
    """While one breaker runs the trial call, another is refused with a short retry_after."""
    a, b = pair(failure_threshold=1, recovery_timeout=0.05)
    failing(a)
    wait(clock, 0.06)  # recovery time runs on the Redis server's clock
    with a:
        with pytest.raises(CircuitOpenError) as info:
            b.call(ok)
        assert info.value.state is CircuitState.HALF_OPEN
        assert 0.0 <= info.value.retry_after <= 1.0
    assert a.state is CircuitState.CLOSED


def test_a_failed_trial_reopens_the_circuit(pair, clock) -> None:
    """A failed trial call opens the shared circuit again."""
    a, _ = pair(failure_threshold=1, recovery_timeout=0.05)
    failing(a)
    wait(clock, 0.06)
    failing(a)
    assert a.state is CircuitState.OPEN


def test_success_threshold_trials_from_two_breakers_close_it(pair, clock) -> None:
    """Successful trials through different breakers add up to success_threshold."""
    a, b = pair(failure_threshold=1, recovery_timeout=0.05, success_threshold=2)
    failing(a)
    wait(clock, 0.06)
    a.call(ok)
    assert a.state is CircuitState.HALF_OPEN
    b.call(ok)
    assert b.state is CircuitState.CLOSED


def test_backoff_recovery_timeout_waits_longer_after_each_trip(pair, clock) -> None:
    """A backoff recovery_timeout is sampled and applied by Redis trip after trip."""
    a, _ = pair(failure_threshold=1, recovery_timeout=lambda n: 0.05 * 100 ** (n - 1))
    failing(a)
    wait(clock, 0.06)
    failing(a)  # the trial fails: second trip, 5 s
    with pytest.raises(CircuitOpenError) as info:
        a.call(ok)
    assert 4.0 < info.value.retry_after <= 5.0


# ---------------------------------------------------------------------- failure rate


def test_failure_rate_in_a_count_window_is_shared(pair) -> None:
    """The failure rate is judged over calls made through every breaker."""
    policy = FailureRate(threshold=0.5, window=CountWindow(10), minimum_calls=4)
    a, b = pair(policy=policy)
    a.call(ok)
    failing(a)
    b.call(ok)
    assert a.get_stats()["failure_rate"] is None
    failing(b)
    assert b.state is CircuitState.OPEN


def test_count_window_forgets_its_oldest_call(pair) -> None:
    """A full count window drops its oldest outcome for each new one."""
    policy = FailureRate(threshold=1.0, window=CountWindow(3), minimum_calls=3)
    a, _ = pair(policy=policy)
    failing(a, 2)
    a.call(ok)
    failing(a)
    stats = a.get_stats()
    assert (stats["failure_count"], stats["success_count"]) == (2, 1)
    assert stats["failure_rate"] == pytest.approx(2 / 3)


def test_failure_rate_in_a_time_window_trips(pair) -> None:
    """A time window over Redis's clock trips at the threshold."""
    policy = FailureRate(threshold=0.6, window=TimeWindow(60.0), minimum_calls=3)
    a, b = pair(policy=policy)
    failing(a)
    b.call(ok)
    assert a.get_stats()["failure_rate"] is None
    failing(b)
    assert a.get_stats()["state"] == "open"


@pytest.mark.slow
def test_time_window_forgets_calls_older_than_its_length(pair) -> None:
    """Calls leave a one-second time window after a second on the server's clock."""
    policy = FailureRate(threshold=1.0, window=TimeWindow(1.0), minimum_calls=2)
    a, _ = pair(policy=policy)
    failing(a)
    time.sleep(1.1)
    failing(a)
    stats = a.get_stats()
    assert stats["state"] == "closed"
    assert stats["failure_count"] == 1


def test_slow_call_rate_trips(pair, clock) -> None:
    """Calls lasting slow_call_duration (timed on the breaker's clock) count as slow."""
    policy = FailureRate(
        threshold=1.0,
        window=CountWindow(4),
        minimum_calls=2,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
    )
    a, _ = pair(policy=policy)

    def slow() -> int:
        clock.advance(1.0)
        return 1

    a.call(slow)
    assert a.get_stats()["slow_calls"] == 1
    a.call(ok)
    assert a.state is CircuitState.OPEN


# ---------------------------------------------------------------------- operators


def test_open_elsewhere_forces_every_breaker_open(pair, clock) -> None:
    """open() on one breaker rejects calls on every breaker, without a retry time."""
    a, b = pair()
    b.call(ok)
    a.open()
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.state is CircuitState.FORCED_OPEN
    assert info.value.retry_after is None


def test_a_forced_open_breaker_learns_of_a_reset_within_refresh_after(pair, clock) -> None:
    """A breaker rejecting from its cache asks Redis again once its copy is a second old."""
    a, b = pair()
    a.open()
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    a.reset()
    with pytest.raises(CircuitOpenError):
        b.call(ok)  # still cached
    clock.advance(1.0)
    assert b.call(ok) == 1


def test_disable_elsewhere_lets_calls_pass_unrecorded(pair, clock) -> None:
    """disable() on one breaker makes every breaker pass calls and record nothing."""
    a, b = pair(failure_threshold=1)
    a.disable()
    clock.advance(1.0)
    failing(b, 3)
    assert b.state is CircuitState.DISABLED
    assert b.get_stats()["total_failures"] == 0
    assert b.get_stats()["fleet"]["total_failures"] == 0


def test_reset_elsewhere_clears_the_shared_counts(pair) -> None:
    """reset() clears the policy's counts for every breaker."""
    a, b = pair(failure_threshold=3)
    failing(a, 2)
    b.reset()
    a.call(ok)  # admitted before a heard of the reset: counted in the totals only
    failing(a, 2)
    assert a.state is CircuitState.CLOSED
    assert a.get_stats()["failure_count"] == 2


def test_metrics_only_counts_shadow_trips(pair) -> None:
    """A metrics-only circuit never rejects and counts the trips it would have made."""
    a, b = pair(failure_threshold=2)
    a.metrics_only()
    failing(a, 4)
    assert b.call(ok) == 1
    assert b.state is CircuitState.METRICS_ONLY
    assert a.get_stats()["shadow_trips"] == 2
    assert b.get_stats()["shadow_trips"] == 0  # a total of the trips this process caused
    assert a.storage.read("svc")["shadow_trips"] == 2


def test_an_outcome_from_before_a_reset_counts_only_in_totals(pair) -> None:
    """A call admitted before a transition elsewhere cannot steer the new state."""
    a, b = pair(failure_threshold=2)
    failing(a)

    def reset_meanwhile() -> None:
        with a:
            b.reset()
            fail()

    with pytest.raises(ValueError, match="boom"):
        reset_meanwhile()
    failing(a)
    stats = a.get_stats()
    assert stats["state"] == "closed"
    assert stats["failure_count"] == 1
    assert stats["fleet"]["total_failures"] == 3


def test_force_refuses_a_state_only_calls_reach(redis_server) -> None:
    """Only operator states can be forced."""
    storage = RedisStorage(redis_server.client())
    with pytest.raises(ValueError, match="state must be"):
        storage.force("svc", CircuitState.HALF_OPEN)


# ---------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "name",
    ["a}b", "a{b}c", "svc}:w", "*", "[a-z]?", "ä ö/ü", "{", "svc:w", "svc%7D"],
    ids=["close", "tag", "suffix", "star", "glob", "unicode", "open", "colon", "escape"],
)
def test_a_hostile_name_stays_in_its_own_keys(redis_server, clock, name) -> None:
    """No name breaks the hash tag or touches another breaker's keys."""
    client = redis_server.client()
    storage = RedisStorage(client)
    hostile = CircuitBreaker(name=name, failure_threshold=1, clock=clock, storage=storage)
    plain = CircuitBreaker(name="svc", failure_threshold=1, clock=clock, storage=storage)
    plain.call(ok)
    failing(hostile)
    assert storage.read("svc")["state"] is CircuitState.CLOSED
    assert storage.read(name)["state"] is CircuitState.OPEN
    hash_key, window_key = storage.keys(name)
    assert key_slot(hash_key.encode()) == key_slot(window_key.encode())
    assert sorted(storage.names()) == sorted({name, "svc"})
    assert {k.decode() for k in client.keys("*")} == {hash_key, storage.keys("svc")[0]}


def test_prefixes_keep_circuits_apart(redis_server, clock) -> None:
    """The same name under two prefixes is two circuits."""
    client = redis_server.client()
    one = CircuitBreaker(
        name="svc", failure_threshold=1, clock=clock, storage=RedisStorage(client, "one:")
    )
    two = CircuitBreaker(
        name="svc", failure_threshold=1, clock=clock, storage=RedisStorage(client, "two:")
    )
    failing(one)
    two.call(ok)
    assert two.get_stats()["state"] == "closed"
    assert RedisStorage(client, "two:").names() == ["svc"]


@pytest.mark.parametrize("prefix", ["a{", "}b", "x\n"], ids=["open", "close", "control"])
def test_a_prefix_that_could_break_the_hash_tag_is_refused(redis_server, prefix) -> None:
    """Braces and control characters in the prefix are a ValueError."""
    with pytest.raises(ValueError, match="prefix"):
        RedisStorage(redis_server.client(), prefix)


def test_keys_expire_after_ttl(redis_server, clock) -> None:
    """Both keys of a breaker carry the storage's TTL."""
    client = redis_server.client()
    storage = RedisStorage(client, ttl=120.0)
    policy = FailureRate(window=CountWindow(10))
    breaker = CircuitBreaker(name="svc", policy=policy, clock=clock, storage=storage)
    breaker.call(ok)
    for key in storage.keys("svc"):
        assert 0 < client.pttl(key) <= 120_000


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": True}, TypeError),
        ({"cache_ttl": 0.2}, ValueError),
        ({"cache_ttl": 0}, ValueError),
        ({"cache_ttl": True}, TypeError),
    ],
    ids=["ttl-zero", "ttl-bool", "cache-long", "cache-zero", "cache-bool"],
)
def test_bad_storage_options_are_refused(redis_server, options, error) -> None:
    """RedisStorage validates its options when made."""
    with pytest.raises(error):
        RedisStorage(redis_server.client(), **options)


def test_a_non_client_is_refused() -> None:
    """RedisStorage needs a redis-py client."""
    with pytest.raises(TypeError, match="client"):
        RedisStorage("redis://127.0.0.1")


# ---------------------------------------------------------------------- cache_ttl


def test_cache_ttl_batches_outcomes_into_one_round_trip(redis_server, clock) -> None:
    """With cache_ttl, outcomes wait locally and go in one script call."""
    client = redis_server.client()
    storage = RedisStorage(client, cache_ttl=0.1)
    breaker = CircuitBreaker(name="svc", clock=clock, storage=storage)
    breaker.call(ok)
    client.config_resetstat()
    for _ in range(50):
        breaker.call(ok)
    assert evalsha_calls(client) == 0
    clock.advance(0.1)
    breaker.call(ok)
    assert evalsha_calls(client) == 1
    assert storage.read("svc")["total_successes"] == 51


def test_cache_ttl_bounds_how_stale_admission_can_be(redis_server, clock) -> None:
    """A change elsewhere is seen once cache_ttl has passed, not sooner."""
    a = CircuitBreaker(name="svc", clock=clock, storage=RedisStorage(redis_server.client()))
    b = CircuitBreaker(
        name="svc", clock=clock, storage=RedisStorage(redis_server.client(), cache_ttl=0.1)
    )
    b.call(ok)
    a.open()
    clock.advance(0.099)
    assert b.call(ok) == 1
    clock.advance(0.001)
    with pytest.raises(CircuitOpenError):
        b.call(ok)


def test_cache_ttl_still_trips_on_batched_failures(redis_server, clock) -> None:
    """Failures sent in a batch trip the circuit when the batch arrives."""
    storage = RedisStorage(redis_server.client(), cache_ttl=0.05)
    breaker = CircuitBreaker(name="svc", failure_threshold=3, clock=clock, storage=storage)
    failing(breaker, 3)
    clock.advance(0.05)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    assert storage.read("svc")["total_failures"] == 3


# ---------------------------------------------------------------------- faults


def test_a_paused_redis_never_reaches_the_caller(redis_server, clock, caplog) -> None:
    """With Redis frozen, calls go on under local state; one warning; resync when back."""
    caplog.set_level(logging.INFO, logger="resilience")
    client = redis_server.client(socket_timeout=0.2)
    breaker = CircuitBreaker(
        name="svc", failure_threshold=3, clock=clock, storage=RedisStorage(client)
    )
    breaker.call(ok)
    redis_server.pause()
    try:
        for _ in range(5):
            assert breaker.call(ok) == 1
        failing(breaker, 3)
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
        assert breaker.get_stats()["storage"] == "degraded"
    finally:
        redis_server.resume()
    warnings = [r for r in caplog.records if "cannot reach its storage" in r.getMessage()]
    assert len(warnings) == 1
    clock.advance(1.0)
    assert breaker.call(ok) == 1  # the probe finds Redis's closed circuit
    assert breaker.get_stats()["storage"] == "ok"
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_redis_killed_and_restarted_empty_resyncs(redis_server, clock) -> None:
    """After Redis dies the local state stands in; a restarted Redis's state wins."""
    breaker = CircuitBreaker(
        name="svc",
        failure_threshold=1,
        clock=clock,
        storage=RedisStorage(redis_server.client(socket_timeout=0.2)),
    )
    failing(breaker)
    redis_server.stop()
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    assert breaker.get_stats()["storage"] == "degraded"
    redis_server.start()
    clock.advance(1.0)
    assert breaker.call(ok) == 1
    assert breaker.get_stats()["storage"] == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_operator_methods_fall_back_to_local_state_when_redis_is_down(redis_server, clock) -> None:
    """open() with Redis down forces the local state and raises nothing."""
    breaker = CircuitBreaker(
        name="svc", clock=clock, storage=RedisStorage(redis_server.client(socket_timeout=0.2))
    )
    breaker.call(ok)
    redis_server.stop()
    breaker.open()
    assert breaker.state is CircuitState.FORCED_OPEN
    assert breaker.get_stats()["storage"] == "degraded"


@pytest.mark.slow
def test_outages_mid_run_never_reach_callers_and_resync_within_5s(redis_server) -> None:
    """Threads calling through a frozen, killed and restarted Redis see only their own errors."""
    import threading  # only this test runs threads

    storage = RedisStorage(redis_server.client(socket_timeout=0.1, socket_connect_timeout=0.1))
    breaker = CircuitBreaker(name="svc", failure_threshold=1000, storage=storage)
    stop = threading.Event()
    surprises: list[BaseException] = []

    def run() -> None:
        while not stop.is_set():
            try:
                breaker.call(ok)
                with pytest.raises(ValueError, match="boom"):
                    breaker.call(fail)
            except BaseException as exc:  # anything else is the failure
                surprises.append(exc)
            time.sleep(0.001)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        redis_server.pause()
        time.sleep(0.5)
        redis_server.resume()
        time.sleep(0.2)
        redis_server.stop()
        time.sleep(0.5)
        redis_server.start()
        deadline = time.monotonic() + 5.0
        while breaker.get_stats()["storage"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert breaker.get_stats()["storage"] == "ok"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert surprises == []


@pytest.mark.slow
def test_time_window_drops_only_the_buckets_that_left_it(pair) -> None:
    """Over a 3 s window, failures of the first second leave it while later calls stay."""
    policy = FailureRate(threshold=1.0, window=TimeWindow(3.0), minimum_calls=100)
    a, _ = pair(policy=policy)
    time.sleep(1.05 - time.time() % 1)  # start just after a bucket (second) begins
    failing(a, 2)
    time.sleep(1.05)
    a.call(ok)
    time.sleep(1.05)
    a.call(ok)
    assert (a.get_stats()["failure_count"], a.get_stats()["success_count"]) == (2, 2)
    time.sleep(1.05)
    stats = a.get_stats()
    assert (stats["failure_count"], stats["success_count"]) == (0, 2)


@pytest.mark.parametrize(
    ("idle_days", "failures"), [(6, 3), (8, 0), (10_000, 0)], ids=["6d", "8d", "27y"]
)
def test_a_long_idle_time_window_costs_a_constant_number_of_commands(
    redis_server, idle_days, failures
) -> None:
    """A 7-day window idle for days is brought up to date in O(1), not bucket by bucket."""
    import struct  # only this test edits the packed state

    client = redis_server.client()
    storage = RedisStorage(client)
    policy = FailureRate(threshold=1.0, window=TimeWindow(7 * 86400.0), minimum_calls=1000)
    breaker = CircuitBreaker(name="svc", policy=policy, storage=storage)
    for _ in range(3):
        failing(breaker)
        time.sleep(1.05)  # three buckets, two of them closed and listed
    key, window = storage.keys("svc")
    fields = list(struct.unpack(">28d", client.get(key)))
    assert client.llen(window) == 2
    days = idle_days * 86400  # pretend every bucket was written that much earlier
    fields[15] -= days  # the oldest listed bucket
    fields[16] -= days  # the current bucket
    client.set(key, struct.pack(">28d", *fields), keepttl=True)
    for index in range(client.llen(window)):
        when, calls, fails, slow = struct.unpack(">dIII", client.lindex(window, index))
        client.lset(window, index, struct.pack(">dIII", when - days, calls, fails, slow))
    client.config_resetstat()
    breaker.call(ok)
    stats = client.info("commandstats")
    inside = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_evalsha")
    assert inside <= 12  # TIME, GET, a push, two pops and peeks, SET, PEXPIREs
    assert breaker.get_stats()["failure_count"] == failures  # within 7 days: all counted


def test_a_redis_refusing_writes_warns_once_per_outage(redis_server, clock, caplog) -> None:
    """Under maxmemory reads still answer: one warning for the outage, one on recovery."""
    caplog.set_level(logging.INFO, logger="resilience")
    admin = redis_server.client()
    breaker = CircuitBreaker(
        name="svc", failure_threshold=3, clock=clock, storage=RedisStorage(redis_server.client())
    )
    breaker.call(ok)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        for _ in range(5):
            clock.advance(1.1)  # past each probe interval: the storage is asked again
            assert breaker.call(ok) == 1
            breaker.get_stats()  # a read succeeds in between: still the same outage
    finally:
        admin.config_set("maxmemory", "0")
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "cannot reach its storage" in m]) == 1
    assert not [m for m in messages if "reachable again" in m]
    clock.advance(1.1)
    assert breaker.call(ok) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "reachable again" in m]) == 1
    assert breaker.get_stats()["storage"] == "ok"


@pytest.mark.parametrize(
    ("mode", "after_failures"),
    [("local", "rejected"), ("closed", "admitted"), ("open", "rejected-at-once")],
    ids=["local", "closed", "open"],
)
def test_on_storage_error_chooses_what_calls_do_while_redis_is_down(
    redis_server, clock, mode: str, after_failures: str
) -> None:
    """``local`` trips on its own copy, ``closed`` lets calls through, ``open`` rejects."""
    storage = RedisStorage(redis_server.client(socket_timeout=0.2), on_storage_error=mode)
    breaker = CircuitBreaker(name="svc", failure_threshold=1, clock=clock, storage=storage)
    breaker.call(ok)
    redis_server.pause()
    try:
        if after_failures == "rejected-at-once":
            assert breaker.call(ok) == 1  # its record finds Redis down
            with pytest.raises(CircuitOpenError):
                breaker.call(ok)
            return
        failing(breaker, 1)
        if after_failures == "rejected":
            with pytest.raises(CircuitOpenError):
                breaker.call(ok)
        else:
            failing(breaker, 2)
            assert breaker.call(ok) == 1
            stats = breaker.get_stats()
            assert (stats["total_failures"], stats["total_successes"]) == (3, 2)
    finally:
        redis_server.resume()


def test_on_storage_error_is_validated(redis_server) -> None:
    """A mode other than local/closed/open is refused, naming the parameter."""
    with pytest.raises(ValueError, match="on_storage_error"):
        RedisStorage(redis_server.client(), on_storage_error="fallback")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_storage_error"):
        RedisStorage(redis_server.client(), on_storage_error=None)  # type: ignore[arg-type]
