"""Cost of a RateLimiter decision: local against a bare call, fleet-wide against `limits`.

Everything is measured in this process, in this run:
- local: ``RateLimiter.try_acquire()`` (admitted, refused, keyed) as ns per call and as a
  ratio to a bare call of a trivial function, timed in interleaved rounds (the median of
  the per-round ratios, ``_timing.compare``), beside the ``limits`` package's in-memory
  moving window;
- fleet: on one throwaway redis-server, decisions per second, round trips per decision
  (packets the client sent), Redis commands per decision (the server's
  ``INFO commandstats``, commands run inside scripts included) and the server's
  microseconds per decision, for ``RateLimiter(storage=RedisStorage(...))`` and for
  ``limits``' Redis moving-window and fixed-window strategies.

Usage: python benchmarks/bench_ratelimit.py [--quick] [--redis URL]
(without --redis it starts a redis-server on a free loopback port).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import redis

import _timing
from _redis_server import CountingConnection, counting_client, start_server
from resilience import RateLimiter
from resilience.redis import RedisStorage

if TYPE_CHECKING:
    from collections.abc import Callable

limits = _timing.optional("limits")
if limits is not None:
    import limits.storage
    import limits.strategies


def local(timing: _timing.Plan) -> float:
    """Print the local decision's cost as ratios to a bare call; return the admitted one's."""

    def work() -> int:
        return 1

    admitting = RateLimiter(1e12, burst=2**40)
    refusing = RateLimiter(1.0, burst=1)
    refusing.try_acquire()
    keyed = RateLimiter(1e12, burst=2**40)
    candidates = {
        "try_acquire(), admitted": _timing.loop(admitting.try_acquire),
        "try_acquire(), refused": _timing.loop(refusing.try_acquire),
        "try_acquire(key=...), admitted": _timing.loop(lambda: keyed.try_acquire(key="tenant-1")),
    }
    if limits is not None:
        peer = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
        item = limits.RateLimitItemPerSecond(10**9)
        candidates["limits MovingWindow + MemoryStorage, hit()"] = _timing.loop(
            lambda: peer.hit(item, "tenant-1")
        )
    results = _timing.compare(candidates, _timing.loop(work), timing=timing)
    _timing.heading("Local decision (ns per call; × bare = median of per-round ratios)")
    _timing.table(
        ["scenario", "best ns/call", "× bare"],
        [("bare call", _timing.ns(results["try_acquire(), admitted"].baseline_ns), "1.0×")]
        + [(label, _timing.ns(t.ns), _timing.times(t.ratio)) for label, t in results.items()],
    )
    return results["try_acquire(), admitted"].ratio


ROUNDS = 5


def fleet_rows(
    rows: list[tuple[str, Callable[[], object]]], calls: int, admin: redis.Redis
) -> list[dict[str, Any]]:
    """Measure each fleet-wide strategy in alternating rounds (load drifts hit all alike)."""
    for _, call in rows:
        for _ in range(min(1000, calls // 10)):
            call()
    keys = ("elapsed", "trips", "commands", "usec")
    totals = {label: dict.fromkeys(keys, 0.0) for label, _ in rows}
    part = max(1, calls // ROUNDS)
    skip = {"cmdstat_config|resetstat", "cmdstat_info"}
    for _ in range(ROUNDS):
        for label, call in rows:
            admin.config_resetstat()
            CountingConnection.sent = 0
            start = time.perf_counter()
            for _ in range(part):
                call()
            elapsed = time.perf_counter() - start
            stats = admin.info("commandstats")
            scripts = {k: v for k, v in stats.items() if k in {"cmdstat_evalsha", "cmdstat_eval"}}
            timed = scripts or {k: v for k, v in stats.items() if k not in skip}
            total = totals[label]
            total["elapsed"] += elapsed
            total["trips"] += CountingConnection.sent
            total["commands"] += sum(v["calls"] for k, v in stats.items() if k not in skip)
            total["usec"] += sum(v["usec"] for v in timed.values())
    n = part * ROUNDS
    return [
        {
            "label": label,
            "per_s": n / totals[label]["elapsed"],
            "trips": totals[label]["trips"] / n,
            "commands": totals[label]["commands"] / n,
            "usec": totals[label]["usec"] / n,
        }
        for label, _ in rows
    ]


def fleet(url: str, calls: int) -> None:
    """Print fleet-wide decisions per second against limits' Redis strategies."""
    admin = redis.Redis.from_url(url)
    admin.flushall()
    ours = RateLimiter(1e9, burst=2**40, name="bench", storage=RedisStorage(counting_client(url)))
    rows: list[tuple[str, Callable[[], object]]] = [
        ("resilience RateLimiter + RedisStorage", ours.try_acquire)
    ]
    if limits is not None:
        # limits builds its own client from a URI; count its round trips the same way.
        storage = limits.storage.RedisStorage(url, connection_class=CountingConnection)
        moving = limits.strategies.MovingWindowRateLimiter(storage)
        fixed = limits.strategies.FixedWindowRateLimiter(storage)
        item = limits.RateLimitItemPerMinute(10**8)
        rows += [
            ("limits MovingWindow + Redis", lambda: moving.hit(item, "moving")),
            ("limits FixedWindow + Redis", lambda: fixed.hit(item, "fixed")),
        ]
    results = fleet_rows(rows, calls, admin)
    _timing.heading("Fleet-wide decision (one redis-server, same run)")
    base = results[0]["per_s"]
    _timing.table(
        ["strategy", "decisions/s", "× ours", "round trips", "Redis commands", "server µs"],
        [
            (
                r["label"],
                f"{r['per_s']:,.0f}",
                _timing.times(r["per_s"] / base, 2),
                f"{r['trips']:.2f}",
                f"{r['commands']:.2f}",
                f"{r['usec']:.1f}",
            )
            for r in results
        ],
    )
    print(
        "\nround trips: packets the client sent per decision; Redis commands: the server's"
        " count per decision, commands run inside a script included; server µs: time Redis"
        " spent per decision (its scripts, or all its commands)."
    )


def main() -> None:
    """Run both parts and print markdown tables."""
    parser = _timing.parser(__doc__)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    admitted = local(_timing.plan(quick=args.quick))
    process = None
    url = args.redis
    if url is None:
        process, url = start_server()
    try:
        fleet(url, 3_000 if args.quick else 20_000)
    finally:
        if process is not None:
            process.kill()
            process.wait()
    versions = f"redis-py {redis.__version__}"
    if limits is not None:
        versions += f", limits {limits.__version__}"
    print(f"\npython {sys.version.split()[0]}, {versions}")
    _timing.targets(
        [_timing.at_most(12, "local `try_acquire()`, admitted, ≤ 10× a bare call", admitted, 10)]
    )


if __name__ == "__main__":
    main()
