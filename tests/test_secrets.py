"""No output of the CLI, the demo or the library holds any part of a Redis password.

However the operator writes the URL (an unencoded ``/``, ``#``, ``?`` or ``@`` in the
password, the password as ``?password=``, percent-encoded or not), every error, log line
and repr is checked for each piece of the password. These tests run without a Redis
server: connecting fails (a closed port), which is where most messages are made.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import resilience
from resilience._redis_url import BadRedisURLError, read_redis_url, redact

SRC = str(Path(resilience.__file__).resolve().parents[1])

# Each piece of a password is long and made of letters that appear in no message, so
# finding one in an output means the password leaked; the separators are what URL
# parsers split on.
_PIECE = st.text(alphabet="QXZJ0123456789", min_size=5, max_size=8).map(lambda s: "Q" + s)
_SEPARATOR = st.sampled_from(["/", "#", "?", "@", ":", "&", "=", "%", "/#", "?x=", " ", "%2", ""])


@st.composite
def passwords(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A password of 1-4 distinctive pieces joined by URL separators, and its pieces."""
    pieces = draw(st.lists(_PIECE, min_size=1, max_size=4))
    separators = draw(st.lists(_SEPARATOR, min_size=len(pieces), max_size=len(pieces)))
    password = "".join(sep + piece for sep, piece in zip(separators, pieces, strict=True))
    return password, pieces


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = _closed_port()

_SHAPES = {
    "userinfo": "redis://:{pw}@127.0.0.1:{port}/0",
    "user-and-password": "redis://admin:{pw}@127.0.0.1:{port}/0",
    "encoded": "redis://:{quoted}@127.0.0.1:{port}/0",
    "query": "redis://127.0.0.1:{port}/0?password={pw}",
    "query-encoded": "redis://127.0.0.1:{port}/0?password={quoted}",
    "query-and-more": "redis://127.0.0.1:{port}/0?password={pw}&socket_timeout=1",
    "tls": "rediss://:{pw}@127.0.0.1:{port}",
    "no-host": "redis://:{pw}",
    "unix": "unix://:{pw}@/tmp/resilience-no-such.sock?db=0",
}


def _url(shape: str, password: str) -> str:
    # Without a host, "redis://:a@b" is a valid URL for host b: nothing can tell that "b"
    # was meant as part of the password, so that one shape keeps "@" out of it.
    assume(shape != "no-host" or "@" not in password)
    return _SHAPES[shape].format(pw=password, quoted=quote(password, safe=""), port=PORT)


def _run_cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in this process; return its status and everything it said or logged."""
    from resilience.__main__ import main

    out, err, logged = io.StringIO(), io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(logged)
    logger = logging.getLogger("resilience")
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(argv))
            except SystemExit as stop:  # argparse's own exit on bad usage
                status = int(stop.code or 0)
    finally:
        logger.removeHandler(handler)
    return status, out.getvalue() + err.getvalue() + logged.getvalue()


def _assert_hidden(pieces: list[str], text: str) -> None:
    for piece in pieces:
        assert piece not in text, (piece, text)
        assert quote(piece) not in text


@settings(max_examples=150, deadline=None)
@given(password=passwords(), shape=st.sampled_from(sorted(_SHAPES)))
def test_reading_a_url_never_shows_its_password(password, shape):
    """The shown URL and every refusal hide each piece of the password, whatever the shape."""
    secret, pieces = password
    url = _url(shape, secret)
    try:
        target = read_redis_url(url)
    except BadRedisURLError as error:
        _assert_hidden(pieces, str(error))
        return
    _assert_hidden(pieces, target.shown + repr(target))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    password=passwords(),
    shape=st.sampled_from(sorted(_SHAPES)),
    command=st.sampled_from([("status",), ("open", "payments"), ("demo", "--no-metrics")]),
)
def test_the_cli_never_prints_a_password(password, shape, command):
    """``status``, ``open`` and ``demo`` with an unreachable Redis hide every piece (exit 2)."""
    pytest.importorskip("redis")
    secret, pieces = password
    status, said = _run_cli(*command, "--redis", _url(shape, secret))
    assert status == 2, said
    assert said.startswith("error: "), said
    _assert_hidden(pieces, said)


@settings(max_examples=40, deadline=None)
@given(password=passwords(), shape=st.sampled_from(sorted(_SHAPES)))
def test_a_misplaced_url_in_bad_usage_is_masked(password, shape):
    """A URL given where a command belongs is refused (exit 2) without its password."""
    secret, pieces = password
    status, said = _run_cli(_url(shape, secret), "status")
    assert status == 2
    _assert_hidden(pieces, said)


@settings(max_examples=40, deadline=None)
@given(password=passwords())
def test_redact_replaces_every_url_in_a_message(password):
    """``redact`` swaps each URL of the command line for its shown form, quoted or not."""
    secret, pieces = password
    url = _url("userinfo", secret)
    text = redact(f"invalid choice: {url!r} and {url}", [url, "status"])
    _assert_hidden(pieces, text)


@pytest.mark.parametrize(
    ("url", "password", "shown"),
    [
        ("redis://:S3cr3t/Pa55w0rd@host:6379", "S3cr3t/Pa55w0rd", "redis://***@host:6379"),
        ("redis://:ab#cd?e@127.0.0.1:6379/2", "ab#cd?e", "redis://***@127.0.0.1:6379/2"),
        ("redis://:a%2Fb@127.0.0.1", "a/b", "redis://***@127.0.0.1"),
        ("redis://u:p@q@[::1]:6380/1", "p@q", "redis://***@[::1]:6380/1"),
        ("redis://127.0.0.1/0?password=xyz", "xyz", "redis://127.0.0.1/0?password=***"),
        ("unix://:pw@/tmp/r.sock?db=1", "pw", "unix://***@/tmp/r.sock"),
        ("REDIS://127.0.0.1:6379", None, "redis://127.0.0.1:6379"),
    ],
    ids=["slash", "hash-and-question", "encoded", "at-in-password", "query", "unix", "upper"],
)
def test_reading_understands_what_the_operator_meant(url, password, shown):
    """The password is everything up to the last ``@`` (or the query's), decoded."""
    target = read_redis_url(url)
    assert target.password == password
    assert target.shown == shown
    assert "password" not in target.connect_url
    if password:
        assert password not in target.connect_url


def test_a_password_given_apart_wins_over_the_urls():
    """The password from a file or the environment replaces the one in the URL."""
    given = "QZnew/#"
    target = read_redis_url("redis://:old@127.0.0.1/0?password=older", password=given)
    assert target.password == given
    assert target.scrub(f"{given} and {quote(given, safe='')}") == "*** and ***"


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:6379",
        "http://127.0.0.1",
        "redis://:secret",
        "redis://host:99999",
        "redis://ho st",
        "redis://host/zero",
        "redis://host:6379/0?password=a@b",
        "unix://relative/path",
        "redis://[::1]x",
    ],
    ids=[
        "no-scheme",
        "http",
        "no-host",
        "big-port",
        "space",
        "bad-db",
        "at-in-query",
        "unix-rel",
        "ipv6-junk",
    ],
)
def test_unreadable_urls_are_refused_without_quoting_them(url):
    """A URL that cannot be read safely raises BadRedisURLError quoting nothing of it."""
    with pytest.raises(BadRedisURLError) as caught:
        read_redis_url(url)
    for word in ("secret", "99999", "zero", "a@b", "relative", "ho st"):
        assert word not in str(caught.value)


def test_a_url_given_as_the_storage_client_is_not_echoed():
    """``RedisStorage("redis://:pw@host")`` says what to pass, without quoting the URL."""
    pytest.importorskip("redis")
    from resilience.redis import RedisStorage

    with pytest.raises(TypeError, match="got a URL string") as caught:
        RedisStorage("redis://:QZ24680@127.0.0.1:6379/0")
    assert "QZ24680" not in str(caught.value)


def test_the_storage_repr_shows_no_password():
    """``RedisStorage``'s repr and the client-type error hide a password in the client."""
    redis = pytest.importorskip("redis")
    from resilience.redis import RedisStorage

    client = redis.Redis.from_url(f"redis://admin:QZ12345@127.0.0.1:{PORT}/0")
    storage = RedisStorage(client)
    assert "QZ12345" not in repr(storage)
    assert "QZ12345" not in str(storage)


def _without_redis(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m resilience ARGV`` as if redis-py were not installed."""
    code = textwrap.dedent(
        f"""
        import runpy, sys
        sys.modules["redis"] = None  # as if redis-py were not installed
        sys.argv = ["resilience", *{list(argv)!r}]
        runpy.run_module("resilience", run_name="__main__", alter_sys=True)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "REDIS_PASSWORD"}}
    env["PYTHONPATH"] = SRC
    return subprocess.run(  # this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("status", "--redis", "redis://127.0.0.1:6379/0"),
        ("close", "payments", "--redis", "redis://127.0.0.1:6379/0"),
        ("demo", "--no-metrics", "--redis", "redis://127.0.0.1:6379/0"),
    ],
    ids=["status", "close", "demo"],
)
def test_the_cli_without_the_redis_extra_names_it_and_exits_2(argv):
    """Without redis-py, a Redis command says in one line which extra to install: status 2."""
    result = _without_redis(*argv)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: the Redis commands need redis-py: pip install 'resilient-calls[redis]'"
    ]


def test_a_password_file_is_read_and_never_printed(tmp_path):
    """``--redis-password-file`` supplies the password; failures still hide it."""
    pytest.importorskip("redis")
    path = tmp_path / "password"
    path.write_text("QZ987654/#?\n")
    status, said = _run_cli(
        "status", "--redis", f"redis://127.0.0.1:{PORT}/0", "--redis-password-file", str(path)
    )
    assert status == 2
    assert "cannot reach Redis at redis://127.0.0.1" in said
    assert "QZ987654" not in said


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read the Redis password file"), ("", "is empty"), ("\n", "is empty")],
    ids=["missing", "empty", "newline-only"],
)
def test_a_bad_password_file_exits_2(tmp_path, content, message):
    """A missing or empty password file is a usage error (exit 2) naming the file."""
    pytest.importorskip("redis")
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content)
    status, said = _run_cli(
        "status", "--redis", "redis://127.0.0.1/0", "--redis-password-file", str(path)
    )
    assert status == 2
    assert message in said
    assert str(path) in said


def test_the_password_from_the_environment_is_used_and_hidden(monkeypatch):
    """``REDIS_PASSWORD`` supplies the password when no file is given."""
    pytest.importorskip("redis")
    monkeypatch.setenv("REDIS_PASSWORD", "QZ55555#x")
    status, said = _run_cli("status", "--redis", f"redis://127.0.0.1:{PORT}/0")
    assert status == 2
    assert "QZ55555" not in said


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("socket_timeout=soon", "redis-py refused it (ValueError)"),
        ("no_such_option=QZ13579", "an option in it was refused (TypeError)"),
    ],
    ids=["bad-value", "unknown-option"],
)
def test_options_redis_py_refuses_are_named_without_quoting_them(query, message):
    """An option redis-py refuses is exit status 2; its text (which may quote it) is not shown."""
    pytest.importorskip("redis")
    url = f"redis://:QZ97531@127.0.0.1:{PORT}/0?{query}"
    status, said = _run_cli("status", "--redis", url)
    assert status == 2
    assert message in said
    assert "QZ97531" not in said
    assert "QZ13579" not in said
