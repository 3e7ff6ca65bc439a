"""The deadline context variable: set, shrink, read."""

from __future__ import annotations

import pytest

from resilience import deadline, remaining


def test_remaining_is_none_outside_any_deadline() -> None:
    """Without a deadline there is no limit."""
    assert remaining() is None


def test_nested_deadlines_only_shrink() -> None:
    """An inner deadline later than the outer one keeps the outer one."""
    with deadline(1.0):
        outer = remaining()
        assert outer is not None
        assert 0.0 < outer <= 1.0
        with deadline(100.0):
            inner = remaining()
            assert inner is not None
            assert inner <= 1.0
        with deadline(0.0):
            assert remaining() == 0.0
    assert remaining() is None


def test_deadline_rejects_bad_seconds() -> None:
    """A negative or non-numeric budget is refused."""
    with pytest.raises(ValueError, match="seconds must be >= 0, got -1"), deadline(-1):
        pass
    with pytest.raises(TypeError, match="seconds must be a number"), deadline("1"):  # type: ignore[arg-type]
        pass
