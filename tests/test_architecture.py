"""The layout's promises, read from the source: two packages with a border, no import cycles.

`normlab` is the teaching library (what lectures, solutions and assignments import);
`normlab_tools` is the course tooling (the `normlab` command and everything it drives).
Imports are read with `ast`, so an import inside a function counts as much as one at the
top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGES = ("normlab", "normlab_tools")


def module_name(path: Path, lib: Path) -> str:
    parts = list(path.relative_to(lib).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(lib: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its code)."""
    paths = {module_name(p, lib): p for pkg in PACKAGES if (lib / pkg).is_dir() for p in (lib / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(node, name, path.name == "__init__.py")
                # `from pkg import mod` imports the submodule pkg.mod when there is one
                found = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            else:
                continue
            for target in found:
                # the deepest project module the name is or lies in
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None.

    Edges are the imports written in the code. A package's __init__ importing its own
    submodules is an edge like any other, so a submodule that imports a name back from
    its package's __init__ closes a cycle (that name may not exist yet when it runs).
    """
    edges = graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_teaching_library_imports_nothing_from_the_tooling():
    graph = import_graph(LIB)
    crossing = {name: sorted(t for t in targets if t.split(".")[0] == "normlab_tools")
                for name, targets in graph.items() if name.split(".")[0] == "normlab"}
    assert {k: v for k, v in crossing.items() if v} == {}


def test_there_is_no_import_cycle_in_lib():
    cycle = find_cycle(import_graph(LIB))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_importing_the_teaching_library_loads_no_tooling_module():
    code = ("import sys, normlab, normlab.functional, normlab.nn, normlab.data, normlab.models, normlab.train, "
            "normlab.experiments, normlab.grading_helpers, normlab.plots.inputs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'normlab_tools'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_normlab_help_loads_no_heavy_module():
    """`normlab --help` builds every subcommand's parser without importing torch, nbgrader or
    nbconvert (each command imports its implementation when it runs)."""
    code = ("import sys; from normlab_tools.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'nbgrader', 'nbconvert', 'nbclient', "
            "'numpy', 'matplotlib'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# The checks above must be able to fail: the same functions on small planted trees.

def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_planted_cycle_through_a_function_level_import_is_found(tmp_path):
    lib = write_tree(tmp_path, {
        "normlab_tools/__init__.py": "",
        "normlab_tools/build.py": "from normlab_tools.errors import UserError\n",
        "normlab_tools/errors.py": "def f():\n    from normlab_tools import slides\n",
        "normlab_tools/slides.py": "from normlab_tools import build\n",
    })
    cycle = find_cycle(import_graph(lib))
    assert cycle is not None and set(cycle) == {"normlab_tools.build", "normlab_tools.errors", "normlab_tools.slides"}


def test_a_package_importing_its_submodule_is_no_cycle_but_the_reverse_through_init_is(tmp_path):
    lib = write_tree(tmp_path, {
        "normlab/__init__.py": "",
        "normlab/experiments/__init__.py": "from normlab.experiments.runner import run\n",
        "normlab/experiments/runner.py": "import numpy\n",
    })
    assert find_cycle(import_graph(lib)) is None
    (lib / "normlab/experiments/runner.py").write_text("from normlab.experiments import CONDITIONS\n")
    assert find_cycle(import_graph(lib)) is not None


def test_a_planted_border_crossing_is_found(tmp_path):
    lib = write_tree(tmp_path, {
        "normlab/__init__.py": "",
        "normlab/train.py": "def fit():\n    from ..normlab_tools import errors\n",
        "normlab_tools/__init__.py": "",
        "normlab_tools/errors.py": "",
    })
    graph = import_graph(lib)
    assert graph["normlab.train"] == {"normlab_tools.errors"}

