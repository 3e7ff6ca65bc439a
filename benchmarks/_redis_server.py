"""A throwaway redis-server and a client that counts its round trips, for the benchmarks.

Private to ``benchmarks/`` (imported as ``_redis_server``), shared by the benchmarks that
talk to Redis: each starts its own server on a free loopback port unless given a URL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Any

import redis


class CountingConnection(redis.Connection):
    """A connection that counts the packets it sends: one per round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Count one round trip, then send."""
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def counting_client(url: str) -> redis.Redis:
    """A client whose round trips are counted in ``CountingConnection.sent``."""
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return redis.Redis(connection_pool=pool)


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """Start a throwaway redis-server on a free loopback port; return it and its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(  # a fixed binary and arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return process, f"redis://127.0.0.1:{port}/0"
