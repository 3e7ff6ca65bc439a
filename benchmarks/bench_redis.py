"""Throughput of Redis-backed circuit breakers, and round trips per call.

Compares, against one redis-server in one run:
- a bare function call, and an in-memory ``CircuitBreaker`` (no Redis);
- ``CircuitBreaker(storage=RedisStorage(client))`` (one round trip per call);
- the same with ``RedisStorage(client, cache_ttl=0.1)`` (batched outcomes);
- pybreaker's ``CircuitBreaker`` over its ``CircuitRedisStorage``.

Round trips are counted on the client (packets sent by the connection) and commands on
the server (``CONFIG RESETSTAT`` then ``INFO commandstats``). Results are printed as a
markdown table of ns/call, calls/s and ratios, since absolute numbers depend on the machine.

Usage: python benchmarks/bench_redis.py [--quick] [--calls N] [--redis URL]
(without --redis it starts a throwaway redis-server on a free loopback port).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import redis

import _timing
from _redis_server import CountingConnection, counting_client, start_server
from resilience import CircuitBreaker, CountWindow, FailureRate, TimeWindow
from resilience.redis import RedisStorage

if TYPE_CHECKING:
    from collections.abc import Callable

pybreaker = _timing.optional("pybreaker")

# Commands the RedisStorage script runs inside Redis: commandstats counts them too.
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
    "bitfield",
}


ROUNDS = 5


def _segment(call: Callable[[], object], calls: int, admin: redis.Redis) -> dict[str, float]:
    """Time ``calls`` calls and read what the client sent and the server ran for them."""
    admin.config_resetstat()
    CountingConnection.sent = 0
    start = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - start
    stats = admin.info("commandstats")
    overhead = {"config|resetstat", "info"}
    # With EVALSHA in the mix, the commands our script runs inside Redis are not the
    # client's, and EVALSHA's own time already includes theirs.
    inside = INSIDE_SCRIPT if "cmdstat_evalsha" in stats else set()
    own = {k: v for k, v in stats.items() if k.removeprefix("cmdstat_") not in overhead}
    issued = {k: v for k, v in own.items() if k.removeprefix("cmdstat_") not in inside}
    return {
        "elapsed": elapsed,
        "calls": calls,
        "trips": CountingConnection.sent,
        "commands": sum(v["calls"] for v in own.values()),
        "issued": sum(v["calls"] for v in issued.values()),
        "usec": sum(v["usec"] for v in issued.values()),
    }


def measure(
    rows: list[tuple[str, Callable[[], object], int]], admin: redis.Redis
) -> list[dict[str, Any]]:
    """Measure every row in ROUNDS alternating rounds, so load drifts hit all alike."""
    for _, call, calls in rows:
        for _ in range(min(1000, calls // 10)):  # warm up: connections, script cache
            call()
    totals = {
        label: dict.fromkeys(("elapsed", "calls", "trips", "commands", "issued", "usec"), 0.0)
        for label, _, _ in rows
    }
    for _ in range(ROUNDS):
        for label, call, calls in rows:
            for key, value in _segment(call, max(1, calls // ROUNDS), admin).items():
                totals[label][key] += value
    results = []
    for label, _, _ in rows:
        t = totals[label]
        n = t["calls"]
        results.append(
            {
                "label": label,
                "ns": t["elapsed"] / n * 1e9,
                "per_s": n / t["elapsed"],
                "trips": t["trips"] / n,
                "commands": t["commands"] / n,
                "issued": t["issued"] / n,
                "usec": t["usec"] / n,
            }
        )
    return results


OURS = "resilience + RedisStorage"
PEER = "pybreaker + CircuitRedisStorage"
SCALE = "(an empty Lua script, called as ours is: the floor)"


def main() -> None:
    parser = _timing.parser(__doc__)
    parser.add_argument("--calls", type=int, default=None, help="default 20,000 (quick 3,000)")
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    n = args.calls or (3_000 if args.quick else 20_000)
    process = None
    url = args.redis
    if url is None:
        process, url = start_server()
    admin = redis.Redis.from_url(url)
    admin.flushall()
    try:

        def work() -> int:
            return 1

        memory = CircuitBreaker(name="bench-memory", failure_threshold=5)
        shared = CircuitBreaker(
            name="bench-redis", failure_threshold=5, storage=RedisStorage(counting_client(url))
        )
        cached = CircuitBreaker(
            name="bench-cached",
            failure_threshold=5,
            storage=RedisStorage(counting_client(url), cache_ttl=0.1),
        )
        counted = CircuitBreaker(
            name="bench-count",
            policy=FailureRate(0.5, window=CountWindow(100)),
            storage=RedisStorage(counting_client(url)),
        )
        timed = CircuitBreaker(
            name="bench-time",
            policy=FailureRate(0.5, window=TimeWindow(60)),
            storage=RedisStorage(counting_client(url)),
        )
        # The floor, called the way RedisStorage calls its script (one packet on a
        # connection of its own), with the same keys and arguments.
        floor = RedisStorage(counting_client(url))
        floor._script = floor._client.register_script("return 1")  # noqa: SLF001
        floor_args = ("r", "86400000", 0, 1, "s", "", "c,5,,,,,1,1,30000000", "k")
        floor_keys = floor._keys_of("bench-floor")  # noqa: SLF001
        rows: list[tuple[str, Callable[[], object], int]] = [
            ("bare call", work, n * 10),
            ("resilience, in memory", lambda: memory.call(work), n * 10),
            (OURS, lambda: shared.call(work), n),
            ("  FailureRate, CountWindow(100)", lambda: counted.call(work), n),
            ("  FailureRate, TimeWindow(60)", lambda: timed.call(work), n),
            ("resilience + RedisStorage(cache_ttl=0.1)", lambda: cached.call(work), n),
            (SCALE, lambda: floor._run(floor_keys, floor_args), n),  # noqa: SLF001
        ]
        if pybreaker is not None:
            py = pybreaker.CircuitBreaker(
                fail_max=5,
                reset_timeout=30,
                state_storage=pybreaker.CircuitRedisStorage(
                    pybreaker.STATE_CLOSED, counting_client(url), namespace="bench-pybreaker"
                ),
            )
            rows.append((PEER, lambda: py.call(work), n))
        results = {r["label"]: r for r in measure(rows, admin)}
    finally:
        if process is not None:
            process.kill()
            process.wait()
    report(results)


def report(results: dict[str, dict[str, Any]]) -> None:
    """Print the table, what its columns mean, and the targets."""
    bare = results["bare call"]["ns"]
    peer = results.get(PEER)
    scale = results.pop(SCALE)
    _timing.table(
        [
            "setup",
            "ns/call",
            "calls/s",
            "× bare",
            "× pybreaker calls/s",
            "trips/call",
            "cmds/call",
            "Redis cmds",
            "server µs",
        ],
        [
            (
                label,
                _timing.ns(r["ns"]),
                f"{r['per_s']:,.0f}",
                _timing.times(r["ns"] / bare),
                _timing.times(r["per_s"] / peer["per_s"], 2) if peer else "-",
                f"{r['trips']:.3f}",
                f"{r['issued']:.3f}",
                f"{r['commands']:.3f}",
                f"{r['usec']:.1f}",
            )
            for label, r in results.items()
        ],
    )
    print(
        "\ntrips/call: packets the client sent; cmds/call: commands it issued (server count,"
        " commands run inside our script excluded); Redis cmds: every command the server"
        " ran, inside scripts included; server µs: Redis's time per call (commandstats)."
        f" Scale: an empty EVALSHA costs this server {scale['usec']:.1f} µs"
        f" and the client {scale['ns'] / 1000:.0f} µs per call in this run; our default"
        f" mode's script costs {results[OURS]['usec'] / scale['usec']:.1f}× that."
    )
    print(f"\npython {sys.version.split()[0]}, redis-py {redis.__version__}")
    ours = results[OURS]
    goals = [
        _timing.at_most(10, "our script's server time ≤ 10 µs per call", ours["usec"], 10, "µs"),
        # A refresh read at most once per breaker per refresh interval comes on top.
        _timing.Target(
            6, "one round trip per call (≤ 1.01)", f"{ours['trips']:.4f}", ours["trips"] <= 1.01
        ),
    ]
    if peer:
        goals.append(
            _timing.at_least(
                10, "default mode ≥ 1.8× pybreaker's calls/s", ours["per_s"] / peer["per_s"], 1.8
            )
        )
    _timing.targets(goals)


if __name__ == "__main__":
    main()
