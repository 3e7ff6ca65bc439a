"""Read a Redis URL given by an operator, and keep its password out of everything shown.

The CLI and the demo take a Redis URL from the command line or ``REDIS_URL``. Operators
paste passwords into such URLs unencoded (``redis://:S3cr3t/Pa55#w0rd@host``) or as a
query parameter (``?password=...``), and a URL parser that splits them at ``/`` or ``#``
turns pieces of the password into a "port" or a "path" that end up in error messages.
So this module reads the URL the way an operator means it, and never lets the password
reach anything that prints:

- the credentials are everything between ``://`` and the *last* ``@``, whatever they
  contain; a ``password`` query parameter is a password too;
- the password is handed to redis-py as ``password=`` and the URL it connects with has
  none, so no redis-py message can contain it;
- what is shown of a URL is rebuilt from the parts that were checked (scheme, host,
  port, database, socket path), with ``***`` for the credentials, never cut out of the
  original text;
- a URL that cannot be read this way is refused with a message that quotes none of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode

__all__ = ["BadRedisURLError", "RedisTarget", "read_redis_url", "redact"]

_SCHEMES: Final = ("redis", "rediss", "unix")
_HOST: Final = re.compile(r"[A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\]")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_DATABASE: Final = re.compile(r"/?([0-9]*)/?")
_SOCKET_PATH: Final = re.compile(r"/[\w./-]*")
_HEAD: Final = re.compile(r"[^/?#]*")
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
SHOWN_CREDENTIALS: Final = "***"
"""What stands for the credentials (user name and password) in a URL shown."""


class BadRedisURLError(ValueError):
    """A Redis URL that cannot be read; its message quotes no part of the URL."""


@dataclass(frozen=True, repr=False)
class RedisTarget:
    """Where to connect, how to show it, and the password kept apart from both."""

    connect_url: str
    """The URL to connect with: the original without its password (and fragment)."""
    shown: str
    """The URL to print: scheme, ``***@`` for credentials, host, port, database."""
    password: str | None = field(default=None)
    """The password, for redis-py's ``password=``; never in ``connect_url`` or ``shown``."""

    def secrets(self) -> list[str]:
        """Return the password as given, decoded and encoded, longest first."""
        if not self.password:
            return []
        forms = {self.password, quote(self.password, safe=""), quote(self.password)}
        return sorted(forms, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """Return ``text`` without the password in any of its forms (a second safety net)."""
        for secret in self.secrets():
            text = text.replace(secret, SHOWN_CREDENTIALS)
        return text

    def __repr__(self) -> str:
        return f"RedisTarget({self.shown!r})"


def read_redis_url(url: str, *, password: str | None = None) -> RedisTarget:
    """Read ``url``; ``password`` (from a file or the environment) wins over the URL's.

    Raises:
        BadRedisURLError: the URL cannot be read; the message says why without quoting it.
    """
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _SCHEMES:
        raise BadRedisURLError("a Redis URL starts with redis://, rediss:// or unix://")
    at = rest.rfind("@")
    # Everything up to the last "@" is credentials, however many "/", "#", "?" or "@" the
    # password holds: an "@" has no other business in a Redis URL. Unless what comes
    # before the first "/", "?" or "#" is a host (and port) already: then the "@" may as
    # well be in a query's password, and no reading of the URL is safe to show.
    head = _HEAD.match(rest)
    if at >= 0 and head is not None and "@" not in head.group() and _is_location(scheme, head):
        raise BadRedisURLError(
            "it has an '@' after its host; percent-encode the password (or pass it "
            "in a file or the environment)"
        )
    userinfo, location = (rest[:at], rest[at + 1 :]) if at >= 0 else (None, rest)
    username = url_password = None
    if userinfo is not None:
        name, colon, secret = userinfo.partition(":")
        username = unquote(name) or None
        url_password = unquote(secret) if colon else None
    location, _, _fragment = location.partition("#")  # redis-py ignores fragments
    location, _, query = location.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(key, value) for key, value in pairs if key.lower() != "password"]
    query_password = next((v for k, v in pairs if k.lower() == "password"), None)
    where = _socket_path(location) if scheme == "unix" else _host_port_database(location)
    shown = f"{scheme}://{SHOWN_CREDENTIALS + '@' if userinfo is not None else ''}{where}"
    if query_password is not None:
        shown += f"?password={SHOWN_CREDENTIALS}"
    credentials = f"{quote(username, safe='')}@" if username else ""
    connect_url = f"{scheme}://{credentials}{location}"
    if kept:
        connect_url += "?" + urlencode(kept)
    chosen = password if password is not None else (url_password or query_password)
    return RedisTarget(connect_url=connect_url, shown=shown, password=chosen or None)


def _is_location(scheme: str, head: re.Match[str]) -> bool:
    """Whether ``head`` (the text before the first delimiter) reads as a location."""
    if scheme == "unix":
        return head.group() == ""  # a socket path follows at once
    try:
        _host_port_database(head.group())
    except BadRedisURLError:
        return False
    return True


def _host_port_database(location: str) -> str:
    authority, slash, path = location.partition("/")
    if authority.startswith("["):  # an IPv6 address: [::1]:6379
        host, bracket, port = authority.partition("]")
        host += bracket
        if port and not port.startswith(":"):
            raise BadRedisURLError("the host of a Redis URL is not a host name or address")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    if not _HOST.fullmatch(host):
        raise BadRedisURLError("the host of a Redis URL is not a host name or address")
    if port and not (_PORT.fullmatch(port) and int(port) <= 65535):  # noqa: PLR2004  # TCP
        raise BadRedisURLError("the port of a Redis URL must be a number up to 65535")
    database = _DATABASE.fullmatch(slash + path)
    if database is None:
        raise BadRedisURLError("the database of a Redis URL must be a number, as in /0")
    shown = host + (f":{port}" if port else "")
    return shown + (f"/{database.group(1)}" if database.group(1) else "")


def _socket_path(location: str) -> str:
    if not _SOCKET_PATH.fullmatch(location):
        raise BadRedisURLError("a unix:// Redis URL needs an absolute socket path")
    return location


def redact(text: str, words: list[str]) -> str:
    """Replace each of ``words`` that holds a URL (``scheme://...``) with its shown form.

    For messages built from a command line (argparse quotes what it could not parse).
    """
    for word in sorted(words, key=len, reverse=True):
        if not _URL_IN_TEXT.search(word):
            continue
        try:
            shown = read_redis_url(word).shown
        except BadRedisURLError:
            shown = "<a URL>"
        # argparse quotes a value with repr(), which escapes quotes and backslashes.
        for form in sorted({word, repr(word)[1:-1]}, key=len, reverse=True):
            text = text.replace(form, shown)
    return text
