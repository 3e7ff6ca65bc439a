"""Every example runs as a user would run it and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs() -> None:
    """``python examples/quickstart.py`` trips, recovers and prints its totals."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "rejected without calling" in result.stdout
    assert "half_open -> closed" in result.stdout
    assert result.stderr == ""
