"""Live named objects, held weakly, in creation order (SPEC §5).

Metrics, ``health()``, OpenTelemetry and the default registry's ``snapshot()`` read these,
so a breaker made by ``CircuitBreaker(name=...)`` or an unnamed-registry decorator is
observed just like one from ``get_circuit_breaker``, and is still freed when the program
drops it. Named strategies (bulkheads, limiters, hedges, ...) live in a second ``LiveSet``
kept by ``_observed``.

Adding is a weak reference appended to a list (atomic under the GIL, no lock): creating
breakers stays cheap. Readers take the lock and drop dead references as they go, and an
add prunes when the list has doubled since the last pruning, so memory follows the live
objects, not every object ever made.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Final

__all__ = ["LiveSet", "add", "live"]

_MIN_PRUNE: Final = 1024


class LiveSet:
    """Weak references to live objects, oldest first, cheap to add to."""

    __slots__ = ("_lock", "_prune_at", "_refs")

    def __init__(self) -> None:
        self._refs: list[weakref.ref[Any]] = []
        self._lock = threading.Lock()
        self._prune_at = _MIN_PRUNE

    def add(self, obj: object) -> None:
        """Observe ``obj`` until it is garbage-collected."""
        refs = self._refs
        refs.append(weakref.ref(obj))
        if len(refs) > self._prune_at:
            self.live()

    def live(self) -> list[Any]:
        """Return every live object, oldest first."""
        refs = self._refs
        with self._lock:
            count = len(refs)
            kept: list[weakref.ref[Any]] = []
            alive: list[Any] = []
            for ref in refs[:count]:
                obj = ref()
                if obj is not None:
                    kept.append(ref)
                    alive.append(obj)
            if len(kept) < count:
                # Objects added meanwhile were appended past ``count`` and stay in place;
                # one statement, so no interrupt can leave the list half rewritten.
                refs[:count] = kept
            self._prune_at = max(_MIN_PRUNE, 2 * len(kept))
        return alive


_breakers = LiveSet()

#: Observe a named breaker until it is garbage-collected.
add = _breakers.add
#: Return every live named breaker, oldest first.
live = _breakers.live
