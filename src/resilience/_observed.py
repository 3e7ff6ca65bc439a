"""Every live named strategy (bulkhead, limiter, hedge, throttle, chaos, ...), held weakly.

SPEC §5: every live named policy is observed by metrics and ``health()`` however it was
made, without being kept alive. A named strategy calls ``observe(self)`` in ``__init__``;
the metrics collector and ``health()`` read ``live()`` at scrape time. Nothing here is on the
path of a call.

An observed object offers two hooks, both read outside every lock of the caller's calls:

- ``_families() -> list[Family]``: its Prometheus series, labels included (``name`` first);
- ``_health() -> dict | None``: a dict describing why it makes ``health()`` degraded (for
  example a saturated bulkhead), or ``None`` when it is fine.

Two live objects with one kind and name: their counter samples with equal labels are
added together and a gauge sample is taken from the one created last, so the scrape has
neither a duplicate series nor a silent omission.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Protocol

from resilience._named import LiveSet


class Family(NamedTuple):
    """One Prometheus metric family of one observed object.

    Attributes:
        name: the series name (``resilience_bulkhead_calls_total`` for a counter).
        type: ``"counter"`` or ``"gauge"``.
        documentation: the HELP text.
        labels: the label names, ``"name"`` first.
        samples: ``(label values, value)`` pairs, label values in the order of ``labels``.
    """

    name: str
    type: Literal["counter", "gauge"]
    documentation: str
    labels: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]]


class Observed(Protocol):
    """What an observed strategy offers the collector and ``health()``."""

    @property
    def name(self) -> str | None:
        """The strategy's name."""
        ...

    def _families(self) -> list[Family]:
        """Return this object's metric families."""
        ...

    def _health(self) -> dict[str, Any] | None:
        """Return why this object degrades health, or ``None``."""
        ...


_strategies = LiveSet()


def observe(strategy: Observed) -> None:
    """Observe ``strategy`` (a named one) from now until it is garbage-collected."""
    _strategies.add(strategy)


def live() -> list[Observed]:
    """Return every live observed strategy, oldest first."""
    return _strategies.live()


def merged_families() -> list[Family]:
    """Return the families of every live observed strategy, merged by series name.

    Counter samples with equal labels are summed; a gauge sample is taken from the newest
    strategy that has it (see the module docstring).
    """
    merged: dict[str, tuple[Family, dict[tuple[str, ...], float]]] = {}
    for strategy in live():
        for family in strategy._families():  # noqa: SLF001  # the observed-object hook
            entry = merged.get(family.name)
            if entry is None:
                entry = merged[family.name] = (family, {})
            values = entry[1]
            for labels, value in family.samples:
                if family.type == "counter":
                    values[labels] = values.get(labels, 0.0) + value
                else:
                    values[labels] = value
    return [family._replace(samples=list(values.items())) for family, values in merged.values()]
