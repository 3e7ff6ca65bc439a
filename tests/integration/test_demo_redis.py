"""``demo --redis URL``: two processes of the demo share one breaker and one rate limit."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from demo_output import check_every_sum, count, run_demo

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis_server import RedisServer

BURST = 12  # the demo's rate limit lets 12 requests through at once


@pytest.mark.slow
def test_demo_shares_its_breaker_and_rate_limit_between_two_processes(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A second process runs alongside; both bursts fit one limit; one circuit counts both."""
    redis_server = redis_server_factory(password="QZdemo-secret")  # noqa: S106  # a test's own
    url = f"redis://127.0.0.1:{redis_server.port}/0?password=QZdemo-secret"
    result = run_demo("--no-metrics", "--redis", url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "QZdemo" not in out + result.stderr
    assert "shared: breaker 'demo.inventory' and rate limit 'demo.limit' through Redis" in out
    assert "?password=***" in out
    assert "metrics:" not in out
    assert "[peer] == breaker closed -> open ==" in out  # the peer saw the one circuit open
    assert "[peer] #022-#037 [burst    ] 16 requests at once" in out
    lines = check_every_sum(out)
    (_, here, peer) = count(
        lines,
        "shared rate limit",
        r"(\d+) of the two bursts' 32 requests got through = (\d+) here \+ (\d+) in the peer",
    )
    # Two limits of their own would have let up to 2 x 12 through; one shared limit lets
    # 12 through at once, plus what refills (30/s) while the two bursts are asked.
    assert here + peer <= BURST + 4
    (fleet, own, peers) = count(
        lines,
        "shared breaker",
        r"every process, this run: (\d+) calls = .* \(this process (\d+), the peer (\d+)\)",
    )
    assert own < fleet <= own + peers  # the peer's calls reached the shared totals
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "resilience",
            "status",
            "demo.inventory",
            "--redis",
            redis_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "demo.inventory" in status.stdout
