"""One circuit for a whole fleet: breaker state shared through Redis (extra ``redis``).

``RedisStorage`` plugs into ``CircuitBreaker(storage=...)`` or
``BreakerRegistry(storage=...)``; every process that uses the same Redis, prefix and
breaker name then shares one circuit. Each admission, batch of outcomes and operator
order is one atomic Lua script call (loaded once, invoked by its hash), timed by the
Redis server's clock. See docs/distributed.md for the guarantees and failure modes.

Examples:
    >>> import redis
    >>> from resilience import CircuitBreaker
    >>> from resilience.redis import RedisStorage
    >>> storage = RedisStorage(redis.Redis.from_url("redis://127.0.0.1:6379/0"))
    >>> breaker = CircuitBreaker(name="payments", failure_threshold=5, storage=storage)
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote, unquote

try:
    import redis as _redis
    import redis.asyncio.connection as _aconnection
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode
    from redis.exceptions import NoScriptError, ResponseError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError(
        "resilience.redis needs redis-py: pip install 'resilient-calls[redis]'"
    ) from exc

from resilience._redis_lua import GCRA_SCRIPT, SCRIPT
from resilience._state import CircuitState
from resilience._storage import BreakerStorage, StoredState, check_storage_error_mode
from resilience._validate import check_name, check_number

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["RedisStorage"]

_MAX_CACHE_TTL: Final = 0.1
_MAX_TIMEOUT: Final = 60.0
_MAX_TTL: Final = 10 * 365 * 86400.0  # ten years: far past any idle circuit, well in range
_MAX_PREFIX: Final = 200
# The settings a sync connection accepts (redis-py 5 to 8): an asyncio client's pool
# carries a few more, which the sync twin must not be given.
_SYNC_SETTINGS: Final = frozenset(
    inspect.signature(_redis.connection.AbstractConnection.__init__).parameters
) | {"host", "port", "path", "socket_keepalive", "socket_keepalive_options", "socket_type"}
# CLIENT SETINFO costs two round trips per new connection, each one more wait on a
# stalled server: the twin skips it (``driver_info`` from redis-py 7, the names before).
_NO_CLIENT_SETINFO: Final = (
    {"driver_info": None}
    if "driver_info" in _SYNC_SETTINGS
    else {"lib_name": None, "lib_version": None}
)
# Settings whose asyncio values (parsers, hooks) a blocking connection cannot use.
_ASYNC_ONLY: Final = frozenset(
    {"parser_class", "redis_connect_func", "event_dispatcher", "command_packer", "encoder_class"}
)
_ASYNC_TO_SYNC: Final = {
    _aconnection.Connection: _redis.Connection,
    _aconnection.SSLConnection: _redis.SSLConnection,
    _aconnection.UnixDomainSocketConnection: _redis.UnixDomainSocketConnection,
}
_KEYS_CACHED: Final = 4096  # names (and configs) whose encoding is kept
_MAX_ENCODED: Final = 512  # longer arguments (batches of outcomes) are encoded afresh
# A client that set a circuit's TTLs this recently lets the script keep them (KEEPTTL):
# keys then expire between ttl - 1 s and ttl after the circuit's last use.
_KEEP_TTL_FOR: Final = 1.0
_OPERATOR_STATES: Final = frozenset(
    {
        CircuitState.CLOSED,
        CircuitState.FORCED_OPEN,
        CircuitState.DISABLED,
        CircuitState.METRICS_ONLY,
    }
)
_WINDOW_CODES: Final = {"count": "n", "time": "t", None: ""}
_POLICY_CODES: Final = {"consecutive": "c", "rate": "r"}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(reply: bytes | str) -> list[str]:
    return _text(reply).split(",")


def _stored(fields: Sequence[str]) -> StoredState:
    state = fields[0]
    generation, retry, since, now, admitted, shadow = map(int, fields[1:7])
    return StoredState(
        state=CircuitState(state),
        generation=generation,
        admitted=admitted == 1,
        retry_after=None if retry < 0 else retry / 1e6,
        open_for=None if since < 0 else max(0.0, (now - since) / 1e6),
        opened_at=None if since < 0 else since / 1e6,
        shadow_trip=shadow == 1,
    )


def _short(cache: dict[int, StoredState], reply: int) -> StoredState:
    """Decode the script's short reply: ``2 * generation`` (+1 for METRICS_ONLY).

    The hot path's circuits do not move (the generation is the same call after call),
    so the few distinct replies are decoded once and their answers shared.
    """
    stored = cache.get(reply)
    if stored is None:
        generation, metrics_only = divmod(reply, 2)
        stored = StoredState(
            state=CircuitState.METRICS_ONLY if metrics_only else CircuitState.CLOSED,
            generation=generation,
        )
        if len(cache) >= _KEYS_CACHED:
            cache.clear()
        cache[reply] = stored
    return stored


def _number(name: str, value: object) -> str:
    """Format a config number for the script, exactly (repr round-trips floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"storage config {name} must be a finite number, got {value!r}")
    return repr(value)


# Encoded arguments, by value: a breaker sends the same few (its keys, policy, TTL,
# generation, one outcome) call after call, and encoding them anew costs more than this.
_ENCODED: dict[bytes | str | int, bytes] = {}


def _bulk(part: bytes | str | int) -> bytes:
    """Encode one argument in the Redis protocol, remembering it (see ``_ENCODED``)."""
    data = part if isinstance(part, bytes) else str(part).encode()
    encoded = b"$%d\r\n%s\r\n" % (len(data), data)
    if len(data) <= _MAX_ENCODED:
        if len(_ENCODED) >= _KEYS_CACHED:
            _ENCODED.clear()
        _ENCODED[part] = encoded
    return encoded


def _resp(*parts: bytes | str | int) -> bytes:
    """Encode one command in the Redis protocol (what redis-py's packer would send).

    Arguments are ``str``, ``bytes`` or ``int``, never a ``bool`` or a ``float`` (which
    would find the encoding of the equal ``int``).
    """
    encoded = _ENCODED
    return b"*%d\r\n" % len(parts) + b"".join([encoded.get(part) or _bulk(part) for part in parts])


class _Connections:
    """The storage's own idle connections to one server, for its script calls.

    redis-py's pool spends more on a checkout and return (a probe of the socket, events,
    metrics) than Redis spends running the script, so the storage keeps its connections
    itself: a list that threads pop from and push back to (atomic under the GIL). A
    connection goes back only after a whole reply was read; any other error or
    interruption (a timeout, an exception raised by a signal handler) closes it, so a
    half-read reply never meets the next call. A forked child never uses its parent's
    sockets: it starts with none.
    """

    __slots__ = ("_idle", "_pid", "_pool")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._pid = os.getpid()

    def evalsha(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` as one packet and return the raw reply.

        This is redis-py's ``Script.__call__`` without its generic command path (argument
        encoding, retry wrapper, events). A server that lost the script (``SCRIPT
        FLUSH``, a restart) gets it again once, on the same connection.
        """
        payload = [_resp("EVALSHA", script.sha, len(keys), *keys, *args)]
        if os.getpid() != self._pid:  # a forked child: those sockets are the parent's
            self._idle, self._pid = [], os.getpid()
        idle = self._idle
        try:
            connection = idle.pop()
        except IndexError:  # none idle (another thread may have taken the last one)
            connection = self._pool.make_connection()
        try:
            connection.send_packed_command(payload, check_health=False)
            try:
                reply = connection.read_response()
            except NoScriptError:
                load = [_resp("SCRIPT", "LOAD", script.script)]
                connection.send_packed_command(load, check_health=False)
                connection.read_response()
                connection.send_packed_command(payload, check_health=False)
                reply = connection.read_response()
        except ResponseError:  # a whole reply, read: the connection is sound
            idle.append(connection)
            raise
        except BaseException:
            connection.disconnect()
            raise
        idle.append(connection)
        return reply


def _gcra_reply(reply: int) -> tuple[bool, float]:
    """Decode the GCRA script's reply: admitted, and seconds (wait or retry-after)."""
    return reply >= 0, (reply if reply >= 0 else -reply) / 1e6


def _check_prefix(prefix: object) -> str:
    """Return a valid key prefix: a non-empty printable ``str`` without braces."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r}")
    if not prefix:
        raise ValueError(f"prefix must not be empty (keys would clash with others), got {prefix!r}")
    if len(prefix) > _MAX_PREFIX:
        raise ValueError(f"prefix must be at most {_MAX_PREFIX} characters, got {prefix!r}")
    if "{" in prefix or "}" in prefix or not prefix.isprintable():
        raise ValueError(f"prefix must not contain braces or control characters, got {prefix!r}")
    return prefix


def _policy_arg(config: Mapping[str, Any]) -> str:
    """Encode a breaker's policy config as the script's policy argument."""
    policy = _POLICY_CODES[config["policy"]]
    window = _WINDOW_CODES[config["window"]]
    waits = ";".join(str(max(0, round(float(w) * 1e6))) for w in config["recovery"])
    fields = (
        policy,
        _number("threshold", config["threshold"]),
        window,
        "" if not window else _number("window_size", config["window_size"]),
        "" if not window else str(int(config["minimum_calls"])),
        ""
        if config["slow_call_rate"] is None
        else _number("slow_call_rate", config["slow_call_rate"]),
        str(int(config["success_threshold"])),
        str(int(config["half_open_max_calls"])),
        waits,
    )
    return ",".join(fields)


def _bounded(settings: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """Return connection settings that wait at most ``timeout`` and never retry.

    redis-py retries a failed command (three times with backoff for a client made with
    ``redis.Redis(host=..., port=...)``) and waits forever on a silent socket unless
    ``socket_timeout`` is set; either makes a stalled server stall every protected call.
    """
    options = {
        key: value
        for key, value in settings.items()
        if key not in {"lib_name", "lib_version", "driver_info", "retry"}
    }
    for key in ("socket_timeout", "socket_connect_timeout"):
        given = options.get(key)
        options[key] = timeout if given is None else min(float(given), timeout)
    options.update(
        _NO_CLIENT_SETINFO,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        retry_on_error=[],
        health_check_interval=0,  # a health-check PING would be one more wait
    )
    return options


def _bounded_twin(client: Any, timeout: float) -> Any:
    """Make a blocking client like ``client`` (sync or asyncio) whose calls give up in time.

    The twin has its own connection pool, built from ``client``'s connection settings with
    socket timeouts of at most ``timeout`` seconds and no retries, so what a stalled or
    slow Redis can add to a protected call is bounded whatever client the user made.
    """
    given: Any = client  # redis-py's cluster methods are untyped
    if isinstance(given, _redis.RedisCluster):
        cluster_settings = {
            key: value
            for key, value in given.nodes_manager.connection_kwargs.items()
            if key in _SYNC_SETTINGS or key.startswith("ssl")
        }
        # redis-py leaves ClusterNode and get_nodes() untyped.
        known = given.get_nodes()  # type: ignore[no-untyped-call]
        nodes = [ClusterNode(n.host, n.port) for n in known]  # type: ignore[no-untyped-call]
        options = _bounded(cluster_settings, timeout)
        # The cluster client refuses these (deprecated since redis-py 6: it never retries
        # on a timeout unless ``retry`` says so, and ours says never).
        for key in ("retry_on_timeout", "retry_on_error"):
            options.pop(key, None)
        return _redis.RedisCluster(startup_nodes=nodes, **options)
    pool: Any = getattr(client, "connection_pool", None)
    settings: Any = getattr(pool, "connection_kwargs", None)
    if not isinstance(settings, dict):
        raise TypeError(
            f"cannot derive a bounded client from {client!r}: it has no connection pool"
        )
    connection_class = pool.connection_class
    if issubclass(connection_class, _aconnection.AbstractConnection):
        # An asyncio client: the breaker's synchronous paths need a blocking twin.
        base = next(
            (sync for cls, sync in _ASYNC_TO_SYNC.items() if issubclass(connection_class, cls)),
            None,
        )
        if base is None:
            raise TypeError(
                f"cannot derive a synchronous client from {client!r}; pass sync_client= as well"
            )
        connection_class = base
        settings = {
            key: value
            for key, value in settings.items()
            if (key in _SYNC_SETTINGS and key not in _ASYNC_ONLY) or key.startswith("ssl_")
        }
    twin_pool = _redis.ConnectionPool(
        connection_class=connection_class, **_bounded(settings, timeout)
    )
    return _redis.Redis(connection_pool=twin_pool)


class RedisStorage(BreakerStorage):
    """Keep circuit breakers' state in Redis, so every process shares each circuit.

    One breaker's state lives in two keys, ``<prefix>{<name>}`` (its state, 200 bytes)
    and ``<prefix>{<name>}:w`` (its window, if the policy has one), with the name
    percent-encoded so that no name can break the ``{...}`` hash tag (which keeps both
    keys in one Redis Cluster slot) or reach into another breaker's keys. Both expire
    ``ttl`` seconds after the last use, so abandoned breakers do not stay behind.

    A breaker decides admission from its cached copy of the shared state, refreshed by
    every reply, and sends each outcome at once: one round trip per call while closed.
    With ``cache_ttl`` it sends outcomes in batches instead, at most ``cache_ttl``
    seconds apart, and asks again before admitting once its copy is that old; a change
    made elsewhere then reaches it within ``cache_ttl`` plus a round trip.

    Args:
        client: a ``redis.Redis`` (or ``RedisCluster``) or a ``redis.asyncio`` client.
            The storage talks to Redis through a twin of it: the same server and
            credentials, its own connection pool, socket timeouts of ``timeout`` and no
            retries (an asyncio client is used as given, under ``asyncio.timeout``).
        prefix: the start of every key: a non-empty printable ``str`` of at most 200
            characters; ``{`` and ``}`` are not allowed in it.
        timeout: the most seconds (0 < s <= 60) one operation may wait for Redis; a
            slow or stalled Redis then fails the operation and the breaker goes on
            under its local state, so Redis adds at most about this much to a call.
        ttl: seconds after which an unused breaker's keys expire.
        cache_ttl: None to send every outcome at once, or seconds (0 < s <= 0.1) to
            batch them and decide admission locally for that long.
        sync_client: with an asyncio ``client``, the blocking client for the breaker's
            synchronous paths (``call``, ``with``, ``open()``/``reset()``/…,
            ``get_stats()``); by default one is made from ``client``'s connection
            settings.
        on_storage_error: what a breaker does while Redis cannot be reached (it asks
            again every second): ``"local"`` (default) runs this process's own copy of
            the circuit; ``"closed"`` lets every call through (counted, never tripping);
            ``"open"`` rejects every call with ``CircuitOpenError``.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "resilience:",
        *,
        timeout: float = 0.1,
        ttl: float = 86400.0,
        cache_ttl: float | None = None,
        sync_client: Any = None,
        on_storage_error: Literal["local", "closed", "open"] = "local",
    ) -> None:
        if isinstance(client, str | bytes):  # a URL, maybe with a password: never echo it
            raise TypeError(
                "client must be a redis-py client, got a URL string: pass redis.Redis.from_url(url)"
            )
        self.on_storage_error = check_storage_error_mode(on_storage_error)
        if not callable(getattr(client, "register_script", None)):
            raise TypeError(f"client must be a redis-py client, got {client!r}")
        self._prefix = _check_prefix(prefix)
        self._timeout = check_number("timeout", timeout, positive=True, maximum=_MAX_TIMEOUT)
        ttl = check_number("ttl", ttl, minimum=1.0, maximum=_MAX_TTL)
        self._ttl_ms = str(max(1, round(ttl * 1000)))
        if cache_ttl is not None:
            self.cache_ttl = check_number(
                "cache_ttl", cache_ttl, positive=True, maximum=_MAX_CACHE_TTL
            )
        self._async = inspect.iscoroutinefunction(getattr(client, "execute_command", None))
        if self._async:
            if sync_client is None:
                sync_client = client
            elif not callable(getattr(sync_client, "register_script", None)):
                raise TypeError(f"sync_client must be a redis-py client, got {sync_client!r}")
            self._aclient: Any = client
            self._ascript: Any = client.register_script(SCRIPT)
            self._agcra: Any = client.register_script(GCRA_SCRIPT)
        elif sync_client is not None:
            raise TypeError(
                f"sync_client is only for an asyncio client, got sync_client={sync_client!r}"
            )
        else:
            sync_client = client
        self._given = sync_client
        self._client: Any = None
        self._script: Any = None
        self._gcra_script: Any = None
        self._connections: _Connections | None = None
        if not isinstance(sync_client, _redis.RedisCluster):
            # A cluster twin asks the cluster for its topology when made: that waits
            # for the first operation, where a failure falls back like any other.
            self._bind()
        self._configs: dict[int, tuple[Mapping[str, Any], str]] = {}
        self._keys: dict[str, list[str]] = {}
        self._limit_keys: dict[tuple[str, str | None], list[str]] = {}
        self._limit_args: dict[tuple[float, float, float], tuple[str, str, str]] = {}
        self._replies: dict[int, StoredState] = {}
        self._ttl_set: dict[str, float] = {}  # name: when this client last set its TTLs

    @property
    def timeout(self) -> float:
        """The most seconds one operation may wait for Redis before it fails."""
        return self._timeout

    def _bind(self) -> Any:
        """Make the bounded twin of the given client and register the script on it."""
        client = _bounded_twin(self._given, self._timeout)
        self._client = client
        # A cluster client routes each call itself; a plain one hands us its pool.
        self._connections = (
            None
            if isinstance(client, _redis.RedisCluster)
            else _Connections(client.connection_pool)
        )
        self._gcra_script = client.register_script(GCRA_SCRIPT)
        self._script = client.register_script(SCRIPT)
        return self._script

    # Tests only: a clock (seconds) whose time replaces the server's TIME in the breaker
    # script (its ARGV[9]), so a test drives a real server's circuit with a FakeClock
    # (tests/test_state_machine.py). Never set it in production: processes would disagree.
    _test_clock: Callable[[], float] | None = None

    def _timed(self, args: Sequence[Any]) -> Sequence[Any]:
        """Add the test clock's time to a breaker script's arguments, when it is set."""
        clock = self._test_clock
        if clock is None:
            return args
        return (*args, *("",) * (8 - len(args)), str(round(clock() * 1e6)))

    def _run(self, keys: list[str], args: Sequence[Any], *, gcra: bool = False) -> Any:
        """Run a script (the breaker's, or the rate limit's) once on the bounded client."""
        if self._script is None:
            self._bind()
        if not gcra:
            args = self._timed(args)
        script = self._gcra_script if gcra else self._script
        if self._connections is None:
            return script(keys=keys, args=args)
        return self._connections.evalsha(script, keys, args)

    async def _run_async(self, keys: list[str], args: Sequence[Any]) -> Any:
        """Run the script once on the asyncio client, giving up after ``timeout``."""
        async with asyncio.timeout(self._timeout):
            return await self._ascript(keys=keys, args=self._timed(args))

    @property
    def prefix(self) -> str:
        """The start of every key this storage writes."""
        return self._prefix

    def keys(self, name: str) -> tuple[str, str]:
        """Return the Redis keys of the circuit called ``name``: its hash and its window."""
        key, window = self._keys_of(name)
        return key, window

    def _keys_of(self, name: str) -> list[str]:
        keys = self._keys.get(name)
        if keys is None:
            check_name(name)
            key = f"{self._prefix}{{{quote(name, safe='')}}}"
            keys = [key, key + ":w"]
            if len(self._keys) < _KEYS_CACHED:
                self._keys[name] = keys
        return keys

    def names(self) -> list[str]:
        """Return the names of every circuit stored under this prefix, sorted."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self._prefix) + "{*}"
        found = set()
        start = len(self._prefix) + 1
        if self._client is None:
            self._bind()
        for key in self._client.scan_iter(match=pattern, count=1000, _type="STRING"):
            text = _text(key)
            if text.endswith("}") and "}" not in text[start:-1]:
                found.add(unquote(text[start:-1]))
        return sorted(found)

    # ------------------------------------------------------------------ arguments

    def _policy(self, config: Mapping[str, Any]) -> str:
        cached = self._configs.get(id(config))
        if cached is None or cached[0] is not config:
            cached = (config, _policy_arg(config))
            if len(self._configs) >= _KEYS_CACHED:
                self._configs.clear()
            self._configs[id(config)] = cached  # keeps config alive, so its id stays its own
        return cached[1]

    def _args(
        self,
        op: str,
        policy: str = "",
        *,
        rejected: int = 0,
        generation: int = -1,
        outcomes: str = "",
        stale: str = "",
    ) -> tuple[Any, ...]:
        return (op, self._ttl_ms, rejected, generation, outcomes, stale, policy)

    # ------------------------------------------------------------------ operations

    def admit(self, name: str, config: Mapping[str, Any], *, rejected: int = 0) -> StoredState:
        """Ask to admit one call (one script call); see ``BreakerStorage.admit``."""
        args = self._args("a", self._policy(config), rejected=rejected)
        return _stored(_fields(self._run(keys=self._keys_of(name), args=args)))

    def record(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        generation: int,
        outcomes: str,
        stale: str = "",
        rejected: int = 0,
    ) -> StoredState:
        """Record outcomes (one script call); see ``BreakerStorage.record``."""
        now = time.monotonic()
        keep = now - self._ttl_set.get(name, -math.inf) < _KEEP_TTL_FOR
        args = (
            "r",
            self._ttl_ms,
            rejected,
            generation,
            outcomes,
            stale,
            self._policy(config),
            "k" if keep else "",
        )
        reply = self._run(self._keys_of(name), args)
        if not keep:
            self._ttls_set(name, now)
        if type(reply) is int:
            return _short(self._replies, reply)
        return _stored(_fields(reply))

    def _ttls_set(self, name: str, now: float) -> None:
        """Note that the script has just set the TTLs of ``name``'s keys."""
        if len(self._ttl_set) >= _KEYS_CACHED:
            self._ttl_set.clear()
        self._ttl_set[name] = now

    async def admit_async(
        self, name: str, config: Mapping[str, Any], *, rejected: int = 0
    ) -> StoredState:
        """``admit`` without blocking the event loop (with an asyncio client)."""
        if not self._async:
            return self.admit(name, config, rejected=rejected)
        args = self._args("a", self._policy(config), rejected=rejected)
        return _stored(_fields(await self._run_async(keys=self._keys_of(name), args=args)))

    async def record_async(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        generation: int,
        outcomes: str,
        stale: str = "",
        rejected: int = 0,
    ) -> StoredState:
        """``record`` without blocking the event loop (with an asyncio client)."""
        if not self._async:
            return self.record(
                name,
                config,
                generation=generation,
                outcomes=outcomes,
                stale=stale,
                rejected=rejected,
            )
        now = time.monotonic()
        keep = now - self._ttl_set.get(name, -math.inf) < _KEEP_TTL_FOR
        args = (
            "r",
            self._ttl_ms,
            rejected,
            generation,
            outcomes,
            stale,
            self._policy(config),
            "k" if keep else "",
        )
        reply = await self._run_async(keys=self._keys_of(name), args=args)
        if not keep:
            self._ttls_set(name, now)
        if type(reply) is int:
            return _short(self._replies, reply)
        return _stored(_fields(reply))

    def force(self, name: str, state: CircuitState, *, create: bool = True) -> StoredState | None:
        """Force an operator state for every process at once; see ``BreakerStorage.force``.

        Raises:
            ValueError: ``state`` is not CLOSED, FORCED_OPEN, DISABLED or METRICS_ONLY.
        """
        if state not in _OPERATOR_STATES:
            raise ValueError(
                f"state must be CLOSED, FORCED_OPEN, DISABLED or METRICS_ONLY, got state={state!r}"
            )
        args = (*self._args("f", state.value), "1" if create else "0")
        reply = self._run(keys=self._keys_of(name), args=args)
        return None if reply is None else _stored(_fields(reply))

    def read(self, name: str) -> dict[str, Any] | None:
        """Return the shared circuit's stats, or None if unknown; see ``BreakerStorage.read``."""
        reply = self._run(keys=self._keys_of(name), args=self._args("s"))
        if reply is None:
            return None
        fields = _fields(reply)
        stored = _stored(fields)
        (
            failures,
            successes,
            calls,
            minimum,
            slow,
            shadow,
            n_success,
            n_failure,
            n_rejected,
            n_ignored,
            changed,
        ) = map(int, fields[7:18])
        rate = failures / calls if calls >= max(1, minimum) else None
        return {
            "name": name,
            "state": stored.state,
            "generation": stored.generation,
            "retry_after": stored.retry_after,
            "open_for": stored.open_for,
            "opened_at": stored.opened_at,
            "changed_at": changed / 1e6,
            "failure_count": failures,
            "success_count": successes,
            "failure_rate": rate,
            "slow_calls": slow,
            "shadow_trips": shadow,
            "total_calls": n_success + n_failure + n_rejected + n_ignored,
            "total_successes": n_success,
            "total_failures": n_failure,
            "total_rejected": n_rejected,
            "total_ignored": n_ignored,
        }

    # ------------------------------------------------------------------ rate limits

    def limit_key(self, name: str, key: str | None = None) -> str:
        """Return the Redis key of the rate limit ``name`` (partition ``key``, if any).

        ``<prefix>rl:{<name>}`` or ``<prefix>rl:{<name>:<key>}``, both percent-encoded:
        the hash tag spreads a limiter's partitions over a cluster's slots, and no
        limit's key can meet a breaker's (``<prefix>{<name>}``).
        """
        return self._limit_keys_of(name, key)[0]

    def _limit_keys_of(self, name: str, key: str | None) -> list[str]:
        keys = self._limit_keys.get((name, key))
        if keys is None:
            check_name(name)
            tag = (
                quote(name, safe="")
                if key is None
                else f"{quote(name, safe='')}:{quote(key, safe='')}"
            )
            keys = [f"{self._prefix}rl:{{{tag}}}"]
            if len(self._limit_keys) < _KEYS_CACHED:
                self._limit_keys[(name, key)] = keys
        return keys

    def _limit_argv(
        self, interval: float, tolerance: float, cost: int, max_wait: float
    ) -> tuple[Any, ...]:
        """The GCRA script's arguments: times in microseconds, exactly (repr round-trips)."""
        cached = self._limit_args.get((interval, tolerance, max_wait))
        if cached is None:
            cached = (repr(interval * 1e6), repr(tolerance * 1e6), repr(max_wait * 1e6))
            if len(self._limit_args) >= _KEYS_CACHED:
                self._limit_args.clear()
            self._limit_args[(interval, tolerance, max_wait)] = cached
        return (cached[0], cached[1], cost, cached[2])

    def _gcra(
        self,
        name: str,
        key: str | None,
        interval: float,
        tolerance: float,
        *,
        cost: int,
        max_wait: float,
    ) -> tuple[bool, float]:
        """Decide one rate-limit request on the server's clock (one script call).

        Returns ``(True, wait)`` when admitted (its turn comes in ``wait`` seconds) or
        ``(False, retry_after)``; see ``resilience._redis_lua.GCRA_DOC``.
        """
        reply = self._run(
            self._limit_keys_of(name, key),
            self._limit_argv(interval, tolerance, cost, max_wait),
            gcra=True,
        )
        return _gcra_reply(reply)

    async def _gcra_async(
        self,
        name: str,
        key: str | None,
        interval: float,
        tolerance: float,
        *,
        cost: int,
        max_wait: float,
    ) -> tuple[bool, float]:
        """``_gcra`` without blocking the event loop (with an asyncio client)."""
        if not self._async:
            return self._gcra(name, key, interval, tolerance, cost=cost, max_wait=max_wait)
        async with asyncio.timeout(self._timeout):
            reply = await self._agcra(
                keys=self._limit_keys_of(name, key),
                args=self._limit_argv(interval, tolerance, cost, max_wait),
            )
        return _gcra_reply(reply)

    def __repr__(self) -> str:
        return f"RedisStorage(prefix={self._prefix!r})"


RedisStorage.__module__ = "resilience.redis"
