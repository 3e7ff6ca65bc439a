"""The demo on a machine without redis-server and without the prometheus extra."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from demo_output import check_every_sum

if TYPE_CHECKING:
    from pathlib import Path

# Run the CLI as `python -m resilience` would, with prometheus_client made unimportable.
WITHOUT_PROMETHEUS = (
    "import sys; sys.modules['prometheus_client'] = None; "
    "from resilience.__main__ import main; sys.exit(main(['demo']))"
)


@pytest.mark.slow
def test_demo_says_what_it_skips_and_still_runs(tmp_path: Path) -> None:
    """No redis-server on PATH, no prometheus_client: both are named as skipped; sums add up."""
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing to find there
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROMETHEUS],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "skipped: /metrics and /health (pip install 'resilient-calls[prometheus]' to serve them)"
        in out
    )
    assert (
        "skipped: two processes sharing one breaker and one rate limit "
        "(needs a Redis server: pass --redis URL)" in out
    )
    assert "GET /" not in out
    assert "== breaker closed -> open ==" in out
    check_every_sum(out)
