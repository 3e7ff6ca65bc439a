"""A small bounded pool of daemon worker threads that refuses work instead of queueing it.

Sync hedging runs each attempt in a worker so the caller can return the first success while
the slower attempts are still running. ``concurrent.futures.ThreadPoolExecutor`` does not
fit: it queues without bound when busy, and its threads are joined at interpreter exit, so
one hung loser (whose result nobody wants) would keep the process from exiting. Here:

- ``try_submit`` either hands the task to an idle worker, starts a new one (up to
  ``max_workers``), or returns False at once: the caller then decides (hedging runs the call
  inline, unhedged). Nothing ever waits for a slot.
- Workers are daemon threads, started on demand, that exit after ``idle_seconds`` idle.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("resilience")

IDLE_SECONDS: Final = 30.0


class WorkerPool:
    """At most ``max_workers`` daemon threads running submitted tasks."""

    __slots__ = ("_idle", "_idle_seconds", "_lock", "_max", "_name", "_tasks", "_threads")

    def __init__(self, max_workers: int, name: str, idle_seconds: float = IDLE_SECONDS) -> None:
        self._max = max_workers
        self._idle_seconds = idle_seconds
        self._name = name
        self._lock = threading.Lock()
        self._threads = 0  # workers alive
        self._idle = 0  # workers waiting for a task that no submitted task has claimed yet
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    @property
    def threads(self) -> int:
        """Workers alive now."""
        return self._threads

    def try_submit(self, task: Callable[[], None]) -> bool:
        """Run ``task`` in a worker and return True, or return False if every worker is busy.

        ``task`` must not raise: the pool has nobody to report an error to.
        """
        start = False
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # claims one waiting worker for this task
            elif self._threads < self._max:
                self._threads += 1
                start = True
            else:
                return False
        self._tasks.put(task)
        if start:
            threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return True

    def _work(self) -> None:
        tasks = self._tasks
        while True:
            try:
                task = tasks.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Leave only while some waiting worker is unclaimed; otherwise a task
                    # is on its way to this one (or a sibling that will pass it on).
                    if self._idle > 0:
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue
            try:
                task()
            except Exception:  # a task's own error must not cost the pool a worker
                logger.exception("a task of worker pool %r raised", self._name)
            with self._lock:
                self._idle += 1
