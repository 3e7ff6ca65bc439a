"""Prometheus metrics and a health check for circuit breakers and named retries.

Install the extra first: ``pip install 'resilient-calls[prometheus]'``.

Metrics are pulled, never pushed: ``register_metrics()`` adds a collector to a
prometheus_client registry, and the collector reads every named breaker (and every named
retry) when Prometheus scrapes. Nothing is added to the path of a protected call, so a
breaker costs the same with metrics on or off.

Series (names are part of the public contract):

- ``resilience_circuit_breaker_state{name,state}`` (gauge): 1 for the breaker's current
  state, 0 for each other state.
- ``resilience_circuit_breaker_calls_total{name,outcome}`` (counter): calls by outcome,
  ``success``, ``failure``, ``rejected`` or ``ignored``.
- ``resilience_circuit_breaker_failure_rate{name}`` (gauge): the failure rate (0..1) the
  trip policy measures; absent while it measures none (``ConsecutiveFailures``, too few
  calls in the window, or a half-open circuit).
- ``resilience_circuit_breaker_transitions_total{name,to_state}`` (counter): entries
  into each state.
- ``resilience_retry_calls_total{name,outcome}`` (counter): finished calls of each named
  retry, by outcome ``success_without_retry``, ``success_with_retry``,
  ``failed_without_retry`` or ``failed_with_retry``.
- ``resilience_retry_attempts_total{name}`` (counter): attempts of each named retry, the
  first attempt of every call included.

Label values are the enums' values (``closed``, ``half_open``, ...). Only named breakers
are exported: unnamed ones live in no registry, and names keep the label set bounded.
"""

from __future__ import annotations

try:
    import prometheus_client
    from prometheus_client.exposition import gzip_accepted
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
    from prometheus_client.samples import Sample
except ImportError as exc:
    raise ImportError(
        "resilience.metrics needs prometheus-client; install it with: "
        "pip install 'resilient-calls[prometheus]'"
    ) from exc

import contextlib
import json
import logging
import re
import socket
import sys
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Final, Self, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from resilience import _named, _observed, _retry_stats
from resilience._registry import default_registry
from resilience._state import CircuitState
from resilience._validate import check_int, check_number

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from resilience._breaker import CircuitBreaker

__all__ = ["MetricsServer", "health", "register_metrics", "start_metrics_server"]

logger = logging.getLogger("resilience")

_STATE: Final = "resilience_circuit_breaker_state"
_CALLS: Final = "resilience_circuit_breaker_calls"
_FAILURE_RATE: Final = "resilience_circuit_breaker_failure_rate"
_TRANSITIONS: Final = "resilience_circuit_breaker_transitions"
_RETRY_CALLS: Final = "resilience_retry_calls"
_RETRY_ATTEMPTS: Final = "resilience_retry_attempts"

_STATES: Final = tuple(state.value for state in CircuitState)
_CALL_OUTCOMES: Final = ("success", "failure", "rejected", "ignored")
_DEGRADED: Final = frozenset(
    {CircuitState.OPEN.value, CircuitState.HALF_OPEN.value, CircuitState.FORCED_OPEN.value}
)

_HELP: Final = {
    _STATE: "Circuit breaker state: 1 for the current state, 0 for the others.",
    _CALLS: "Calls through the circuit breaker, by outcome (success, failure, rejected, ignored).",
    _FAILURE_RATE: "Failure rate (0..1) the breaker's trip policy measures; absent while it "
    "measures none.",
    _TRANSITIONS: "Transitions of the circuit breaker, by the state entered.",
    _RETRY_CALLS: "Finished calls of a named retry, by outcome.",
    _RETRY_ATTEMPTS: "Attempts made by a named retry, the first attempt of each call included.",
}


_Row = tuple[str, tuple[int, int, int, int], float | None, float | None, tuple[int, ...]]
_Rows = list[tuple[str, _Row]]


def _escape(value: str) -> str:
    """Escape a label value for the text exposition format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _state_samples(rows: _Rows) -> list[Sample]:
    return [
        Sample(_STATE, {"name": name, "state": value}, 1.0 if value == row[0] else 0.0)
        for name, row in rows
        for value in _STATES
    ]


def _calls_samples(rows: _Rows) -> list[Sample]:
    return [
        Sample(_CALLS + "_total", {"name": name, "outcome": outcome}, float(total))
        for name, row in rows
        for outcome, total in zip(_CALL_OUTCOMES, row[1], strict=True)
    ]


def _rate_samples(rows: _Rows) -> list[Sample]:
    return [
        Sample(_FAILURE_RATE, {"name": name}, row[2]) for name, row in rows if row[2] is not None
    ]


def _transitions_samples(rows: _Rows) -> list[Sample]:
    return [
        Sample(_TRANSITIONS + "_total", {"name": name, "to_state": value}, float(count))
        for name, row in rows
        for value, count in zip(_STATES, row[4], strict=True)
    ]


def _split(metric: str, label: str, lines: list[str]) -> tuple[str, ...]:
    """Split a breaker's block of ``lines`` where its name goes, for ``name.join(...)``.

    Each line is the text after ``name="``; joining the result with a breaker's escaped
    name gives the whole block, one C-level call per breaker and family.
    """
    head = f'{metric}{{name="'
    return (head, *(f'",{label}="{line}{head}' for line in lines[:-1]), f'",{label}="{lines[-1]}')


_STATE_PIECES: Final = {
    current: _split(_STATE, "state", [f'{v}"}} {1 if v == current else 0}\n' for v in _STATES])
    for current in _STATES
}
# %d placeholders for the counts (a name's "%" is doubled before joining).
_CALLS_PIECES: Final = _split(
    _CALLS + "_total", "outcome", [f'{o}"}} %d\n' for o in _CALL_OUTCOMES]
)
_TRANSITIONS_PIECES: Final = _split(
    _TRANSITIONS + "_total", "to_state", [f'{v}"}} %d\n' for v in _STATES]
)
_NO_TRANSITIONS_PIECES: Final = _split(
    _TRANSITIONS + "_total", "to_state", [f'{v}"}} 0\n' for v in _STATES]
)
_NEEDS_ESCAPE: Final = re.compile(r'[\\"\n]')


class _Scrape:
    """The rows read from the breakers in one scrape, and their text, made once."""

    __slots__ = ("_texts", "rows")

    def __init__(self, rows: _Rows) -> None:
        self.rows = rows
        self._texts: tuple[str, str, str, str] | None = None

    def texts(self) -> tuple[str, str, str, str]:
        """Return the sample lines of the state, calls, rate and transitions families."""
        if self._texts is None:
            self._texts = self._render()
        return self._texts

    def _render(self) -> tuple[str, str, str, str]:
        # The hot loop of a scrape of thousands of breakers: one pass, and each block made
        # by str.join and %-formatting, which beat f-strings and str.format here.
        states: list[str] = []
        calls: list[str] = []
        rates: list[str] = []
        transitions: list[str] = []
        state_pieces = _STATE_PIECES
        calls_pieces = _CALLS_PIECES
        transitions_pieces = _TRANSITIONS_PIECES
        no_transitions = _NO_TRANSITIONS_PIECES
        search = _NEEDS_ESCAPE.search
        for name, (current, totals, rate, _, entered) in self.rows:
            label = _escape(name) if search(name) else name
            states.append(label.join(state_pieces[current]))
            safe = label.replace("%", "%%") if "%" in label else label
            calls.append(safe.join(calls_pieces) % totals)
            if rate is not None:
                rates.append(f'{_FAILURE_RATE}{{name="{label}"}} {rate!r}\n')
            if any(entered):
                transitions.append(safe.join(transitions_pieces) % entered)
            else:
                transitions.append(label.join(no_transitions))
        return "".join(states), "".join(calls), "".join(rates), "".join(transitions)


class _BreakerFamily(Metric):
    """A breaker metric family whose samples are built only if something reads them.

    prometheus_client's exposition reads ``samples``; the metrics server renders the
    family with ``text()`` instead, many times faster, from the same rows.
    """

    def __init__(
        self,
        name: str,
        typ: str,
        scrape: _Scrape,
        index: int,
        samples: Callable[[_Rows], list[Sample]],
    ) -> None:
        super().__init__(name, _HELP[name], typ)
        self._scrape = scrape
        self._index = index
        self._make_samples = samples
        self._samples: list[Sample] | None = None

    @property
    def samples(self) -> list[Sample]:
        """The samples, built on first access."""
        if self._samples is None:
            self._samples = self._make_samples(self._scrape.rows)
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value or None  # Metric.__init__ assigns an empty list

    def text(self) -> str:
        """Return the family's sample lines in the text exposition format."""
        return self._scrape.texts()[self._index]


class _Collector(Collector):
    """Read breakers and named retries at scrape time and yield their metric families.

    One collector serves one prometheus_client registry; it may read several breaker
    registries. A breaker whose stats cannot be read is logged and left out of that
    scrape, so one broken clock cannot blank every other series.
    """

    def __init__(self) -> None:
        self._sources: tuple[Iterable[CircuitBreaker], ...] = ()

    def add(self, breakers: Iterable[CircuitBreaker]) -> None:
        """Read ``breakers`` too, from the next scrape on."""
        if not any(source is breakers for source in self._sources):
            self._sources = (*self._sources, breakers)

    def describe(self) -> Iterable[Metric]:
        """Return the families without samples, so registering does not scrape."""
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        """Return the families with samples for every named breaker, retry and strategy."""
        families = self._families(self._rows(), _retry_stats.snapshot())
        families.extend(_strategy_families())
        return families

    def _families(self, rows: _Rows, retries: list[dict[str, Any]] | None = None) -> list[Metric]:
        retry_calls = CounterMetricFamily(
            _RETRY_CALLS, _HELP[_RETRY_CALLS], labels=("name", "outcome")
        )
        retry_attempts = CounterMetricFamily(
            _RETRY_ATTEMPTS, _HELP[_RETRY_ATTEMPTS], labels=("name",)
        )
        for retry in retries or ():
            for outcome, count in retry["outcomes"].items():
                retry_calls.add_metric((retry["name"], outcome), count)
            retry_attempts.add_metric((retry["name"],), retry["attempts"])
        scrape = _Scrape(rows)
        return [
            _BreakerFamily(_STATE, "gauge", scrape, 0, _state_samples),
            _BreakerFamily(_CALLS, "counter", scrape, 1, _calls_samples),
            _BreakerFamily(_FAILURE_RATE, "gauge", scrape, 2, _rate_samples),
            _BreakerFamily(_TRANSITIONS, "counter", scrape, 3, _transitions_samples),
            retry_calls,
            retry_attempts,
        ]

    def _rows(self) -> _Rows:
        rows: dict[str, _Row] = {}
        seen: set[int] = set()  # ids of breakers read: a breaker in two sources counts once
        for source in self._sources:
            try:
                breakers = _breakers_of(source)
            except Exception:
                logger.exception("cannot list circuit breakers of %r for metrics", source)
                continue
            for breaker in breakers:
                name = breaker.name
                if name is None or id(breaker) in seen:
                    continue
                seen.add(id(breaker))
                try:
                    row = breaker._metrics_row()  # noqa: SLF001  # one unit
                except Exception:
                    logger.exception("cannot read circuit breaker %r for metrics", name)
                    continue
                earlier = rows.get(name)
                rows[name] = row if earlier is None else _merge_rows(earlier, row)
        return list(rows.items())


def _breakers_of(source: Iterable[CircuitBreaker]) -> list[CircuitBreaker]:
    """List a source's breakers; the default registry stands for every live named one."""
    if source is default_registry:
        return _named.live()
    return list(source)


def _merge_rows(earlier: _Row, later: _Row) -> _Row:
    """Merge two live breakers with one name into one row (see ``register_metrics``).

    Counters add up, so no call goes unexported; the state and the failure rate are
    the later-made breaker's, the one a newer ``CircuitBreaker(name=...)`` stands for.
    """
    totals = cast(
        "tuple[int, int, int, int]", tuple(a + b for a, b in zip(earlier[1], later[1], strict=True))
    )
    transitions = tuple(a + b for a, b in zip(earlier[4], later[4], strict=True))
    return later[0], totals, later[2], later[3], transitions


def _strategy_families() -> list[Metric]:
    """Return the families of every live named strategy other than breakers and retries."""
    try:
        observed = _observed.merged_families()
    except Exception:
        logger.exception("cannot read the observed strategies for metrics")
        return []
    metrics: list[Metric] = []
    for family in observed:
        kind = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
        # prometheus_client adds the suffix itself to a counter family's samples.
        name = family.name.removesuffix("_total") if family.type == "counter" else family.name
        metric = kind(name, family.documentation, labels=family.labels)
        for labels, value in family.samples:
            metric.add_metric(labels, value)
        metrics.append(metric)
    return metrics


_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, _Collector] = weakref.WeakKeyDictionary()
_COLLECTORS_LOCK = threading.Lock()


def _check_breakers(breakers: object) -> Iterable[CircuitBreaker]:
    if isinstance(breakers, str | bytes) or not isinstance(breakers, Iterable):
        raise TypeError(
            f"breakers must be a BreakerRegistry or a collection of circuit breakers, "
            f"got {breakers!r}"
        )
    if iter(breakers) is breakers:
        raise TypeError(
            f"breakers must be re-iterable (a BreakerRegistry, list or set), not a one-shot "
            f"iterator, got {breakers!r}"
        )
    return breakers


def _check_registry(registry: object) -> CollectorRegistry:
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(f"registry must be a prometheus_client CollectorRegistry, got {registry!r}")
    return registry


def register_metrics(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    breakers: Iterable[CircuitBreaker] = default_registry,
) -> Collector:
    """Export the breakers of ``breakers`` (and every named retry) on ``registry``.

    Registering is idempotent: one collector serves each prometheus_client registry, and
    calling this again for the same registry returns it (adding ``breakers`` to what it
    reads, if they are new to it). Breakers are read when Prometheus scrapes, so breakers
    created later are exported too.

    Args:
        registry: the prometheus_client registry to export on (default: its global one).
        breakers: a ``BreakerRegistry`` or any re-iterable collection of breakers.
            The default, the registry behind ``get_circuit_breaker``, stands for every
            live named breaker however it was made (``CircuitBreaker(name=...)``, the
            decorator, a registry), held weakly. Only named breakers are exported. Two
            live breakers with one name give one series per label set: their counters
            are added up and the state and failure rate are the later-made one's.

    Returns:
        The collector, for ``registry.unregister(...)``.

    Raises:
        TypeError: ``registry`` or ``breakers`` has the wrong type.
        ValueError: ``registry`` already has other metrics with these names.

    Examples:
        >>> from prometheus_client import CollectorRegistry, generate_latest
        >>> from resilience import BreakerRegistry
        >>> breakers = BreakerRegistry()
        >>> payments = breakers.get("payments")
        >>> registry = CollectorRegistry()
        >>> collector = register_metrics(registry, breakers)
        >>> b'resilience_circuit_breaker_state{name="payments",state="closed"} 1.0' in (
        ...     generate_latest(registry)
        ... )
        True
    """
    registry = _check_registry(registry)
    breakers = _check_breakers(breakers)
    with _COLLECTORS_LOCK:
        collector = _COLLECTORS.get(registry)
        known = collector is not None
        if collector is None:
            collector = _Collector()
        collector.add(breakers)
        try:
            registry.register(collector)
        except ValueError:
            # Already there: what idempotence asks. A new collector clashing means someone
            # else's metrics hold our names, which the caller must hear about.
            if not known:
                raise
        _COLLECTORS[registry] = collector
    return collector


def health(breakers: Iterable[CircuitBreaker] | None = None) -> dict[str, Any]:
    """Return a health summary of the breakers, for a ``/health`` endpoint.

    Breakers that are OPEN, HALF_OPEN or FORCED_OPEN are listed, and any of them makes
    the status ``"degraded"``; otherwise it is ``"ok"``. ``open_for`` is how many seconds,
    on the breaker's clock, have passed since it last left CLOSED, rounded to
    milliseconds. Two live breakers with one name are each listed when open.

    Args:
        breakers: a ``BreakerRegistry`` or collection of breakers (default: every live
            named breaker, however it was made).

    Returns:
        ``{"status": "ok" | "degraded", "open": [{"name", "state", "open_for"}, ...]}``.

    Examples:
        >>> from resilience import BreakerRegistry
        >>> breakers = BreakerRegistry()
        >>> breakers.get("search").open()
        >>> health(breakers)["status"]
        'degraded'
    """
    source = default_registry if breakers is None else _check_breakers(breakers)
    listed: list[dict[str, Any]] = []
    for breaker in _breakers_of(source):
        try:
            state, _, _, open_for, _ = breaker._metrics_row()  # noqa: SLF001  # one unit
        except Exception:
            logger.exception("cannot read circuit breaker %r for health", breaker.name)
            continue
        if state in _DEGRADED:
            listed.append({"name": breaker.name, "state": state, "open_for": _ms(open_for)})
    degraded = _degraded_strategies()
    report: dict[str, Any] = {"status": "degraded" if listed or degraded else "ok", "open": listed}
    if degraded:
        report["degraded"] = degraded
    return report


def _ms(seconds: float | None) -> float | None:
    """Round to the millisecond: ``2.887``, not ``2.8871923600000002``."""
    return None if seconds is None else round(seconds, 3)


def _degraded_strategies() -> list[dict[str, Any]]:
    """Return what each live named strategy that degrades health says about itself."""
    found: list[dict[str, Any]] = []
    for strategy in _observed.live():
        try:
            issue = strategy._health()  # noqa: SLF001  # the observed-object hook
        except Exception:
            logger.exception("cannot read %r for health", strategy)
            continue
        if issue is not None:
            found.append(issue)
    return found


_TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class _Fixed(Collector):
    """A collector returning families already collected, for prometheus_client to format."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def _exposition(registry: Collector) -> list[bytes]:
    """Render ``registry`` in the Prometheus text format, breaker families the fast way.

    The lines are those ``prometheus_client.generate_latest`` writes (but integers print
    without ``.0``); this module's families skip building a ``Sample`` per line. The
    result is a list of chunks, so a large scrape is never copied into one string.
    """
    chunks: list[bytes] = []
    others: list[Metric] = []
    for metric in registry.collect():
        if not isinstance(metric, _BreakerFamily):
            others.append(metric)
            continue
        if others:
            chunks.append(prometheus_client.generate_latest(_Fixed(others)))
            others = []
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        chunks.append(
            f"# HELP {name} {metric.documentation}\n# TYPE {name} {metric.type}\n".encode()
        )
        chunks.append(metric.text().encode())
    if others:
        chunks.append(prometheus_client.generate_latest(_Fixed(others)))
    return chunks


_ENDPOINTS: Final = ("/metrics", "/health")
_METHODS: Final = ("GET", "HEAD")
_NOT_FOUND: Final = b"404 not found: this server serves /metrics and /health\n"


def _app(registry: CollectorRegistry, breakers: Iterable[CircuitBreaker] | None) -> WSGIApplication:
    """Return the server's WSGI app: ``/metrics`` and ``/health``, 404 for other paths.

    GET and HEAD are served (HEAD with GET's headers and no body); OPTIONS says so; other
    methods get 405. Filtered scrapes (``name[]=``) and OpenMetrics are rendered by
    prometheus_client itself, plain scrapes by ``_exposition``.
    """
    standard = prometheus_client.make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        head = method == "HEAD"
        if path not in _ENDPOINTS:
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            headers.append(("Content-Length", str(len(_NOT_FOUND))))
            start_response("404 Not Found", headers)
            return [] if head else [_NOT_FOUND]
        if method not in _METHODS:
            status = "200 OK" if method == "OPTIONS" else "405 Method Not Allowed"
            start_response(status, [("Allow", "GET, HEAD, OPTIONS"), ("Content-Length", "0")])
            return []
        if path == "/health":
            body = [json.dumps(health(breakers)).encode()]
            return _respond(start_response, environ, body, "application/json", head=head)
        if "name[]" in environ.get("QUERY_STRING", "") or "openmetrics" in environ.get(
            "HTTP_ACCEPT", ""
        ):
            answer = standard({**environ, "REQUEST_METHOD": "GET"}, start_response)
            return [] if head else cast("Iterable[bytes]", answer)
        return _respond(
            start_response, environ, _exposition(registry), _TEXT_CONTENT_TYPE, head=head
        )

    return app


def _respond(
    start_response: StartResponse,
    environ: WSGIEnvironment,
    chunks: list[bytes],
    content_type: str,
    *,
    head: bool = False,
) -> list[bytes]:
    headers = [("Content-Type", content_type)]
    if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
        # The fastest level: a scrape of many breakers is large, and time matters more.
        compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
        chunks = [*map(compressor.compress, chunks), compressor.flush()]
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(sum(map(len, chunks)))))
    # /health answers 200 even when degraded: a breaker open on a shared dependency is
    # the service degrading on purpose, and a load balancer pulling every instance would
    # turn that into an outage.
    start_response("200 OK", headers)
    return [] if head else chunks


_BUSY_BODY: Final = b"503 too many connections to this server"
_BUSY: Final = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s"
) % (len(_BUSY_BODY), _BUSY_BODY)


class _Server(ThreadingMixIn, WSGIServer):
    """A threaded WSGI server that bounds its threads, however many clients sit idle.

    Each connection gets a thread (a scrape may be slow to render), but at most
    ``max_connections`` at once: past that, a connection is answered 503 at once by the
    accepting thread and closed. A connection that sends nothing for ``read_timeout``
    seconds is dropped, which frees its thread. The wsgiref server speaks HTTP/1.0, so a
    connection serves one request and no keep-alive can hold a thread either.
    """

    daemon_threads = True  # a hung scraper must not keep the process alive
    request_queue_size = 128  # the listen backlog: socketserver's 5 drops bursts unseen
    max_connections = 64
    read_timeout = 10.0

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._warned = False

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            super().process_request(request, client_address)  # a thread; it frees the slot
        else:
            self._refuse(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.read_timeout)
        super().process_request_thread(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Close an admitted connection and free its slot.

        socketserver calls this once per admitted connection: from its thread when it is
        served, or from the accepting thread if its thread could not start.
        """
        try:
            super().shutdown_request(request)
        finally:
            self._slots.release()

    def _refuse(self, request: Any, client_address: Any) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(
            level,
            "metrics server: %d connections open (max_connections); refusing %s",
            self.max_connections,
            client_address,
        )
        with contextlib.suppress(OSError):
            request.setblocking(False)  # noqa: FBT003  # never stall the accepting thread
            request.send(_BUSY)
        super().shutdown_request(request)  # it holds no slot to free

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002  # the base's
        """Log a connection that failed, instead of printing a traceback on stderr.

        What reaches here is the connection's, not the app's (wsgiref answers an app's
        error with a 500 itself): a client silent past ``read_timeout``, or one that hung up.
        """
        error = sys.exc_info()[1]
        logger.debug("metrics server: connection from %s ended: %r", client_address, error)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
        logger.debug("metrics server: " + format, *args)  # noqa: G003  # format is the base's


class MetricsServer:
    """A running metrics server, as returned by ``start_metrics_server``.

    It serves in a daemon thread until ``close()`` (or the end of a ``with`` block).
    """

    __slots__ = ("_server", "_thread", "address", "port")

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.address: str = str(host)
        """The address it listens on."""
        self.port: int = int(port)
        """The port it listens on (the one the system chose, if asked for port 0)."""

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9464``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and free the port; waits for the serving thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def start_metrics_server(
    port: int = 9464,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    breakers: Iterable[CircuitBreaker] | None = None,
    *,
    max_connections: int = 64,
    read_timeout: float = 10.0,
) -> MetricsServer:
    """Serve ``/metrics`` (and ``/health``) over HTTP from a daemon thread.

    The collector for ``breakers`` is registered on ``registry`` unless it is there
    already. ``/metrics`` serves the whole registry in the Prometheus text format (or
    OpenMetrics, when asked for); ``/health`` serves ``health(breakers)`` as JSON with
    status 200 even when degraded. Every other path answers 404. GET and HEAD are
    served, gzip-compressed when the client accepts it. This thread (and one per open
    connection, at most ``max_connections``) is the only one the library starts, and
    only here.

    Args:
        port: the TCP port; 0 lets the system choose one (read it from ``.port``).
        addr: the address to listen on; the default serves only this machine.
        registry: the prometheus_client registry to serve (default: its global one).
        breakers: the breakers to export (default: the default registry).
        max_connections: connections served at once; one more is answered 503 and
            closed, so idle clients cannot pin a thread each.
        read_timeout: seconds a connection may stay silent before it is dropped.

    Returns:
        The running server, with ``.port``, ``.url`` and ``.close()``.

    Raises:
        TypeError, ValueError: an argument is invalid.
        OSError: the address cannot be bound (e.g. the port is in use).

    Examples:
        >>> from prometheus_client import CollectorRegistry
        >>> with start_metrics_server(port=0, registry=CollectorRegistry()) as server:
        ...     server.url.startswith("http://127.0.0.1:")
        True
    """
    check_int("port", port, minimum=0)
    if port > 65535:  # noqa: PLR2004  # the largest TCP port
        raise ValueError(f"port must be <= 65535, got {port}")
    if not isinstance(addr, str):
        raise TypeError(f"addr must be a str, got {addr!r}")
    limit = check_int("max_connections", max_connections, minimum=1)
    silence = check_number("read_timeout", read_timeout, positive=True)
    registry = prometheus_client.REGISTRY if registry is None else _check_registry(registry)
    source = default_registry if breakers is None else _check_breakers(breakers)
    register_metrics(registry, source)
    app = _app(registry, source)
    server_class = _server_class(addr, port, max_connections=limit, read_timeout=silence)
    server = make_server(addr, port, app, server_class, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="resilience-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


def _server_class(
    addr: str, port: int, *, max_connections: int, read_timeout: float
) -> type[WSGIServer]:
    """Return a server class of the address family ``addr`` resolves to (IPv4 or IPv6)."""
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    limit, silence = max_connections, read_timeout

    class Server(_Server):
        address_family = family
        max_connections = limit
        read_timeout = silence

    return Server
