"""What OpenTelemetry costs: a call that emits no event, and one retry event.

Run: ``PYTHONPATH=src python benchmarks/bench_otel.py``. Prints a markdown table. Needs
the ``dev`` extra (opentelemetry-sdk).

Rows:

- closed-breaker call, with ``resilience.otel.instrument()`` on, as a ratio to the same
  call with it off, timed in interleaved rounds (target: within 10%). Such a call emits no
  event, so the code it runs is the same; the row checks that nothing crept in.
- one ``retry`` event reported through the event path, with OpenTelemetry on (a real SDK
  ``MeterProvider``; target: at most 5 µs), outside any span and inside a recording span
  (the span event is then added too). The event is emitted the way ``Retry`` emits it.
- the same event with nobody subscribed: the cost a strategy pays when OTel is off.

Each figure is the best of several interleaved rounds; compare ratios, not nanoseconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from resilience import CircuitBreaker, _events, otel

if TYPE_CHECKING:
    from collections.abc import Callable

ROUNDS = 9
ROUND_SECONDS = 0.05


def ok() -> int:
    return 1


def best_ns(func: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - started) / n * 1e9


def interleaved(
    candidates: dict[str, tuple[Callable[[], Any], Callable[[], Any]]],
) -> dict[str, float]:
    """Time each (setup, func) pair in interleaved rounds; setup switches OTel on or off."""
    sizes = {}
    for name, (setup, func) in candidates.items():
        setup()
        n = 100
        while best_ns(func, n) * n / 1e9 < ROUND_SECONDS / 4:
            n *= 4
        sizes[name] = n
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(ROUNDS):
        for name, (setup, func) in candidates.items():
            setup()
            best[name] = min(best[name], best_ns(func, sizes[name]))
    return best


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

    calls = interleaved(
        {
            "off": (otel_off, lambda: call(ok)),
            "on": (otel_on, lambda: call(ok)),
        }
    )
    events = interleaved(
        {
            "none": (otel_off, retry_event),
            "on": (otel_on, retry_event),
        }
    )
    with tracer.start_as_current_span("request"):
        in_span = interleaved({"on": (otel_on, retry_event)})
    otel_off()
    meters.shutdown()
    tracers.shutdown()

    ratio = calls["on"] / calls["off"]
    print("| scenario | ns | ratio / target |")
    print("|---|---:|---:|")
    print(f"| closed-breaker `call`, OTel off | {calls['off']:,.0f} | 1.00× |")
    print(f"| closed-breaker `call`, OTel on | {calls['on']:,.0f} | {ratio:.2f}× (≤ 1.10×) |")
    print(f"| `retry` event, nobody subscribed | {events['none']:,.0f} | - |")
    print(
        f"| `retry` event, OTel on, no span | {events['on']:,.0f} | "
        f"{events['on'] / 1000:.2f} µs (≤ 5 µs) |"
    )
    print(
        f"| `retry` event, OTel on, recording span | {in_span['on']:,.0f} | "
        f"{in_span['on'] / 1000:.2f} µs (≤ 5 µs) |"
    )


if __name__ == "__main__":
    main()
