"""``python -m resilience demo`` runs the whole scenario as a user would and exits 0."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from demo_output import DEMO, check_every_sum, count, run_demo

from resilience._demo_metrics import series

ROOT = Path(__file__).resolve().parents[2]

# (metric, the name label it must have) for every named strategy of the demo.
EXPECTED_SERIES = [
    ("resilience_circuit_breaker_state", "demo.inventory"),
    ("resilience_circuit_breaker_calls_total", "demo.inventory"),
    ("resilience_retry_calls_total", "demo.retry"),
    ("resilience_retry_attempts_total", "demo.retry"),
    ("resilience_rate_limiter_calls_total", "demo.limit"),
    ("resilience_bulkhead_calls_total", "demo.pool"),
    ("resilience_bulkhead_in_flight", "demo.pool"),
    ("resilience_bulkhead_limit", "demo.pool"),
    ("resilience_hedge_calls_total", "demo.hedge"),
    ("resilience_hedge_hedges_total", "demo.hedge"),
    ("resilience_chaos_calls_total", "demo.chaos.slow"),
    ("resilience_chaos_injected_total", "demo.chaos.slow"),
    ("resilience_chaos_injected_total", "demo.chaos.errors"),
    ("resilience_chaos_injected_total", "demo.chaos.outage"),
]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  # loopback
        return str(answer.read().decode())


def _live_run() -> tuple[str, str, str, float]:
    """Run the demo, scrape /metrics and /health while it runs; return out, both, secs."""
    started = time.monotonic()
    seen: list[str] = []
    metrics = health = url = ""
    with subprocess.Popen(  # our own interpreter and module
        [*DEMO, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            for line in process.stdout:
                seen.append(line)
                address = re.match(r"metrics: (http://127\.0\.0\.1:\d+)/metrics", line)
                if address:
                    url = address.group(1)
                if "[burst" in line and not metrics:  # mid-run: every strategy has been used
                    metrics = _get(f"{url}/metrics")
                    health = _get(f"{url}/health")
            assert process.wait(timeout=60) == 0, process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
    return "".join(seen), metrics, health, time.monotonic() - started


@pytest.fixture(scope="module")
def live() -> tuple[str, str, str, float]:
    """One real run of the demo, shared by the tests that read it."""
    return _live_run()


@pytest.mark.slow
def test_demo_shows_every_strategy_on_one_timeline(live: tuple[str, str, str, float]) -> None:
    """Breaker trips and recovers, retries, a hedge, the burst's shedding, in about 10 s."""
    out, _, _, took = live
    for wanted in (
        (
            "goes through Pipeline.standard(...):\n"
            "     rate limiter 'demo.limit' (30/s, bursts of 12)\n"
            "  -> deadline (1 s)\n"
            "  -> retry 'demo.retry' (2 retries, jittered backoff)\n"
            "  -> breaker 'demo.inventory' (opens after 4 failures in a row)\n"
            "  -> bulkhead 'demo.pool' (4 at once, 4 waiting)\n"
            "  -> attempt timeout (250 ms)\n"
            "  -> hedge 'demo.hedge' (a second call after 60 ms) -> chaos -> the service\n"
        ),
        "== breaker closed -> open ==",
        "== breaker half_open -> closed ==",
        "rejected at once: circuit open",
        "the hedge answered first, the first call was slow",
        "16 requests at once:",
        "rate-limited by 'demo.limit'",
        "shed by bulkhead 'demo.pool'",
        'GET /health  -> {"status": "degraded"',  # read during the outage
        'GET /health  -> {"status": "ok"',  # and after it
        'resilience_circuit_breaker_state{name="demo.inventory",state="closed"} 1',
        "skipped: two processes sharing one breaker and one rate limit",
    ):
        assert wanted in out, wanted
    assert re.search(r"retry \d after (ServiceUnavailableError|ConnectionRefusedError)", out)
    assert took < 20.0  # "about ten seconds", with room for a busy machine
    _check_the_words(out)


@pytest.mark.slow
def test_demo_summary_adds_up(live: tuple[str, str, str, float]) -> None:
    """Every sum of the summary adds up, and the strategies agree with the demo's counts."""
    lines = check_every_sum(live[0])
    total, ok, failed, rejected, shed, limited = count(
        lines,
        "requests:",
        r"(\d+) = (\d+) ok \+ (\d+) failed after retries \+ (\d+) rejected by the open "
        r"circuit \+ (\d+) shed by the bulkhead \+ (\d+) rate-limited",
    )
    asked, allowed, limiter_limited = count(
        lines, "rate limiter", r"(\d+) asked = (\d+) allowed \+ (\d+) limited"
    )
    assert (asked, limiter_limited) == (total, limited)
    calls, successes, failures, breaker_rejected, ignored = count(
        lines,
        "breaker 'demo.inventory'",
        r"= (\d+) calls = (\d+) successes \+ (\d+) failures \+ (\d+) rejected \+ (\d+) ignored",
    )
    assert successes == ok  # one success per request that ended well
    assert breaker_rejected == rejected  # an open circuit ends a request's retries
    past, admitted, bulkhead_shed = count(
        lines, "bulkhead", r"(\d+) calls past the breaker = (\d+) admitted \+ (\d+) shed"
    )
    assert past == calls - breaker_rejected
    assert bulkhead_shed == shed == ignored  # the breaker ignores what the bulkhead sheds
    (hedged,) = count(lines, "hedge", r"'demo.hedge': (\d+) calls")
    assert hedged == admitted  # every admitted attempt reached the hedge
    assert failures > 0
    assert failed <= failures  # a request fails after at least one failed attempt
    assert allowed + limited == total


@pytest.mark.slow
def test_demo_serves_every_strategy_live(live: tuple[str, str, str, float]) -> None:
    """A real scrape during the run finds a series of every named strategy, and /health."""
    _, metrics, health, _ = live
    samples = series(metrics)
    for metric, name in EXPECTED_SERIES:
        assert any(m == metric and labels.get("name") == name for m, labels, _ in samples), (
            metric,
            name,
        )
    assert json.loads(health)["status"] in {"ok", "degraded"}


def _check_the_words(out: str) -> None:
    """Each request says what its time is; "at once" means at once; no "1 successes"."""
    lines = out.splitlines()
    requests = [line for line in lines if re.search(r"s  #\d{3} \[", line)]
    assert requests
    assert all(re.search(r"\(request took \d+ ms\)$", line) for line in requests), requests
    for before, line in itertools.pairwise(lines):
        if "rejected at once" in line:  # no attempt of this request ran, so no retry either
            number = re.search(r"#(\d{3})", line)
            assert number is not None
            assert f"#{number.group(1)} retry" not in before, (before, line)
    assert not re.search(r"\b1 (successes|failures|calls|attempts)\b", out)


def test_demo_refuses_a_bad_port() -> None:
    """A port outside 0..65535 is a usage error (exit 2) naming the value."""
    result = run_demo("--port", "70000")
    assert result.returncode == 2
    assert "port must be in 0..65535, got 70000" in result.stderr


def test_demo_peer_mode_needs_redis() -> None:
    """The hidden second-process mode without a Redis is a usage error (exit 2)."""
    result = subprocess.run(
        [*DEMO, "--peer"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )
    assert result.returncode == 2
    assert "demo --peer needs --redis URL or REDIS_URL" in result.stderr


@pytest.mark.slow
def test_demo_falls_back_to_a_free_port_when_its_port_is_taken() -> None:
    """A busy --port does not stop the demo: it says so and serves on a free port."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_demo("--port", str(port))
    assert result.returncode == 0, result.stderr
    assert f"metrics: port {port} unavailable" in result.stdout
    assert "GET /health" in result.stdout
    check_every_sum(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["README.md", "docs/demo.md"], ids=["readme", "docs"])
def test_the_recorded_run_is_of_this_demo(live: tuple[str, str, str, float], page: str) -> None:
    """The text recording in the README and the docs starts as a run does, and adds up."""
    text = (ROOT / page).read_text()
    recording = "resilience demo:" + text.split("```text\nresilience demo:", 1)[1].split("```")[0]
    intro = live[0].split("\nmetrics:")[0]
    assert recording.startswith(intro)
    check_every_sum(recording)
