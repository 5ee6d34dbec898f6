"""The course directory: what grading needs in it, and what else decides a grade.

`prepare_course` makes sure the course can grade the assignment (its source notebooks,
nbgrader_config.py, the assignment in the gradebook), built from the project's
assignments/ when missing; `make_template` is the gradebook every job starts from;
`settings_key` fingerprints the grading settings; `course_lock` keeps two runs apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

from normlab_tools.errors import UserError


def prepare_course(course_dir: Path, assignment: str) -> list[str]:
    """Make sure `course_dir` can grade `assignment`; return its notebook names."""
    from normlab_tools import assignments

    source = course_dir / "source" / assignment
    project_source = assignments.PACKAGE_ROOT / "assignments" / "source" / assignment
    if not list(source.glob("*.ipynb")):
        if not project_source.is_dir():
            raise UserError(f"no notebooks in {source}, and the project has no assignment {assignment}")
        course_dir.mkdir(parents=True, exist_ok=True)
        assignments.convert_sources(assignments.PACKAGE_ROOT, course_dir, assignment)
    config = course_dir / "nbgrader_config.py"
    if not config.is_file():
        project_config = assignments.PACKAGE_ROOT / "assignments" / "nbgrader_config.py"
        if not project_config.is_file():
            raise UserError(f"{config} is missing")
        shutil.copy2(project_config, config)
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url(course_dir), course_id=assignments.COURSE_ID) as gradebook:
        try:
            gradebook.find_assignment(assignment)
            known = True
        except MissingEntry:
            known = False
    if not known:
        result = assignments.nbgrader_api(course_dir).generate_assignment(assignment)
        if not result.get("success"):
            raise UserError(f"nbgrader generate_assignment {assignment} failed: "
                            f"{assignments.nbgrader_error(result)}")
    return sorted(p.stem for p in source.glob("*.ipynb"))


def course_timeout(course_dir: Path) -> int:
    """The per-cell timeout the course's nbgrader_config.py sets (the project's default)."""
    from normlab_tools.assignments import CELL_TIMEOUT, load_course_config

    timeout = load_course_config(course_dir).Execute.get("timeout")
    return int(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else CELL_TIMEOUT


def db_url(course_dir: Path) -> str:
    """The course's gradebook."""
    return f"sqlite:///{course_dir / 'gradebook.db'}"


def scratch_db_url(folder: Path) -> str:
    """A gradebook private to one job or template folder: always SQLite in `folder`,
    whatever the course's gradebook is (the parent copies its rows into that one)."""
    return f"sqlite:///{Path(folder) / 'gradebook.db'}"


def make_template(course_dir: Path, template: Path, assignment: str) -> None:
    """A course directory with the course's gradebook minus every submission: what each
    job's private course directory is copied from (the assignment's cells, checksums and
    points are the course's own)."""
    import sqlite3

    from nbgrader.api import Comment, Grade, Gradebook, SubmittedAssignment, SubmittedNotebook

    from normlab_tools.assignments import COURSE_ID

    if template.exists():
        shutil.rmtree(template)
    (template / "source").mkdir(parents=True)
    shutil.copy2(course_dir / "nbgrader_config.py", template / "nbgrader_config.py")
    shutil.copytree(course_dir / "source" / assignment, template / "source" / assignment)
    with contextlib.closing(sqlite3.connect(course_dir / "gradebook.db")) as source, \
            contextlib.closing(sqlite3.connect(template / "gradebook.db")) as copy:
        source.backup(copy)
    with Gradebook(scratch_db_url(template), course_id=COURSE_ID) as gradebook:
        for model in (Grade, Comment, SubmittedNotebook, SubmittedAssignment):
            gradebook.db.query(model).delete()
        gradebook.db.commit()
    with contextlib.closing(sqlite3.connect(template / "gradebook.db")) as copy:
        copy.execute("VACUUM")  # every job copies this file


def grade_ids_in_order(course_dir: Path, assignment: str, notebooks: list[str]) -> list[tuple[str, str, float]]:
    """(notebook, grade_id, points) of every graded cell, in notebook order."""
    import nbformat

    cells = []
    for name in notebooks:
        notebook = nbformat.read(course_dir / "source" / assignment / f"{name}.ipynb", as_version=4)
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") or (meta.get("task") and meta.get("points")):
                cells.append((name, meta["grade_id"], float(meta.get("points", 0))))
    return cells


def settings_key(course_dir: Path, assignment: str, timeout: int, sandboxed: bool) -> str:
    """What else decides a grade: the assignment's source, the timeout, the sandbox."""
    from normlab import __version__

    import nbformat

    h = hashlib.sha256(f"{__version__}|{timeout}|{sandboxed}".encode())
    for path in sorted((course_dir / "source" / assignment).rglob("*")):
        if path.suffix == ".ipynb":  # cells only: ids and metadata change on every conversion
            cells = nbformat.read(path, as_version=4).cells
            content = [(c.cell_type, c.source, c.metadata.get("nbgrader", {})) for c in cells]
            h.update(path.name.encode() + json.dumps(content, sort_keys=True).encode())
        elif path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def course_lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `normlab grade` is running on this course (lock: {path})") from None
        yield


def imported_modules(notebook) -> list[str]:
    """Modules the notebook's code imports at top level (what every kernel pays for)."""
    import ast

    names = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
                # `from normlab import data` imports the submodule normlab.data too
                names += [f"{node.module}.{alias.name}" for alias in node.names
                          if _is_submodule(f"{node.module}.{alias.name}")]
    return names


def _is_submodule(name: str) -> bool:
    """Whether `name` is a module, found on the file system without importing anything."""
    from importlib.machinery import PathFinder

    locations = None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        if depth > 1 and locations is None:  # the parent is a module, not a package
            return False
        spec = PathFinder.find_spec(".".join(parts[:depth]), locations)
        if spec is None:
            return False
        locations = spec.submodule_search_locations
    return True


def quiet_nbgrader() -> None:
    """nbgrader 0.9's gradebook code trips SQLAlchemy 2's session warnings (harmless)."""
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)
