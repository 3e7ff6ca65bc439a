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

import inspect
import math
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote, unquote

try:
    import redis as _redis
    import redis.asyncio as _aredis
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError("resilience.redis needs redis-py: pip install 'resilience[redis]'") from exc

from resilience._redis_lua import SCRIPT
from resilience._state import CircuitState
from resilience._storage import BreakerStorage, StoredState, check_storage_error_mode
from resilience._validate import check_name, check_number

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["RedisStorage"]

_MAX_CACHE_TTL: Final = 0.1
_KEYS_CACHED: Final = 4096  # names (and configs) whose encoding is kept
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


def _number(name: str, value: object) -> str:
    """Format a config number for the script, exactly (repr round-trips floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"storage config {name} must be a finite number, got {value!r}")
    return repr(value)


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


def _sync_twin(client: Any) -> Any:
    """Make a blocking client with an asyncio client's connection settings."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        raise TypeError(
            f"cannot derive a synchronous client from {client!r}; pass sync_client= as well"
        )
    settings = dict(pool.connection_kwargs)
    options: dict[str, Any] = {
        key: settings[key]
        for key in (
            "db",
            "username",
            "password",
            "socket_timeout",
            "socket_connect_timeout",
            "socket_keepalive",
            "client_name",
            "decode_responses",
            "encoding",
            "credential_provider",
        )
        if key in settings
    }
    if "path" in settings:
        options["unix_socket_path"] = settings["path"]
    else:
        options["host"] = settings.get("host", "localhost")
        options["port"] = settings.get("port", 6379)
    if issubclass(pool.connection_class, _aredis.SSLConnection):
        options["ssl"] = True
        options.update({k: v for k, v in settings.items() if k.startswith("ssl_")})
    return _redis.Redis(**options)


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
            Give the client short ``socket_timeout``/``socket_connect_timeout`` values:
            a protected call waits for them when Redis stops answering.
        prefix: the start of every key; ``{`` and ``}`` are not allowed in it.
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
        ttl: float = 86400.0,
        cache_ttl: float | None = None,
        sync_client: Any = None,
        on_storage_error: Literal["local", "closed", "open"] = "local",
    ) -> None:
        self.on_storage_error = check_storage_error_mode(on_storage_error)
        if not callable(getattr(client, "register_script", None)):
            raise TypeError(f"client must be a redis-py client, got {client!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        if "{" in prefix or "}" in prefix or not prefix.isprintable():
            raise ValueError(
                f"prefix must not contain braces or control characters, got {prefix!r}"
            )
        self._ttl_ms = str(max(1, round(check_number("ttl", ttl, minimum=1.0) * 1000)))
        if cache_ttl is not None:
            self.cache_ttl = check_number(
                "cache_ttl", cache_ttl, positive=True, maximum=_MAX_CACHE_TTL
            )
        self._prefix = prefix
        self._async = inspect.iscoroutinefunction(getattr(client, "execute_command", None))
        if self._async:
            if sync_client is None:
                sync_client = _sync_twin(client)
            elif not callable(getattr(sync_client, "register_script", None)):
                raise TypeError(f"sync_client must be a redis-py client, got {sync_client!r}")
            self._aclient: Any = client
            self._ascript: Any = client.register_script(SCRIPT)
        elif sync_client is not None:
            raise TypeError(
                f"sync_client is only for an asyncio client, got sync_client={sync_client!r}"
            )
        else:
            sync_client = client
        self._client: Any = sync_client
        self._script: Any = sync_client.register_script(SCRIPT)
        self._configs: dict[int, tuple[Mapping[str, Any], str]] = {}
        self._keys: dict[str, list[str]] = {}

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
        return _stored(_fields(self._script(keys=self._keys_of(name), args=args)))

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
        args = self._args(
            "r",
            self._policy(config),
            rejected=rejected,
            generation=generation,
            outcomes=outcomes,
            stale=stale,
        )
        return _stored(_fields(self._script(keys=self._keys_of(name), args=args)))

    async def admit_async(
        self, name: str, config: Mapping[str, Any], *, rejected: int = 0
    ) -> StoredState:
        """``admit`` without blocking the event loop (with an asyncio client)."""
        if not self._async:
            return self.admit(name, config, rejected=rejected)
        args = self._args("a", self._policy(config), rejected=rejected)
        return _stored(_fields(await self._ascript(keys=self._keys_of(name), args=args)))

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
        args = self._args(
            "r",
            self._policy(config),
            rejected=rejected,
            generation=generation,
            outcomes=outcomes,
            stale=stale,
        )
        return _stored(_fields(await self._ascript(keys=self._keys_of(name), args=args)))

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
        reply = self._script(keys=self._keys_of(name), args=args)
        return None if reply is None else _stored(_fields(reply))

    def read(self, name: str) -> dict[str, Any] | None:
        """Return the shared circuit's stats, or None if unknown; see ``BreakerStorage.read``."""
        reply = self._script(keys=self._keys_of(name), args=self._args("s"))
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

    def __repr__(self) -> str:
        return f"RedisStorage(prefix={self._prefix!r})"


RedisStorage.__module__ = "resilience.redis"
