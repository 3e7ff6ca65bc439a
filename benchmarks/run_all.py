"""Run every benchmark against its peers in one go and write one markdown report.

Run: ``pip install -e '.[bench,dev]' && python benchmarks/run_all.py --markdown
docs/performance.md`` (``--quick`` for a short run; without ``--markdown`` the report is
printed). Each script measures its own baseline (a bare call, a bare await, a hand-written
loop, a peer) in the same process as the libraries it compares (see ``_timing``), so every
ratio in the report is from one run on one machine. The Redis benchmarks start their own
``redis-server`` on a free loopback port and are left out when the binary is missing.

With ``--markdown PATH``, only the part of the page between ``BEGIN`` and ``END`` (the
markers below) is replaced, so the hand-written text around it stays; a new page gets a
short header.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BEGIN = "<!-- BEGIN benchmarks/run_all.py: generated, edit the text outside these markers -->"
END = "<!-- END benchmarks/run_all.py -->"

QUICK = ["--quick"]

# (title, script, arguments, arguments with --quick, what it needs on PATH)
SUITES: list[tuple[str, str, list[str], list[str], str | None]] = [
    ("Circuit breaker", "bench_breaker.py", [], QUICK, None),
    ("Retry", "bench_retry.py", [], QUICK, None),
    ("Retry storms", "retry_storm.py", [], [], None),
    ("Timeouts and deadlines", "bench_timeouts.py", [], QUICK, None),
    ("Pipeline and bulkhead", "bench_pipeline.py", [], QUICK, None),
    ("Adaptive concurrency limits", "adaptive_limit.py", [], QUICK, None),
    ("Rate limiting", "bench_ratelimit.py", [], QUICK, "redis-server"),
    ("Metrics", "bench_metrics.py", [], [*QUICK, "--breakers", "2000", "--scrapes", "3"], None),
    ("Shared state through Redis", "bench_redis.py", [], QUICK, "redis-server"),
    ("Fault injection switched off", "bench_chaos.py", [], QUICK, None),
    ("OpenTelemetry", "bench_otel.py", [], QUICK, None),
    ("Hedged requests", "hedging.py", [], ["--calls", "50000", "--http", "1000"], None),
]

HEADER = """# Performance

Every figure below comes from one run of `benchmarks/run_all.py` on the machine described,
each library measured in the same process as its baseline. Ratios travel between machines
far better than nanoseconds do: compare those.

Reproduce:

```bash
pip install -e '.[bench,dev]'
python benchmarks/run_all.py --markdown docs/performance.md
```
"""


def _markdown(output: str) -> str:
    """Keep markdown as it is; fence output without a table so it renders as printed."""
    if any(line.startswith("|") for line in output.splitlines()):
        return output.strip()
    return "```text\n" + output.strip() + "\n```"


def run_suites(*, quick: bool) -> str:
    """Run every benchmark in its own interpreter; return the report's markdown."""
    when = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    python = f"Python {platform.python_version()} ({platform.python_implementation()})"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    mode = "`--quick`" if quick else "full length"
    parts = []
    outputs: dict[str, str] = {}
    for title, script, full, short, needs in SUITES:
        if needs is not None and shutil.which(needs) is None:
            parts.append(f"## {title}\n\nSkipped: `{needs}` is not installed.\n")
            continue
        started = time.monotonic()
        print(f"running {script} ...", file=sys.stderr, flush=True)
        result = subprocess.run(  # our own interpreter and scripts
            [sys.executable, str(HERE / script), *(short if quick else full)],
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        if result.returncode != 0:
            parts.append(f"## {title}\n\n`{script}` failed:\n\n```text\n{result.stderr}\n```\n")
            continue
        outputs[title] = result.stdout
        parts.append(
            f"## {title}\n\n`benchmarks/{script}` ({took:.0f} s)\n\n{_markdown(result.stdout)}\n"
        )
    head = f"Run {when} ({mode}); {python}, {machine}.\n"
    return "\n".join([head, summary(outputs), *parts])


def summary(outputs: dict[str, str]) -> str:
    """Collect the rows of every script's "Targets" table into one table, by benchmark."""
    rows = []
    for title, output in outputs.items():
        in_targets = False
        for line in output.splitlines():
            if line.startswith("### "):
                in_targets = line == "### Targets"
            elif in_targets and line.startswith("| #"):
                rows.append(f"| {title} {line}")
    if not rows:
        return ""
    return "\n".join(
        [
            "## Targets at a glance\n",
            "Each issue's targets, met or missed in this run; the tables below give the detail.\n",
            "| benchmark | issue | target | this run | met |",
            "|---|---|---|---:|---|",
            *rows,
            "",
        ]
    )


def splice(page: str | None, report: str) -> str:
    """Put ``report`` between the markers of ``page`` (a new page: HEADER, then the report).

    Raises:
        ValueError: the page exists but lacks the markers (its text would be lost).
    """
    block = f"{BEGIN}\n\n{report.strip()}\n\n{END}"
    if page is None:
        return f"{HEADER}\n{block}\n"
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN!r} ... {END!r} markers to replace between")
    return page[:start] + block + page[end + len(END) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument(
        "--markdown",
        "--output",
        type=Path,
        metavar="PATH",
        help="regenerate the tables of this page (default: print the report)",
    )
    args = parser.parse_args()
    page = None
    if args.markdown is not None and args.markdown.exists():
        page = args.markdown.read_text(encoding="utf-8")
        splice(page, "")  # refuse a page without markers before spending minutes
    report = run_suites(quick=args.quick)
    if args.markdown is None:
        print(report)
        return
    args.markdown.write_text(splice(page, report), encoding="utf-8")
    print(f"wrote {args.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
