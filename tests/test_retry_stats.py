"""Counters of named retries, as the metrics collector reads them."""

from __future__ import annotations

import threading

from resilience import _retry_stats


def test_counter_records_attempts_and_outcomes() -> None:
    """Each finished call adds its attempts and one outcome."""
    counter = _retry_stats.counter_for("stats-test")
    counter.record(attempts=1, succeeded=True)
    counter.record(attempts=3, succeeded=True)
    counter.record(attempts=1, succeeded=False)
    counter.record(attempts=4, succeeded=False)
    snap = counter.snapshot()
    assert snap["attempts"] == 9
    assert snap["outcomes"] == {
        "success_without_retry": 1,
        "success_with_retry": 1,
        "failed_without_retry": 1,
        "failed_with_retry": 1,
    }
    assert _retry_stats.counter_for("stats-test") is counter
    assert snap in _retry_stats.snapshot()


def test_counter_is_exact_under_threads() -> None:
    """Eight threads recording at once lose nothing."""
    counter = _retry_stats.counter_for("stats-threads")

    def worker() -> None:
        for _ in range(1000):
            counter.record(attempts=2, succeeded=True)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.snapshot()["attempts"] == 16_000
