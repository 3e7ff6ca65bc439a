"""Throughput of Redis-backed circuit breakers, and round trips per call.

Compares, against one redis-server in one run:
- a bare function call, and an in-memory ``CircuitBreaker`` (no Redis);
- ``CircuitBreaker(storage=RedisStorage(client))``, the default mode (one round trip per
  closed call), with ``ConsecutiveFailures`` and with ``FailureRate`` over a
  ``CountWindow(100)`` and a ``TimeWindow(60)``;
- the same with ``RedisStorage(client, cache_ttl=0.1)`` (batched outcomes);
- an empty Lua script called the same way, the floor of any script's server time;
- pybreaker's ``CircuitBreaker`` over its ``CircuitRedisStorage``.

Round trips are counted on the client (packets sent by the connection) and commands on
the server (``CONFIG RESETSTAT`` then ``INFO commandstats``, whose ``usec_per_call`` of
``EVALSHA`` is the script's server time). Results are printed as ns/call, calls/s and
ratios, since absolute numbers depend on the machine; the last lines set the figures
against their targets (script <= 10 us of server time per call; the default mode >= 1.8x
pybreaker's calls per second).

Usage: python benchmarks/bench_redis.py [--calls N] [--redis URL]
(without --redis it starts a throwaway redis-server on a free loopback port).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pybreaker
import redis

from resilience import CircuitBreaker, CountWindow, FailureRate, TimeWindow
from resilience.redis import RedisStorage

if TYPE_CHECKING:
    from collections.abc import Callable

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


class CountingConnection(redis.Connection):
    """A connection that counts the packets it sends: one per round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Count one round trip, then send."""
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return process, port


def counting_client(url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return redis.Redis(connection_pool=pool)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    process = None
    url = args.redis
    if url is None:
        process, port = start_server()
        url = f"redis://127.0.0.1:{port}/0"
    admin = redis.Redis.from_url(url)
    admin.flushall()
    try:

        def work() -> int:
            return 1

        memory = CircuitBreaker(name="bench-memory", failure_threshold=5)
        shared = CircuitBreaker(
            name="bench-redis", failure_threshold=5, storage=RedisStorage(counting_client(url))
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
        cached = CircuitBreaker(
            name="bench-cached",
            failure_threshold=5,
            storage=RedisStorage(counting_client(url), cache_ttl=0.1),
        )
        py = pybreaker.CircuitBreaker(
            fail_max=5,
            reset_timeout=30,
            state_storage=pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED, counting_client(url), namespace="bench-pybreaker"
            ),
        )
        n = args.calls
        # The floor, called the way RedisStorage calls its script (one packet on a
        # connection of its own), with the same keys and arguments.
        floor = RedisStorage(counting_client(url))
        floor._script = floor._client.register_script("return 1")  # noqa: SLF001
        floor_args = ("r", "86400000", 0, 1, "s", "", "c,5,,,,,1,1,30000000", "k")
        floor_keys = floor._keys_of("bench-floor")  # noqa: SLF001
        results = measure(
            [
                ("bare call", work, n * 10),
                ("resilience, in memory", lambda: memory.call(work), n * 10),
                ("resilience + RedisStorage (default mode)", lambda: shared.call(work), n),
                ("  FailureRate, CountWindow(100)", lambda: counted.call(work), n),
                ("  FailureRate, TimeWindow(60)", lambda: timed.call(work), n),
                ("resilience + RedisStorage(cache_ttl=0.1)", lambda: cached.call(work), n),
                (EMPTY, lambda: floor._run(floor_keys, floor_args), n),  # noqa: SLF001
                ("pybreaker + CircuitRedisStorage", lambda: py.call(work), n),
            ],
            admin,
        )
    finally:
        if process is not None:
            process.kill()
            process.wait()
    report(results)


EMPTY = "(an empty Lua script, the floor)"


def report(results: list[dict[str, Any]]) -> None:
    """Print the table, then each figure against its target."""
    rows = {r["label"]: r for r in results}
    bare = rows["bare call"]["ns"]
    memory = rows["resilience, in memory"]
    pyb = rows["pybreaker + CircuitRedisStorage"]
    floor = rows[EMPTY]
    ours = rows["resilience + RedisStorage (default mode)"]
    print(
        f"{'':42} {'ns/call':>10} {'calls/s':>10} {'x bare':>8} {'x in-mem':>9} "
        f"{'x pybreaker':>12} {'trips/call':>11} {'cmds/call':>10} {'Redis cmds':>11} "
        f"{'server us':>10}"
    )
    for r in results:
        print(
            f"{r['label']:42} {r['ns']:>10.0f} {r['per_s']:>10.0f} {r['ns'] / bare:>8.1f} "
            f"{r['ns'] / memory['ns']:>9.1f} {r['per_s'] / pyb['per_s']:>12.2f} "
            f"{r['trips']:>11.3f} {r['issued']:>10.3f} {r['commands']:>11.3f} {r['usec']:>10.1f}"
        )
    print(
        "x bare, x in-mem: time per call over a bare call's, an in-memory breaker's; "
        "x pybreaker: calls/s over pybreaker's; trips/call: packets the client sent; "
        "cmds/call: commands it issued (server count, commands run inside our script "
        "excluded); Redis cmds: every command the server ran, inside scripts included; "
        "server us: Redis's time per call (commandstats)"
    )
    print(
        f"script server time, default mode: {ours['usec']:.1f} us per call "
        f"(target <= 10 us), {ours['usec'] / floor['usec']:.1f}x the empty script's "
        f"{floor['usec']:.1f} us; Redis commands per call: {ours['commands']:.2f} "
        f"(pybreaker {pyb['commands']:.2f})"
    )
    print(
        f"default mode: {ours['per_s'] / pyb['per_s']:.2f}x pybreaker's calls/s "
        f"(target >= 1.8x); a round trip with the empty script takes the client "
        f"{floor['ns'] / 1000:.0f} us, the default mode {ours['ns'] / 1000:.0f} us, "
        f"pybreaker {pyb['ns'] / 1000:.0f} us"
    )
    print(f"python {sys.version.split()[0]}, redis-py {redis.__version__}")


if __name__ == "__main__":
    main()
