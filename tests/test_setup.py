"""The project's set-up promises: equal dependency lists, the command, CI calling make test."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + project["optional-dependencies"]["test"]
    return {re.split(r"[<>=!~\[ ;]", name)[0].lower() for name in names}


def conda_dependencies():
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)", line) or re.match(r"^      - ([A-Za-z0-9_.-]+)", line)  # or pip's
        if match and match.group(1) not in {"python", "pip", "-e"}:
            names.add(CONDA_NAMES.get(match.group(1).lower(), match.group(1).lower()))
    return names


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    assert conda_dependencies() == pyproject_dependencies()


def test_the_normlab_command_runs():
    result = subprocess.run([sys.executable, "-m", "normlab_tools", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: normlab" in result.stdout


def test_ci_runs_make_test_and_the_readme_shows_both_commands():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme


def test_constraints_pin_every_dependency_at_the_version_installed_here():
    """tools/constraints.txt (what tools/venv.sh installs with) names an exact version for
    each dependency of pyproject.toml, and it is the version this venv runs: a dependency
    added without re-freezing, or a venv that drifted, fails here."""
    from importlib.metadata import version

    pins = dict(line.split("==") for line in (ROOT / "tools" / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    missing = pyproject_dependencies() - set(pins)
    assert not missing, f"not pinned in tools/constraints.txt: {sorted(missing)} (run tools/freeze_constraints.py)"
    drifted = {name: (pin, version(name)) for name, pin in pins.items() if version(name) != pin}
    assert not drifted, f"installed versions differ from the pins (pin, installed): {drifted}"
