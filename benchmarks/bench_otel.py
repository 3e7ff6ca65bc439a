"""What OpenTelemetry costs: a call that emits no event, and one retry event.

Run: ``python benchmarks/bench_otel.py`` (``--quick`` for a short run). Prints a markdown
table. Needs the ``dev`` extra (opentelemetry-sdk).

Rows:

- closed-breaker call, with ``resilience.otel.instrument()`` on, as a ratio to the same
  call with it off, timed in interleaved rounds (target: within 10%). Such a call emits no
  event, so the code it runs is the same; the row checks that nothing crept in.
- one ``retry`` event reported through the event path, with OpenTelemetry on (a real SDK
  ``MeterProvider``; target: at most 5 µs), outside any span and inside a recording span
  (the span event is then added too). The event is emitted the way ``Retry`` emits it.
- the same event with nobody subscribed: the cost a strategy pays when OTel is off.

Each figure is the best of several interleaved rounds (``_timing.compare``; OTel is switched
on or off before each run) and the ratio that over the baseline's best; compare ratios,
not nanoseconds.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import _timing
from resilience import CircuitBreaker, _events, otel


def ok() -> int:
    return 1


def main() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    tracers = TracerProvider()
    tracer = tracers.get_tracer("bench")
    state: dict[str, otel.Instrumentation | None] = {"on": None}

    def otel_on() -> None:
        if state["on"] is None:
            state["on"] = otel.instrument(meter_provider=meters, tracer_provider=tracers)

    def otel_off() -> None:
        instrumentation = state["on"]
        if instrumentation is not None:
            instrumentation.uninstrument()
            state["on"] = None

    breaker = CircuitBreaker(name="bench-otel")
    call = breaker.call
    error = ConnectionError("down")

    def retry_event() -> None:
        if _events.subscribers:
            _events.emit("retry", "retry", "api", error, attempt=1, delay=0.0)

    args = _timing.parser(__doc__).parse_args()
    timing = _timing.plan(quick=args.quick)
    off = _timing.with_setup(otel_off, _timing.loop(lambda: call(ok)))
    calls = _timing.compare(
        {"on": _timing.with_setup(otel_on, _timing.loop(lambda: call(ok)))}, off, timing=timing
    )["on"]
    silent = _timing.with_setup(otel_off, _timing.loop(retry_event))
    event = _timing.with_setup(otel_on, _timing.loop(retry_event))
    events = _timing.compare({"on": event}, silent, timing=timing)["on"]
    with tracer.start_as_current_span("request"):
        in_span = _timing.compare({"on": event}, silent, timing=timing)["on"]
    otel_off()
    meters.shutdown()
    tracers.shutdown()

    _timing.table(
        ["scenario", "ns", "ratio or µs"],
        [
            ("closed-breaker `call`, OTel off", _timing.ns(calls.baseline_ns), "1.00×"),
            (
                "closed-breaker `call`, OTel on",
                _timing.ns(calls.ns),
                _timing.times(calls.best_ratio, 2),
            ),
            ("`retry` event, nobody subscribed", _timing.ns(events.baseline_ns), "-"),
            (
                "`retry` event, OTel on, no span",
                _timing.ns(events.ns),
                f"{events.ns / 1000:.2f} µs",
            ),
            (
                "`retry` event, OTel on, recording span",
                _timing.ns(in_span.ns),
                f"{in_span.ns / 1000:.2f} µs",
            ),
        ],
    )
    _timing.targets(
        [
            _timing.at_most(13, "closed call with OTel on ≤ 1.10× off", calls.best_ratio, 1.1),
            _timing.at_most(13, "`retry` event with OTel on ≤ 5 µs", events.ns / 1000, 5, "µs"),
            _timing.at_most(
                13, "`retry` event in a recording span ≤ 5 µs", in_span.ns / 1000, 5, "µs"
            ),
        ]
    )


if __name__ == "__main__":
    main()
