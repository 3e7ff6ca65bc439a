import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from resilience import BreakerRegistry, CountWindow, FailureRate, _retry_stats
from resilience.metrics import _exposition, register_metrics, start_metrics_server
from resilience.testing import FakeClock

KIT = Path(__file__).resolve().parents[2] / "examples" / "monitoring"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run a command; return its result with output as text."""
    result = subprocess.run(args, input=stdin, capture_output=True, check=False)
    return subprocess.CompletedProcess(
        args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def busy_registry() -> CollectorRegistry:
    """A registry exporting breakers in every state, a measured failure rate and a retry."""
    clock = FakeClock()
    breakers = BreakerRegistry()
    breakers.get("closed")
    breakers.get("rated", policy=FailureRate(window=CountWindow(2), minimum_calls=1)).call(int)
    tripped = breakers.get('odd "name" \\ here', failure_threshold=1, clock=clock)
    with pytest.raises(ZeroDivisionError):
        tripped.call(lambda: 1 / 0)
    breakers.get("forced").open()
    breakers.get("disabled").disable()
    breakers.get("shadow").metrics_only()
    _retry_stats.counter_for(f"promtool-{uuid.uuid4()}").record(attempts=2, succeeded=True)
    registry = CollectorRegistry()
    register_metrics(registry, breakers)
    return registry


@pytest.mark.parametrize(
    "render",
    [lambda r: b"".join(_exposition(r)), generate_latest],
    ids=["metrics-server", "prometheus-client"],
)
def test_promtool_accepts_the_exposition(promtool, render):
    """`promtool check metrics` finds no problem in what we expose, either way it is rendered."""
    result = run(promtool, "check", "metrics", stdin=render(busy_registry()))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_promtool_accepts_the_kit_config(promtool):
    """The kit's prometheus.yml (and the rules it loads) is a valid configuration."""
    result = run(promtool, "check", "config", str(KIT / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules(promtool):
    """alerts.yml holds nine valid rules: three for breakers and retries, six for the rest."""
    result = run(promtool, "check", "rules", str(KIT / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_alert_rule_unit_tests_pass(promtool):
    """`promtool test rules` passes the kit's unit tests on synthetic series."""
    result = run(promtool, "test", "rules", str(KIT / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> Iterator[str]:
    """Yield the dashboard's PromQL queries with Grafana's variables filled in."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield re.sub(r"\$\{?\w+\}?", "5m", target["expr"])
            yield from walk(panel.get("panels", []))

    dashboard = json.loads((KIT / "grafana" / "dashboards" / "resilience.json").read_text())
    yield from walk(dashboard["panels"])


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """Prometheus's own parser accepts every dashboard query (checked as recording rules)."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, expr in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def query(prometheus: Any, promql: str) -> list[tuple[dict[str, str], float]]:
    """Run an instant query; return (labels, value) pairs."""
    data = prometheus.api("query", query=promql)
    return [(item["metric"], float(item["value"][1])) for item in data["result"]]


@pytest.mark.slow
def test_prometheus_scrapes_breaker_state(start_prometheus):
    """A real Prometheus scraping the metrics server sees a breaker trip, and loads the alerts."""
    breakers = BreakerRegistry()
    breaker = breakers.get("payments", failure_threshold=2, recovery_timeout=600.0)
    with start_metrics_server(port=0, registry=CollectorRegistry(), breakers=breakers) as server:
        config = json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(KIT / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "resilience",
                        "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
                    }
                ],
            }
        )
        prometheus = start_prometheus(config)
        state = 'resilience_circuit_breaker_state{name="payments",state="%s"}'
        prometheus.wait(
            lambda: [v for _, v in query(prometheus, state % "closed")] == [1.0],
            30,
            "a scrape showing the breaker closed",
        )
        for _ in range(2):
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)
        prometheus.wait(
            lambda: [v for _, v in query(prometheus, state % "open")] == [1.0],
            30,
            "a scrape showing the breaker open",
        )
        assert [v for _, v in query(prometheus, state % "closed")] == [0.0]
        failures = 'resilience_circuit_breaker_calls_total{name="payments",outcome="failure"}'
        assert [v for _, v in query(prometheus, failures)] == [2.0]
        prometheus.wait(
            lambda: all(
                rule["health"] == "ok"
                for group in prometheus.api("rules")["groups"]
                for rule in group["rules"]
            ),
            30,
            "the alert rules to evaluate",
        )
        rules = {r["name"] for g in prometheus.api("rules")["groups"] for r in g["rules"]}
        assert rules == {
            "CircuitBreakerOpen",
            "CircuitBreakerHighFailureRate",
            "RetriesExhausted",
            "BulkheadSaturated",
            "BulkheadRejecting",
            "RateLimiterLimiting",
            "HedgeExtraLoadHigh",
            "AdaptiveThrottleRejecting",
            "ChaosInjectionsActive",
        }
