"""Fixtures for tests against real servers (prometheus, promtool, redis-server), on loopback.

A test that needs a binary skips when it is missing, unless ``RESILIENCE_REQUIRE_SERVERS=1``
is set (as CI sets it), when it fails instead: a green run must mean the servers ran.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from redis_server import redis_server, redis_server_factory

from _helpers import free_port
from _helpers import require_binary as _require_binary

__all__ = ["redis_server", "redis_server_factory"]  # fixtures, re-exported for pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def require_binary(name: str) -> str:
    """Return the path of a Prometheus binary; skip (or fail, when servers are required)."""
    return _require_binary(name, "install Prometheus to run this test")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def promtool() -> str:
    """The path of promtool."""
    return require_binary("promtool")


class Prometheus:
    """A real Prometheus server running in a temporary directory."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # loopback
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it holds; fail naming ``what`` (and the log) on timeout."""
        try:
            wait_until(check, timeout, what)
        except pytest.fail.Exception:
            print(self.log.read_text())  # noqa: T201  # shown with the failure
            raise

    def ready(self) -> bool:
        """Whether the server answers /-/ready."""
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """Start real Prometheus servers with a given config text; all stop after the test."""
    binary = require_binary("prometheus")
    started: list[Prometheus] = []

    def start(config: str) -> Prometheus:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        (directory / "prometheus.yml").write_text(config)
        port = free_port()
        log = directory / "prometheus.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # a fixed binary and arguments
                [
                    binary,
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Prometheus(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        wait_until(server.ready, 30, "prometheus to be ready")
        return server

    try:
        yield start
    finally:
        for server in started:
            server.process.terminate()
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
