"""The lectures' and solutions' code style: public functions only, one alias per module.

Every course/*.py and solutions/*.py (Jupytext percent files, so plain Python) is parsed
with `ast`. A lecture fails when

1. it references a private name of a normlab module (``alias._name``, in code or in the
   prose of its comments, or ``from normlab.x import _name``);
2. a normlab module is imported under two different aliases across the lectures;
3. one alias stands for two different modules across the lectures (e.g. ``F`` for both
   ``normlab.functional`` and ``torch.nn.functional``).

The last tests plant each mistake in a temporary copy and check the checker reports it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lecture_files(root=ROOT) -> list[Path]:
    return sorted((root / "course").glob("*.py")) + sorted((root / "solutions").glob("*.py"))


@lru_cache(maxsize=None)
def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def module_aliases(tree: ast.Module) -> dict[str, str]:
    """``{alias: module}`` for every import in ``tree`` that binds a module to a name."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for item in node.names:
                if item.asname:
                    aliases[item.asname] = item.name
                else:
                    top = item.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for item in node.names:
                full = f"{node.module}.{item.name}"
                if _is_module(full):
                    aliases[item.asname or item.name] = full
    return aliases


def _is_normlab(module: str) -> bool:
    return module == "normlab" or module.startswith("normlab.")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_references(path: Path, tree: ast.Module, aliases: dict[str, str]) -> list[str]:
    """``path:line: text`` for every reference to a private name of a normlab module."""
    found = []
    normlab_aliases = {alias for alias, module in aliases.items() if _is_normlab(module)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            dotted = []
            while isinstance(base, ast.Attribute):
                dotted.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in normlab_aliases:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module and _is_normlab(node.module):
            found += [f"{path.name}:{node.lineno}: from {node.module} import {item.name}"
                      for item in node.names if _private(item.name)]
    # prose: comments (markdown cells are comments in a percent file)
    names = sorted(normlab_aliases | {"normlab"}, key=len, reverse=True)
    if names:
        pattern = re.compile(r"(?<![\w.])(?:%s)(?:\.[A-Za-z]\w*)*\.(_(?!_)\w+)" % "|".join(map(re.escape, names)))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            comment = line.lstrip()
            if comment.startswith("#"):
                found += [f"{path.name}:{number}: {m.group(0)} (prose)" for m in pattern.finditer(comment)]
    return found


def style_problems(paths) -> list[str]:
    """Every violation of the three rules (module docstring) over ``paths``."""
    problems = []
    aliases_of = defaultdict(lambda: defaultdict(list))  # normlab module -> alias -> files
    modules_of = defaultdict(lambda: defaultdict(list))  # alias -> module -> files
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        aliases = module_aliases(tree)
        problems += [f"private name: {p}" for p in private_references(path, tree, aliases)]
        label = f"{path.parent.name}/{path.name}"
        for alias, module in aliases.items():
            modules_of[alias][module].append(label)
            if _is_normlab(module):
                aliases_of[module][alias].append(label)
    for module, by_alias in sorted(aliases_of.items()):
        if len(by_alias) > 1:
            problems.append(f"{module} imported under several aliases: "
                            + "; ".join(f"{a} in {', '.join(files)}" for a, files in sorted(by_alias.items())))
    for alias, by_module in sorted(modules_of.items()):
        if len(by_module) > 1:
            problems.append(f"alias {alias!r} names several modules: "
                            + "; ".join(f"{m} in {', '.join(files)}" for m, files in sorted(by_module.items())))
    return problems


def test_lectures_exist():
    assert len(lecture_files()) >= 16


def test_lectures_use_public_names_and_one_alias_per_module():
    problems = style_problems(lecture_files())
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# The checker can fail: plant each mistake in a copy
# --------------------------------------------------------------------------------------


@pytest.fixture
def copy_of_lectures(tmp_path):
    for folder in ("course", "solutions"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def _plant(root, name, text):
    path = root / "course" / name
    path.write_text(path.read_text(encoding="utf-8") + "\n# %%\n" + text + "\n", encoding="utf-8")


def test_a_planted_private_name_is_reported(copy_of_lectures):
    assert style_problems(lecture_files(copy_of_lectures)) == []
    _plant(copy_of_lectures, "02_batchnorm_forward.py",
           "from normlab import models\nmodels._check_choices\n# Read `models._check_widths` too.")
    problems = style_problems(lecture_files(copy_of_lectures))
    assert any("models._check_choices" in p for p in problems)
    assert any("models._check_widths (prose)" in p for p in problems)


def test_a_planted_private_import_is_reported(copy_of_lectures):
    _plant(copy_of_lectures, "03_batchnorm_backward.py", "from normlab.models import _check_widths")
    assert any("import _check_widths" in p for p in style_problems(lecture_files(copy_of_lectures)))


def test_a_second_alias_for_a_module_is_reported(copy_of_lectures):
    _plant(copy_of_lectures, "02_batchnorm_forward.py", "import normlab.gradcheck as gc_second_alias")
    problems = style_problems(lecture_files(copy_of_lectures))
    assert any(p.startswith("normlab.gradcheck imported under several aliases") for p in problems)


def test_one_alias_for_two_modules_is_reported(copy_of_lectures):
    _plant(copy_of_lectures, "02_batchnorm_forward.py", "import torch.nn.init as data")
    problems = style_problems(lecture_files(copy_of_lectures))
    assert any(p.startswith("alias 'data' names several modules") for p in problems)
