"""One circuit for two processes: a breaker shared through Redis.

Run it with ``python examples/shared_breaker.py`` (needs the ``redis`` extra and either
``--redis URL`` or a ``redis-server`` binary, which it then starts on a free loopback port).

A worker process calls a dead payments API until its breaker opens. The main process,
which never made a failing call itself, then finds the same circuit open and is turned
away at once; an operator closes it fleet-wide with ``python -m resilience close``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

try:
    import redis
except ImportError:  # not in the README's first virtualenv: say what to install, no traceback
    sys.exit("shared_breaker.py needs the redis extra: pip install 'resilient-calls[redis]'")

from resilience import CircuitBreaker, CircuitOpenError
from resilience.redis import RedisStorage

NAME = "payments-api"
HERE = Path(__file__).resolve()


def breaker(url: str) -> CircuitBreaker:
    """The breaker every process makes: same name, same Redis, one circuit."""
    storage = RedisStorage(redis.Redis.from_url(url, socket_timeout=2.0))
    return CircuitBreaker(name=NAME, failure_threshold=3, recovery_timeout=60.0, storage=storage)


def staleness(shared: CircuitBreaker) -> float:
    """How old this process's view of the shared circuit may be before it asks Redis."""
    storage = shared.storage  # type: ignore[attr-defined]  # a breaker made with storage=
    return float(storage.refresh_after)


def charge(amount: int) -> str:
    """Pretend to call a payments API that is down."""
    msg = f"payments API unreachable while charging {amount}"
    raise ConnectionError(msg)


def worker(url: str) -> None:
    """Call the dead API until the shared circuit opens."""
    shared = breaker(url)
    for attempt in range(1, 6):
        try:
            shared.call(charge, 100 + attempt)
        except ConnectionError as error:
            print(f"  [worker] call {attempt}: failed ({error})")
        except CircuitOpenError as error:
            print(f"  [worker] call {attempt}: rejected, circuit {error.state.value}")
    print(f"  [worker] the circuit is now {shared.state.value} for every process")


def start_redis(stack: ExitStack) -> str:
    """Start a private redis-server without persistence on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("shared_breaker.py needs a Redis: pass --redis URL or install redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603  # a fixed binary and arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    stack.callback(process.wait)
    stack.callback(process.terminate)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return url


def cli(*args: str) -> str:
    """Run the operator's command line and return what it printed."""
    return subprocess.run(  # noqa: S603  # our own interpreter and module
        [sys.executable, "-m", "resilience", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="a Redis to use (default: start one)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.redis)
        return
    with ExitStack() as stack:
        url = args.redis or start_redis(stack)
        shared = breaker(url)
        shared.reset()
        print(f"main process: circuit {NAME!r} is {shared.state.value}")
        print("a worker process calls the dead payments API:")
        subprocess.run(  # noqa: S603  # this script, as the worker
            [sys.executable, str(HERE), "--worker", "--redis", url], check=True
        )
        # Admission comes from this process's cached view of the circuit (that is what
        # keeps a call to one round trip); the view is refreshed at least this often.
        wait = staleness(shared)
        print(f"main process, which made no failing call itself, charges {wait:.0f}s later:")
        time.sleep(wait)
        try:
            shared.call(charge, 42)
        except CircuitOpenError as error:
            retry = error.retry_after or 0.0
            print(f"  rejected at once: circuit {error.state.value}, retry in {retry:.0f}s")
        print("the operator looks, then closes the circuit for every process:")
        print("  " + cli("status", NAME, "--redis", url).strip().replace("\n", "\n  "))
        print("  " + cli("close", NAME, "--redis", url).strip())
        state = shared.get_stats()["state"]  # read from Redis, not from the cached view
        print(f"main process: circuit {NAME!r} is {state} again")


if __name__ == "__main__":
    main()
