"""Throughput of Redis-backed circuit breakers, and round trips per call.

Compares, against one redis-server in one run:
- a bare function call, and an in-memory ``CircuitBreaker`` (no Redis);
- ``CircuitBreaker(storage=RedisStorage(client))`` (one round trip per call);
- the same with ``RedisStorage(client, cache_ttl=0.1)`` (batched outcomes);
- pybreaker's ``CircuitBreaker`` over its ``CircuitRedisStorage``.

Round trips are counted on the client (packets sent by the connection) and commands on
the server (``CONFIG RESETSTAT`` then ``INFO commandstats``). Results are printed as
ns/call, calls/s and ratios, since absolute numbers depend on the machine.

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

from resilience import CircuitBreaker
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
        empty = admin.register_script("return 1")
        results = measure(
            [
                ("bare call", work, n * 10),
                ("resilience, in memory", lambda: memory.call(work), n * 10),
                ("resilience + RedisStorage", lambda: shared.call(work), n),
                ("resilience + RedisStorage(cache_ttl=0.1)", lambda: cached.call(work), n),
                ("(an empty Lua script, for scale)", empty, n),
                ("pybreaker + CircuitRedisStorage", lambda: py.call(work), n),
            ],
            admin,
        )
        baseline = results[-2]
    finally:
        if process is not None:
            process.kill()
            process.wait()
    bare = results[0]["ns"]
    pyb = results[-1]["per_s"]
    print(
        f"{'':42} {'ns/call':>10} {'calls/s':>10} {'x bare':>8} {'x pybreaker':>12} "
        f"{'trips/call':>11} {'cmds/call':>10} {'Redis cmds':>11} {'server us':>10}"
    )
    for r in results:
        if r is baseline:
            continue
        print(
            f"{r['label']:42} {r['ns']:>10.0f} {r['per_s']:>10.0f} {r['ns'] / bare:>8.1f} "
            f"{r['per_s'] / pyb:>12.2f} {r['trips']:>11.3f} {r['issued']:>10.3f} "
            f"{r['commands']:>11.3f} {r['usec']:>10.1f}"
        )
    print(
        "trips/call: packets the client sent; cmds/call: commands it issued (server count,"
        " commands run inside our script excluded); Redis cmds: every command the server"
        " ran, inside scripts included; server us: Redis's time per call (commandstats)"
    )
    print(
        f"scale: an empty EVALSHA costs this server {baseline['usec']:.1f} us "
        f"and the client {baseline['ns'] / 1000:.0f} us per call in this run"
    )
    print(f"python {sys.version.split()[0]}, redis-py {redis.__version__}")


if __name__ == "__main__":
    main()
