import contextlib
import gzip
import json
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resilience import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    FailureRate,
    _retry_stats,
    get_circuit_breaker,
)
from resilience._registry import default_registry
from resilience.metrics import (
    MetricsServer,
    _exposition,
    health,
    register_metrics,
    start_metrics_server,
)
from resilience.testing import FakeClock

SRC = str(Path(__file__).resolve().parents[1] / "src")
OPERATOR = {"forced_open": "open", "disabled": "disable", "metrics_only": "metrics_only"}
STATES = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Scrape ``registry`` with prometheus_client and index its samples."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(registry: CollectorRegistry, metric: str, /, **labels: str) -> float | None:
    """Return one sample's value from a scrape of ``registry``, or None."""
    return samples(registry).get((metric, frozenset(labels.items())))


def fail(breaker: CircuitBreaker) -> None:
    """Make one failing call through ``breaker``."""
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 0."""
    return FakeClock()


@pytest.fixture
def breakers() -> BreakerRegistry:
    """A fresh breaker registry."""
    return BreakerRegistry()


@pytest.fixture
def registry(breakers: BreakerRegistry) -> CollectorRegistry:
    """A prometheus registry exporting ``breakers``."""
    registry = CollectorRegistry()
    register_metrics(registry, breakers)
    return registry


@pytest.fixture
def server(registry: CollectorRegistry, breakers: BreakerRegistry) -> Iterator[MetricsServer]:
    """A metrics server on a free loopback port, closed after the test."""
    with start_metrics_server(port=0, registry=registry, breakers=breakers) as server:
        yield server


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``; return status, headers and body, for error statuses too."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  # loopback test server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # same
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


# ---------------------------------------------------------------- optional dependency


def test_import_resilience_does_not_import_prometheus_client():
    """`import resilience` leaves prometheus_client unloaded."""
    code = "import sys, resilience; print('prometheus_client' in sys.modules)"
    out = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": SRC},
    )
    assert out.stdout.strip() == "False"


def test_metrics_without_prometheus_client_names_the_extra():
    """Importing resilience.metrics without prometheus_client says which extra to install."""
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n    import resilience.metrics\n"
        "except ImportError as exc:\n"
        "    print(exc, '|', type(exc.__cause__).__name__)\n"
    )
    out = subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": SRC},
    )
    assert "pip install 'resilient-calls[prometheus]'" in out.stdout
    assert out.stdout.strip().endswith("| ModuleNotFoundError")


# ---------------------------------------------------------------- series


def make_state(breakers: BreakerRegistry, clock: FakeClock, state: str) -> CircuitBreaker:
    """Return the breaker ``svc`` brought into ``state``."""
    breaker = breakers.get("svc", failure_threshold=1, recovery_timeout=10.0, clock=clock)
    if state in {"open", "half_open"}:
        fail(breaker)
        if state == "half_open":
            clock.advance(10.0)
    elif state != "closed":
        getattr(breaker, OPERATOR[state])()
    return breaker


@pytest.mark.parametrize("state", STATES, ids=STATES)
def test_state_gauge_is_one_for_the_current_state_only(breakers, registry, clock, state):
    """The state gauge is 1 for the breaker's state and 0 for the five others."""
    make_state(breakers, clock, state)
    for other in STATES:
        expected = 1.0 if other == state else 0.0
        assert value(registry, "resilience_circuit_breaker_state", name="svc", state=other) == (
            expected
        )


def test_calls_total_counts_each_outcome(breakers, registry):
    """Successes, failures, rejections and ignored calls each have a counter."""
    breaker = breakers.get("svc", failure_threshold=2, ignore=KeyError)
    breaker.call(lambda: 1)
    with pytest.raises(KeyError):
        breaker.call({}.__getitem__, "k")
    fail(breaker)
    fail(breaker)
    for _ in range(3):
        with pytest.raises(Exception, match="svc"):
            breaker.call(lambda: 1)
    got = {
        o: value(registry, "resilience_circuit_breaker_calls_total", name="svc", outcome=o)
        for o in ("success", "failure", "rejected", "ignored")
    }
    assert got == {"success": 1.0, "failure": 2.0, "rejected": 3.0, "ignored": 1.0}


def test_failure_rate_is_exported_when_the_policy_measures_it(breakers, registry):
    """A FailureRate breaker with enough calls exports its rate."""
    policy = FailureRate(threshold=1.0, window=CountWindow(4), minimum_calls=4)
    breaker = breakers.get("svc", policy=policy)
    breaker.call(lambda: 1)
    fail(breaker)
    breaker.call(lambda: 1)
    fail(breaker)
    assert value(registry, "resilience_circuit_breaker_failure_rate", name="svc") == 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b.get("svc"),
        lambda b: b.get("svc", policy=FailureRate(minimum_calls=10)),
    ],
    ids=["consecutive-failures", "too-few-calls"],
)
def test_failure_rate_is_absent_while_not_measured(breakers, registry, make):
    """No failure-rate sample exists while the policy measures no rate."""
    make(breakers).call(lambda: 1)
    assert value(registry, "resilience_circuit_breaker_failure_rate", name="svc") is None
    assert value(registry, "resilience_circuit_breaker_state", name="svc", state="closed") == 1


def test_transitions_total_counts_entries_into_each_state(breakers, registry, clock):
    """Each transition increments the counter of the state entered."""
    breaker = make_state(breakers, clock, "half_open")
    fail(breaker)  # half_open -> open
    breaker.reset()
    got = {
        s: value(registry, "resilience_circuit_breaker_transitions_total", name="svc", to_state=s)
        for s in STATES
    }
    assert got == {
        "closed": 1.0,
        "open": 2.0,
        "half_open": 1.0,
        "forced_open": 0.0,
        "disabled": 0.0,
        "metrics_only": 0.0,
    }


def test_named_retries_are_exported(registry):
    """Named retry totals appear as calls by outcome and attempts."""
    name = f"retry-{uuid.uuid4()}"
    counter = _retry_stats.counter_for(name)
    counter.record(attempts=3, succeeded=True)
    counter.record(attempts=1, succeeded=False)
    counter.record(attempts=4, succeeded=False)
    calls = "resilience_retry_calls_total"
    assert value(registry, calls, name=name, outcome="success_with_retry") == 1
    assert value(registry, calls, name=name, outcome="failed_without_retry") == 1
    assert value(registry, calls, name=name, outcome="failed_with_retry") == 1
    assert value(registry, calls, name=name, outcome="success_without_retry") == 0
    assert value(registry, "resilience_retry_attempts_total", name=name) == 8


def test_unnamed_breakers_are_not_exported():
    """A breaker without a name has no series."""
    registry = CollectorRegistry()
    register_metrics(registry, [CircuitBreaker(), CircuitBreaker(name="named")])
    names = {
        dict(labels)["name"]
        for (metric, labels) in samples(registry)
        if metric.startswith("resilience_circuit_breaker")
    }
    assert names == {"named"}


def test_breakers_created_after_registering_are_exported(breakers, registry):
    """The collector reads the registry at scrape time, not at registration."""
    breakers.get("late")
    assert value(registry, "resilience_circuit_breaker_state", name="late", state="closed") == 1


def test_every_family_has_help_and_type(breakers, registry):
    """Each of the six families carries HELP text and the right type."""
    breakers.get("svc")
    _retry_stats.counter_for(f"retry-{uuid.uuid4()}").record(attempts=1, succeeded=True)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "resilience_circuit_breaker_state": "gauge",
        "resilience_circuit_breaker_calls": "counter",
        "resilience_circuit_breaker_failure_rate": "gauge",
        "resilience_circuit_breaker_transitions": "counter",
        "resilience_retry_calls": "counter",
        "resilience_retry_attempts": "counter",
    }
    assert {name: families[name].type for name in expected} == expected
    assert all(families[name].documentation for name in expected)


def test_unreadable_breaker_is_logged_and_left_out(breakers, registry, caplog):
    """A breaker whose clock raises is logged and skipped; the others are still exported."""

    def broken_clock() -> float:
        raise RuntimeError("clock broke")

    breakers.get("broken", clock=broken_clock)
    breakers.get("fine")
    with caplog.at_level(logging.ERROR, logger="resilience"):
        got = samples(registry)
    fine = frozenset({("name", "fine"), ("state", "closed")})
    assert got[("resilience_circuit_breaker_state", fine)] == 1.0
    assert not any(dict(labels).get("name") == "broken" for _, labels in got)
    assert "broken" in caplog.text


# ---------------------------------------------------------------- registration


def test_register_metrics_twice_neither_raises_nor_duplicates(breakers):
    """Registering the same breakers on one registry twice exports each series once."""
    registry = CollectorRegistry()
    first = register_metrics(registry, breakers)
    second = register_metrics(registry, breakers)
    breakers.get("svc")
    text = generate_latest(registry).decode()
    assert first is second
    assert text.count('resilience_circuit_breaker_state{name="svc",state="closed"}') == 1


def test_register_metrics_with_a_second_breaker_registry_reads_both():
    """One collector per prometheus registry reads every breaker registry added to it."""
    registry = CollectorRegistry()
    one, two = BreakerRegistry(), BreakerRegistry()
    one.get("a")
    two.get("b")
    two.get("a").open()  # the same name in the second registry: the later-made one's state
    register_metrics(registry, one)
    register_metrics(registry, two)
    state = "resilience_circuit_breaker_state"
    assert value(registry, state, name="a", state="forced_open") == 1
    assert value(registry, state, name="a", state="closed") == 0
    assert value(registry, state, name="b", state="closed") == 1


def test_register_metrics_defaults_to_the_global_registries():
    """Without arguments the default breakers are exported on prometheus_client.REGISTRY."""
    name = f"default-{uuid.uuid4()}"
    get_circuit_breaker(name)
    collector = register_metrics()
    try:
        assert register_metrics() is collector
        key = "resilience_circuit_breaker_state"
        assert prometheus_client.REGISTRY.get_sample_value(key, {"name": name, "state": "closed"})
    finally:
        prometheus_client.REGISTRY.unregister(collector)
        default_registry.remove(name)


def test_register_metrics_again_after_unregister_registers_again(breakers):
    """A collector unregistered by hand comes back on the next register_metrics()."""
    registry = CollectorRegistry()
    collector = register_metrics(registry, breakers)
    registry.unregister(collector)
    breakers.get("svc")
    register_metrics(registry, breakers)
    assert value(registry, "resilience_circuit_breaker_state", name="svc", state="closed") == 1


def test_register_metrics_refuses_names_taken_by_other_metrics(breakers):
    """A registry that already has a metric with one of our names raises ValueError."""
    registry = CollectorRegistry()
    prometheus_client.Gauge("resilience_circuit_breaker_state", "mine", registry=registry)
    with pytest.raises(ValueError, match="resilience_circuit_breaker_state"):
        register_metrics(registry, breakers)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"registry": "registry"}, TypeError, "registry must be"),
        ({"breakers": "payments"}, TypeError, "breakers must be"),
        ({"breakers": 3}, TypeError, "breakers must be"),
        ({"breakers": iter([])}, TypeError, "re-iterable"),
    ],
    ids=["registry-str", "breakers-str", "breakers-int", "breakers-iterator"],
)
def test_register_metrics_rejects_bad_arguments(kwargs, error, match):
    """Wrong types are refused with a message naming the parameter."""
    arguments = {"registry": CollectorRegistry(), "breakers": BreakerRegistry(), **kwargs}
    with pytest.raises(error, match=match):
        register_metrics(**arguments)


# ---------------------------------------------------------------- fast exposition


def parsed(text: str) -> list[tuple[str, str, str, list[tuple[str, tuple[object, ...], float]]]]:
    """Parse an exposition into comparable families."""
    return [
        (
            f.name,
            f.type,
            f.documentation,
            sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples),
        )
        for f in text_string_to_metric_families(text)
    ]


names = st.text(
    st.characters(blacklist_categories=("C",)),
    min_size=1,
    max_size=30,
).filter(str.isprintable)  # what breaker names allow


@settings(max_examples=50, deadline=None)
@given(
    configs=st.dictionaries(
        names,
        st.tuples(st.sampled_from(STATES), st.integers(0, 5), st.integers(0, 5)),
        max_size=5,
    )
)
def test_server_exposition_matches_prometheus_client(configs):
    """The server's fast rendering parses to exactly what generate_latest gives."""
    clock = FakeClock()
    breakers = BreakerRegistry()
    for name, (state, ok, failed) in configs.items():
        policy = FailureRate(threshold=1.0, window=CountWindow(10), minimum_calls=1)
        breaker = breakers.get(name, policy=policy, recovery_timeout=5.0, clock=clock)
        for _ in range(ok):
            breaker.call(lambda: 1)
        for _ in range(failed):
            with contextlib.suppress(ZeroDivisionError, CircuitOpenError):
                breaker.call(lambda: 1 / 0)
        if state == "half_open":
            breaker._circuit.operate(CircuitState.OPEN)
        elif state not in {"closed", "open"}:
            getattr(breaker, OPERATOR[state])()
    clock.advance(5.0)  # the breakers opened so far read half_open now
    for name, (state, _, _) in configs.items():
        if state == "open":
            breakers.get(name)._circuit.operate(CircuitState.OPEN)
    registry = CollectorRegistry()
    register_metrics(registry, breakers)
    fast = b"".join(_exposition(registry)).decode()
    assert parsed(fast) == parsed(generate_latest(registry).decode())


@pytest.mark.parametrize(
    "name", ['a"b\\c', "100%d %s %%", "naïve ☂"], ids=["quotes", "percent", "unicode"]
)
def test_server_exposition_escapes_names(name):
    """Names with quotes, backslashes, percent signs and non-ASCII survive the fast rendering."""
    breakers = BreakerRegistry()
    breakers.get(name).open()
    registry = CollectorRegistry()
    register_metrics(registry, breakers)
    fast = b"".join(_exposition(registry)).decode()
    assert parsed(fast) == parsed(generate_latest(registry).decode())
    families = text_string_to_metric_families(fast)
    breaker_families = [f for f in families if f.name.startswith("resilience_circuit_breaker")]
    assert {s.labels["name"] for f in breaker_families for s in f.samples} == {name}


# ---------------------------------------------------------------- health


def test_health_is_ok_when_no_breaker_is_open(breakers, clock):
    """Closed, disabled and metrics-only breakers leave the status ok."""
    breakers.get("a")
    breakers.get("b").disable()
    breakers.get("c").metrics_only()
    assert health(breakers) == {"status": "ok", "open": []}


def test_health_lists_open_half_open_and_forced_open_breakers(breakers, clock):
    """Open, half-open and forced-open breakers make it degraded, with time since opening."""
    options = {"failure_threshold": 1, "recovery_timeout": 10.0, "clock": clock}
    opened = breakers.get("opened", **options)
    half = breakers.get("half", **options)
    fail(half)
    clock.advance(12.0)
    fail(opened)
    breakers.get("forced", **options).open()
    breakers.get("closed", **options)
    clock.advance(3.0)
    assert health(breakers) == {
        "status": "degraded",
        "open": [
            {"name": "opened", "state": "open", "open_for": 3.0},
            {"name": "half", "state": "half_open", "open_for": 15.0},
            {"name": "forced", "state": "forced_open", "open_for": 3.0},
        ],
    }


def test_health_reads_the_default_registry_by_default():
    """health() without arguments looks at the breakers of get_circuit_breaker."""
    name = f"health-{uuid.uuid4()}"
    get_circuit_breaker(name).open()
    try:
        assert {"name": name, "state": "forced_open"}.items() <= health()["open"][-1].items()
    finally:
        default_registry.remove(name)


# ---------------------------------------------------------------- server


def test_server_serves_metrics(server, breakers):
    """GET /metrics answers the Prometheus text format with the breaker series."""
    breakers.get("svc")
    status, headers, body = fetch(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'resilience_circuit_breaker_state{name="svc",state="closed"} 1' in body


def test_server_compresses_when_asked(server, breakers):
    """A scrape accepting gzip gets a gzip body."""
    breakers.get("svc")
    _, headers, body = fetch(server.url + "/metrics", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert b'name="svc"' in gzip.decompress(body)


def test_server_serves_health_as_json(server, breakers):
    """GET /health answers health() as JSON, with status 200 even when degraded."""
    breakers.get("svc").open()
    status, headers, body = fetch(server.url + "/health")
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(body)["open"][0]["name"] == "svc"


def test_server_filters_by_name(server, breakers):
    """`name[]` query parameters restrict the families served."""
    breakers.get("svc")
    _, _, body = fetch(server.url + "/metrics?name[]=resilience_circuit_breaker_failure_rate")
    assert b"resilience_circuit_breaker_state" not in body


def test_server_rejects_other_methods(server):
    """POST is refused on both endpoints."""
    for path in ("/metrics", "/health"):
        request = urllib.request.Request(server.url + path, data=b"", method="POST")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310  # loopback test server
        info.value.close()
        assert info.value.code == 405


def test_server_reports_the_port_it_bound(server):
    """With port=0 the server reports the port the system chose, on loopback."""
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_server_close_frees_the_port(registry, breakers):
    """After close() the port can be bound again."""
    server = start_metrics_server(port=0, registry=registry, breakers=breakers)
    server.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", server.port))


def test_starting_a_server_registers_the_collector_once(breakers):
    """Two servers on one registry export each series once."""
    registry = CollectorRegistry()
    breakers.get("svc")
    with (
        start_metrics_server(port=0, registry=registry, breakers=breakers) as one,
        start_metrics_server(port=0, registry=registry, breakers=breakers),
    ):
        _, _, body = fetch(one.url + "/metrics")
    assert body.count(b'resilience_circuit_breaker_state{name="svc",state="closed"}') == 1


def test_server_defaults_to_the_global_registries():
    """Without registry and breakers the server exports the default breakers globally."""
    name = f"served-{uuid.uuid4()}"
    get_circuit_breaker(name)
    try:
        with start_metrics_server(port=0) as server:
            _, _, body = fetch(server.url + "/metrics")
        assert f'name="{name}"'.encode() in body
    finally:
        prometheus_client.REGISTRY.unregister(register_metrics())
        default_registry.remove(name)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"port": True}, TypeError, "port"),
        ({"port": 1.5}, TypeError, "port"),
        ({"port": -1}, ValueError, "port must be >= 0, got -1"),
        ({"port": 65536}, ValueError, "port must be <= 65535, got 65536"),
        ({"addr": 127}, TypeError, "addr must be a str, got 127"),
        ({"registry": {}}, TypeError, "registry must be"),
        ({"breakers": iter(())}, TypeError, "breakers must be"),
    ],
    ids=["port-bool", "port-float", "port-negative", "port-large", "addr", "registry", "breakers"],
)
def test_start_metrics_server_rejects_bad_arguments(kwargs, error, match):
    """Bad arguments raise before anything is bound, naming the parameter and value."""
    with pytest.raises(error, match=match):
        start_metrics_server(**{"port": 0, "registry": CollectorRegistry(), **kwargs})


@pytest.mark.parametrize("state", STATES, ids=STATES)
def test_metrics_row_agrees_with_get_stats(breakers, clock, state):
    """The collector's cheap read reports what get_stats() reports."""
    breaker = make_state(breakers, clock, state)
    clock.advance(1.5)
    current, totals, rate, open_for, entered = breaker._metrics_row()
    stats = breaker.get_stats()
    assert current == stats["state"]
    assert totals == tuple(
        stats[f"total_{k}"] for k in ("successes", "failures", "rejected", "ignored")
    )
    assert (rate, open_for) == (stats["failure_rate"], stats["open_for"])
    assert entered == tuple(stats["transitions"][s] for s in STATES)


def test_server_close_twice_is_harmless(registry, breakers):
    """Closing a closed server does nothing."""
    server = start_metrics_server(port=0, registry=registry, breakers=breakers)
    server.close()
    server.close()
