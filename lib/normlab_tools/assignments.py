"""The graded assignments: build them with nbgrader, and let students check their work.

Sources are Jupytext percent files with nbgrader metadata on the cell markers::

    assignments/nbgrader_config.py          the course's nbgrader settings
    assignments/source/psK/psK.py           one notebook per assignment (solutions, hidden tests)

`build_assignments` turns them into an nbgrader course directory and answer keys::

    OUT/nbgrader/nbgrader_config.py         copied from assignments/
    OUT/nbgrader/source/psK/psK.ipynb       Jupytext -> notebook (what nbgrader reads)
    OUT/nbgrader/release/psK/psK.ipynb      student version: solutions stubbed, hidden tests removed
    OUT/answers/psK/psK.ipynb               answer key: the source, executed

``normlab check`` (`normlab_tools.check`) reads a student's notebook with
`read_student_notebook` and runs it through the grader's own pipeline.

Grading settings shared by nbgrader (through nbgrader_config.py), `normlab grade` and
`normlab check` live here, so they cannot drift: `CELL_TIMEOUT`, `BENIGN_STDERR`, and the kernel
(`normlab_tools.kernels.InterpreterKernelManager`, this interpreter's IPython) with the
autograde pipeline that honours it (`autograde_preprocessors`).

Every graded cell's ``grade_id`` starts with its assignment, e.g. ``ps1_test_bn_forward_2d``,
so a notebook says which assignment it belongs to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

from normlab_tools.errors import UserError
from normlab_tools.kernels import KERNEL_MANAGER

COURSE_ID = "normlab"
CELL_TIMEOUT = 60  # seconds per cell, when grading and in `normlab check`
ANSWER_KEY_TIMEOUT = 600  # seconds per cell for the full-length answer-key runs
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# Stderr lines that are not the student's doing; nbgrader drops a stderr output that matches.
BENIGN_STDERR = (
    r"Matplotlib is building the font cache"
    r"|Debugger warning: It seems that frozen modules are being used"
    r"|Kernel is running over TCP without encryption"
)
ASSIGNMENT_ID = re.compile(r"ps\d+")
CHECK_SWITCH = "NORMLAB_CHECK"  # "off": the notebook's check cell does nothing (answer keys)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # lib/normlab/assignments.py -> the project

# --- the grading kernel ------------------------------------------------------------------


def scripts_on_path() -> None:
    """Put this environment's scripts folder (next to sys.executable) first on PATH.

    nbgrader runs the `alembic` command from PATH when it creates a gradebook: from an
    environment that is not activated (``.venv/bin/normlab ...``) it fails, or runs
    another environment's alembic.
    """
    scripts = str(Path(sys.executable).parent)
    paths = os.environ.get("PATH", "").split(os.pathsep)
    if paths[0] != scripts:
        os.environ["PATH"] = os.pathsep.join([scripts] + [p for p in paths if p != scripts])


# nbgrader's Execute, but with the kernel manager the config names (see its docstring)
EXECUTE = "normlab_tools.grading.execute.ConfiguredExecute"


def autograde_preprocessors() -> list:
    """nbgrader's autograde pipeline with `EXECUTE` in place of its Execute, for
    nbgrader_config.py: the plain ``nbgrader autograde`` command then runs every notebook
    on this interpreter's kernel (``Execute.kernel_manager_class``)."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    return [EXECUTE if step is Execute else step for step in Autograde.autograde_preprocessors.default()]


HIDE_HIDDEN_TESTS = "normlab_tools.grading.feedback.HideHiddenTests"


def feedback_preprocessors() -> list:
    """nbgrader's feedback pipeline with `HIDE_HIDDEN_TESTS` first, for nbgrader_config.py."""
    from nbgrader.converters import GenerateFeedback

    return [HIDE_HIDDEN_TESTS, *GenerateFeedback.preprocessors.default()]


def execution_config():
    """The traitlets Config of notebook execution: kernel, timeout, stderr filter.

    nbgrader_config.py sets the same values from the same constants; `normlab check`
    uses this directly.
    """
    from traitlets.config import Config

    config = Config()
    config.Execute.kernel_manager_class = KERNEL_MANAGER
    config.Execute.timeout = CELL_TIMEOUT
    config.IgnorePattern.enabled = True
    config.IgnorePattern.pattern = BENIGN_STDERR
    return config


# --- nbgrader course directories ------------------------------------------------------------


def load_course_config(course_dir):
    """The Config of an nbgrader course directory: its nbgrader_config.py, rooted there.

    In-process `NbGraderAPI` objects do not read nbgrader_config.py themselves.
    """
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir).resolve()
    config = Config()
    if (course_dir / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    config.CourseDirectory.root = str(course_dir)
    return config


def nbgrader_api(course_dir):
    """An in-process `NbGraderAPI` for the course directory (≈ 1 s per autograde, against
    ≈ 4 s for the `nbgrader` command, most of it start-up)."""
    from nbgrader.apps import NbGraderAPI

    scripts_on_path()
    return NbGraderAPI(config=load_course_config(course_dir))


def assignment_ids(root) -> list[str]:
    """The assignments of the project at `root`: the psK folders of assignments/source/."""
    source = Path(root) / "assignments" / "source"
    folders = sorted(source.iterdir(), key=lambda p: (len(p.name), p.name)) if source.is_dir() else []
    return [p.name for p in folders if p.is_dir() and ASSIGNMENT_ID.fullmatch(p.name)]


def read_jupytext(path):
    """A Jupytext percent file as a notebook, without Jupytext pairing metadata (a paired
    file in nbgrader's folders could carry solutions into a release)."""
    import jupytext

    notebook = jupytext.read(path, fmt="py:percent")
    notebook.metadata.get("jupytext", {}).pop("formats", None)
    return notebook


def convert_sources(root, course_dir, assignment_id: str) -> list[Path]:
    """assignments/source/psK/*.py -> COURSE/source/psK/*.ipynb (the folder is replaced)."""
    import nbformat

    source = Path(root) / "assignments" / "source" / assignment_id
    target = Path(course_dir) / "source" / assignment_id
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    written = []
    for path in sorted(source.iterdir()):
        if path.suffix == ".py":
            out = target / f"{path.stem}.ipynb"
            nbformat.write(read_jupytext(path), out)
            written.append(out)
        elif path.is_file():
            shutil.copy2(path, target / path.name)  # data files the notebook reads
    return written


class AssignmentRow(NamedTuple):
    """One line of the build table."""

    name: str
    seconds: float
    status: str  # "ok" or "failed: <one line>"


def build_assignments(root, out, only=None) -> list[AssignmentRow]:
    """Build the assignments of the project at `root` into `out` (see the module docstring):
    all of them, or those named in `only` (e.g. ``["ps2"]``).

    Per assignment: the student release (nbgrader generate_assignment, in-process) and the
    answer key (the source notebook executed on the grading kernel). Returns one row per
    product; a failure is reported in its row and stops nothing else.
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    config_file = root / "assignments" / "nbgrader_config.py"
    if not config_file.is_file():
        raise UserError(f"{config_file} is missing: the assignments need the course's nbgrader settings")
    known = assignment_ids(root)
    unknown = [name for name in (only or []) if name not in known]
    if unknown:
        raise UserError(f"no assignment {', '.join(unknown)} in {root / 'assignments' / 'source'} "
                        f"(assignments: {', '.join(known) or 'none'})")
    course_dir = out / "nbgrader"
    course_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(config_file, course_dir / "nbgrader_config.py")
    rows = []
    for assignment_id in [name for name in known if not only or name in only]:
        start = time.perf_counter()
        try:
            notebooks = convert_sources(root, course_dir, assignment_id)
            status = _generate_release(course_dir, assignment_id)
        except Exception as error:  # one broken assignment stops nothing else
            notebooks, status = [], f"failed: {type(error).__name__}: {error}"
        rows.append(AssignmentRow(f"nbgrader/release/{assignment_id}", time.perf_counter() - start, status))
        for notebook in notebooks:
            start = time.perf_counter()
            target = out / "answers" / assignment_id / notebook.name
            status = _execute_answer_key(notebook, target)
            rows.append(AssignmentRow(f"answers/{assignment_id}/{notebook.stem}",
                                      time.perf_counter() - start, status))
    return rows


def _generate_release(course_dir: Path, assignment_id: str) -> str:
    result = nbgrader_api(course_dir).generate_assignment(assignment_id)
    if result.get("success"):
        return "ok"
    return "failed: " + nbgrader_error(result)


def nbgrader_error(result: dict) -> str:
    """The most telling line of a failed NbGraderAPI call's log: the exception, if any."""
    lines = [line.strip() for line in (result.get("log") or "").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"\w+(\.\w+)*(Error|Exception): ", line)]
    if errors:
        return errors[0]
    marked = [line for line in lines if line.startswith("[ERROR]")]
    if marked:
        return marked[0]
    error = (result.get("error") or "").strip().splitlines()
    return error[-1] if error else "nbgrader failed"


def _execute_answer_key(notebook_path: Path, target: Path) -> str:
    """Run the source notebook top to bottom (full length: not in grading mode) and save it."""
    import nbformat
    from nbclient import NotebookClient

    from normlab_tools.kernels import InterpreterKernelManager

    notebook = nbformat.read(notebook_path, as_version=4)
    target.parent.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(notebook, timeout=ANSWER_KEY_TIMEOUT, kernel_manager_class=InterpreterKernelManager,
                            config=execution_config(),
                            resources={"metadata": {"path": str(notebook_path.parent)}})
    try:
        os.environ[CHECK_SWITCH] = "off"  # the kernel inherits it: the check cell does nothing
        client.execute()
        status = "ok"
    except Exception as error:  # a failing cell is a result
        first = str(error).strip().splitlines()
        status = f"failed: {type(error).__name__}" + (f": {first[-1]}" if first else "")
    finally:
        os.environ.pop(CHECK_SWITCH, None)
    nbformat.write(notebook, target)
    return status


# --- the notebook a student checks (normlab_tools.check) ------------------------------------


def read_student_notebook(path, assignment_id: str | None):
    """Read a notebook to check, or raise UserError saying in one line what is wrong;
    ``assignment_id`` None: any course notebook with graded cells."""
    import nbformat

    if assignment_id is not None and not ASSIGNMENT_ID.fullmatch(assignment_id):
        raise UserError(f"{assignment_id!r} is not an assignment name like ps1")
    path = Path(path)
    if not path.exists():
        with_suffix = path.with_name(path.name + ".ipynb")
        if path.suffix != ".ipynb" and with_suffix.is_file():
            raise UserError(f"no such file: {path}; did you mean {with_suffix}?")
        raise UserError(f"no such file: {path}" + ("" if path.suffix == ".ipynb" else
                                                   " (a notebook's file name ends in .ipynb)"))
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the notebook file, e.g. {path / (assignment_id + '.ipynb')}")
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a notebook: it is not text (UTF-8)") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not a valid notebook: invalid JSON at line {error.lineno}, "
                        f"column {error.colno} ({error.msg}); restore it from a checkpoint or "
                        "re-download the release") from None
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} is not a valid Jupyter notebook ({reason})") from None
    _check_belongs_to(notebook, path, assignment_id)
    return notebook


def notebook_assignment(notebook, path) -> str:
    """The assignment a student's notebook belongs to, read from its graded cells' ids
    (``ps1_...``), for `normlab check NOTEBOOK`; UserError when they do not say."""
    owners = _owners(_grade_ids(notebook))
    if len(owners) != 1:
        raise UserError(f"{path}: cannot tell which assignment this is (its graded cells belong to "
                        f"{', '.join(sorted(owners)) or 'none'}); name it: `normlab check ps1 {path}`")
    return owners.pop()


def _owners(grade_ids) -> set[str]:
    """The assignments named by the prefixes of ``grade_ids`` (``ps1_test_...`` -> ps1)."""
    return {match.group(1) for match in (re.match(r"(ps\d+)_", gid) for gid in grade_ids) if match}


def _grade_ids(notebook) -> list[str]:
    return [cell.metadata["nbgrader"]["grade_id"] for cell in notebook.cells
            if "grade_id" in cell.get("metadata", {}).get("nbgrader", {})]


def _check_belongs_to(notebook, path: Path, assignment_id: str | None) -> None:
    ids = _grade_ids(notebook)
    if not ids:
        raise UserError(f"{path} has no nbgrader cells: check the notebook released for "
                        f"{assignment_id or 'the assignment'} (with your answers in it), not a new one")
    if assignment_id is None:
        return
    foreign = [gid for gid in ids if not gid.startswith(assignment_id + "_")]
    if foreign:
        owners = _owners(ids)
        if len(owners) == 1 and all(_owners([gid]) for gid in ids):
            owner = owners.pop()
            raise UserError(f"{path} is a notebook of {owner}, not {assignment_id}: "
                            f"run `normlab check {owner} {path}`")
        raise UserError(f"{path} is not a {assignment_id} notebook: its graded cells "
                        f"({', '.join(foreign[:3])}) are not {assignment_id}'s")
