"""Every live named circuit breaker, held weakly, in creation order (SPEC §5).

Metrics, ``health()`` and the default registry's ``snapshot()`` read this, so a breaker
made by ``CircuitBreaker(name=...)`` or an unnamed-registry decorator is observed just
like one from ``get_circuit_breaker``, and is still freed when the program drops it.

Adding is a weak reference appended to a list (atomic under the GIL, no lock): creating
breakers stays cheap. Readers take the lock and drop dead references as they go, and an
add prunes when the list has doubled since the last pruning, so memory follows the live
breakers, not every breaker ever made.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Final

__all__ = ["add", "live"]

_MIN_PRUNE: Final = 1024

_refs: list[weakref.ref[Any]] = []
_lock = threading.Lock()
_prune_at = _MIN_PRUNE


def add(breaker: object) -> None:
    """Observe ``breaker`` until it is garbage-collected."""
    _refs.append(weakref.ref(breaker))
    if len(_refs) > _prune_at:
        live()


def live() -> list[Any]:
    """Return every live named breaker, oldest first."""
    global _prune_at  # noqa: PLW0603  # the module is the registry's one instance
    with _lock:
        count = len(_refs)
        kept: list[weakref.ref[Any]] = []
        alive: list[Any] = []
        for ref in _refs[:count]:
            breaker = ref()
            if breaker is not None:
                kept.append(ref)
                alive.append(breaker)
        if len(kept) < count:
            # Breakers added meanwhile were appended past ``count`` and stay in place.
            del _refs[:count]
            _refs[:0] = kept
        _prune_at = max(_MIN_PRUNE, 2 * len(kept))
    return alive
