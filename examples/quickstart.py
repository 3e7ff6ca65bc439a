"""Quickstart: a breaker in front of a flaky dependency, driven by a fake clock.

Run it with ``python examples/quickstart.py``; it finishes at once and exits 0.
"""

from __future__ import annotations

from resilience import CircuitBreaker, CircuitOpenError, CircuitState
from resilience.testing import FakeClock

clock = FakeClock()
breaker = CircuitBreaker(
    name="inventory-api", failure_threshold=3, recovery_timeout=30.0, clock=clock
)
breaker.add_listener(lambda b, old, new: print(f"  [{b.name}] {old.value} -> {new.value}"))

healthy = False


@breaker
def fetch_stock(sku: str) -> int:
    """Pretend to call a remote inventory service."""
    if not healthy:
        msg = "inventory service unreachable"
        raise ConnectionError(msg)
    return len(sku)


def counted(number: int, singular: str, plural: str) -> str:
    """Say ``1 success`` and ``2 successes``, not ``1 successes``."""
    return f"{number} {singular if number == 1 else plural}"


def main() -> None:
    print("The dependency is down; the breaker counts failures:")
    for attempt in range(1, 6):
        try:
            fetch_stock("sku-1")
        except ConnectionError as error:
            print(f"  call {attempt}: failed ({error})")
        except CircuitOpenError as error:
            print(f"  call {attempt}: rejected without calling ({error})")
    assert breaker.state is CircuitState.OPEN

    global healthy  # noqa: PLW0603  # the example flips its fake dependency back on
    healthy = True
    clock.advance(30.0)
    print("30 s later the dependency is back; a trial call closes the circuit:")
    print(f"  stock: {fetch_stock('sku-42')}")
    stats = breaker.get_stats()
    assert stats["state"] == CircuitState.CLOSED.value
    totals = (
        counted(stats["total_calls"], "call", "calls"),
        counted(stats["total_failures"], "failure", "failures"),
        f"{stats['total_rejected']} rejected",
        counted(stats["total_successes"], "success", "successes"),
    )
    print(f"Totals: {', '.join(totals)}.")


if __name__ == "__main__":
    main()
