"""The documentation's Python examples run as written, each on its own.

Every fenced block whose info string is exactly ``python``, in README.md and every page of
docs/, is run alone in a fresh interpreter, as a reader pasting just that block would run
it: a block may not lean on names from an earlier one. A block preceded by the line
``<!-- no-run -->`` is shown but not run (it needs a server, or sketches an API).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import resilience

ROOT = Path(__file__).resolve().parent.parent
SRC = str(Path(resilience.__file__).resolve().parents[1])
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])
_BLOCK = re.compile(r"(<!-- no-run -->\n)?```python\n(.*?)```", re.DOTALL)
_EXTRAS = {
    "resilience.metrics": "prometheus_client",
    "resilience.redis": "redis",
    "resilience.otel": "opentelemetry",
    "opentelemetry": "opentelemetry",
}


def _blocks(page: Path) -> list[str]:
    return [code for skip, code in _BLOCK.findall(page.read_text()) if not skip]


BLOCKS = [(page, number, code) for page in PAGES for number, code in enumerate(_blocks(page), 1)]


def _missing_extra(code: str) -> str | None:
    """Name the optional dependency a block needs but this environment lacks, if any."""
    if os.environ.get("RESILIENCE_REQUIRE_SERVERS") == "1":
        return None
    for module, dependency in _EXTRAS.items():
        if module in code and importlib.util.find_spec(dependency) is None:
            return dependency
    return None


@pytest.mark.parametrize(
    ("page", "number", "code"),
    BLOCKS,
    ids=[f"{page.relative_to(ROOT)}#{number}" for page, number, _ in BLOCKS],
)
def test_example_runs_alone_in_a_fresh_interpreter(page, number, code, tmp_path):
    """The block runs by itself in a new interpreter and exits 0."""
    missing = _missing_extra(code)
    if missing is not None:
        pytest.skip(f"{page.name} example {number} needs {missing}, which is not installed")
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "REDIS_PASSWORD"}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(  # this interpreter, our own docs
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"{page.relative_to(ROOT)}, example {number} failed alone:\n{code}\n{result.stderr}"
    )


def test_the_docs_have_examples_to_run():
    """The pages hold runnable examples (a broken pattern would silently test nothing)."""
    assert len(BLOCKS) >= 50
    assert {page.name for page, _, _ in BLOCKS} >= {"README.md", "index.md", "breaker.md"}
