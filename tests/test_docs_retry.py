import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import resilience

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCKS = re.findall(r"```python\n(.*?)```", (DOCS / "retry.md").read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_retry_docs_examples_run(code):
    """Each Python example in docs/retry.md runs and its assertions hold."""
    exec(compile(code, str(DOCS / "retry.md"), "exec"), {"__name__": "docs_example"})  # noqa: S102  # our own docs


def test_retry_docs_have_examples():
    """The page has runnable examples to test."""
    assert len(BLOCKS) >= 6


def test_plot_backoff_writes_one_png_per_strategy(tmp_path):
    """docs/plot_backoff.py writes a valid PNG for each strategy the docs show."""
    src = str(Path(resilience.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    subprocess.run(  # our own script, run by this interpreter
        [sys.executable, str(DOCS / "plot_backoff.py"), str(tmp_path), "--samples", "300"],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    images = sorted(tmp_path.glob("backoff-*.png"))
    shown = set(re.findall(r"img/(backoff-[\w-]+\.png)", (DOCS / "retry.md").read_text()))
    assert {image.name for image in images} == shown
    for image in images:
        data = image.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">4sII", data[12:24]) == (b"IHDR", 640, 378)
        assert (DOCS / "img" / image.name).exists()
