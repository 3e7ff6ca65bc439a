"""The public API stays honest: ``__all__`` sorted and complete, names documented, no extras loaded."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import resilience
import resilience.testing


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted and every public attribute is in it."""
    assert resilience.__all__ == sorted(resilience.__all__)
    public = {
        name
        for name, value in vars(resilience).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(resilience.__all__)


def test_public_names_live_in_public_modules() -> None:
    """Each exported class and function reports a public module, and has a docstring."""
    for name in resilience.__all__:
        value = getattr(resilience, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ in {"resilience", "resilience.exceptions"}, name
            assert inspect.getdoc(value), name


def test_version_is_exposed() -> None:
    """``resilience.__version__`` is a version string from the one place it lives."""
    from resilience._version import __version__

    assert resilience.__version__ == __version__
    assert __version__.count(".") == 2


def test_unknown_attribute_is_an_attribute_error() -> None:
    """Asking for a missing attribute raises AttributeError."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        resilience.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_import_loads_no_optional_dependency() -> None:
    """``import resilience`` pulls in neither prometheus_client nor redis."""
    code = (
        "import sys, resilience, resilience.testing; "
        "print(sorted(m for m in ('prometheus_client', 'redis') if m in sys.modules))"
    )
    out = subprocess.run(  # our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_testing_module_exports() -> None:
    """``resilience.testing`` lists what it offers."""
    assert "FakeClock" in resilience.testing.__all__
