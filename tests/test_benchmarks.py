"""The benchmarks' shared harness and report writer (benchmarks/_timing.py, run_all.py).

They are loaded by path: benchmarks/ is a folder of scripts, not a package. Nothing here is
timed: the runners below report made-up seconds, so every figure is exact.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

X = "\N{MULTIPLICATION SIGN}"  # the tables' sign for a ratio
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


timing = _load("_timing")
run_all = _load("run_all")


def _runner(ns_per_call: list[float]):
    """A runner whose successive runs take these ns per call, the last one repeated."""
    queue = list(ns_per_call)

    def run(n: int) -> float:
        ns = queue.pop(0) if len(queue) > 1 else queue[0]
        return ns * n / 1e9

    return run


def test_compare_gives_the_median_per_round_ratio_and_the_bests():
    """Each round divides a candidate by the baseline run just before it; bests are minima."""
    # Fixed number: no calibration runs. Baseline runs alternate 100 and 200 ns; the
    # candidate's runs are 300, 600, 300: the ratio is 3 in every round.
    result = timing.compare(
        {"x": _runner([300.0, 600.0, 300.0])},
        _runner([100.0, 200.0, 100.0]),
        timing=timing.Plan(rounds=3),
        number=10,
    )["x"]
    assert result.ratio == pytest.approx(3.0)
    assert result.ns == pytest.approx(300.0)
    assert result.baseline_ns == pytest.approx(100.0)
    assert result.best_ratio == pytest.approx(3.0)


def test_compare_keeps_the_candidates_order_and_any_hashable_label():
    """Labels may be tuples; the result lists them in the order given."""
    labels = [("b", "lib"), ("a", "lib")]
    result = timing.compare(
        {label: _runner([10.0]) for label in labels},
        _runner([5.0]),
        timing=timing.Plan(rounds=1),
        number=4,
    )
    assert list(result) == labels
    assert {t.ratio for t in result.values()} == {2.0}


def test_calibrate_sizes_a_run_to_the_seconds_asked():
    """A runner at 1 µs per call needs 20,000 calls for a 20 ms run."""
    assert timing.calibrate(_runner([1000.0]), 0.02) == 20_000


def test_the_async_and_threaded_runners_run_every_iteration():
    """``awaits`` awaits n coroutines in one loop; ``in_thread`` runs off the main thread."""
    import threading

    seen: list[str] = []

    async def step() -> None:
        seen.append("await")

    timing.awaits(step)(3)
    timing.in_thread(timing.loop(lambda: seen.append(threading.current_thread().name)))(2)
    assert seen[:3] == ["await"] * 3
    assert all(name != "MainThread" for name in seen[3:])
    assert len(seen) == 5


def test_targets_print_met_or_missed(capsys):
    """A target table shows the issue, the figure with its unit and the verdict."""
    timing.targets(
        [
            timing.at_most(10, f"closed call ≤ 7{X}", 6.5, 7),
            timing.at_least(2, f"threads ≥ 0.9{X}", 0.5, 0.9),
            timing.at_most(5, "scrape ≤ 100 ms", 120.0, 100, "ms"),
        ]
    )
    out = capsys.readouterr().out
    assert f"| #10 | closed call ≤ 7{X} | 6.50{X} | met |" in out
    assert f"| #2 | threads ≥ 0.9{X} | 0.50{X} | **missed** |" in out
    assert "| #5 | scrape ≤ 100 ms | 120.0 ms | **missed** |" in out


def test_a_missing_peer_is_skipped_with_a_line(capsys):
    """``optional`` returns None for a library that is not installed, and says so."""
    assert timing.optional("no_such_peer_library") is None
    assert "skipping no_such_peer_library" in capsys.readouterr().out


def test_splice_replaces_only_the_text_between_the_markers():
    """The hand-written text before and after the generated block stays as it was."""
    page = f"# Title\n\nBy hand.\n\n{run_all.BEGIN}\nold tables\n{run_all.END}\n\nAfter.\n"
    spliced = run_all.splice(page, "new tables")
    assert spliced.startswith("# Title\n\nBy hand.\n\n")
    assert spliced.endswith("\n\nAfter.\n")
    assert "new tables" in spliced
    assert "old tables" not in spliced
    assert run_all.splice(spliced, "new tables") == spliced


def test_splice_refuses_a_page_without_markers():
    """A page without the markers is not overwritten: its text would be lost."""
    with pytest.raises(ValueError, match="markers"):
        run_all.splice("# Performance\n\nAll by hand.\n", "tables")


def test_a_new_page_gets_the_header_and_markers():
    """Without a page, the report comes after the default header, between the markers."""
    page = run_all.splice(None, "tables")
    assert page.startswith("# Performance")
    assert page.index(run_all.BEGIN) < page.index("tables") < page.index(run_all.END)


def test_the_performance_page_has_the_markers():
    """docs/performance.md can be regenerated in place."""
    page = (BENCHMARKS.parent / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "by run_all" in run_all.splice(page, "made by run_all")


def test_the_targets_summary_collects_every_benchmarks_targets():
    """The summary lists each script's target rows under its title."""
    outputs = {
        "Retry": "text\n\n### Targets\n\n| issue | target | this run | met |\n"
        f"|---|---|---:|---|\n| #11 | first try ≤ 8{X} | 7.60{X} | met |\n",
        "Metrics": "no targets here\n",
    }
    summary = run_all.summary(outputs)
    assert f"| Retry | #11 | first try ≤ 8{X} | 7.60{X} | met |" in summary
    assert "Metrics" not in summary


@pytest.mark.slow
@pytest.mark.parametrize(
    "script", sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
)
def test_every_benchmark_script_starts(script):
    """Each script imports what it needs (``_timing`` too) and answers ``--help``."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
