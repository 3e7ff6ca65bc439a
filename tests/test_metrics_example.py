import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from _helpers import free_port

ROOT = Path(__file__).resolve().parents[1]


def get(url: str) -> bytes:
    """GET ``url`` and return the body."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # loopback
        return bytes(response.read())


@pytest.fixture
def example_url() -> Iterator[str]:
    """Run examples/metrics_app.py on a free port; stop it after the test."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(  # this interpreter, our example
        [sys.executable, str(ROOT / "examples" / "metrics_app.py"), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"the example app did not start:\n{output}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def test_example_app_serves_metrics_and_health(example_url):
    """The example WSGI app serves breaker series on /metrics and JSON on /health."""
    get(example_url + "/work")
    metrics = get(example_url + "/metrics").decode()
    status = json.loads(get(example_url + "/health"))
    assert 'resilience_circuit_breaker_calls_total{name="demo-dependency"' in metrics
    assert status["status"] in {"ok", "degraded"}
    assert set(status) == {"status", "open"}
