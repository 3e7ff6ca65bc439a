"""The context that flows through one protected call: pipeline name, attempt, deadline.

A ``Pipeline`` opens a ``CallContext`` for each call; a ``Retry`` inside it bumps
``attempt`` before each try, so inner strategies (a bulkhead, a limiter, the events they
emit) see which attempt they serve. The deadline is not copied here: it lives in
``resilience._deadline``'s context variable and ``deadline`` reads it from there, so there is
one source of truth for it. Outside a pipeline there is no context and nothing is paid.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from resilience._deadline import remaining


@dataclass(slots=True)
class CallContext:
    """What one call through a pipeline knows about itself.

    Attributes:
        pipeline: the pipeline's name, or ``None`` for an unnamed one.
        attempt: the attempt being made, from 1; a ``Retry`` moves it forward.
    """

    pipeline: str | None
    attempt: int = 1

    @property
    def deadline(self) -> float | None:
        """Seconds left before the innermost enclosing deadline, or ``None``."""
        return remaining()


_current: ContextVar[CallContext | None] = ContextVar("resilience_call", default=None)


def current() -> CallContext | None:
    """Return the context of the pipeline call running here, or ``None`` outside one."""
    return _current.get()
