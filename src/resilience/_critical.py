"""Critical sections that an exception raised by a signal handler must not cut in two.

In the main thread a signal handler runs between two bytecodes of whatever Python code is
executing, and whatever it raises (our own ``timeout()``'s ``TimeoutError``, an
application's handler) surfaces there. Landing between a lock's ``acquire()`` and the
``try`` that releases it leaves the lock held for good; landing between two updates of
one count leaves it half made.

The library's critical sections are whole functions, marked with ``@section``. Marking
costs nothing when no signal comes: it only adds the function's code object to a set.
A handler that can wait asks ``interrupted(frame)`` with the frame it was given; when the
answer is yes it must not raise now, and tries again a moment later (``timeout()``
re-arms its timer for a millisecond). A section must therefore be short and must never
call the wrapped call or a listener (``_notify`` is an ``escape``: what it calls may be
interrupted). The user code it may call is what classifies and times an outcome (the
injected clock, ``failure_on``/``ignore`` predicates, ``failure_on_result``), which is
expected to return at once; an interrupt waits for it.

Locks inside sections are taken with ``with lock:``. ``BEFORE_WITH`` runs no handler
between acquiring the lock and entering the block, so even an exception from a handler
that does not defer cannot leave the lock held; it can only cut the section's counting
short, which deferring handlers prevent.

How another part of the library adopts this: mark each function that holds a lock or
updates several counts together with ``@section`` (keeping user code out of it), and in
any signal handler the library installs, return early when ``interrupted(frame)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    import types
    from collections.abc import Callable

__all__ = ["escape", "interrupted", "section"]

F = TypeVar("F", bound="Callable[..., object]")

_SECTIONS: Final[set[types.CodeType]] = set()
_ESCAPES: Final[set[types.CodeType]] = set()


def section(func: F) -> F:
    """Mark ``func`` as a critical section and return it unchanged (no wrapper, no cost)."""
    _SECTIONS.add(func.__code__)
    return func


def interrupted(frame: types.FrameType | None) -> bool:
    """Tell whether ``frame`` (a signal handler's frame argument) is inside a section.

    It walks from ``frame`` towards the outermost caller: code called from a section (a
    policy's bookkeeping, a window's arithmetic, the clock) is part of it, unless an
    ``escape`` comes first.
    """
    sections = _SECTIONS
    escapes = _ESCAPES
    while frame is not None:
        code = frame.f_code
        if code in sections:
            return True
        if code in escapes:
            return False
        frame = frame.f_back
    return False


def escape(func: F) -> F:
    """Mark ``func`` as leaving any section that calls it (it runs listeners).

    A section calls it once its counts are complete; what it calls (a listener) may be
    interrupted like any code of the user.
    """
    _ESCAPES.add(func.__code__)
    return func
