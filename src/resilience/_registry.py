"""Named breakers: a registry that hands out one breaker per name."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypedDict, TypeVar, Unpack, overload

from resilience import _named
from resilience._breaker import CircuitBreaker
from resilience._settings import Settings
from resilience._validate import check_name

if TYPE_CHECKING:
    from resilience._policies import TripPolicy
    from resilience._settings import ExceptionFilter
    from resilience._storage import BreakerStorage
    from resilience._types import Backoff, Clock

__all__ = [
    "BreakerOptions",
    "BreakerRegistry",
    "circuit_breaker",
    "default_registry",
    "get_circuit_breaker",
    "reset_all_circuit_breakers",
]

P = ParamSpec("P")
R = TypeVar("R")

_MISSING = object()


class BreakerOptions(TypedDict, total=False):
    """The ``CircuitBreaker`` options taken by keyword where a breaker is made by name.

    ``BreakerRegistry.get``, ``get_circuit_breaker`` and ``circuit_breaker`` take these
    (every one optional; see ``CircuitBreaker`` for what each does). Typed so that
    mypy catches a misspelt or mistyped option where it is written:
    ``get_circuit_breaker("db", failure_treshold=3)`` is an error there.
    """

    failure_threshold: int
    recovery_timeout: float | Backoff
    success_threshold: int
    half_open_max_calls: int | None
    policy: TripPolicy | None
    failure_on: ExceptionFilter
    ignore: ExceptionFilter
    failure_on_result: Callable[[Any], bool] | None
    fallback: Callable[..., Any] | None
    clock: Clock
    storage: BreakerStorage | None


class BreakerRegistry:
    """A thread-safe set of named circuit breakers, created on first use.

    ``get(name)`` returns the same breaker for the same name, created once even when many
    threads ask at the same moment. Breakers made by a registry start from its
    ``defaults``; options passed to ``get`` override them for a new breaker and, for an
    existing one, must match what it has.

    Args:
        defaults: options every new breaker gets (any ``CircuitBreaker`` option but
            ``name`` and ``storage``), validated here.
        storage: a ``BreakerStorage`` every breaker of the registry shares its circuit
            through (``resilience.redis.RedisStorage``), or None for in-process memory.

    Raises:
        TypeError, ValueError: a default is not a valid breaker option.

    Examples:
        >>> registry = BreakerRegistry(defaults={"failure_threshold": 3})
        >>> registry.get("payments") is registry.get("payments")
        True
    """

    __slots__ = ("_breakers", "_defaults", "_lock", "_storage", "_template")

    def __init__(
        self, *, defaults: Mapping[str, Any] | None = None, storage: BreakerStorage | None = None
    ) -> None:
        if defaults is not None and not isinstance(defaults, Mapping):
            raise TypeError(f"defaults must be a mapping of breaker options, got {defaults!r}")
        self._defaults = dict(defaults or {})
        if "name" in self._defaults:
            raise ValueError(f"defaults must not set a name, got name={self._defaults['name']!r}")
        _check_options("BreakerRegistry", self._defaults, storage=False)
        self._template = Settings.build(**self._defaults)
        if storage is not None:
            # A throwaway breaker checks the storage and that the defaults suit it.
            CircuitBreaker._from_settings("registry-check", self._template, storage)  # noqa: SLF001  # validated above
        self._storage = storage
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str, /, **config: Unpack[BreakerOptions]) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it with ``config`` if it is new.

        ``config`` takes the ``CircuitBreaker`` options (``BreakerOptions``).
        ``storage=`` in it overrides the registry's storage for a new breaker and must
        be the existing breaker's storage otherwise.

        Raises:
            TypeError: ``name`` is not a ``str``, or ``config`` has an unknown option.
            ValueError: ``name`` is invalid, or an option in ``config`` differs from the
                existing breaker's value.
        """
        return self._get(name, dict(config), "BreakerRegistry.get")

    def _get(self, name: str, config: dict[str, Any], caller: str) -> CircuitBreaker:
        """``get``, with errors naming ``caller``, the public function the user called."""
        _check_options(caller, config)
        storage = config.pop("storage", None)
        breakers = self._breakers
        breaker = breakers.get(name) if type(name) is str else None
        if breaker is None:
            check_name(name)
            # ``with``, not acquire() then ``try``: an exception from a signal handler can
            # land right after a call returns, and must not leave the lock held.
            with self._lock:
                breaker = breakers.get(name)
                if breaker is None:
                    settings = (
                        Settings.build(**{**self._defaults, **config}) if config else self._template
                    )
                    breaker = breakers[name] = CircuitBreaker._from_settings(  # noqa: SLF001  # validated above
                        name, settings, self._storage if storage is None else storage
                    )
                    return breaker
        if config:
            # Validate as for a new breaker first: 3.0 or True must be a TypeError even
            # where they compare equal to the existing breaker's 3 or 1.
            Settings.build(**{**self._defaults, **config})
            _check_same(breaker, config)
        if storage is not None and getattr(breaker, "storage", None) is not storage:
            raise ValueError(
                f"circuit breaker {name!r} exists with another storage, got storage={storage!r}"
            )
        return breaker

    def __contains__(self, name: object) -> bool:
        """Whether a breaker called ``name`` is in the registry."""
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        """Iterate over the breakers (a copy: the registry may change meanwhile)."""
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        """How many breakers the registry holds."""
        return len(self._breakers)

    def remove(self, name: str, /) -> CircuitBreaker:
        """Forget the breaker called ``name`` and return it.

        Raises:
            KeyError: no breaker has that name.
        """
        with self._lock:
            try:
                return self._breakers.pop(name)
            except KeyError:
                raise KeyError(f"no circuit breaker named {name!r}") from None

    def reset_all(self) -> None:
        """Reset every breaker in the registry to CLOSED."""
        for breaker in self:
            breaker.reset()

    def snapshot(self) -> list[dict[str, Any]]:
        """Return ``get_stats()`` of every breaker, in creation order.

        The default registry's snapshot covers every live named breaker, however it
        was made (``CircuitBreaker(name=...)``, the decorator, the registry), as metrics
        and ``health()`` do; two live breakers with one name are both listed.
        """
        breakers = _named.live() if self is default_registry else self
        return [breaker.get_stats() for breaker in breakers]

    def __repr__(self) -> str:
        """Show how many breakers the registry holds."""
        return f"<BreakerRegistry of {len(self)} breakers>"


# The options a caller may pass; the rest of Settings is derived from them.
_OPTIONS = frozenset(Settings.__dataclass_fields__) - {"timed", "slow_after", "fast"}


def _check_options(caller: str, config: Mapping[str, Any], *, storage: bool = True) -> None:
    """Refuse an option ``CircuitBreaker`` does not have, naming the public ``caller``."""
    known = _OPTIONS | {"storage"} if storage else _OPTIONS
    unknown = config.keys() - known
    if unknown:
        raise TypeError(
            f"{caller}() got an unknown circuit breaker option {min(unknown)!r}; "
            f"the options are {', '.join(sorted(known))}"
        )


def _check_same(breaker: CircuitBreaker, config: Mapping[str, Any]) -> None:
    settings = breaker._settings  # noqa: SLF001  # the registry and the breaker are one unit
    for option, value in config.items():
        current = getattr(settings, option)
        wanted = settings.effective(option, value)
        if wanted != current:
            raise ValueError(
                f"circuit breaker {breaker.name!r} exists with {option}={current!r}, "
                f"got {option}={value!r}"
            )


default_registry = BreakerRegistry()
"""The registry behind ``get_circuit_breaker`` and ``circuit_breaker(name=...)``."""


def get_circuit_breaker(name: str, /, **config: Unpack[BreakerOptions]) -> CircuitBreaker:
    """Return the breaker called ``name`` from the default registry, creating it if new.

    Calling it twice with the same name returns the same breaker; passing options that
    differ from the existing breaker's raises ``ValueError`` rather than replacing it.

    Examples:
        >>> breaker = get_circuit_breaker("inventory-api", failure_threshold=3)
        >>> breaker is get_circuit_breaker("inventory-api")
        True
    """
    return default_registry._get(name, dict(config), "get_circuit_breaker")  # noqa: SLF001  # one unit


def reset_all_circuit_breakers() -> None:
    """Reset every breaker of the default registry to CLOSED."""
    default_registry.reset_all()


@overload
def circuit_breaker(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def circuit_breaker(
    *, name: str | None = None, **options: Unpack[BreakerOptions]
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def circuit_breaker(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    **options: Unpack[BreakerOptions],
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Protect a function or coroutine function with a circuit breaker.

    Usable bare (``@circuit_breaker``) or with ``CircuitBreaker`` options. With ``name``
    the breaker comes from the default registry (created there if new; only the options
    passed here are compared with an existing one); without, each decorated function
    gets a breaker of its own. The wrapper keeps the function's type and has ``.breaker``.

    Raises:
        TypeError, ValueError: an option is invalid, or differs from the named breaker's.

    Examples:
        >>> @circuit_breaker(failure_threshold=3, recovery_timeout=10.0)
        ... def fetch() -> str:
        ...     return "ok"
        >>> fetch.breaker.state.value  # type: ignore[attr-defined]
        'closed'
    """
    config: dict[str, Any] = dict(options)
    if name is None:
        _check_options("circuit_breaker", config)
        breaker = CircuitBreaker(**config)
    else:
        breaker = default_registry._get(name, config, "circuit_breaker")  # noqa: SLF001  # one unit
    if func is not None:
        return breaker(func)
    return breaker.__call__


for _public in (
    BreakerOptions,
    BreakerRegistry,
    circuit_breaker,
    get_circuit_breaker,
    reset_all_circuit_breakers,
):
    _public.__module__ = "resilience"
