"""The demo's parts on their own: the timeline's folding, the peer's protocol, the scrape reader."""

from __future__ import annotations

import io
import json
import sys
import time

from resilience._demo_metrics import series
from resilience._demo_peer import Peer, PeerTimeline
from resilience._demo_timeline import Timeline


def _timeline() -> tuple[Timeline, io.StringIO]:
    out = io.StringIO()
    return Timeline(out, time.monotonic()), out


def test_alike_plain_requests_fold_into_one_line() -> None:
    """Three ok requests in a row print the first and "... and 2 more ok the same way"."""
    timeline, out = _timeline()
    for number in range(3):
        timeline.request("ok", f"#{number:03d} ok", plain=True)
    timeline.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("#000 ok")
    assert lines[1].endswith("... and 2 more ok the same way")


def test_a_note_or_a_request_in_full_ends_the_run() -> None:
    """A retry note and a retried request break the run; later ones start a new one."""
    timeline, out = _timeline()
    timeline.request("ok", "#001 ok", plain=True)
    timeline.note("#002 retry 1")
    timeline.request("ok", "#002 ok after a retry", plain=False)
    timeline.request("ok", "#003 ok", plain=True)
    timeline.say("== breaker closed -> open ==")
    text = out.getvalue()
    assert "more ok" not in text
    assert text.index("#002 retry 1") < text.index("#002 ok") < text.index("#003 ok")
    assert text.rstrip().endswith("== breaker closed -> open ==")


def test_unstamped_lines_print_as_given() -> None:
    """``stamp=False`` prints the text alone; ``at`` stamps a line with a given time."""
    timeline, out = _timeline()
    timeline.say("Summary", stamp=False)
    timeline.say("late", at=1.5)
    assert out.getvalue().splitlines() == ["Summary", "  1.50s  late"]


def test_the_peer_timeline_speaks_the_first_process_protocol() -> None:
    """ready, then on "go <epoch>" it runs; stamped lines and the burst pass, the rest not."""
    out = io.StringIO()
    peer = PeerTimeline(out, io.StringIO(f"go {time.time()!r}\n"))
    peer.ready()
    peer.say("intro", stamp=False)
    peer.say("== breaker closed -> open ==")
    peer.note("#001 retry 1")
    peer.request("ok", "#001 ok", plain=True)
    peer.request("burst", "#002-#017 16 requests at once", plain=False)
    peer.flush()
    peer.summary({"requests": 1})
    lines = out.getvalue().splitlines()
    assert lines[0] == "ready"
    assert lines[1].split("|", 1)[1] == "== breaker closed -> open =="
    assert lines[2].split("|", 1)[1] == "#002-#017 16 requests at once"
    assert json.loads(lines[3].removeprefix("summary ")) == {"requests": 1}
    assert len(lines) == 4


def test_a_peer_that_cannot_start_is_skipped_with_the_reason() -> None:
    """A missing program is named as skipped; the demo goes on alone."""
    timeline, out = _timeline()
    assert Peer(argv=["/nonexistent/python"], env={}).start(timeline) is None
    assert "skipped: the second process (No such file or directory)" in out.getvalue()


def test_a_peer_that_ends_before_it_is_ready_is_skipped() -> None:
    """A peer exiting at once (a bad Redis, say) is reported with its exit status."""
    timeline, out = _timeline()
    peer = Peer(argv=[sys.executable, "-c", "print('about to fail'); raise SystemExit(2)"], env={})
    assert peer.start(timeline) is None
    text = out.getvalue()
    assert "[peer] about to fail" in text
    assert "skipped: the second process did not get ready (exit status 2" in text


def test_a_ready_peer_runs_in_step_and_hands_over_its_summary() -> None:
    """A peer that answers the protocol is relayed, started in step, and its summary kept."""
    script = (
        "import sys, time; print('ready', flush=True); sys.stdin.readline(); "
        "print('0.500|== breaker closed -> open ==', flush=True); "
        "print('summary {\"requests\": 3}', flush=True)"
    )
    timeline, out = _timeline()
    running = Peer(argv=[sys.executable, "-c", script], env={}).start(timeline)
    assert running is not None
    running.go(timeline)
    assert running.finish() == {"requests": 3}
    running.stop()
    text = out.getvalue()
    assert "a second process of this demo" in text
    assert "  0.50s  [peer] == breaker closed -> open ==" in text


def test_series_reads_labels_in_any_order() -> None:
    """The scrape reader finds a sample whatever the order of its labels."""
    text = '# HELP x_total a counter\nx_total{kind="fault",name="demo.chaos"} 3.0\ny_seconds 1.5\n'
    assert series(text) == [
        ("x_total", {"kind": "fault", "name": "demo.chaos"}, "3.0"),
        ("y_seconds", {}, "1.5"),
    ]
