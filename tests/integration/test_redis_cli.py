"""``python -m resilience`` end to end, as an operator runs it, against a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

import resilience
from resilience import CircuitBreaker, CircuitOpenError, CircuitState
from resilience.testing import FakeClock

redis = pytest.importorskip("redis")
from resilience.redis import RedisStorage  # noqa: E402  # after the skip above

SRC = str(Path(resilience.__file__).resolve().parents[1])
SECRET = "s3cr3t-Pa55"  # noqa: S105  # a test server's password


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m resilience ARGS`` without REDIS_URL unless ``env`` sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(PYTHONPATH=SRC, **(env or {}))
    return subprocess.run(  # this interpreter and our own module
        [sys.executable, "-m", "resilience", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )


def fail() -> None:
    """Fail with ValueError."""
    raise ValueError("boom")


@pytest.fixture
def breakers(redis_server):
    """Two shared breakers: ``payments`` tripped open and ``search`` closed."""
    storage = RedisStorage(redis_server.client())
    payments = CircuitBreaker(name="payments", failure_threshold=1, storage=storage)
    search = CircuitBreaker(name="search", storage=storage)
    with pytest.raises(ValueError, match="boom"):
        payments.call(fail)
    search.call(lambda: 1)
    return payments, search


@pytest.mark.slow
def test_status_lists_every_breaker(redis_server, breakers) -> None:
    """The status command prints a row per breaker with its state and call count."""
    result = cli("status", "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "FAILURE", "RATE", "CALLS", "SINCE"]
    assert lines[1].split()[:4] == ["payments", "open", "-", "1"]
    assert lines[2].split()[:4] == ["search", "closed", "-", "1"]


@pytest.mark.slow
def test_status_of_one_breaker_as_json(redis_server, breakers) -> None:
    """The status NAME --json command prints that breaker's shared stats."""
    result = cli("status", "payments", "--json", "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert (stats["name"], stats["state"], stats["total_failures"]) == ("payments", "open", 1)


@pytest.mark.slow
def test_redis_url_from_the_environment(redis_server, breakers) -> None:
    """REDIS_URL stands in for --redis."""
    result = cli("status", "search", env={"REDIS_URL": redis_server.url})
    assert result.returncode == 0, result.stderr
    assert "closed" in result.stdout


@pytest.mark.slow
def test_open_forces_every_process_at_once(redis_server, breakers) -> None:
    """The open NAME command rejects the calls of breakers in other processes."""
    clock = FakeClock()
    mine = CircuitBreaker(name="search", clock=clock, storage=RedisStorage(redis_server.client()))
    mine.call(lambda: 1)
    result = cli("open", "search", "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    assert "closed -> forced_open" in result.stdout
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError) as info:
        mine.call(lambda: 1)
    assert info.value.state is CircuitState.FORCED_OPEN


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "state"),
    [("close", "closed"), ("reset", "closed"), ("disable", "disabled")],
    ids=["close", "reset", "disable"],
)
def test_forcing_commands_set_the_shared_state(redis_server, breakers, command, state) -> None:
    """close, reset and disable change the shared state and say so."""
    result = cli("--redis", redis_server.url, command, "payments")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"circuit breaker payments: open -> {state}"
    assert RedisStorage(redis_server.client()).read("payments")["state"].value == state


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", ["status", "open", "close", "reset", "disable"], ids=str
)  # fmt: skip
def test_an_unknown_breaker_exits_1_and_is_not_created(redis_server, breakers, command) -> None:
    """Every command exits 1 for a name no breaker has, and creates nothing."""
    result = cli(command, "nope", "--redis", redis_server.url)
    assert result.returncode == 1
    assert "no circuit breaker named 'nope'" in result.stderr
    assert RedisStorage(redis_server.client()).names() == ["payments", "search"]


@pytest.mark.slow
def test_an_unreachable_redis_exits_2(redis_server) -> None:
    """A Redis that does not answer is exit status 2."""
    port = redis_server.port
    redis_server.stop()
    result = cli("status", "--redis", f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "password", ["wrong-password", None], ids=["wrong", "missing"]
)  # fmt: skip
def test_refused_credentials_exit_2_without_printing_a_password(
    redis_server_factory, password
) -> None:
    """A wrong or missing password is exit status 2, and no password is ever printed."""
    server = redis_server_factory(password=SECRET)
    auth = f":{password}@" if password else ""
    result = cli("status", "--redis", f"redis://{auth}127.0.0.1:{server.port}/0")
    assert result.returncode == 2
    assert "refused the credentials" in result.stderr
    for secret in (SECRET, "wrong-password"):
        assert secret not in result.stdout + result.stderr


@pytest.mark.slow
def test_the_right_password_works_and_is_never_printed(redis_server_factory) -> None:
    """With requirepass, the right password in the URL works and stays out of the output."""
    server = redis_server_factory(password=SECRET)
    storage = RedisStorage(server.client())
    CircuitBreaker(name="svc", storage=storage).call(lambda: 1)
    result = cli("status", "--redis", server.url)
    assert result.returncode == 0, result.stderr
    assert "svc" in result.stdout
    failed = cli("status", "nope", "--redis", server.url)
    assert failed.returncode == 1
    assert SECRET not in result.stdout + result.stderr + failed.stdout + failed.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [(), ("status",), ("frobnicate", "x"), ("open",), (f"redis://:{SECRET}@127.0.0.1", "status")],
    ids=["nothing", "no-url", "unknown-command", "no-name", "url-as-command"],
)
def test_bad_usage_exits_2_without_printing_a_password(args) -> None:
    """Bad usage is exit status 2, and a misplaced URL's password is masked."""
    result = cli(*args)
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_bad_prefix_exits_2(redis_server) -> None:
    """A prefix with braces is bad usage."""
    result = cli("status", "--prefix", "a{b", "--redis", redis_server.url)
    assert result.returncode == 2
    assert "prefix" in result.stderr


MESSY = "Pa55/w0rd#with?odd@chars"  # a test server's password, unencoded in URLs


@pytest.mark.slow
@pytest.mark.parametrize(
    "how", ["unencoded", "query", "file", "environment"], ids=lambda how: how
)  # fmt: skip
def test_every_way_of_giving_a_messy_password_works_and_hides_it(
    redis_server_factory, tmp_path, how
) -> None:
    """A password with / # ? @ works in the URL, as ?password=, from a file or env, unprinted."""
    server = redis_server_factory(password=MESSY)
    client = redis.Redis(host="127.0.0.1", port=server.port, password=MESSY)
    CircuitBreaker(name="svc", storage=RedisStorage(client)).call(lambda: 1)
    base = f"redis://127.0.0.1:{server.port}/0"
    args: list[str] = ["status"]
    env: dict[str, str] = {}
    if how == "unencoded":
        args += ["--redis", f"redis://:{MESSY}@127.0.0.1:{server.port}/0"]
    elif how == "query":
        args += ["--redis", f"{base}?password={urllib.parse.quote(MESSY, safe='')}"]
    elif how == "file":
        (tmp_path / "password").write_text(MESSY + "\n")
        args += ["--redis", base, "--redis-password-file", str(tmp_path / "password")]
    else:
        args += ["--redis", base]
        env["REDIS_PASSWORD"] = MESSY
    result = cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "svc" in result.stdout
    wrong = cli("status", "--redis", f"redis://:{MESSY}x@127.0.0.1:{server.port}/0")
    assert wrong.returncode == 2
    assert "refused the credentials" in wrong.stderr
    said = result.stdout + result.stderr + wrong.stdout + wrong.stderr
    for piece in ("Pa55", "w0rd", "with", "odd", "chars"):
        assert piece not in said
