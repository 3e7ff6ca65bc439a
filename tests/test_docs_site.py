"""The documentation site builds with the ``docs`` extra and renders real signatures."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_extra_has_the_signature_formatter():
    """``pip install '.[docs]'`` brings ruff, which mkdocstrings needs to format signatures."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    docs = config["project"]["optional-dependencies"]["docs"]
    assert any(re.match(r"(ruff|black)\b", requirement) for requirement in docs)


@pytest.mark.slow
def test_the_site_builds_and_shows_retry_api_calls_real_signature(tmp_path):
    """``mkdocs build --strict`` passes quietly and ``retry_api_call`` shows ``*args: P.args``."""
    for module in ("mkdocs", "mkdocstrings_handlers.python", "ruff"):
        if importlib.util.find_spec(module.partition(".")[0]) is None:
            message = f"{module} is not installed (pip install -e '.[docs]')"
            if os.environ.get("RESILIENCE_REQUIRE_SERVERS") == "1":
                pytest.fail(message)
            pytest.skip(message)
    site = tmp_path / "site"
    built = subprocess.run(  # this interpreter's mkdocs, our own docs
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert "Formatting signatures requires" not in built.stdout + built.stderr
    page = (site / "reference" / "resilience" / "index.html").read_text()
    start = page.index('id="resilience.retry_api_call"')
    signature = re.search(r'<div class="doc-signature.*?</div>', page[start:], re.DOTALL)
    assert signature is not None
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html.unescape(signature.group())))
    assert "*args: P.args" in text
    assert "**kwargs: P.kwargs" in text
