"""A request handler whose overall deadline flows through a retry and a timeout.

Each request gets a budget of 0.8 s, set once with ``deadline()`` around the whole handler.
Everything inside reads it: the handler loads a profile from a (simulated) database through
a retry and a breaker, and each query is limited by ``timeout(0.3)``.

1. The database is fast: the request is answered with most of its budget left.
2. The database hangs: ``timeout()`` cuts each query off (the second one early, because a
   timeout never outlives the deadline), and the retry stops before a wait would take it
   past the deadline, instead of trying six times over 8 s.
3. Authentication eats most of the budget: ``check_deadline(0.3)`` refuses to start a query
   that could not finish in time, so the database (and its breaker) never see the call.

It runs for about 2 s::

    python examples/deadlines.py
"""

from __future__ import annotations

import time

from resilience import (
    CircuitBreaker,
    RetryState,
    check_deadline,
    deadline,
    remaining,
    retry_with_backoff,
    timeout,
)

BUDGET = 0.8  # seconds for a whole request
QUERY_TIMEOUT = 0.3  # seconds for one database query
MAX_RETRIES = 5
BASE_DELAY = 0.2


class ProfileDatabase:
    """A simulated database: each query takes ``latency`` seconds of real time."""

    def __init__(self) -> None:
        self.latency = 0.01
        self.queries: list[tuple[float, float]] = []  # (start, duration) of each query

    def query(self, user_id: int) -> dict[str, object]:
        """Return the user's profile after ``latency`` seconds."""
        left = remaining() or 0.0  # inside timeout(): the sooner of its limit and the deadline
        started = time.monotonic()
        try:
            time.sleep(self.latency)  # where a real driver would wait on its socket
        except TimeoutError:
            print(
                f"     a query was given {left:.2f} s (the sooner of its timeout and the "
                f"deadline) and cut off after {time.monotonic() - started:.2f} s"
            )
            raise
        finally:
            self.queries.append((started, time.monotonic() - started))
        return {"id": user_id, "name": f"user {user_id}"}


database = ProfileDatabase()
breaker = CircuitBreaker(name="profile-db", failure_threshold=5)


def log_retry(state: RetryState) -> None:
    """Tell how the last query ended and how long the retry will wait."""
    left = remaining() or 0.0
    print(f"     retry in {state.delay:.2f} s ({left:.2f} s of the budget left)")


@retry_with_backoff(
    max_retries=MAX_RETRIES, base_delay=BASE_DELAY, jitter=False, on_retry=log_retry
)
@breaker
def load_profile(user_id: int) -> dict[str, object]:
    """Query the database, giving one query at most ``QUERY_TIMEOUT`` seconds."""
    with timeout(QUERY_TIMEOUT):  # never longer than what the deadline leaves
        return database.query(user_id)


def authenticate(seconds: float) -> None:
    """Check the caller's credentials with an upstream service, taking ``seconds``."""
    time.sleep(seconds)


def handle_request(user_id: int, *, auth_seconds: float = 0.05) -> tuple[int, str]:
    """Answer one request within ``BUDGET`` seconds: return an HTTP status and a body."""
    with deadline(BUDGET):
        authenticate(auth_seconds)
        try:
            check_deadline(QUERY_TIMEOUT)  # not worth starting a query without time for it
            profile = load_profile(user_id)
        except TimeoutError as error:
            notes = "".join(f"\n      ({note})" for note in getattr(error, "__notes__", []))
            return 503, f"{error}{notes}"
        return 200, f"{profile} ({remaining() or 0.0:.2f} s of the budget left)"


def main() -> None:
    print(f"Every request has a budget of {BUDGET} s; a query gets at most {QUERY_TIMEOUT} s.")

    print("1. The database answers in 10 ms.")
    started = time.monotonic()
    status, body = handle_request(7)
    print(f"   {status} after {time.monotonic() - started:.2f} s: {body}")
    assert status == 200

    print("2. The database hangs: every query would take 2 s.")
    database.latency = 2.0
    since = len(database.queries)
    started = time.monotonic()
    status, body = handle_request(8)
    took = time.monotonic() - started
    print(f"   {status} after {took:.2f} s: {body}")
    first, second = (duration for _, duration in database.queries[since:])
    assert status == 503
    assert took < BUDGET + 0.1
    assert first >= QUERY_TIMEOUT - 0.01
    assert second < QUERY_TIMEOUT - 0.01  # cut short by the deadline, not by timeout()
    delays = [BASE_DELAY * 2**n for n in range(MAX_RETRIES)]
    print(
        f"   (without the deadline it would have made {MAX_RETRIES + 1} attempts over "
        f"{(MAX_RETRIES + 1) * QUERY_TIMEOUT + sum(delays):.1f} s)"
    )

    print("3. Authentication is slow: it takes 0.6 s of the budget.")
    calls_before = breaker.get_stats()["total_calls"]
    since = len(database.queries)
    started = time.monotonic()
    status, body = handle_request(9, auth_seconds=0.6)
    print(f"   {status} after {time.monotonic() - started:.2f} s: {body}")
    assert status == 503
    assert len(database.queries) == since
    assert breaker.get_stats()["total_calls"] == calls_before
    print("   the query was never started: neither the database nor the breaker saw it")

    stats = breaker.get_stats()
    print(
        f"Breaker {stats['name']}: {stats['total_calls']} calls, {stats['total_successes']} "
        f"succeeded, {stats['total_failures']} failed (timeouts count as failures), "
        f"state {stats['state']}."
    )


if __name__ == "__main__":
    main()
