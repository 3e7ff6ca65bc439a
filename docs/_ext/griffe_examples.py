"""A griffe extension for the API reference: read ``Example:`` sections as examples.

The library's docstrings head their doctests ``Example:``, which Google style allows and
ruff accepts, but griffe's Google parser knows only ``Examples:`` and would render the
doctest as a quoted admonition. Renaming the heading while the docs are built keeps the
source as it is and renders the doctests as code.
"""

from __future__ import annotations

import re

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename every docstring's ``Example:`` heading to ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **_event: object) -> None:
        """Rewrite the heading of ``obj``'s docstring before it is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
