"""The sdist and wheel are complete, clean and valid, and the wheel works on its own.

The project is copied with some junk planted in it (a virtualenv, a built site, caches),
built with ``python -m build`` (sdist, then the wheel from the sdist), checked with
``twine check``, and the wheel is installed offline into a fresh virtualenv where
``import resilience`` must load nothing outside the standard library.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import resilience

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "site", "dist", "build", "__pycache__", "*.pyc", ".*_cache", ".hypothesis"
)
_JUNK = {
    ".venv/lib/python3/site-packages/junk.py": "x = 1\n",
    "site/index.html": "<html></html>\n",
    "dist/resilience-0.0.0.tar.gz": "",
    "src/resilience/__pycache__/_breaker.cpython-311.pyc": "",
    ".mypy_cache/junk.json": "{}\n",
}
_JUNK_PARTS = {".venv", "site", "dist", "__pycache__", ".mypy_cache", ".git", ".ci"}


def _need(module: str) -> None:
    """Skip when a packaging tool is missing, unless CI requires every test to run."""
    if importlib.util.find_spec(module) is not None:
        return
    message = f"{module} is not installed (pip install -e '.[dev]')"
    if os.environ.get("RESILIENCE_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the sdist and the wheel from a copy of the project with junk planted in it."""
    for module in ("build", "hatchling", "twine"):
        _need(module)
    project = tmp_path_factory.mktemp("project") / "resilience"
    shutil.copytree(ROOT, project, ignore=_COPY_IGNORE)
    for name, content in _JUNK.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation builds with the hatchling installed here, so no network is needed.
    built = _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project)
    assert built.returncode == 0, built.stdout + built.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv_python(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the interpreter of a fresh virtualenv holding only the wheel, installed offline."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stdout + made.stderr
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    installed = _run(
        python, "-I", "-m", "pip", "install", "--no-deps", "--no-index", "-q", dists["wheel"]
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = f"{sdist.name.removesuffix('.tar.gz')}/"
    return {name.removeprefix(top) for name in names}


def test_twine_accepts_the_sdist_and_the_wheel(dists):
    """``twine check --strict`` passes for both distributions."""
    checked = _run(sys.executable, "-m", "twine", "check", "--strict", *dists.values())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_sdist_holds_what_building_and_testing_need(dists):
    """The sdist has the sources, tests, docs, README, licence and changelog."""
    names = _sdist_names(dists["sdist"])
    needed = {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "mkdocs.yml",
        "src/resilience/__init__.py",
        "src/resilience/_version.py",
        "src/resilience/py.typed",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "docs/index.md",
    }
    assert needed <= names


def test_sdist_leaves_out_junk(dists):
    """No virtualenv, cache, built site, old dist, bytecode or CI script is in the sdist."""
    names = _sdist_names(dists["sdist"])
    junk = {name for name in names if _JUNK_PARTS & set(Path(name).parts)}
    assert not junk
    assert not [name for name in names if name.endswith((".pyc", ".pyo"))]


def test_wheel_holds_the_package_and_its_type_marker(dists):
    """The wheel has every module of the package and ``py.typed``, and no tests."""
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
    modules = {f"resilience/{path.name}" for path in (ROOT / "src" / "resilience").glob("*.py")}
    assert modules | {"resilience/py.typed"} <= names
    assert not [name for name in names if name.startswith("tests/")]


def test_version_comes_from_one_place():
    """pyproject.toml reads the version from ``_version.py`` instead of stating one."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["hatch"]["version"]["path"] == "src/resilience/_version.py"


def test_wheel_metadata_version_is_the_package_version(dists):
    """The wheel's metadata carries ``resilience.__version__`` and the distribution's name."""
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
        lines = wheel.read(metadata).decode().splitlines()
    assert f"Version: {resilience.__version__}" in lines
    assert "Name: resilient-calls" in lines
    assert dists["wheel"].name.startswith(f"resilient_calls-{resilience.__version__}-")
    assert dists["sdist"].name == f"resilient_calls-{resilience.__version__}.tar.gz"


def test_installed_import_loads_only_the_standard_library(venv_python):
    """In a clean virtualenv, importing the core loads no third-party module."""
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import resilience, resilience.backoff, resilience.testing\n"
        "loaded = {name.partition('.')[0] for name in set(sys.modules) - before}\n"
        "print(' '.join(sorted(loaded - set(sys.stdlib_module_names) - {'resilience'})))\n"
        "print(resilience.__file__)\n"
    )
    result = _run(venv_python, "-I", "-c", script)
    assert result.returncode == 0, result.stderr
    third_party, location = result.stdout.splitlines()
    assert third_party == ""
    assert Path(location).is_relative_to(venv_python.parent.parent)  # the wheel, not src/


def test_installed_metrics_without_its_extra_says_what_to_install(venv_python):
    """In a virtualenv without prometheus-client, ``resilience.metrics`` names its extra."""
    result = _run(venv_python, "-I", "-c", "import resilience.metrics")
    assert result.returncode != 0
    assert "pip install 'resilient-calls[prometheus]'" in result.stderr


def test_installed_cli_help_runs(venv_python):
    """``python -m resilience --help`` works in a virtualenv with no extras."""
    result = _run(venv_python, "-I", "-m", "resilience", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "demo" in result.stdout


def test_installed_cli_without_redis_says_which_extra_to_install(venv_python):
    """In a virtualenv without redis-py, a Redis command says in one line what to install."""
    result = _run(venv_python, "-I", "-m", "resilience", "status", "--redis", "redis://127.0.0.1/0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: the Redis commands need redis-py: pip install 'resilient-calls[redis]'"
    ]
