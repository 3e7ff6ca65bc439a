"""End to end: OpenTelemetry's Prometheus exporter, scraped by a real Prometheus server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, make_wsgi_app

import resilience
from resilience import Hedge, otel
from resilience.chaos import Chaos


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
        """Keep the scrape log out of the test output."""


@pytest.fixture
def exporter_port() -> Iterator[int]:
    """Instrument with the OTel Prometheus reader and serve /metrics on loopback."""
    reader = PrometheusMetricReader()  # registers on prometheus_client's REGISTRY
    meters = MeterProvider(metric_readers=[reader])
    instrumentation = otel.instrument(meter_provider=meters)
    server: WSGIServer = make_server("127.0.0.1", 0, make_wsgi_app(REGISTRY), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        instrumentation.uninstrument()
        meters.shutdown()  # unregisters the reader's collector from REGISTRY


def query(prometheus: Any, promql: str) -> list[tuple[dict[str, str], float]]:
    """Run an instant query; return (labels, value) pairs."""
    data = prometheus.api("query", query=promql)
    return [(item["metric"], float(item["value"][1])) for item in data["result"]]


@pytest.mark.slow
def test_prometheus_scrapes_the_otel_instruments(start_prometheus, exporter_port):
    """Events, attempt durations and breaker state reach a real Prometheus through OTel."""
    config = json.dumps(
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "otel",
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                }
            ],
        }
    )
    resilience.get_circuit_breaker("otel-e2e").open()
    chaos = Chaos(fault=ConnectionError, rate=1.0, name="otel-e2e-chaos")
    hedge = Hedge(delay=float("inf"), on=ConnectionError, name="otel-e2e-hedge")
    calls = iter([True, False])

    def backend() -> str:
        if next(calls):
            return chaos.call(str)
        return "ok"

    assert hedge.call(backend) == "ok"
    prometheus = start_prometheus(config)
    events = 'resilience_events_total{event_name="%s",strategy_name="%s"}'
    prometheus.wait(
        lambda: [v for _, v in query(prometheus, events % ("hedge", "otel-e2e-hedge"))] == [1.0],
        30,
        "a scrape showing the hedge event",
    )
    ((labels, value),) = query(prometheus, events % ("injected", "otel-e2e-chaos"))
    assert value == 1.0
    assert labels["strategy_kind"] == "chaos"
    attempts = query(
        prometheus, 'resilience_attempt_duration_seconds_count{strategy_name="otel-e2e-hedge"}'
    )
    assert sorted(
        (labels["attempt_number"], labels["attempt_handled"]) for labels, _ in attempts
    ) == [
        ("1", "true"),
        ("2", "false"),
    ]
    state = 'resilience_circuit_breaker_state{strategy_name="otel-e2e",state="%s"}'
    assert [v for _, v in query(prometheus, state % "forced_open")] == [1.0]
    assert [v for _, v in query(prometheus, state % "closed")] == [0.0]
