"""Run every benchmark against its peers in one go and write one markdown report.

Run: ``pip install -e '.[bench,dev]' && python benchmarks/run_all.py --output docs/performance.md``
(``--quick`` for a short run). Each script measures its own baseline (a bare call, a bare
await, a hand-written loop) in the same process as the libraries it compares, so every
ratio in the report is from one run on one machine. The Redis benchmark starts its own
``redis-server`` on a free loopback port and is left out when the binary is missing.
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

# (title, script, arguments, arguments with --quick, what it needs on PATH)
SUITES: list[tuple[str, str, list[str], list[str], str | None]] = [
    ("Circuit breaker", "bench_breaker.py", [], ["--quick"], None),
    ("Retry", "bench_retry.py", [], [], None),
    ("Timeouts and deadlines", "bench_timeouts.py", [], [], None),
    ("Metrics", "bench_metrics.py", [], ["--breakers", "2000", "--scrapes", "3"], None),
    ("Shared state through Redis", "bench_redis.py", [], ["--calls", "3000"], "redis-server"),
    ("Fault injection switched off", "bench_chaos.py", [], [], None),
    ("OpenTelemetry", "bench_otel.py", [], [], None),
    ("Hedged requests", "hedging.py", [], ["--calls", "50000", "--http", "1000"], None),
    ("Rate limiting", "bench_ratelimit.py", [], ["--quick"], "redis-server"),
]

HEADER = """# Performance

Every figure below comes from one run of `python benchmarks/run_all.py` on the machine
described, each library measured in the same process as its baseline. Ratios travel
between machines far better than nanoseconds do: compare those.

Reproduce:

```bash
pip install -e '.[bench,dev]'
python benchmarks/run_all.py --output docs/performance.md
```
"""


def _markdown(output: str) -> str:
    """Keep markdown tables as they are; fence anything else so it renders as printed."""
    if any(line.startswith("|") for line in output.splitlines()):
        return output.strip()
    return "```text\n" + output.strip() + "\n```"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--output", type=Path, help="write the report here (default: print)")
    args = parser.parse_args()

    when = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    python = f"Python {platform.python_version()} ({platform.python_implementation()})"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    parts = [HEADER, f"Run {when}; {python}, {machine}.\n"]
    for title, script, full, quick, needs in SUITES:
        if needs is not None and shutil.which(needs) is None:
            parts.append(f"## {title}\n\nSkipped: `{needs}` is not installed.\n")
            continue
        started = time.monotonic()
        print(f"running {script} ...", file=sys.stderr, flush=True)
        result = subprocess.run(  # our own interpreter and scripts
            [sys.executable, str(HERE / script), *(quick if args.quick else full)],
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        if result.returncode != 0:
            parts.append(f"## {title}\n\n`{script}` failed:\n\n```text\n{result.stderr}\n```\n")
            continue
        parts.append(
            f"## {title}\n\n`benchmarks/{script}` ({took:.0f} s)\n\n{_markdown(result.stdout)}\n"
        )
    report = "\n".join(parts)
    if args.output is None:
        print(report)
    else:
        args.output.write_text(report)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
