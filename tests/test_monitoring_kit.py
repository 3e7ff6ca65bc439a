import importlib
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resilience import BreakerRegistry, CountWindow, FailureRate, _retry_stats
from resilience.metrics import register_metrics

KIT = Path(__file__).resolve().parents[1] / "examples" / "monitoring"
DASHBOARD = KIT / "grafana" / "dashboards" / "resilience.json"
# Series Prometheus makes itself, which the kit may use besides ours.
PROMETHEUS_SERIES = {"ALERTS", "ALERTS_FOR_STATE", "up"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects (functions and keywords aside)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return set(names) - KEYWORDS


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables with values PromQL accepts."""
    return re.sub(r"\$\{?\w+\}?", "5m", expr)


def rule_expressions() -> list[str]:
    """Return the `expr` of every rule in alerts.yml (single-line or block scalars)."""
    lines = (KIT / "alerts.yml").read_text().splitlines()
    exprs = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", line)
        if not match:
            continue
        indent, text = len(match.group(1)), match.group(2).strip()
        if text in {"|", ">", "|-", ">-"}:
            block = []
            for following in lines[i + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following.strip())
            text = " ".join(block)
        exprs.append(text)
    return exprs


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Walk dashboard panels, rows' nested panels included."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    """Load the Grafana dashboard."""
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_expressions() -> list[str]:
    """Return every PromQL query of the dashboard, variables replaced."""
    return [
        grafana_to_promql(target["expr"])
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def variable_selectors() -> list[str]:
    """Return the series selectors of the dashboard's label_values() variables."""
    selectors = []
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = re.match(r"label_values\((.*),\s*\w+\)$", query or "")
        if match:
            selectors.append(grafana_to_promql(match.group(1)))
    return selectors


# The strategies of SPEC §10-§13: where each lives, how to make a named one that has
# something to report, and the series SPEC §5/§14 fixes for it. The kit's panels and alerts
# were built alongside the strategies: while one is not in this tree yet, its fixed series
# stand in for a scrape; once it is, a real scrape of it decides.
_STRATEGIES: dict[str, tuple[str, Callable[[Any], Any], set[str]]] = {
    "Bulkhead": (
        "resilience",
        lambda cls: cls(2, name="kit-bulkhead"),
        {
            "resilience_bulkhead_calls_total",
            "resilience_bulkhead_in_flight",
            "resilience_bulkhead_queued",
            "resilience_bulkhead_limit",
        },
    ),
    "RateLimiter": (
        "resilience",
        lambda cls: cls(100.0, name="kit-limiter"),
        {"resilience_rate_limiter_calls_total"},
    ),
    "Hedge": (
        "resilience",
        lambda cls: cls(delay=1.0, name="kit-hedge"),
        {"resilience_hedge_calls_total", "resilience_hedge_hedges_total"},
    ),
    "AdaptiveThrottle": (
        "resilience",
        lambda cls: cls(name="kit-throttle"),
        {
            "resilience_throttle_requests_total",
            "resilience_throttle_accepts_total",
            "resilience_throttle_rejected_total",
        },
    ),
    "Chaos": (
        "resilience.chaos",
        lambda cls: cls(behavior=lambda: None, rate=1.0, name="kit-chaos"),
        {"resilience_chaos_calls_total", "resilience_chaos_injected_total"},
    ),
}


def _strategy_class(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _names(text: str) -> set[str]:
    """Sample names and family names (a family may have no sample yet) of an exposition."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The sample names the library exports, read from a real scrape."""
    breakers = BreakerRegistry()
    breakers.get("plain")
    rated = breakers.get("rated", policy=FailureRate(window=CountWindow(1), minimum_calls=1))
    rated.call(lambda: None)
    _retry_stats.counter_for(f"kit-{uuid.uuid4()}").record(attempts=1, succeeded=True)
    alive, announced = [], set()
    for name, (module, make, series) in _STRATEGIES.items():
        cls = _strategy_class(module, name)
        if cls is None:
            announced |= series
            continue
        strategy = make(cls)
        strategy.call(lambda: None)
        alive.append(strategy)  # observed weakly: keep it alive through the scrape
    registry = CollectorRegistry()
    register_metrics(registry, breakers)
    text = generate_latest(registry).decode()
    return _names(text) | announced


def test_metric_names_parser_skips_functions_labels_and_keywords():
    """The PromQL name extraction finds series names and nothing else."""
    expr = (
        'sum by (name) (rate(foo_total{outcome="a b", x=~"y|z"}[5m] offset 1h)) '
        "/ on (name) group_left () bar > 0.5 and up == bool 1e3 or vector(0)"
    )
    assert metric_names(expr) == {"foo_total", "bar", "up"}


def test_kit_has_rules_and_dashboard_queries():
    """The kit has nine alerts and a query for each dashboard panel."""
    assert len(rule_expressions()) == 9
    assert len(dashboard_expressions()) >= 13


def test_kit_covers_every_new_strategy():
    """Each strategy's series appear in a panel and in an alert rule."""
    panel_names = set().union(*map(metric_names, dashboard_expressions()))
    rule_names = set().union(*map(metric_names, rule_expressions()))
    for name, (_, _, series) in _STRATEGIES.items():
        assert series & panel_names, name
        assert series & rule_names, name


def test_every_alert_has_a_unit_test_that_fires_it():
    """alerts_test.yml expects each alert of alerts.yml to fire at least once."""
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", (KIT / "alerts.yml").read_text(), re.MULTILINE))
    tests = (KIT / "alerts_test.yml").read_text()
    fired = set(re.findall(r"alertname: (\w+)\n\s*exp_alerts:\n\s*- exp_labels:", tests))
    assert len(alerts) == 9
    assert alerts == fired


def test_dashboard_panels_have_unique_ids_and_do_not_overlap():
    """Panel ids are unique and no two panels share a cell of Grafana's 24-column grid."""
    every = list(panels(dashboard()["panels"]))
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))

    def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        return {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }

    for one, other in itertools.combinations(every, 2):
        assert not cells(one) & cells(other), (one["title"], other["title"])


@pytest.mark.parametrize(
    "source",
    [rule_expressions, dashboard_expressions, variable_selectors],
    ids=["alert-rules", "dashboard-panels", "dashboard-variables"],
)
def test_kit_queries_use_only_exported_series(exported, source):
    """Every PromQL expression of the kit selects only series the library exports."""
    for expr in source():
        names = metric_names(expr)
        assert names, f"no series found in {expr!r}"
        assert names <= exported | PROMETHEUS_SERIES, (expr, names - exported)


def test_dashboard_covers_what_the_brief_asks():
    """The dashboard has a state timeline, outcomes, failure rate, transitions and retries."""
    titles = {panel["title"]: panel["type"] for panel in panels(dashboard()["panels"])}
    assert titles["Breaker state"] == "state-timeline"
    for title in (
        "Call outcomes per second",
        "Failure rate",
        "Transitions",
        "Retry attempts per second",
        "Bulkhead saturation",
        "Bulkhead calls per second",
        "Rate limiter: share of calls limited",
        "Hedging: extra load",
        "Adaptive throttle: share rejected locally",
        "Chaos injections per second",
    ):
        assert titles[title] == "timeseries"


def test_dashboard_uses_the_provisioned_datasource():
    """Panels point at the datasource variable, whose default is the provisioned Prometheus."""
    provisioned = (KIT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: prometheus" in provisioned
    assert all(
        panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for panel in panels(dashboard()["panels"])
    )


def test_compose_starts_prometheus_and_grafana_under_the_monitoring_profile():
    """docker-compose.yml puts Prometheus and Grafana in the `monitoring` profile."""
    compose = (KIT / "docker-compose.yml").read_text()
    services = re.split(r"\n  (?=\w)", compose.split("\nservices:\n", 1)[1])
    profiled = {s.split(":", 1)[0] for s in services if 'profiles: ["monitoring"]' in s}
    assert profiled == {"prometheus", "grafana"}
    assert "./grafana/provisioning:/etc/grafana/provisioning" in compose
