"""What a switched-off Chaos costs, as ratios to a bare call timed in the same rounds.

Run: ``python benchmarks/bench_chaos.py`` (``--quick`` for a short run). Prints a markdown
table.

Rows:

- ``enabled=False``, decorator: the decorator hands back the function itself (target: at
  most 3x a bare call; it is 1x by construction).
- ``enabled=False``, ``call()``: the strategy form a pipeline uses.
- ``RESILIENCE_CHAOS=off``, decorator: an enabled Chaos at the default ``rate=0.001``
  disarmed by the kill switch. The switch is read (about a microsecond) only for a call that
  would be injected, so an operator can flip it at run time; at ``rate=1.0`` every call
  pays that read.
- ``enabled=callable`` returning False, decorator: a feature-flag switch.
- enabled, ``rate=0``: the cost of deciding (the switch, one random draw, a count).

Each figure is the best of several interleaved rounds (``_timing.compare``) and each ratio
that over the bare call's best; compare ratios, not nanoseconds.
"""

from __future__ import annotations

import os

import _timing
from resilience.chaos import Chaos


def ok() -> int:
    return 1


def main() -> None:
    args = _timing.parser(__doc__).parse_args()
    timing = _timing.plan(quick=args.quick)
    off = Chaos(fault=ConnectionError, rate=1.0, enabled=False)
    armed = Chaos(fault=ConnectionError, rate=0.001)
    always = Chaos(fault=ConnectionError, rate=1.0)
    flagged = Chaos(fault=ConnectionError, rate=1.0, enabled=lambda: False)
    idle = Chaos(fault=ConnectionError, rate=0.0)
    bare = _timing.loop(ok)
    os.environ["RESILIENCE_CHAOS"] = "off"
    try:
        switched_off = _timing.compare(
            {
                "`enabled=False`, decorator": _timing.loop(off(ok)),
                "`enabled=False`, `call()`": _timing.loop(lambda: off.call(ok)),
                "`RESILIENCE_CHAOS=off`, `rate=0.001`, decorator": _timing.loop(armed(ok)),
                "`RESILIENCE_CHAOS=off`, `rate=1.0`, decorator": _timing.loop(always(ok)),
                "`enabled=callable` (False), decorator": _timing.loop(flagged(ok)),
            },
            bare,
            timing=timing,
        )
    finally:
        del os.environ["RESILIENCE_CHAOS"]
    # Timed in its own rounds, with the switch unset as in production.
    deciding = _timing.compare(
        {"enabled, `rate=0`, decorator": _timing.loop(idle(ok))}, bare, timing=timing
    )
    rows = switched_off | deciding
    first = next(iter(rows.values()))
    _timing.table(
        ["scenario", "ns/call", "× bare call"],
        [("bare call", _timing.ns(first.baseline_ns), "1.0×")]
        + [(label, _timing.ns(t.ns), _timing.times(t.best_ratio)) for label, t in rows.items()],
    )
    disabled = switched_off["`enabled=False`, decorator"].best_ratio
    _timing.targets([_timing.at_most(13, "`enabled=False` ≤ 3× a bare call", disabled, 3)])


if __name__ == "__main__":
    main()
