"""``python -m resilience demo`` runs the whole scenario as a user would and exits 0."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time

import pytest
from redis_server import RedisServer

DEMO = [sys.executable, "-m", "resilience", "demo"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_demo_trips_recovers_and_serves_metrics() -> None:
    """The demo shows the breaker open and close again, serves /metrics and /health, in < 15 s."""
    started = time.monotonic()
    result = _run("--port", "0")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "== breaker closed -> open ==" in out
    assert "== breaker half_open -> closed ==" in out
    assert "rejected at once: circuit open" in out
    assert "retry 1 after" in out
    assert "Summary" in out
    assert 'GET /health  -> {"status": "ok", "open": []}' in out
    assert 'resilience_circuit_breaker_state{name="demo.inventory",state="closed"} 1' in out
    assert took < 15.0
    _check_the_words(out)


def _check_the_words(out: str) -> None:
    """Each request says what its time is; "at once" means at once; counts add up."""
    lines = out.splitlines()
    requests = [line for line in lines if re.search(r"#\d{3} \[", line)]
    assert requests
    assert all(re.search(r"\(request took \d+ ms\)$", line) for line in requests), requests
    for before, line in itertools.pairwise(lines):
        if "rejected at once" in line:  # no attempt of this request ran, so no retry either
            assert not re.search(r"retry \d+ after", before), (before, line)
    assert not re.search(r"\b1 (successes|failures|calls|attempts)\b", out)
    summary = re.search(
        r"requests: (\d+): (\d+) ok, (\d+) failed after retries, (\d+) rejected by the open "
        r"circuit \((\d+) at once, (\d+) after a failed attempt\)",
        out,
    )
    assert summary is not None, out
    total, ok, failed, rejected, at_once, late = map(int, summary.groups())
    assert total == ok + failed + rejected
    assert rejected == at_once + late


@pytest.mark.slow
def test_demo_shares_its_breaker_through_redis(redis_server_factory) -> None:
    """With --redis the breaker lives in Redis, seen by the CLI; a ?password= never prints."""
    redis_server: RedisServer = redis_server_factory(password="QZdemo-secret")  # noqa: S106
    url = f"redis://127.0.0.1:{redis_server.port}/0?password=QZdemo-secret"
    result = _run("--no-metrics", "--redis", url)
    assert result.returncode == 0, result.stderr
    assert "QZdemo" not in result.stdout + result.stderr
    assert "state: shared through Redis at redis://127.0.0.1" in result.stdout
    assert "?password=***" in result.stdout
    assert "== breaker closed -> open ==" in result.stdout
    assert "metrics:" not in result.stdout
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


def test_demo_refuses_a_bad_port() -> None:
    """A port outside 0..65535 is a usage error (exit 2) naming the value."""
    result = _run("--port", "70000")
    assert result.returncode == 2
    assert "port must be in 0..65535, got 70000" in result.stderr


@pytest.mark.slow
def test_demo_falls_back_to_a_free_port_when_its_port_is_taken() -> None:
    """A busy --port does not stop the demo: it says so and serves on a free port."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("--port", str(port))
    assert result.returncode == 0, result.stderr
    assert f"metrics: port {port} unavailable" in result.stdout
    assert "GET /health" in result.stdout
