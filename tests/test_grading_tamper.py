"""The tamper probe covers every helper a test cell calls, in every assignment.

For each assignment source (assignments/source/psK/psK.py), the helper names its test
cells (nbgrader ``grade: true``) use and some cell imports from the teaching library are
collected here, independently of the probe's own reading; each must be bound by the
probe and fingerprinted. Then, in a real kernel: every such name rebound by "the
student" is put back by the probe, and a helper replaced inside its module is reported.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import types
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from normlab_tools import assignments
from normlab_tools.grading import execute
from normlab_tools.kernels import InterpreterKernelManager

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "assignments" / "source").glob("ps*/ps*.py"))


def code(cell) -> str:
    return "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))


def used_helpers(notebook) -> dict[str, str]:
    """{name: the import statement} of names test cells use that a cell imports from normlab."""
    imported, used = {}, set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(code(cell))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("normlab"):
                for alias in node.names:
                    imported[alias.asname or alias.name] = ast.unparse(
                        ast.ImportFrom(module=node.module, names=[alias], level=0))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("normlab"):
                        imported[alias.asname or alias.name.split(".")[0]] = ast.unparse(ast.Import(names=[alias]))
        if cell.metadata.get("nbgrader", {}).get("grade"):
            used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return {name: imported[name] for name in used if name in imported}


def test_every_assignment_is_checked():
    assert [p.stem for p in SOURCES] == ["ps1", "ps2", "ps3", "ps4", "ps5"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_helper_a_test_cell_calls_is_fingerprinted_and_restored(source):
    notebook = assignments.read_jupytext(source)
    helpers = used_helpers(notebook)
    assert "assert_close" in helpers  # every assignment's tests use it
    bindings = execute.helper_bindings(notebook.cells)
    digests = execute.helper_digests(bindings)
    assert set(helpers) <= set(bindings), f"not covered by the probe: {sorted(set(helpers) - set(bindings))}"
    for name in helpers:
        module, attribute = bindings[name]
        target = importlib.import_module(module) if attribute is None else getattr(
            importlib.import_module(module), attribute)
        if isinstance(target, types.ModuleType):  # e.g. `from normlab import models`: all its functions
            assert digests.get(target.__name__), f"{name}: no function of {target.__name__} is fingerprinted"
        else:
            assert attribute in digests[module], f"{name} ({module}.{attribute}) is not fingerprinted"

    imports = "\n".join(sorted(set(helpers.values())))
    rebind = "\n".join(f"{name} = object()" for name in sorted(helpers))
    check = "\n".join(
        f"assert {name} is sys.modules[{module!r}]" + (f".__dict__[{attribute!r}]" if attribute else "")
        for name, (module, attribute) in sorted(bindings.items()) if name in helpers)
    functions = sorted((module, name) for module, entries in digests.items() for name in entries
                       if module.startswith("normlab"))
    victim_module, victim = next((m, n) for m, n in functions if m == bindings["assert_close"][0])
    replace = f"import sys\nsys.modules[{victim_module!r}].{victim} = lambda *args, **kwargs: None"
    cells = [imports, rebind, execute.probe_code("n1", digests, bindings), "import sys\n" + check,
             replace, execute.probe_code("n2", digests, bindings)]
    run = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(run, timeout=120, kernel_manager_class=InterpreterKernelManager, allow_errors=True,
                   resources={"metadata": {"path": str(source.parent)}}).execute()

    def verdict(index: int, nonce: str) -> dict:
        (error,) = [o for o in run.cells[index].outputs if o.output_type == "error"]
        match = re.fullmatch(rf"normlab-probe {nonce} (.*)", error.evalue, re.S)
        assert match, error.evalue
        return json.loads(match.group(1))

    for index in (0, 1, 3, 4):
        assert not [o for o in run.cells[index].outputs if o.output_type == "error"], (cells[index], run.cells[index].outputs)
    first = verdict(2, "n1")
    assert first["problems"] == [] and sorted(first["restored"]) == sorted(helpers)
    second = verdict(5, "n2")
    assert f"{victim_module}.{victim} was replaced" in second["problems"]


def test_the_probe_covers_the_references_module_generically():
    """A test calling a reference implementation (normlab.references) is protected like
    assert_close, without any list naming it."""
    cell = nbformat.v4.new_code_cell(
        "from normlab.references import torch_batchnorm as _torch_batchnorm\nassert_close(_torch_batchnorm(1), 1)",
        metadata={"nbgrader": {"grade": True, "locked": True, "grade_id": "ps9_test", "points": 1}})
    setup = nbformat.v4.new_code_cell("from normlab.grading_helpers import assert_close",
                                      metadata={"nbgrader": {"locked": True, "grade_id": "ps9_setup"}})
    bindings = execute.helper_bindings([setup, cell])
    assert bindings == {"_torch_batchnorm": ("normlab.references", "torch_batchnorm"),
                        "assert_close": ("normlab.grading_helpers", "assert_close")}
    digests = execute.helper_digests(bindings)
    assert "torch_batchnorm" in digests["normlab.references"]
    assert "assert_close" in digests["normlab.grading_helpers"]
