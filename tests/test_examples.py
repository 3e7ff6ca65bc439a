"""Every example runs as a user would run it, exits 0 and tells what happened.

Each example runs in a subprocess of this interpreter, with its real servers, threads and
sockets on 127.0.0.1; the examples also check their own invariants with `assert`, so a run
that exits 0 has held them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import require_binary

ROOT = Path(__file__).resolve().parent.parent

needs_httpx = pytest.mark.skipif(
    importlib.util.find_spec("httpx") is None
    and os.environ.get("RESILIENCE_REQUIRE_SERVERS") != "1",
    reason="the HTTP client examples need httpx (pip install 'httpx>=0.27')",
)


def run_example(name: str) -> str:
    """Run ``examples/NAME``, check it exits 0 with nothing on stderr, return its stdout."""
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout


def number(pattern: str, text: str) -> int:
    """Return the integer captured by ``pattern`` in ``text``."""
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in:\n{text}"
    return int(match.group(1))


def test_quickstart_runs() -> None:
    """``python examples/quickstart.py`` trips, recovers and prints its totals."""
    out = run_example("quickstart.py")
    assert "rejected without calling" in out
    assert "half_open -> closed" in out
    assert "Totals: 6 calls, 3 failures, 2 rejected, 1 success." in out


@needs_httpx
@pytest.mark.slow
def test_http_client_honours_retry_after_opens_and_recovers() -> None:
    """The httpx example waits out Retry-After, opens while the server is down, then closes."""
    out = run_example("http_client.py")
    assert "each retry waited at least 0.5 s" in out
    assert "closed -> open" in out
    assert "rejected by the breaker without a request" in out
    assert "half_open -> closed" in out
    assert "exceeds max_retry_after=60s" in out
    assert number(r"the client sent (\d+) requests", out) == 7


@needs_httpx
@pytest.mark.slow
def test_llm_client_is_not_banned() -> None:
    """The careful LLM client gets every prompt answered and keeps its key; the naive one does not."""
    out = run_example("llm_client.py")
    assert re.search(r"sk-naive .* banned: yes", out)
    assert re.search(r"sk-careful .* banned: no", out)
    assert "10 prompts answered" in out
    assert "0 ignoring a Retry-After" in out
    assert number(r"the API received (\d+) requests for 30 prompts", out) == 5
    assert "threshold 5, recovery 60 s" in out
    assert "half_open -> closed" in out


@pytest.mark.slow
def test_asyncio_fanout_counts_add_up() -> None:
    """The fan-out example's breaker sheds load while the dependency is down, and its counts add up."""
    out = run_example("asyncio_fanout.py")
    requests = number(r"(\d+) requests = ", out)
    ok = number(r"= (\d+) ok", out)
    failed = number(r"\+ (\d+) failed", out)
    rejected = number(r"\+ (\d+) rejected\n", out)
    assert requests == ok + failed + rejected == 700
    down = number(r"(?m)^down .*?(\d+)$", out)
    assert down < number(r"While the catalog was down, (\d+) requests", out)
    assert "closed -> open" in out
    assert out.rstrip().endswith("failures")
    assert "half_open -> closed" in out


@pytest.mark.slow
def test_event_sink_buffers_during_outage_and_flushes() -> None:
    """The event sink example buffers at full speed while the dashboard hangs, then flushes."""
    out = run_example("event_sink.py")
    assert "the first 3 events waited for the sink's 0.2 s timeout" in out
    assert "buffer: 100 events (its capacity), 200 oldest dropped" in out
    assert "flushed the buffer" in out
    assert "600 events = 399 delivered + 201 dropped + 0 still buffered" in out
    assert "the dashboard stored 399" in out


@pytest.mark.slow
def test_deadlines_stop_retries_and_refuse_late_calls() -> None:
    """The deadlines example stops retrying before the deadline and refuses a late query."""
    out = run_example("deadlines.py")
    # Exact figures depend on how busy the machine is: match their shape.
    assert re.search(r"waiting 0\.\d+s more would reach the deadline", out), out
    assert re.search(r"only 0\.\d+ s left before the deadline, 0\.3 s needed", out), out
    assert "neither the database nor the breaker saw it" in out
    assert number(r"Breaker profile-db: (\d+) calls", out) == 3


@pytest.mark.slow
def test_shared_breaker_example_opens_one_circuit_for_two_processes() -> None:
    """A worker process trips the circuit; the main process is turned away; the CLI closes it."""
    pytest.importorskip("redis")
    require_binary("redis-server", "install Redis to run this example")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "shared_breaker.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = result.stdout
    assert "[worker] the circuit is now open for every process" in out
    assert "made no failing call itself" in out
    assert "rejected at once: circuit open" in out
    assert "circuit breaker payments-api: open -> closed" in out
    assert "circuit 'payments-api' is closed again" in out


# What the README's first virtualenv (`pip install -e '.[prometheus]'`) lacks.
_NOT_IN_THE_FIRST_VENV = {"httpx": "pip install 'httpx>=0.27'", "redis": "[redis]'"}


@pytest.mark.parametrize(
    ("example", "module"),
    [("http_client.py", "httpx"), ("llm_client.py", "httpx"), ("shared_breaker.py", "redis")],
    ids=["http_client", "llm_client", "shared_breaker"],
)
def test_an_example_without_its_dependency_says_what_to_install(example, module) -> None:
    """Run from the README's first venv, the example says in one line what to install."""
    path = str(ROOT / "examples" / example)
    code = (
        f"import runpy, sys; sys.modules[{module!r}] = None; sys.argv = [{path!r}]; "
        f"runpy.run_path({path!r}, run_name='__main__')"
    )
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{example} needs ")
    assert "pip install '" in line
    assert _NOT_IN_THE_FIRST_VENV[module] in line


def test_every_example_outside_the_first_venv_guards_its_import() -> None:
    """Each example importing httpx or redis guards the import with an install hint."""
    for path in sorted((ROOT / "examples").glob("*.py")):
        source = path.read_text()
        for module, hint in _NOT_IN_THE_FIRST_VENV.items():
            if re.search(rf"^\s*import {module}\b", source, re.MULTILINE):
                assert f"    import {module}\nexcept ImportError:" in source, path.name
                assert hint in source, path.name


def test_chaos_suite_stays_green_behind_retry_and_breaker() -> None:
    """10% injected faults turn the bare suite red; retry and breaker keep it green."""
    out = run_example("chaos_suite.py")
    assert re.search(r"no chaos:\s+3 tests, 0 failed: green", out)
    assert re.search(r"unprotected:\s+3 tests, [1-3] failed: RED", out)
    assert re.search(r"retry \+ breaker:\s+3 tests, 0 failed: green", out)
    assert number(r"injected (\d+) faults", out) > 0
    assert "the breaker stayed closed" in out
