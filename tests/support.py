"""Plain helpers several test modules need when they are imported, before any fixture
exists: the lectures and their time budgets (they parametrize tests), the assignments'
planted mistakes (the `MISTAKES` tables, built at import time) and functions on
notebooks; the tiny torchvision data sets in their real file formats (test_data,
test_experiments). Fixtures (builds, kernels) are in conftest.py.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "course").glob("*.py"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.py"))
TIME_LIMITS = {"08": 180}  # seconds for a whole lecture (and its solutions); lecture 08 gets more
DEFAULT_TIME_LIMIT = 60


def time_limit(path) -> int:
    """The time budget of lecture (or solutions) NN_name.py, in seconds."""
    return TIME_LIMITS.get(Path(path).stem.split("_", 1)[0], DEFAULT_TIME_LIMIT)


# --- the assignments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A plausible mistake, planted by editing one solution cell of the source."""

    name: str
    cell: str  # grade_id of the solution cell
    edits: tuple  # (old, new) pairs; each old text occurs exactly once in the cell
    loses: frozenset  # grade_ids of the test cells that must score 0; all others full
    nbgrader: bool = False  # also graded end to end by nbgrader (one per graded cell)
    category: str | None = None  # the category of hidden tests it exercises (CATEGORIES), if any


def mistake(name, cell, old, new, loses, nbgrader=False, more=(), category=None):
    assert category is None or category in CATEGORIES, category
    return Mistake(name, cell, ((old, new), *more), frozenset(loses), nbgrader, category)


# What the hidden tests check for every graded function, whatever its task: a catalogue
# has, per function and category, a mistake of that category, or a reason in its
# NOT_APPLICABLE why the category cannot apply (tests/test_mistake_categories.py).
CATEGORIES = {
    "in_place": "modifies an input its docstring does not allow to change (the tests pass copies and "
                "say '... modified in place')",
    "forbidden": "calls the implementation the rules forbid (every test cell of the function catches it)",
    "edge_case": "breaks an edge case its docstring promises",
    "float32": "computes in float32: a correct solution keeps its points (loses nothing) where the task "
               "allows it, or loses them with a message that states the property, where it does not",
}


def graded_functions(notebook) -> dict[str, list[str]]:
    """grade_id of every solution cell that defines functions or classes -> their names."""
    import ast
    import re as _re

    found = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            source = _re.sub(r"^\s*### (BEGIN|END) SOLUTION.*$", "", cell.source, flags=_re.M)
            names = [node.name for node in ast.parse(source).body
                     if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
            if names:
                found[meta["grade_id"]] = names
    return found


def source_notebook(assignment_id):
    """assignments/source/psK/psK.py as a notebook."""
    from normlab_tools import assignments

    return assignments.read_jupytext(ROOT / "assignments" / "source" / assignment_id / f"{assignment_id}.py")


def cell_by_id(notebook, grade_id):
    cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(cells) == 1, f"{len(cells)} cells with grade_id {grade_id}"
    return cells[0]


def copy_notebook(notebook):
    return nbformat.from_dict(json.loads(json.dumps(notebook)))


def plant(notebook, m: Mistake):
    """A copy of `notebook` with mistake `m` planted in its solution cell."""
    notebook = copy_notebook(notebook)
    cell = cell_by_id(notebook, m.cell)
    for old, new in m.edits:
        assert cell.source.count(old) == 1, f"{m.name}: {old!r} is not exactly once in {m.cell}"
        cell.source = cell.source.replace(old, new)
    return notebook


def notebook_file(path: Path, assignment="ps1"):
    """A one-cell notebook of `assignment` at `path` (for intake tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": f"{assignment}_setup"}})
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


def graded(notebook, kind=None):
    """grade_id -> points of the graded cells: all, or one kind: "code" (autograded tests)
    or "markdown" (written answers, graded by hand)."""
    return {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"] for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade") and kind in (None, c.cell_type)}


# --- torchvision data sets, written in their real on-disk formats ------------------------------


def _write_idx_images(path, images: np.ndarray):
    """idx3-ubyte: magic 2051, then N, H, W as big-endian int32, then the uint8 pixels."""
    n, h, w = images.shape
    with open(path, "wb") as f:
        f.write(struct.pack(">iiii", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def _write_idx_labels(path, labels: np.ndarray):
    """idx1-ubyte: magic 2049, then N as big-endian int32, then the uint8 labels."""
    with open(path, "wb") as f:
        f.write(struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def tiny_mnist(root, folder, n_train=100, n_test=30, seed=0, gz=False):
    """Write a tiny MNIST-format data set under <root>/<folder>/raw; return its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train": (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10),
        "t10k": (rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)),
    }
    raw = os.path.join(root, folder, "raw")
    os.makedirs(raw)
    for prefix, (images, labels) in arrays.items():
        _write_idx_images(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), images)
        _write_idx_labels(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels)
    if gz:
        for filename in os.listdir(raw):
            path = os.path.join(raw, filename)
            with open(path, "rb") as plain, gzip.open(path + ".gz", "wb") as compressed:
                compressed.write(plain.read())
            os.remove(path)
    return {k: (v[0].astype(np.uint8), v[1].astype(np.int64)) for k, v in arrays.items()}


def tiny_cifar10(root, per_batch=10, n_test=20, seed=0):
    """Write CIFAR-10's python pickles: rows of 3072 uint8 (1024 R, 1024 G, 1024 B)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)

    def write(filename, n, batch_label):
        rows = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        entry = {
            "batch_label": batch_label,
            "labels": labels,
            "data": rows,
            "filenames": [f"img_{i}.png" for i in range(n)],
        }
        with open(os.path.join(folder, filename), "wb") as f:
            pickle.dump(entry, f, protocol=2)
        return rows, np.array(labels, dtype=np.int64)

    train = [write(f"data_batch_{i}", per_batch, f"training batch {i} of 5") for i in range(1, 6)]
    test = write("test_batch", n_test, "testing batch 1 of 1")
    meta = {
        "num_cases_per_batch": per_batch,
        "label_names": [
            "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
        ],
        "num_vis": 3072,
    }
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    rows = np.concatenate([r for r, _ in train])
    labels = np.concatenate([l for _, l in train])
    return {"train": (rows, labels), "test": test}
