"""The one helper every decorator uses to wrap sync and async callables alike."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from resilience._validate import is_coroutine_function

P = ParamSpec("P")
R = TypeVar("R")

SyncRunner = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
"""``runner(func, args, kwargs)``: runs ``func(*args, **kwargs)`` under the decorator's policy."""
AsyncRunner = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Awaitable[Any]]
"""``await runner(func, args, kwargs)``: the same for coroutine functions."""


def wrap(
    func: Callable[P, R], sync_runner: SyncRunner, async_runner: AsyncRunner
) -> Callable[P, R]:
    """Return a wrapper of ``func`` that runs every call through the matching runner.

    The check for a coroutine function happens once, here, so an ``async def`` gets an
    ``async def`` wrapper (``inspect.iscoroutinefunction`` stays true) and a plain function
    a plain one. ``functools.wraps`` keeps the name, docstring and signature.

    The runners are called as ``runner(func, args, kwargs)``: the wrapper hands over the
    tuple and dict it received instead of unpacking them into a second variadic call,
    which roughly halves the wrapper's own cost per call.

    Raises:
        TypeError: ``func`` is not callable, or is a generator function, whose body would run
            only after the wrapper had returned.
    """
    # inspect costs ~15 ms to import; decorating is where it is first needed, not importing.
    import inspect  # noqa: PLC0415

    if not callable(func):
        raise TypeError(f"the decorated object must be callable, got {func!r}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"cannot wrap generator function {func.__qualname__}: its body runs after the "
            "wrapper returns, so nothing could be protected"
        )
    # An object whose __call__ is ``async def`` is a coroutine function to its callers
    # too, though inspect says no: its calls must be awaited under the policy.
    if inspect.iscoroutinefunction(func) or is_coroutine_function(func):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await async_runner(func, args, kwargs)

        return cast("Callable[P, R]", functools.update_wrapper(async_wrapper, func))

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return sync_runner(func, args, kwargs)

    return cast("Callable[P, R]", functools.update_wrapper(wrapper, func))
