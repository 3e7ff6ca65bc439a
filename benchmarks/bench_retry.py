"""Retry overhead: resilience vs tenacity, backoff and stamina, as ratios to bare calls.

Run: ``python benchmarks/bench_retry.py`` (``--quick`` for a short run). Prints markdown
tables.

Scenarios, each with zero delay between attempts:

- first-try success: a call that succeeds at once; ratio to calling the function bare.
- 3 failures then success: four attempts per call; ratio to a hand-written loop of four
  ``try`` / ``except`` attempts (the least any retry can cost).

The other libraries call ``time.sleep(0)`` between attempts even with zero delay, which is
a system call whose cost is the scheduler's, not the library's; ``time.sleep`` is made a
no-op while they run so the table compares retry machinery. (``resilience`` never calls
sleep for a zero delay.) Async variants keep ``asyncio.sleep(0)``, a cheap event-loop
yield. stamina's instrumentation hooks are switched off, as is backoff's logging. A peer
that is not installed is skipped.

Each figure is the fastest of several interleaved rounds (``_timing.compare``), and each
ratio is that over the baseline's fastest, which filters out noise from other processes;
compare ratios, not absolute nanoseconds, across machines.
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import TYPE_CHECKING, Any

import _timing
from resilience import retry_with_backoff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

tenacity = _timing.optional("tenacity")
backoff = _timing.optional("backoff")
stamina = _timing.optional("stamina")
if stamina is not None:
    stamina.instrumentation.set_on_retry_hooks([])
_real_sleep = time.sleep


def _no_sleep(seconds: float) -> None:
    """Stand in for time.sleep(0) between the other libraries' attempts."""


# ---------------------------------------------------------------------- the functions


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


def make_flaky() -> Callable[[], int]:
    failing = itertools.cycle((True, True, True, False))

    def flaky() -> int:
        if next(failing):
            raise ConnectionError
        return 1

    return flaky


def make_aflaky() -> Callable[[], Awaitable[int]]:
    failing = itertools.cycle((True, True, True, False))

    async def aflaky() -> int:
        if next(failing):
            raise ConnectionError
        return 1

    return aflaky


def by_hand(func: Callable[[], int]) -> Callable[[], int]:
    def loop() -> int:
        for attempt in range(4):
            try:
                return func()
            except ConnectionError:
                if attempt == 3:
                    raise
        raise AssertionError

    return loop


def by_hand_async(func: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    async def loop() -> int:
        for attempt in range(4):
            try:
                return await func()
            except ConnectionError:
                if attempt == 3:
                    raise
        raise AssertionError

    return loop


# ---------------------------------------------------------------------- the libraries


def ours(func: Callable[..., Any]) -> Callable[..., Any]:
    return retry_with_backoff(max_retries=3, base_delay=0.0, jitter=False)(func)


def with_tenacity(func: Callable[..., Any]) -> Callable[..., Any]:
    return tenacity.retry(
        stop=tenacity.stop_after_attempt(4), wait=tenacity.wait_none(), reraise=True
    )(func)


def with_backoff(func: Callable[..., Any]) -> Callable[..., Any]:
    return backoff.on_exception(
        backoff.constant, Exception, max_tries=4, interval=0, jitter=None, logger=None
    )(func)


def with_stamina(func: Callable[..., Any]) -> Callable[..., Any]:
    return stamina.retry(on=Exception, attempts=4, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)(
        func
    )


PEERS = {"tenacity": (tenacity, with_tenacity), "backoff": (backoff, with_backoff)}
PEERS["stamina"] = (stamina, with_stamina)
LIBRARIES: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {"resilience": ours} | {
    name: wrap for name, (module, wrap) in PEERS.items() if module is not None
}


# ---------------------------------------------------------------------- timing

Scenario = tuple[str, str, dict[str, _timing.Timing]]  # name, baseline, figures by library


def sync_rows(timing: _timing.Plan) -> list[Scenario]:
    first = _timing.compare(
        {name: _timing.loop(wrap(ok)) for name, wrap in LIBRARIES.items()},
        _timing.loop(ok),
        timing=timing,
    )
    time.sleep = _no_sleep
    try:
        failing = _timing.compare(
            {name: _timing.loop(wrap(make_flaky())) for name, wrap in LIBRARIES.items()},
            _timing.loop(by_hand(make_flaky())),
            timing=timing,
        )
    finally:
        time.sleep = _real_sleep
    return [
        ("first-try success", "bare call", first),
        ("3 failures, then success", "hand-written loop", failing),
    ]


def async_rows(timing: _timing.Plan) -> list[Scenario]:
    first = _timing.compare(
        {name: _timing.awaits(wrap(aok)) for name, wrap in LIBRARIES.items()},
        _timing.awaits(aok),
        timing=timing,
    )
    failing = _timing.compare(
        {name: _timing.awaits(wrap(make_aflaky())) for name, wrap in LIBRARIES.items()},
        _timing.awaits(by_hand_async(make_aflaky())),
        timing=timing,
    )
    return [
        ("async first-try success", "bare await", first),
        ("async 3 failures, then success", "hand-written loop", failing),
    ]


def main() -> None:
    args = _timing.parser(__doc__).parse_args()
    timing = _timing.plan(quick=args.quick)
    scenarios = sync_rows(timing) + async_rows(timing)
    _timing.heading("Per call, as a ratio to a baseline")
    print(
        f"Python {sys.version.split()[0]}; {timing.rounds} interleaved rounds; each cell: the "
        "library's best ns per call over the baseline's best.\n"
    )
    libraries = list(LIBRARIES)
    _timing.table(
        ["scenario", "baseline (ns/call)", *libraries, "resilience ns/call"],
        [
            [
                scenario,
                f"{baseline} ({_timing.ns(figures['resilience'].baseline_ns)})",
                *(_timing.times(figures[lib].best_ratio) for lib in libraries),
                _timing.ns(figures["resilience"].ns),
            ]
            for scenario, baseline, figures in scenarios
        ],
    )
    ours = {scenario: figures["resilience"] for scenario, _, figures in scenarios}
    _timing.targets(
        [
            _timing.at_most(
                11,
                "first try ≤ 8× a bare call",
                ours["first-try success"].best_ratio,
                8,
            ),
            _timing.at_most(
                11,
                "async first try ≤ 5× a bare await",
                ours["async first-try success"].best_ratio,
                5,
            ),
            _timing.at_most(
                11,
                "3 failures then success ≤ 3 µs per call",
                ours["3 failures, then success"].ns / 1000,
                3,
                "µs",
            ),
        ]
    )


if __name__ == "__main__":
    main()
