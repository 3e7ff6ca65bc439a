"""The demo's live timeline: timestamped plain-text lines, with runs of alike requests folded.

Every line starts with the seconds since the scenario began, so the output reads the same
with or without colour, in a terminal, a log file or a README. Runs of plain requests
that ended alike (all ok, all rejected at once, ...) print their first line and then one
"... and N more" line, so ten seconds of traffic stay readable.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

__all__ = ["Timeline"]


class Timeline:
    """Print timestamped lines; safe to call from any thread and from listeners."""

    def __init__(self, out: TextIO, started: float) -> None:
        self._out = out
        self._started = started
        self._lock = threading.Lock()
        # The run of alike plain requests being folded: its kind, length and last time.
        self._run_kind = ""
        self._run_length = 0
        self._run_end = 0.0

    def restart(self, started: float) -> None:
        """Count seconds from ``started`` (a ``time.monotonic()`` value) from now on."""
        self._started = started

    def now(self) -> float:
        """Seconds since the scenario began."""
        return time.monotonic() - self._started

    def say(self, text: str, *, stamp: bool = True, at: float | None = None) -> None:
        """Print ``text``, stamped with the time now (or ``at``) unless ``stamp`` is false."""
        with self._lock:
            self._end_run()
            self._write(text, stamp=stamp, at=at)

    def note(self, text: str) -> None:
        """Print a stamped note about a request in flight (a retry), as it happens."""
        self.say(text)

    def request(self, kind: str, text: str, *, plain: bool) -> None:
        """Print a finished request, folding it into a run of alike plain requests.

        A request that is not ``plain`` (it was retried, hedged, failed) is printed in
        full and ends the run.
        """
        with self._lock:
            if plain and kind == self._run_kind:
                self._run_length += 1
                self._run_end = self.now()
                return
            self._end_run()
            self._write(text, stamp=True, at=None)
            if plain:
                self._run_kind, self._run_length = kind, 1

    def flush(self) -> None:
        """Close the current run of alike requests, if any."""
        with self._lock:
            self._end_run()

    def _write(self, text: str, *, stamp: bool, at: float | None) -> None:
        when = self.now() if at is None else at
        self._out.write((f"{when:6.2f}s  {text}" if stamp else text) + "\n")
        self._out.flush()

    def _end_run(self) -> None:
        """Say how many alike requests followed the first one of the run (lock held)."""
        if self._run_kind and self._run_length > 1:
            more = self._run_length - 1
            self._write(
                f"     ... and {more} more {self._run_kind} the same way",
                stamp=True,
                at=self._run_end,
            )
        self._run_kind, self._run_length = "", 0
