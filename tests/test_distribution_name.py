"""Users install ``resilient-calls`` and import ``resilience``: every place they type it agrees.

The name ``resilience`` on the public package index belongs to an unrelated project, so a
``pip install resilience`` (or ``'resilience[extra]'``) anywhere a user reads it would
install something else.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "resilient-calls"
# Where a user reads an install command: the package's messages, the docs, the examples.
_PLACES = ("src", "docs", "examples", "README.md", "mkdocs.yml", "pyproject.toml")
_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".json"}
# `pip install resilience`, `'resilience[redis]'`, `resilience[prometheus]` in prose.
_OLD_NAME = re.compile(r"pip install\s+['\"]?resilience\b(?!\.)|\bresilience\[")


def _files() -> list[Path]:
    found: list[Path] = []
    for place in _PLACES:
        path = ROOT / place
        if path.is_file():
            found.append(path)
        else:
            found.extend(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    return sorted(found)


def test_pyproject_names_the_distribution():
    """The distribution is ``resilient-calls``; the import package stays ``resilience``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["name"] == DISTRIBUTION
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/resilience"]


def test_no_install_command_names_the_taken_distribution():
    """No message, page or example tells a user to install ``resilience`` by that name."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _OLD_NAME.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def test_every_extra_named_in_an_install_command_exists():
    """Each ``pip install 'resilient-calls[extra]'`` names an extra pyproject.toml defines."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(config["project"]["optional-dependencies"])
    named = {
        extra
        for path in _files()
        for group in re.findall(rf"{DISTRIBUTION}\[([\w,-]+)\]", path.read_text())
        for extra in group.split(",")
    }
    assert named
    assert named <= extras, named - extras
