"""The demo's metrics server and its own reads of ``/health`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from resilience._demo_timeline import Timeline

__all__ = ["series", "show_endpoints", "show_health", "start_metrics"]


def start_metrics(port: int, timeline: Timeline) -> Any:
    """Serve /metrics and /health on loopback; say where, or that they are skipped."""
    try:
        from resilience.metrics import start_metrics_server  # noqa: PLC0415  # optional extra
    except ImportError:
        timeline.say(
            "skipped: /metrics and /health (pip install 'resilient-calls[prometheus]' "
            "to serve them)",
            stamp=False,
        )
        return None
    try:
        server = start_metrics_server(port=port, addr="127.0.0.1")
    except OSError as error:  # the port is taken: the demo should still run
        timeline.say(f"metrics: port {port} unavailable ({error}); using a free one", stamp=False)
        server = start_metrics_server(port=0, addr="127.0.0.1")
    timeline.say(f"metrics: {server.url}/metrics and {server.url}/health", stamp=False)
    return server


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  # loopback
        return bytes(answer.read())


async def show_health(server: Any, timeline: Timeline) -> None:
    """Read our own /health while the run goes on, as a load balancer would."""
    health = json.loads(await asyncio.to_thread(_get, f"{server.url}/health"))
    timeline.say(f"GET /health  -> {json.dumps(health)}")


def series(text: str) -> list[tuple[str, dict[str, str], str]]:
    """Read the samples of a Prometheus text exposition: (metric, labels, value)."""
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        # The demo's own label values hold no comma, quote or backslash: a plain split does.
        pairs = (pair.partition("=") for pair in rest.rstrip("}").split(",") if pair)
        labels = {key: raw.strip('"') for key, _, raw in pairs}
        found.append((metric, labels, value))
    return found


def show_endpoints(
    server: Any, timeline: Timeline, wanted: Iterable[tuple[str, Mapping[str, str]]]
) -> None:
    """Read our own /health and one series of each strategy, as a scraper would."""
    health = json.loads(_get(f"{server.url}/health"))
    timeline.say(f"GET /health  -> {json.dumps(health)}", stamp=False)
    samples = series(_get(f"{server.url}/metrics").decode())
    for metric, labels in wanted:
        for name, have, value in samples:
            if name == metric and labels.items() <= have.items():
                shown = ",".join(f'{key}="{have[key]}"' for key in sorted(have, key=_name_first))
                timeline.say(f"GET /metrics -> {metric}{{{shown}}} {value}", stamp=False)


def _name_first(label: str) -> tuple[bool, str]:
    return (label != "name", label)
