"""The one event path: subscribers hear every event, and a broken one breaks nothing."""

from __future__ import annotations

import logging
import threading

import pytest

from resilience import _events
from resilience._context import CallContext, _current


def test_no_subscriber_means_no_event_is_built() -> None:
    """With nobody listening, emit returns at once."""
    assert _events.subscribers == ()
    _events.emit("retry", "retry", "x", attempt=1)


def test_subscriber_hears_events_with_their_attributes() -> None:
    """A subscriber gets name, kind, strategy, exception and attributes."""
    heard: list[_events.Event] = []
    stop = _events.subscribe(heard.append)
    try:
        error = ValueError("boom")
        _events.emit("retry", "retry", "api", error, attempt=2, delay=0.5)
    finally:
        stop()
    assert len(heard) == 1
    event = heard[0]
    assert (event.name, event.kind, event.strategy, event.exception) == (
        "retry",
        "retry",
        "api",
        error,
    )
    assert dict(event.attributes) == {"attempt": 2, "delay": 0.5}
    assert event.pipeline is None
    assert _events.subscribers == ()


def test_events_carry_the_pipeline_name_from_the_call_context() -> None:
    """An event emitted inside a pipeline call names that pipeline."""
    heard: list[_events.Event] = []
    stop = _events.subscribe(heard.append)
    token = _current.set(CallContext("checkout"))
    try:
        _events.emit("rejected", "circuit_breaker", "db")
    finally:
        _current.reset(token)
        stop()
    assert heard[0].pipeline == "checkout"


def test_a_raising_subscriber_is_logged_and_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscriber that raises is logged; the next subscriber still gets the event."""
    heard: list[str] = []

    def broken(event: _events.Event) -> None:
        raise RuntimeError("listener bug")

    stops = [_events.subscribe(broken), _events.subscribe(lambda e: heard.append(e.name))]
    try:
        with caplog.at_level(logging.ERROR, logger="resilience"):
            _events.emit("limited", "rate_limiter", None)
    finally:
        for stop in stops:
            stop()
    assert heard == ["limited"]
    assert "listener bug" in caplog.text


def test_subscribe_rejects_a_non_callable() -> None:
    """A listener that cannot be called is a TypeError naming it."""
    with pytest.raises(TypeError, match="listener must be callable"):
        _events.subscribe(42)  # type: ignore[arg-type]


def test_subscribing_from_many_threads_loses_no_subscriber() -> None:
    """Copy-on-write subscription is safe from many threads at once."""
    stops: list[object] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        stops.extend(_events.subscribe(lambda e: None) for _ in range(50))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_events.subscribers) == 400
    for stop in stops:
        stop()  # type: ignore[operator]
    assert _events.subscribers == ()
