"""Write tools/constraints.txt: the exact version of every distribution normlab and its test
extras need, as installed in this venv. tools/venv.sh installs with it, so every machine
(and CI) runs the lectures, tests and claims on the versions they were last checked with.

Run after changing a dependency, from a venv that passes `make test`:
    .venv/bin/python tools/freeze_constraints.py
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from normlab_tools.execution_cache import dependency_versions

HERE = Path(__file__).resolve().parent


def test_extras() -> list[str]:
    """The names listed by normlab's `test` extra."""
    requires = importlib.metadata.distribution("normlab").requires or []
    return [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requires if 'extra == "test"' in r]


def main() -> None:
    pins = set(dependency_versions("normlab"))
    for name in test_extras():
        pins.add(f"{name.lower()}=={importlib.metadata.version(name)}")
        pins.update(dependency_versions(name))
    header = ("# Exact versions of normlab's dependencies and test extras, as checked by `make test`.\n"
              "# Written by tools/freeze_constraints.py; tools/venv.sh installs with `-c` this file.\n")
    (HERE / "constraints.txt").write_text(header + "\n".join(sorted(pins)) + "\n")


if __name__ == "__main__":
    main()
