"""A real ``redis-server`` for the tests: started on a free loopback port, killed at teardown.

The fixtures skip their test when the binary is missing, unless the environment sets
``RESILIENCE_REQUIRE_SERVERS=1`` (as CI does), in which case they fail it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from _helpers import free_port, require_binary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_START_TIMEOUT = 10.0


def require_redis_server() -> str:
    """Return the path of redis-server; skip (or fail, when servers are required)."""
    return require_binary("redis-server", "install Redis to run this test")


class RedisServer:
    """One redis-server process without persistence, on 127.0.0.1."""

    def __init__(self, *, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL of the server, with the password if it has one."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, empty) and wait until it answers PING."""
        command = [
            require_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(  # a fixed binary and arguments
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    if self.password:
                        sock.sendall(f"AUTH {self.password}\r\n".encode())
                        sock.recv(64)
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("redis-server did not answer PING in time")

    def stop(self) -> None:
        """Kill the server and wait for it to go."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server must wake to die
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def client(self, **options: object):  # redis.Redis, imported lazily
        """Return a ``redis.Redis`` for this server (short timeouts by default)."""
        import redis  # the fixtures load without redis-py

        options.setdefault("socket_timeout", 2.0)
        options.setdefault("socket_connect_timeout", 2.0)
        return redis.Redis.from_url(self.url, **options)


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start redis-servers on demand (``factory(password=...)``); kill them all at the end."""
    require_redis_server()
    servers: list[RedisServer] = []

    def start(*, password: str | None = None) -> RedisServer:
        server = RedisServer(password=password)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def redis_server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A fresh, empty redis-server for one test."""
    return redis_server_factory()
