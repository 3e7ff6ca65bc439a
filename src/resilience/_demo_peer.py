"""The second process of ``python -m resilience demo --redis URL``, and how the first runs it.

The first process starts ``python -m resilience demo --peer`` with the same Redis (the URL
goes through the environment, never the command line, so no password shows in ``ps``).
The peer makes its strategies, prints ``ready``, and waits on stdin for ``go <epoch>``:
the wall-clock time both start at, so their timelines line up. It then sends the same
traffic through the same named breaker and rate limit and prints only its key lines,
``<seconds>|<text>``, which the first process shows marked ``[peer]``; a last
``summary <json>`` line tells its counts.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

from resilience._demo_timeline import Timeline

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["Peer", "PeerTimeline", "RunningPeer"]

_READY_TIMEOUT: Final = 30.0  # seconds for the peer to start and reach Redis
_LEAD: Final = 0.3  # seconds between agreeing on the start and starting
_FINISH_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Peer:
    """How to start the second process: its command line and environment."""

    argv: Sequence[str]
    env: Mapping[str, str]

    def start(self, timeline: Timeline) -> RunningPeer | None:
        """Start the peer and wait until it is ready; say so, or why it was skipped."""
        try:
            process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
                list(self.argv),
                env=dict(self.env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as error:
            timeline.say(f"skipped: the second process ({error.strerror})", stamp=False)
            return None
        running = RunningPeer(process, timeline)
        if not running.wait_ready():
            running.stop()
            timeline.say(
                "skipped: the second process did not get ready "
                f"(exit status {process.poll()}; see its message above)",
                stamp=False,
            )
            return None
        timeline.say(
            f"peer: a second process of this demo (pid {process.pid}) sends the same traffic "
            "through the same breaker and rate limit; its lines are marked [peer]",
            stamp=False,
        )
        return running


class RunningPeer:
    """A started peer: relays its lines to the timeline and keeps its summary."""

    def __init__(self, process: subprocess.Popen[str], timeline: Timeline) -> None:
        self._process = process
        self._timeline = timeline
        self._ready = threading.Event()
        self._ended = False  # its output ended: it exited, or is about to
        self._summary: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._read, name="demo-peer", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # noqa: S101  # opened with stdout=PIPE
        for raw in stdout:
            text = raw.rstrip("\n")
            if text == "ready":
                self._ready.set()
            elif text.startswith("summary "):
                self._summary = json.loads(text.removeprefix("summary "))
            else:
                at, sep, rest = text.partition("|")
                try:
                    when: float | None = float(at) if sep else None
                except ValueError:
                    when = None
                if when is None:
                    self._timeline.say(f"[peer] {text}")
                else:
                    self._timeline.say(f"[peer] {rest}", at=when)
        self._ended = True
        self._ready.set()  # stop waiting for it

    def wait_ready(self) -> bool:
        """Wait until the peer says ``ready``; False if it ended or took too long."""
        return self._ready.wait(_READY_TIMEOUT) and not self._ended

    def go(self, timeline: Timeline) -> None:
        """Agree with the peer on a start time, and start the timeline then."""
        epoch = time.time() + _LEAD
        stdin = self._process.stdin
        assert stdin is not None  # noqa: S101  # opened with stdin=PIPE
        with contextlib.suppress(OSError):  # it died: the run goes on alone
            stdin.write(f"go {epoch!r}\n")
            stdin.flush()
        started = time.monotonic() + (epoch - time.time())
        timeline.restart(started)
        time.sleep(max(0.0, started - time.monotonic()))

    def finish(self) -> dict[str, Any] | None:
        """Wait for the peer to end; return its summary (None if it gave none)."""
        try:
            self._process.wait(timeout=_FINISH_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None
        self._thread.join(timeout=5.0)
        return self._summary

    def stop(self) -> None:
        """End the peer if it still runs, and close its pipes."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class PeerTimeline(Timeline):
    """The peer's timeline: only its key lines, as ``<seconds>|<text>`` for the first process."""

    def __init__(self, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> None:
        super().__init__(out, time.monotonic())
        self._write_lock = threading.Lock()
        self._peer_out = out
        self._stdin = stdin

    def ready(self) -> None:
        """Say ``ready``, wait for ``go <epoch>``, and start the timeline at that time."""
        self._line("ready")
        words = self._stdin.readline().split()
        epoch = float(words[1]) if len(words) == 2 and words[0] == "go" else time.time()  # noqa: PLR2004  # "go" and the time
        started = time.monotonic() + (epoch - time.time())
        self.restart(started)
        time.sleep(max(0.0, started - time.monotonic()))

    def say(self, text: str, *, stamp: bool = True, at: float | None = None) -> None:
        """Pass on a stamped line (a state change, a /health read); drop the others."""
        if stamp:
            self._line(f"{self.now() if at is None else at:.3f}|{text.strip()}")

    def note(self, text: str) -> None:
        """Keep the peer's retries to itself: the first process shows its own."""

    def request(self, kind: str, text: str, *, plain: bool) -> None:  # noqa: ARG002  # the base's signature
        """Pass on the burst's line; the single requests stay in the peer."""
        if kind == "burst":
            self._line(f"{self.now():.3f}|{text}")

    def flush(self) -> None:
        """Nothing is folded here."""

    def summary(self, counts: dict[str, Any]) -> None:
        """Print the last line: the peer's counts."""
        self._line("summary " + json.dumps(counts))

    def _line(self, text: str) -> None:
        with self._write_lock:
            self._peer_out.write(text + "\n")
            self._peer_out.flush()
