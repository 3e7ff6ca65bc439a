"""Read the demo's real output: its summary's sums, its counts, its metrics address."""

from __future__ import annotations

import re
import subprocess
import sys

DEMO = [sys.executable, "-m", "resilience", "demo"]


def run_demo(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``python -m resilience demo ARGS`` to its end, as a user would."""
    return subprocess.run(
        [*DEMO, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def summary_lines(out: str) -> list[str]:
    """Return the summary's lines (between "Summary" and the endpoint reads)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Summary"))
    return [line.strip() for line in lines[start + 2 :] if line.startswith("  ")]


def _term_value(term: str) -> int:
    """The count a term of a sum stands for: the first whole number in it."""
    found = re.search(r"\b(\d+)\b", term)
    assert found is not None, term
    return int(found.group(1))


def sums(line: str) -> list[int]:
    """Return the value of each side of a summary line's ``a + b = c = d + e`` chain."""
    sides = line.split(" = ")
    head = sides[0].rpartition(": ")[2]  # after the label ("requests: ", "(pid 42): ")
    return [sum(_term_value(term) for term in side.split(" + ")) for side in [head, *sides[1:]]]


def check_every_sum(out: str) -> list[str]:
    """Assert that each sum of the summary adds up; return the summary's lines."""
    lines = summary_lines(out)
    chains = [line for line in lines if " = " in line]
    assert len(chains) >= 6, lines  # requests, rejections, the strategies
    for line in chains:
        values = sums(line)
        assert len(set(values)) == 1, (line, values)
    return lines


def count(lines: list[str], label: str, pattern: str) -> tuple[int, ...]:
    """Read the numbers ``pattern``'s groups match on the summary line starting with ``label``."""
    line = next(line for line in lines if line.startswith(label))
    found = re.search(pattern, line)
    assert found is not None, (pattern, line)
    return tuple(int(group) for group in found.groups())
