"""The command line: ``python -m resilience demo``, and the operator's commands.

``demo`` runs a short live scenario (see ``resilience._demo``).

``status [NAME]`` shows every circuit breaker shared under a prefix (or one); ``open``,
``close``, ``reset`` and ``disable NAME`` force a state on every process at once. The Redis
URL comes from ``--redis`` or the ``REDIS_URL`` environment variable; the password from
``--redis-password-file``, else ``REDIS_PASSWORD``, else the URL. No part of a password is
ever printed, however the URL is written (see ``resilience._redis_url``).

Exit status: 0 on success, 1 for an unknown breaker, 2 for bad usage, an unreachable
Redis or refused credentials.

Each subcommand is one ``_add_*(commands)`` function in ``_SUBCOMMANDS``: it adds its
parser to ``commands`` (with ``parents=[_redis_options()]`` if it talks to Redis) and sets
``run`` to a function of the parsed arguments returning the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn

from resilience._redis_url import BadRedisURLError, RedisTarget, read_redis_url, redact
from resilience._state import CircuitState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType

    from resilience.redis import RedisStorage

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_UNKNOWN: Final = 1
EXIT_USAGE: Final = 2
_TIMEOUT: Final = 5.0  # seconds to wait for Redis before calling it unreachable
PASSWORD_ENV: Final = "REDIS_PASSWORD"  # noqa: S105  # the variable's name, not a secret

_FORCED: Final = {
    "open": (CircuitState.FORCED_OPEN, "force a breaker open: every call is rejected"),
    "close": (CircuitState.CLOSED, "close a breaker and clear its counts"),
    "reset": (CircuitState.CLOSED, "the same as close"),
    "disable": (CircuitState.DISABLED, "let every call pass and record nothing"),
}


class _Exit(Exception):  # noqa: N818  # a control-flow signal, not an error type
    """Stop with an exit status and a message for stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------- secrets


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error messages never show a password."""

    argv: ClassVar[list[str]] = []  # the words being parsed, to find URLs in messages

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {redact(message, _Parser.argv)}\n")


# ---------------------------------------------------------------------- redis

_REDIS_EXTRA: Final = "the Redis commands need redis-py: pip install 'resilient-calls[redis]'"


def _redis_module() -> ModuleType:
    """Return redis-py, or stop with one line naming the extra to install."""
    try:
        import redis  # noqa: PLC0415  # only the Redis commands need it

        import resilience.redis  # noqa: PLC0415, F401  # the same; checks redis-py's version too
    except ImportError:
        raise _Exit(EXIT_USAGE, _REDIS_EXTRA) from None
    return redis


def _password(args: argparse.Namespace) -> str | None:
    """Return the password of ``--redis-password-file`` or ``$REDIS_PASSWORD``, if any."""
    path: str | None = getattr(args, "redis_password_file", None)
    if path is None:
        return os.environ.get(PASSWORD_ENV) or None
    try:
        with open(path, encoding="utf-8") as file:  # noqa: PTH123  # a path from the user
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _Exit(EXIT_USAGE, f"cannot read the Redis password file {path!r}: {reason}") from None
    password = text.removesuffix("\n").removesuffix("\r")  # editors end files with a newline
    if not password:
        raise _Exit(EXIT_USAGE, f"the Redis password file {path!r} is empty")
    return password


def _target(args: argparse.Namespace) -> RedisTarget:
    """Read the Redis URL of ``--redis``/``REDIS_URL`` and the password given apart."""
    url: str | None = args.redis or os.environ.get("REDIS_URL")
    if not url:
        raise _Exit(EXIT_USAGE, "no Redis given: pass --redis URL or set REDIS_URL")
    password = _password(args)
    try:
        return read_redis_url(url, password=password)
    except BadRedisURLError as exc:
        raise _Exit(EXIT_USAGE, f"bad Redis URL: {exc}") from None


def _storage(args: argparse.Namespace, *, timeout: float = _TIMEOUT) -> RedisStorage:
    """Connect to the Redis of ``--redis``/``REDIS_URL`` and check that it answers.

    What is printed of a failure is the URL's shown form and redis-py's message, never
    the text of an error redis-py raises about the URL's options (it may quote them).
    """
    redis = _redis_module()
    from resilience.redis import RedisStorage  # noqa: PLC0415  # only the Redis commands need it

    target: RedisTarget = args.redis_target
    shown = target.shown
    try:
        client = redis.Redis.from_url(
            target.connect_url,
            password=target.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    except Exception as exc:
        raise _Exit(
            EXIT_USAGE, f"bad Redis URL {shown}: redis-py refused it ({type(exc).__name__})"
        ) from None
    try:
        storage = RedisStorage(client, prefix=args.prefix)
        client.ping()
    except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
        raise _Exit(EXIT_USAGE, f"Redis at {shown} refused the credentials: {exc}") from None
    except redis.ResponseError as exc:
        if str(exc).startswith(("NOAUTH", "WRONGPASS")):
            raise _Exit(EXIT_USAGE, f"Redis at {shown} refused the credentials: {exc}") from None
        raise _Exit(EXIT_USAGE, f"Redis at {shown} answered: {exc}") from None
    except (redis.RedisError, OSError) as exc:
        raise _Exit(EXIT_USAGE, f"cannot reach Redis at {shown}: {exc}") from None
    except ValueError as exc:  # RedisStorage's, about the prefix
        raise _Exit(EXIT_USAGE, str(exc)) from None
    except Exception as exc:  # an option of the URL's query that the connection refuses
        raise _Exit(
            EXIT_USAGE,
            f"cannot use the Redis URL {shown}: an option in it was refused ({type(exc).__name__})",
        ) from None
    return storage


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a Redis failure during ``run`` into exit status 2, without the password."""

    def guarded(args: argparse.Namespace) -> int:
        redis = _redis_module()
        args.redis_target = target = _target(args)
        try:
            return run(args)
        except _Exit as stop:
            raise _Exit(stop.status, target.scrub(stop.message)) from None
        except ValueError as exc:  # a name that no breaker could have
            raise _Exit(EXIT_USAGE, target.scrub(str(exc))) from None
        except (redis.RedisError, OSError) as exc:
            raise _Exit(EXIT_USAGE, target.scrub(f"Redis failed: {exc}")) from None

    return guarded


# ---------------------------------------------------------------------- commands


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _when(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    stamp = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return f"{stamp:%Y-%m-%d %H:%M:%S} UTC ({max(0.0, now - epoch):.0f}s ago)"


def _printable(name: str) -> str:
    return name if name.isprintable() else repr(name)


def _status(args: argparse.Namespace) -> int:
    storage = _storage(args)
    names = [args.name] if args.name is not None else storage.names()
    rows = []
    for name in names:
        stats = storage.read(name)
        if stats is None:
            if args.name is not None:
                raise _Exit(
                    EXIT_UNKNOWN,
                    f"no circuit breaker named {name!r} under prefix {storage.prefix!r}",
                )
            continue  # expired between the scan and the read
        rows.append(stats)
    if args.json:
        for stats in rows:
            stats["state"] = stats["state"].value
        _say(json.dumps(rows if args.name is None else rows[0], indent=2))
        return EXIT_OK
    if not rows:
        _say(f"no circuit breakers under prefix {storage.prefix!r}")
        return EXIT_OK
    now = time.time()
    table = [("NAME", "STATE", "FAILURE RATE", "CALLS", "SINCE")]
    table.extend(
        (
            _printable(stats["name"]),
            stats["state"].value,
            "-" if stats["failure_rate"] is None else f"{stats['failure_rate']:.1%}",
            str(stats["total_calls"]),
            _when(stats["changed_at"], now),
        )
        for stats in rows
    )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        _say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _force(args: argparse.Namespace) -> int:
    storage = _storage(args)
    state: CircuitState = args.state
    before = storage.read(args.name)
    after = storage.force(args.name, state, create=False) if before is not None else None
    if before is None or after is None:
        raise _Exit(
            EXIT_UNKNOWN,
            f"no circuit breaker named {args.name!r} under prefix {storage.prefix!r}",
        )
    was = before["state"].value
    _say(f"circuit breaker {_printable(args.name)}: {was} -> {after.state.value}")
    return EXIT_OK


# ---------------------------------------------------------------------- the parser


def _redis_options(*, main: bool = False) -> argparse.ArgumentParser:
    """Options of every Redis command, accepted before or after the command.

    Each parser gets its own copy (argparse shares a parent's actions, defaults and all):
    the main parser's holds the defaults, the subcommands' leave them alone.
    """
    options = _Parser(add_help=False)
    options.add_argument(
        "--redis",
        metavar="URL",
        default=None if main else argparse.SUPPRESS,
        help="Redis URL, e.g. redis://:PASSWORD@127.0.0.1:6379/0 (default: $REDIS_URL)",
    )
    options.add_argument(
        "--redis-password-file",
        metavar="PATH",
        default=None if main else argparse.SUPPRESS,
        help=f"read the Redis password from PATH (default: ${PASSWORD_ENV}, else the URL's)",
    )
    options.add_argument(
        "--prefix",
        default="resilience:" if main else argparse.SUPPRESS,
        help="key prefix the breakers use (default: resilience:)",
    )
    return options


def _add_status(commands: Any) -> None:
    parser = commands.add_parser(
        "status", parents=[_redis_options()], help="show every breaker, or one"
    )
    parser.add_argument("name", nargs="?", help="one breaker's name")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=_guarded(_status))


def _add_forcing(commands: Any) -> None:
    for command, (state, summary) in _FORCED.items():
        parser = commands.add_parser(command, parents=[_redis_options()], help=summary)
        parser.add_argument("name", help="the breaker's name")
        parser.set_defaults(run=_guarded(_force), state=state)


def _demo(args: argparse.Namespace) -> int:
    from resilience._demo import run_demo, run_peer  # noqa: PLC0415  # only the demo needs it
    from resilience._demo_peer import Peer  # noqa: PLC0415  # the same

    url = args.redis or os.environ.get("REDIS_URL")
    if not url:
        if args.peer:
            raise _Exit(EXIT_USAGE, "demo --peer needs --redis URL or REDIS_URL")
        return run_demo(port=args.port, metrics=not args.no_metrics)
    _redis_module()
    args.redis_target = target = _target(args)
    try:
        # A short timeout: the demo's calls wait for it when Redis stops answering.
        storage = _storage(args, timeout=1.0)
    except _Exit as stop:
        raise _Exit(stop.status, target.scrub(stop.message)) from None
    if args.peer:
        return run_peer(storage=storage)
    # The second process gets the URL through its environment, never its command line
    # (where `ps` would show a password); the password's file or variable goes along.
    argv = [sys.executable, "-m", "resilience", "demo", "--peer", "--prefix", args.prefix]
    password_file = getattr(args, "redis_password_file", None)
    if password_file is not None:
        argv += ["--redis-password-file", password_file]
    peer = Peer(argv=argv, env={**os.environ, "REDIS_URL": url})
    return run_demo(
        port=args.port,
        metrics=not args.no_metrics,
        storage=storage,
        storage_shown=target.shown,
        peer=peer,
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a whole number, got {text!r}") from None
    if not 0 <= port <= 65535:  # noqa: PLR2004  # the TCP port range
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {port}")
    return port


def _add_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        parents=[_redis_options()],
        help="watch the whole toolkit keep a checkout alive while its dependency fails",
        description=(
            "Run a ten-second scenario: seeded chaos makes a simulated service slow, "
            "flaky, down and healthy again while requests reach it through a pipeline "
            "(rate limiter, deadline, retry, circuit breaker, bulkhead, attempt timeout) "
            "and a hedge. With --redis URL a second process of the demo shares the "
            "breaker and the rate limit through Redis (which must answer: exit status 2 "
            "if it does not)."
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=9464,
        help="serve /metrics and /health on 127.0.0.1:PORT while it runs (0: any free port)",
    )
    parser.add_argument("--no-metrics", action="store_true", help="serve no metrics")
    # The second process of --redis (see resilience._demo_peer); not for people.
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=_demo)


_SUBCOMMANDS: Final[list[Callable[[Any], None]]] = [
    _add_demo,
    _add_status,
    _add_forcing,
]


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's parser."""
    parser = _Parser(
        prog="python -m resilience",
        description=("Run the demo, or see and force circuit breakers shared through Redis."),
        parents=[_redis_options(main=True)],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    _Parser.argv = words
    args = build_parser().parse_args(words)
    try:
        return int(args.run(args))
    except _Exit as stop:
        sys.stderr.write(f"error: {redact(stop.message, words)}\n")
        return stop.status


def _run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    _run()
