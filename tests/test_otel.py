"""OpenTelemetry: the instruments and span events of SPEC §14, read with the real SDK."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import resilience
from resilience import Hedge, _events, _named, otel
from resilience._context import CallContext, _current
from resilience.chaos import Chaos


class Telemetry:
    """A real SDK: an in-memory metric reader and span exporter, instrumented."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.spans = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = self.tracers.get_tracer("tests")
        self.instrumentation = otel.instrument(
            meter_provider=self.meters, tracer_provider=self.tracers
        )

    def points(self, name: str) -> list[Any]:
        """The data points of metric ``name`` collected now."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def counts(self) -> dict[tuple[tuple[str, Any], ...], int]:
        """``resilience.events`` as {sorted attributes: value}."""
        return {
            tuple(sorted(point.attributes.items())): point.value
            for point in self.points("resilience.events")
        }


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Instrumented for the test, uninstrumented after it."""
    instance = Telemetry()
    yield instance
    instance.instrumentation.uninstrument()
    instance.meters.shutdown()
    instance.tracers.shutdown()


def test_events_are_counted_with_their_attributes(telemetry: Telemetry) -> None:
    """A real hedge's event is counted with name, kind, strategy and exception type."""
    hedge = Hedge(delay=float("inf"), name="otel-hedge")
    calls = iter([ConnectionError("down"), "ok"])

    def flaky() -> str:
        step = next(calls)
        if isinstance(step, BaseException):
            raise step
        return step

    assert hedge.call(flaky) == "ok"
    assert telemetry.counts() == {
        (
            ("event.name", "hedge"),
            ("exception.type", "ConnectionError"),
            ("strategy.kind", "hedge"),
            ("strategy.name", "otel-hedge"),
        ): 1
    }


def test_pipeline_name_and_qualified_exception_types(telemetry: Telemetry) -> None:
    """An event inside a pipeline call carries pipeline.name; user errors are qualified."""

    class PaymentDeclinedError(Exception):
        pass

    token = _current.set(CallContext("checkout"))
    try:
        _events.emit("retry", "retry", None, PaymentDeclinedError(), attempt=1, delay=0.5)
    finally:
        _current.reset(token)
    ((attributes, value),) = telemetry.counts().items()
    attrs = dict(attributes)
    assert value == 1
    assert attrs["pipeline.name"] == "checkout"
    assert "strategy.name" not in attrs
    assert attrs["exception.type"] == f"{__name__}.{PaymentDeclinedError.__qualname__}"


def test_span_events_land_on_the_current_span(telemetry: Telemetry) -> None:
    """Retries, hedges, rejections and state changes become span events with details."""
    with telemetry.tracer.start_as_current_span("request"):
        _events.emit("retry", "retry", "api", TimeoutError(), attempt=2, delay=0.25)
        _events.emit("state_change", "circuit_breaker", "db", from_state="closed", to_state="open")
        _events.emit("rejected", "circuit_breaker", "db")
        _events.emit("give_up", "retry", "api")  # counted, but not a span event
        _events.emit("hedge", "hedge", "h", None, hedge=1, reason="delay", extra=object())
    (span,) = telemetry.spans.get_finished_spans()
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    assert [name for name, _ in events] == [
        "resilience.retry",
        "resilience.state_change",
        "resilience.rejected",
        "resilience.hedge",
    ]
    assert events[0][1] == {
        "event.name": "retry",
        "strategy.kind": "retry",
        "strategy.name": "api",
        "exception.type": "TimeoutError",
        "resilience.attempt": 2,
        "resilience.delay": 0.25,
    }
    assert events[1][1]["resilience.to_state"] == "open"
    assert "resilience.extra" not in events[3][1]
    assert sum(telemetry.counts().values()) == 5


def test_chaos_injections_are_counted_and_details_convert(telemetry: Telemetry) -> None:
    """A Chaos injection is counted; enum and tuple details become attribute values."""
    chaos = Chaos(result=0, rate=1.0, name="otel-chaos")
    with telemetry.tracer.start_as_current_span("request"):
        assert chaos.call(int, "7") == 0
        _events.emit("state_change", "circuit_breaker", "db", to_state=resilience.CircuitState.OPEN)
        _events.emit("limited", "rate_limiter", "api", kinds=("a", "b"))
    (span,) = telemetry.spans.get_finished_spans()
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["resilience.to_state"] == "open"
    assert span.events[1].attributes is not None
    assert tuple(span.events[1].attributes["resilience.kinds"]) == ("a", "b")
    counted = {dict(key)["event.name"]: value for key, value in telemetry.counts().items()}
    assert counted == {"injected": 1, "state_change": 1, "limited": 1}


def test_no_recording_span_means_no_span_event_and_no_error(telemetry: Telemetry) -> None:
    """Outside any span the event is still counted."""
    _events.emit("retry", "retry", "api")
    assert sum(telemetry.counts().values()) == 1
    assert telemetry.spans.get_finished_spans() == ()


def test_attempt_durations_from_a_real_hedge(telemetry: Telemetry) -> None:
    """Each finished hedge attempt is timed: number and whether it was handled."""
    hedge = Hedge(delay=float("inf"), on=ConnectionError, name="timed")
    calls = iter([ConnectionError("down"), "ok"])

    def flaky() -> str:
        step = next(calls)
        if isinstance(step, BaseException):
            raise step
        return step

    assert hedge.call(flaky) == "ok"
    seen = {
        (point.attributes["attempt.number"], point.attributes["attempt.handled"]): point.count
        for point in telemetry.points("resilience.attempt.duration")
    }
    assert seen == {(1, True): 1, (2, False): 1}
    (point, *_) = telemetry.points("resilience.attempt.duration")
    assert point.attributes["strategy.kind"] == "hedge"
    assert point.attributes["strategy.name"] == "timed"
    assert list(point.explicit_bounds) == list(otel.DURATION_BUCKETS)


def test_async_hedge_attempts_are_timed_but_cancelled_losers_are_not(
    telemetry: Telemetry,
) -> None:
    """Async: the winner's duration is recorded; a cancelled loser has none."""
    import asyncio

    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] == 1:
            await asyncio.Event().wait()
        return "hedge"

    assert asyncio.run(Hedge(delay=0.0).call_async(attempt)) == "hedge"
    (point,) = telemetry.points("resilience.attempt.duration")
    assert point.attributes["attempt.number"] == 2
    assert "strategy.name" not in point.attributes


def test_pipeline_durations_are_recorded(telemetry: Telemetry) -> None:
    """A pipeline timing lands in resilience.pipeline.duration with its name."""
    token = _current.set(CallContext("checkout"))
    try:
        _events.emit_timing("pipeline", "pipeline", "checkout", 0.02)
    finally:
        _current.reset(token)
    (point,) = telemetry.points("resilience.pipeline.duration")
    assert point.sum == pytest.approx(0.02)
    assert dict(point.attributes) == {
        "strategy.kind": "pipeline",
        "strategy.name": "checkout",
        "pipeline.name": "checkout",
    }


def test_breaker_state_gauge_reads_the_default_registry(telemetry: Telemetry) -> None:
    """1 for each named breaker's current state, 0 for the others."""
    breaker = resilience.get_circuit_breaker("otel-db")
    breaker.open()
    values = {
        point.attributes["state"]: point.value
        for point in telemetry.points("resilience.circuit_breaker.state")
        if point.attributes["strategy.name"] == "otel-db"
    }
    assert values["forced_open"] == 1
    assert sum(values.values()) == 1
    assert set(values) == {state.value for state in resilience.CircuitState}


def test_breaker_state_gauge_sees_a_breaker_made_by_its_constructor(telemetry: Telemetry) -> None:
    """A named breaker outside every registry is reported too, as SPEC §5 asks."""
    breaker = resilience.CircuitBreaker(name="otel-standalone")
    breaker.open()
    values = {
        point.attributes["state"]: point.value
        for point in telemetry.points("resilience.circuit_breaker.state")
        if point.attributes["strategy.name"] == "otel-standalone"
    }
    assert values["forced_open"] == 1
    del breaker


def test_events_are_counted_until_collected_and_totals_only_grow(telemetry: Telemetry) -> None:
    """The observable counter reports running totals at each collection."""
    _events.emit("retry", "retry", "api")
    assert list(telemetry.counts().values()) == [1]
    _events.emit("retry", "retry", "api")
    _events.emit("retry", "retry", "api")
    assert list(telemetry.counts().values()) == [3]


def test_uninstrument_stops_counting_and_the_gauge(telemetry: Telemetry) -> None:
    """After uninstrument() nothing more is recorded."""
    resilience.get_circuit_breaker("otel-gone")
    telemetry.instrumentation.uninstrument()
    _events.emit("retry", "retry", "api")
    assert telemetry.counts() == {}
    assert telemetry.points("resilience.circuit_breaker.state") == []
    assert _events.subscribers == ()
    assert _events.timers == ()


class BrokenExporter(SpanExporter):
    """An exporter that fails every export."""

    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("exporter down")

    def shutdown(self) -> None:
        """Nothing to release."""


def test_a_raising_span_exporter_never_breaks_the_call(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """An exporter that raises is logged by the SDK; the protected call still returns."""
    telemetry.tracers.add_span_processor(SimpleSpanProcessor(BrokenExporter()))
    hedge = Hedge(delay=float("inf"))
    with caplog.at_level(logging.ERROR), telemetry.tracer.start_as_current_span("request"):
        assert hedge.call(lambda: "ok") == "ok"
    assert "exporter down" in caplog.text or "Exception while exporting" in caplog.text


class _Raising:
    """A histogram whose record raises, as a broken SDK would."""

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("histogram broken")


class BrokenMeter(otel_metrics.NoOpMeter):
    """A meter handing out raising histograms."""

    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        return _Raising()


class BrokenMeterProvider(otel_metrics.NoOpMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return BrokenMeter("broken")


def test_a_broken_meter_is_logged_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Histograms and span events that raise are logged; the call goes on."""
    instrumentation = otel.instrument(meter_provider=BrokenMeterProvider())
    tracers = TracerProvider()
    exporter = InMemorySpanExporter()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with (
            caplog.at_level(logging.ERROR, logger="resilience"),
            tracers.get_tracer("t").start_as_current_span("s") as span,
        ):
            hedge = Hedge(delay=float("inf"))
            assert hedge.call(lambda: 1) == 1
            _events.emit("retry", "retry", "api")

            def explode(*args: Any, **kwargs: Any) -> None:
                raise RuntimeError("span broken")

            span.add_event = explode  # type: ignore[method-assign]
            _events.emit("retry", "retry", "api")
    finally:
        instrumentation.uninstrument()
        tracers.shutdown()
    assert "failed to record a attempt" in caplog.text
    assert "failed to add a retry span event" in caplog.text


def test_a_breaker_that_cannot_be_read_is_skipped(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A breaker whose state raises is logged and left out of the gauge."""

    class Unreadable:
        name = "unreadable"

        @property
        def state(self) -> Any:
            raise RuntimeError("storage gone")

    unreadable = Unreadable()
    _named.add(unreadable)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        names = {
            point.attributes["strategy.name"]
            for point in telemetry.points("resilience.circuit_breaker.state")
        }
    del unreadable
    assert "unreadable" not in names
    assert "cannot read circuit breaker 'unreadable'" in caplog.text


def test_instrument_uses_the_global_meter_provider_by_default() -> None:
    """Without arguments the global (here: no-op) providers are used, and nothing breaks."""
    instrumentation = otel.instrument()
    try:
        _events.emit("retry", "retry", "api")
    finally:
        instrumentation.uninstrument()


def test_import_without_the_extra_names_it() -> None:
    """Importing resilience.otel without opentelemetry says which extra to install."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "try:\n    import resilience.otel\n"
        "except ImportError as error:\n    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'resilient-calls[otel]'" in out


def test_import_resilience_does_not_load_opentelemetry() -> None:
    """`import resilience` leaves OpenTelemetry unloaded."""
    code = "import sys, resilience; print('opentelemetry' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def _attempt_points(telemetry: Telemetry) -> dict[tuple[Any, ...], int]:
    """``resilience.attempt.duration`` as {(kind, name, number, handled): count}."""
    return {
        (
            point.attributes["strategy.kind"],
            point.attributes.get("strategy.name"),
            point.attributes["attempt.number"],
            point.attributes["attempt.handled"],
        ): point.count
        for point in telemetry.points("resilience.attempt.duration")
    }


def _fails_then_ok(failures: int, error: type[Exception] = ConnectionError) -> Any:
    left = [failures]

    def func() -> str:
        if left[0]:
            left[0] -= 1
            raise error
        return "ok"

    return func


def test_a_retried_call_records_one_attempt_duration_per_attempt(telemetry: Telemetry) -> None:
    """Two handled failures and a success: three points, numbered 1 to 3."""
    retry = resilience.Retry(base_delay=0.0, name="otel-retry")
    assert retry.call(_fails_then_ok(2)) == "ok"
    assert _attempt_points(telemetry) == {
        ("retry", "otel-retry", 1, True): 1,
        ("retry", "otel-retry", 2, True): 1,
        ("retry", "otel-retry", 3, False): 1,
    }


def test_an_unhandled_error_records_an_unhandled_attempt(telemetry: Telemetry) -> None:
    """An error the retry does not retry is one attempt with attempt.handled false."""
    retry = resilience.Retry(base_delay=0.0, exceptions=OSError, name="otel-unhandled")
    with pytest.raises(KeyError):
        retry.call(_fails_then_ok(1, KeyError))
    assert _attempt_points(telemetry) == {("retry", "otel-unhandled", 1, False): 1}


def test_an_async_retried_call_records_its_attempts(telemetry: Telemetry) -> None:
    """The same for call_async, with real awaits between attempts."""
    import asyncio

    flaky = _fails_then_ok(1)

    async def fetch() -> str:
        await asyncio.sleep(0)
        return flaky()

    retry = resilience.Retry(base_delay=0.001, jitter=False, name="otel-async")
    assert asyncio.run(retry.call_async(fetch)) == "ok"
    assert _attempt_points(telemetry) == {
        ("retry", "otel-async", 1, True): 1,
        ("retry", "otel-async", 2, False): 1,
    }


def test_a_real_pipeline_call_records_its_duration_and_its_attempts(
    telemetry: Telemetry,
) -> None:
    """Pipeline.call: one pipeline point named after the pipeline; attempts carry it too."""
    pipeline = resilience.Pipeline(resilience.Retry(base_delay=0.0, name="r"), name="orders")
    assert pipeline.call(_fails_then_ok(1)) == "ok"
    (point,) = telemetry.points("resilience.pipeline.duration")
    assert point.count == 1
    assert dict(point.attributes) == {
        "strategy.kind": "pipeline",
        "strategy.name": "orders",
        "pipeline.name": "orders",
    }
    attempts = telemetry.points("resilience.attempt.duration")
    assert {attempt.attributes["pipeline.name"] for attempt in attempts} == {"orders"}
    assert sum(point.count for point in attempts) == 2
    assert point.sum >= sum(attempt.sum for attempt in attempts)


def test_an_async_pipeline_call_records_its_duration(telemetry: Telemetry) -> None:
    """Pipeline.call_async, twice: two observations in one pipeline point."""
    import asyncio

    async def fetch() -> str:
        await asyncio.sleep(0)
        return "ok"

    pipeline = resilience.Pipeline(resilience.Retry(base_delay=0.0), name="async-orders")

    async def twice() -> list[str]:
        return [await pipeline.call_async(fetch), await pipeline.call_async(fetch)]

    assert asyncio.run(twice()) == ["ok", "ok"]
    (point,) = telemetry.points("resilience.pipeline.duration")
    assert point.count == 2
    assert point.attributes["pipeline.name"] == "async-orders"
    assert _attempt_points(telemetry) == {("retry", None, 1, False): 2}
