"""The duration channel of the event path: subscribers hear timings; a broken one is logged."""

from __future__ import annotations

import logging

import pytest

from resilience import _events
from resilience._context import CallContext, _current


def test_no_timer_means_nothing_is_built() -> None:
    """With nobody listening, emit_timing returns at once."""
    assert _events.timers == ()
    _events.emit_timing("attempt", "retry", "x", 0.1, number=1, handled=False)


def test_timers_hear_durations_with_pipeline_and_attributes() -> None:
    """A timing carries its name, kind, strategy, seconds, pipeline and attributes."""
    heard: list[_events.Timing] = []
    stop = _events.subscribe_timings(heard.append)
    token = _current.set(CallContext("checkout"))
    try:
        _events.emit_timing("attempt", "hedge", "h", 0.5, number=2, handled=True)
        _events.emit_timing("pipeline", "pipeline", "checkout", 1.5)
    finally:
        _current.reset(token)
        stop()
    assert [(t.name, t.kind, t.strategy, t.seconds, t.pipeline) for t in heard] == [
        ("attempt", "hedge", "h", 0.5, "checkout"),
        ("pipeline", "pipeline", "checkout", 1.5, "checkout"),
    ]
    assert dict(heard[0].attributes) == {"number": 2, "handled": True}
    assert dict(heard[1].attributes) == {}
    assert _events.timers == ()


def test_a_raising_timer_is_logged_and_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A timing subscriber that raises is logged; the next one still hears."""
    heard: list[float] = []

    def broken(timing: _events.Timing) -> None:
        raise RuntimeError("timer bug")

    stops = [
        _events.subscribe_timings(broken),
        _events.subscribe_timings(lambda t: heard.append(t.seconds)),
    ]
    try:
        with caplog.at_level(logging.ERROR, logger="resilience"):
            _events.emit_timing("attempt", "retry", None, 0.25)
    finally:
        for stop in stops:
            stop()
            stop()  # stopping twice is harmless
    assert heard == [0.25]
    assert "timer bug" in caplog.text


def test_subscribe_timings_rejects_a_non_callable() -> None:
    """A timing listener that cannot be called is a TypeError."""
    with pytest.raises(TypeError, match="listener must be callable"):
        _events.subscribe_timings(3)  # type: ignore[arg-type]
