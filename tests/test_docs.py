"""The documentation's Python examples run as written.

Every fenced block whose info string is exactly ``python`` is executed, in order, in one
namespace per page (like a reader pasting them into one session). A block preceded by the
line ``<!-- no-run -->`` is shown but not run (it needs a server, or sketches an API).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
_BLOCK = re.compile(r"(<!-- no-run -->\n)?```python\n(.*?)```", re.DOTALL)


_EXTRAS = {
    "resilience.metrics": "prometheus_client",
    "resilience.redis": "redis",
    "resilience.otel": "opentelemetry",
    "opentelemetry": "opentelemetry",
}


def _blocks(page: Path) -> list[str]:
    return [code for skip, code in _BLOCK.findall(page.read_text()) if not skip]


def _missing_extra(code: str) -> str | None:
    """Name the optional dependency a page needs but this environment lacks, if any."""
    if os.environ.get("RESILIENCE_REQUIRE_SERVERS") == "1":
        return None
    for module, dependency in _EXTRAS.items():
        if module in code and importlib.util.find_spec(dependency) is None:
            return dependency
    return None


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_examples_on_page_run(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each runnable example on the page executes without error."""
    blocks = _blocks(page)
    missing = _missing_extra("\n".join(blocks))
    if missing is not None:
        pytest.skip(f"{page.name} needs {missing}, which is not installed")
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{page.name}#example{number}", "exec"), namespace)  # noqa: S102  # our own docs
        except Exception as error:
            pytest.fail(f"{page.name}, example {number} raised {error!r}:\n{code}")
