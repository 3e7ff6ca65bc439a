"""A service's test suite run with 10% injected faults: a breaker and retries keep it green.

Run it with ``python examples/chaos_suite.py``; it takes a second or two and exits 0.

The service is a small price client talking HTTP to a real catalogue server on
127.0.0.1. Its test suite (plain ``unittest`` cases) runs three times:

1. without chaos: green, of course;
2. with a ``Chaos`` injecting ``ConnectionError`` into 10% of backend calls, and the client
   unprotected: some tests fail, as they would in production on a bad day;
3. with the same chaos behind ``retry_with_backoff`` and a ``CircuitBreaker``: green again.
   The chaos sits innermost (closest to the network), so the retry and the breaker see the
   injected faults exactly as they would see the real ones.

The chaos draws from a seeded ``random.Random``, so every run injects the same faults.
"""

from __future__ import annotations

import io
import json
import random
import threading
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from resilience import CircuitBreaker, retry_with_backoff
from resilience.chaos import Chaos

if TYPE_CHECKING:
    from collections.abc import Callable

PRICES = {f"sku-{n}": 100 + n for n in range(40)}


class Catalogue(BaseHTTPRequestHandler):
    """The backend: ``GET /price/<sku>`` answers ``{"sku": ..., "cents": ...}``."""

    def do_GET(self) -> None:
        """Answer one price, or 404."""
        sku = self.path.rsplit("/", 1)[-1]
        if sku not in PRICES:
            self.send_error(404)
            return
        body = json.dumps({"sku": sku, "cents": PRICES[sku]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
        """Keep the access log quiet."""


class PriceClient:
    """The service under test: prices and baskets, one backend call per item."""

    def __init__(self, base_url: str, fetch: Callable[[str], dict[str, Any]]) -> None:
        self.base_url = base_url
        self.fetch = fetch

    def price(self, sku: str) -> int:
        """Return the price of ``sku`` in cents."""
        return int(self.fetch(f"{self.base_url}/price/{sku}")["cents"])

    def basket(self, skus: list[str]) -> int:
        """Return the total of ``skus`` in cents."""
        return sum(self.price(sku) for sku in skus)


def http_get_json(url: str) -> dict[str, Any]:
    """One real HTTP call to the catalogue."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # loopback only
        return dict(json.load(response))


def make_suite(client: PriceClient) -> unittest.TestSuite:
    """The service's tests, bound to one client."""

    class PriceTests(unittest.TestCase):
        def test_each_price(self) -> None:
            for sku, cents in PRICES.items():
                assert client.price(sku) == cents

        def test_baskets(self) -> None:
            skus = list(PRICES)
            for size in range(1, 9):
                basket = skus[:size]
                assert client.basket(basket) == sum(PRICES[s] for s in basket)

        def test_repeat_customer(self) -> None:
            for _ in range(30):
                assert client.basket(["sku-1", "sku-2"]) == 101 + 102

    return unittest.defaultTestLoader.loadTestsFromTestCase(PriceTests)


def run_suite(name: str, client: PriceClient) -> unittest.TestResult:
    """Run the suite quietly and print one line about it."""
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(make_suite(client))
    failed = len(result.failures) + len(result.errors)
    verdict = "green" if result.wasSuccessful() else "RED"
    print(f"{name:<42} {result.testsRun} tests, {failed} failed: {verdict}")
    return result


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Catalogue)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        clean = run_suite("no chaos:", PriceClient(base_url, http_get_json))

        chaos = Chaos(fault=ConnectionError, rate=0.10, rng=random.Random(2024), name="catalogue")
        flaky = run_suite("10% faults, unprotected:", PriceClient(base_url, chaos(http_get_json)))

        protected_chaos = Chaos(
            fault=ConnectionError, rate=0.10, rng=random.Random(2024), name="catalogue-guarded"
        )
        breaker = CircuitBreaker(name="catalogue", failure_threshold=5, recovery_timeout=1.0)
        retry = retry_with_backoff(
            max_retries=5, base_delay=0.0, exceptions=ConnectionError, name="catalogue"
        )
        guarded = run_suite(
            "10% faults, retry + breaker:",
            PriceClient(base_url, retry(breaker(protected_chaos(http_get_json)))),
        )
    finally:
        server.shutdown()
        server.server_close()

    stats = protected_chaos.get_stats()
    injected = stats["total_injected"]["fault"]
    print(
        f"Behind the retry the chaos saw {stats['total_calls']} backend calls and injected "
        f"{injected} faults ({injected / stats['total_calls']:.1%}); "
        f"the breaker stayed {breaker.state.value}."
    )
    assert clean.wasSuccessful()
    assert not flaky.wasSuccessful()
    assert guarded.wasSuccessful()
    assert injected > 0


if __name__ == "__main__":
    main()
