"""The course directory: what grading needs in it, and what else decides a grade.

`prepare_course` makes sure the course can grade the assignment (its source notebooks,
nbgrader_config.py, the assignment in the gradebook), built from the project's
assignments/ when missing; `make_template` is the gradebook every job starts from;
`settings_key` fingerprints the grading settings; `grading_lock` keeps two runs of one
assignment apart (and, with a SQLite gradebook, two runs of one course).

The course's gradebook is nbgrader's ``c.CourseDirectory.db_url`` of the course's
nbgrader_config.py (`db_url`): by default ``COURSE/gradebook.db`` (SQLite), or a
PostgreSQL server several graders share (`course_gradebook` opens it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
from pathlib import Path

from normlab_tools.errors import UserError


def prepare_course(course_dir: Path, assignment: str) -> list[str]:
    """Make sure `course_dir` can grade `assignment`; return its notebook names. One
    process at a time per course (`course_step`): two runs may create the gradebook."""
    with course_step(course_dir):
        return _prepare_course(course_dir, assignment)


def _prepare_course(course_dir: Path, assignment: str) -> list[str]:
    from nbgrader.api import MissingEntry

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
    with course_gradebook(course_dir) as gradebook:
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
    """The course's gradebook: ``c.CourseDirectory.db_url`` of its nbgrader_config.py,
    else nbgrader's default, ``COURSE/gradebook.db``."""
    course_dir = Path(course_dir).resolve()
    try:
        stat = (course_dir / "nbgrader_config.py").stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = None
    return _db_url(course_dir, version)


@functools.lru_cache(maxsize=64)
def _db_url(course_dir: Path, config_version) -> str:
    """`db_url` for one version of the config file: it is read once per version, not for
    each of a run's several gradebook accesses per student."""
    from normlab_tools.assignments import load_course_config

    configured = load_course_config(course_dir).CourseDirectory.get("db_url")
    return str(configured) if configured else f"sqlite:///{course_dir / 'gradebook.db'}"


def on_server(url: str) -> bool:
    """Whether the gradebook at `url` is a database server (not a SQLite file)."""
    return not url.startswith("sqlite:")


def sqlite_path(url: str) -> Path:
    """The file of a SQLite gradebook's `url`."""
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or "")


def shown_url(url: str) -> str:
    """`url` as it may be printed: its password masked."""
    from urllib.parse import unquote

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return unquote(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def unreachable(course_dir: Path, url: str, error: Exception) -> UserError:
    """The UserError of a course gradebook that cannot be opened."""
    cause = str(getattr(error, "orig", None) or error).strip().splitlines()
    return UserError(f"cannot open the course's gradebook {shown_url(url)}: {cause[0] if cause else error}. "
                     f"Start the database server or fix c.CourseDirectory.db_url in "
                     f"{Path(course_dir) / 'nbgrader_config.py'}, then run the command again")


_KEPT: dict = {}  # db_url -> the Gradebook a run keeps open (`keep_gradebook`)


def _open_gradebook(course_dir: Path, url: str):
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from normlab_tools.assignments import COURSE_ID

    try:
        return Gradebook(url, course_id=COURSE_ID)
    except (ArgumentError, DBAPIError, ImportError) as error:
        raise unreachable(course_dir, url, error) from None


@contextlib.contextmanager
def keep_gradebook(course_dir: Path):
    """Within it, `course_gradebook` lends one Gradebook on the course's gradebook instead
    of opening one per use. SQLAlchemy compiles a query once per engine, and each
    Gradebook has its own: a run that opened a few per student compiled every query
    again for each."""
    url = db_url(course_dir)
    if url in _KEPT:
        yield
        return
    _KEPT[url] = _open_gradebook(course_dir, url)
    try:
        yield
    finally:
        _KEPT.pop(url).close()


@contextlib.contextmanager
def course_gradebook(course_dir: Path):
    """nbgrader's Gradebook on the course's gradebook (`db_url`); a UserError naming the
    gradebook when it cannot be reached or fails."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    url = db_url(course_dir)
    kept = _KEPT.get(url)
    gradebook = kept if kept is not None else _open_gradebook(course_dir, url)
    try:
        yield gradebook
    except (OperationalError, InterfaceError) as error:  # the server went away
        raise unreachable(course_dir, url, error) from None
    finally:
        if kept is None:
            gradebook.close()
        else:  # end the session (what was not committed is rolled back); keep the engine
            gradebook.db.remove()


def scratch_db_url(folder: Path) -> str:
    """A gradebook private to one job or template folder: always SQLite in `folder`,
    whatever the course's gradebook is (the parent copies its rows into that one)."""
    return f"sqlite:///{Path(folder) / 'gradebook.db'}"


def make_template(course_dir: Path, template: Path, assignment: str) -> None:
    """A course directory with a SQLite gradebook holding the course's assignment and no
    submission: what each job's private course directory is copied from (the
    assignment's cells, checksums, points and kernelspec are the course's own). A SQLite
    course gradebook is copied whole, minus its submissions; a server's assignment is
    copied row by row (`_copy_assignment`)."""
    import sqlite3

    from nbgrader.api import Comment, Grade, Gradebook, SubmittedAssignment, SubmittedNotebook

    from normlab_tools.assignments import COURSE_ID

    if template.exists():
        shutil.rmtree(template)
    (template / "source").mkdir(parents=True)
    shutil.copy2(course_dir / "nbgrader_config.py", template / "nbgrader_config.py")
    shutil.copytree(course_dir / "source" / assignment, template / "source" / assignment)
    url = db_url(course_dir)
    if on_server(url):
        with course_gradebook(course_dir) as course, \
                Gradebook(scratch_db_url(template), course_id=COURSE_ID) as copy:
            _copy_assignment(course, copy, assignment)
        return
    with contextlib.closing(sqlite3.connect(sqlite_path(url))) as source, \
            contextlib.closing(sqlite3.connect(template / "gradebook.db")) as copy:
        source.backup(copy)
    with Gradebook(scratch_db_url(template), course_id=COURSE_ID) as gradebook:
        for model in (Grade, Comment, SubmittedNotebook, SubmittedAssignment):
            gradebook.db.query(model).delete()
        gradebook.db.commit()
    with contextlib.closing(sqlite3.connect(template / "gradebook.db")) as copy:
        copy.execute("VACUUM")  # every job copies this file


def _copy_assignment(source, target, assignment: str) -> None:
    """`assignment`'s rows (its notebooks and their cells, with every column) from one
    nbgrader Gradebook into another."""
    from sqlalchemy import inspect

    def columns(row) -> dict:
        keys = {c.key for c in inspect(type(row)).column_attrs} - {"id", "type", "notebook_id", "assignment_id",
                                                                   "course_id"}
        return {key: getattr(row, key) for key in keys - {"name"}}

    record = source.find_assignment(assignment)
    target.update_or_create_assignment(assignment, **columns(record))
    for notebook in record.notebooks:
        target.update_or_create_notebook(notebook.name, assignment, **columns(notebook))
        for kind, cells in (("grade", notebook.grade_cells), ("solution", notebook.solution_cells),
                            ("task", notebook.task_cells), ("source", notebook.source_cells)):
            for cell in cells:
                getattr(target, f"update_or_create_{kind}_cell")(cell.name, notebook.name, assignment,
                                                                 **columns(cell))


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
def grading_lock(course_dir: Path, assignment: str):
    """One `normlab grade` at a time per assignment of the course, a second refused: a
    lock file in COURSE/grading/psK/ and, on a PostgreSQL gradebook, a lock in the server
    (graders on other machines share it). With a SQLite gradebook also one run per course
    (COURSE/grading/.lock): a file gradebook is one machine's, written by one run at a time."""
    from normlab_tools.assignments import COURSE_ID

    course_dir = Path(course_dir)
    url = db_url(course_dir)
    with contextlib.ExitStack() as held:
        held.enter_context(_file_lock(course_dir / "grading" / assignment / ".lock",
                                      f"another `normlab grade {assignment}` is running on this course"))
        if not on_server(url):
            held.enter_context(_file_lock(course_dir / "grading" / ".lock",
                                          "another `normlab grade` is running on this course"))
        elif url.startswith("postgresql"):
            held.enter_context(_server_lock(course_dir, url, f"normlab grade {COURSE_ID} {assignment}",
                                            f"another `normlab grade {assignment}` is running on the course's "
                                            f"gradebook {shown_url(url)} (from another course directory)"))
        yield


@contextlib.contextmanager
def course_step(course_dir: Path):
    """Wait for, then hold, the course-wide lock of the steps two runs of different
    assignments must not interleave (creating the course and its gradebook)."""
    import fcntl

    from normlab_tools.assignments import COURSE_ID

    path = Path(course_dir) / "grading" / ".step.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle, contextlib.ExitStack() as held:
        fcntl.flock(handle, fcntl.LOCK_EX)
        url = db_url(course_dir)
        if url.startswith("postgresql"):
            held.enter_context(_server_lock(course_dir, url, f"normlab course step {COURSE_ID}", wait=True))
        yield


@contextlib.contextmanager
def _file_lock(path: Path, busy: str):
    """An exclusive lock on the file `path`; UserError `busy` when another process has it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{busy} (lock: {path}); wait for it to finish") from None
        yield


@contextlib.contextmanager
def _server_lock(course_dir: Path, url: str, name: str, busy: str = "", wait: bool = False):
    """A PostgreSQL advisory lock named `name`, held by one connection for as long as
    the block runs (the server drops it if this process dies); UserError `busy` when
    another session holds it, unless `wait`."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, DBAPIError

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    engine = None
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        connection = engine.connect()
    except (ArgumentError, DBAPIError, ImportError) as error:
        if engine is not None:
            engine.dispose()
        raise unreachable(course_dir, url, error) from None
    try:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        elif not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            raise UserError(f"{busy}; wait for it to finish")
        yield
    finally:
        connection.close()  # ends the session, and its advisory locks with it
        engine.dispose()


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
