"""Breakers and rate limits shared through a real 3-master Redis Cluster.

The fixture starts three ``redis-server --cluster-enabled yes`` nodes on free loopback
ports (each with its cluster-bus port, +10000, free too), joins them with ``redis-cli
--cluster create`` and waits until every node reports ``cluster_state:ok``. It skips
when redis-server or redis-cli is missing, unless ``RESILIENCE_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

from _helpers import require_binary
from resilience import CircuitBreaker, CircuitOpenError, CircuitState, RateLimiter

redis = pytest.importorskip("redis")
from redis.cluster import RedisCluster  # noqa: E402  # after the skip above
from redis.crc import key_slot  # noqa: E402  # after the skip above

from resilience.redis import RedisStorage  # noqa: E402  # after the skip above

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

_BUS_OFFSET = 10000  # Redis Cluster's bus listens on port + 10000
CREATE = ("--cluster-replicas", "0", "--cluster-yes")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """Return ``count`` ports that are free on loopback, each with its bus port free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + _BUS_OFFSET < 65536 and _free(port + _BUS_OFFSET) and port not in ports:
            ports.append(port)
    return ports


def _node_options(port: int) -> list[str]:
    return [
        "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "no",
        "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
        "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
    ]  # fmt: skip


def _cluster_ok(port: int) -> bool:
    try:
        info = redis.Redis(port=port, socket_timeout=1.0).cluster("info")
    except redis.RedisError:
        return False
    return bool(info.get("cluster_state") == "ok")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, subprocess.Popen[bytes]]]:
    """A running 3-master cluster on loopback: its nodes' processes by port."""
    server = require_binary("redis-server", "install Redis to run this test")
    cli = require_binary("redis-cli", "install Redis to run this test")
    directory: Path = tmp_path_factory.mktemp("cluster")
    ports = cluster_ports(3)
    processes = [
        subprocess.Popen(  # a fixed binary and arguments
            [server, *_node_options(port)],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        deadline = time.monotonic() + 15
        for port in ports:
            while True:
                try:
                    redis.Redis(port=port, socket_timeout=0.5).ping()
                    break
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"redis-server on port {port} did not start")
                    time.sleep(0.05)
        subprocess.run(  # a fixed binary and arguments
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), *CREATE],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(port) for port in ports):
            if time.monotonic() > deadline:
                pytest.fail("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        yield dict(zip(ports, processes, strict=True))
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)  # a paused node must wake to die
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def cluster(nodes: dict[int, subprocess.Popen[bytes]]) -> list[int]:
    """The cluster's ports."""
    return list(nodes)


def client(ports: list[int]) -> Any:
    """A redis-py cluster client, as a user makes one."""
    return RedisCluster(host="127.0.0.1", port=ports[0])


def spread_names(ports: list[int], count: int) -> list[str]:
    """Return breaker names whose keys live on ``count`` different masters."""
    probe = client(ports)
    storage = RedisStorage(probe)
    names: dict[str, str] = {}
    for n in range(1000):
        name = f"svc-{n}"
        key, _ = storage.keys(name)
        node = probe.get_node_from_key(key)
        names.setdefault(node.name, name)
        if len(names) == count:
            break
    probe.close()
    return list(names.values())


def test_shared_breakers_on_three_masters(cluster) -> None:
    """Two processes' breakers share each circuit; circuits on different nodes stay apart."""
    names = spread_names(cluster, 3)
    assert len(names) == 3
    mine = {
        name: CircuitBreaker(name=name, failure_threshold=2, storage=RedisStorage(client(cluster)))
        for name in names
    }
    theirs = {
        name: CircuitBreaker(name=name, failure_threshold=2, storage=RedisStorage(client(cluster)))
        for name in names
    }
    tripped, *others = names
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            mine[tripped].call(_boom)
    assert mine[tripped].state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        theirs[tripped].call(lambda: 1)
    for name in others:
        assert theirs[name].call(lambda: 1) == 1
        assert theirs[name].get_stats()["state"] == "closed"
    stats = mine[tripped].get_stats()
    assert stats["storage"] == "ok"
    assert stats["fleet"]["total_failures"] == 2
    slots = {key_slot(RedisStorage(client(cluster)).keys(name)[0].encode()) for name in names}
    assert len(slots) == 3
    theirs[tripped].reset()
    assert mine[tripped].get_stats()["state"] == "closed"


def test_a_state_and_window_share_one_slot(cluster) -> None:
    """A windowed breaker's two keys share a hash tag, so each script call hits one node."""
    from resilience import CountWindow, FailureRate

    storage = RedisStorage(client(cluster))
    breaker = CircuitBreaker(
        name="windowed",
        policy=FailureRate(window=CountWindow(10), minimum_calls=2, threshold=0.5),
        storage=storage,
    )
    breaker.call(lambda: 1)
    with pytest.raises(ValueError, match="boom"):
        breaker.call(_boom)
    assert breaker.state is CircuitState.OPEN
    key, window = storage.keys("windowed")
    assert key_slot(key.encode()) == key_slot(window.encode())


def test_a_rate_limit_is_shared_across_the_cluster(cluster) -> None:
    """Limiters on separate cluster clients draw from one burst; partitions spread out."""
    a = RateLimiter(1.0, 60.0, burst=3, name="api", storage=RedisStorage(client(cluster)))
    b = RateLimiter(1.0, 60.0, burst=3, name="api", storage=RedisStorage(client(cluster)))
    assert [a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()] == [
        True,
        True,
        True,
        False,
    ]
    assert a.get_stats()["storage"] == "ok"
    storage = RedisStorage(client(cluster))
    nodes = {
        client(cluster).get_node_from_key(storage.limit_key("api", f"t{n}")).name for n in range(30)
    }
    assert len(nodes) == 3


def test_a_frozen_master_adds_at_most_the_storage_timeout(nodes) -> None:
    """SIGSTOP on the master holding a circuit: calls fall back within the bound, then resync."""
    ports = list(nodes)
    storage = RedisStorage(client(ports), timeout=0.1)
    breaker = CircuitBreaker(name="svc", failure_threshold=1000, storage=storage)
    breaker.call(lambda: 1)
    owner = nodes[client(ports).get_node_from_key(storage.keys("svc")[0]).port]
    owner.send_signal(signal.SIGSTOP)  # shorter than the node timeout: no failover
    try:
        longest = 0.0
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            start = time.monotonic()
            assert breaker.call(lambda: 1) == 1
            longest = max(longest, time.monotonic() - start)
            time.sleep(0.01)
        assert breaker.get_stats()["storage"] == "degraded"
    finally:
        owner.send_signal(signal.SIGCONT)
    assert longest < 0.5
    deadline = time.monotonic() + 5.0
    while breaker.get_stats()["storage"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert breaker.get_stats()["storage"] == "ok"


def _boom() -> int:
    raise ValueError("boom")
