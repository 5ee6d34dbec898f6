"""Fixtures shared by the test modules.

What several tests need built is built once per session, into pytest's temporary folders
(never into the checkout's build/), the first time a test asks for it, so the slow tests
run in any order and alone:

- `nbgrader_course(aid)`: an nbgrader course for one assignment; ``.release()``
  generates its student release, ``.build()`` runs
  ``normlab_tools.assignments.build_assignments`` for it (release and executed answer
  key); ``.submit`` and ``.autograde`` grade a notebook with nbgrader.
- `executed_lectures`: every lecture of course/ executed (two at a time) into
  ``<tmp>/course/NN_name.ipynb`` with its HTML page, as `normlab build` lays them out and
  through its execution cache (``<tmp>/.jupyter_cache``), so tests/test_slides.py and
  tests/test_site.py make the slides and the site from the notebooks tests/test_lectures.py
  checked, and a build into ``<tmp>`` runs none of them again.
- `grading_kernel`: one grading kernel that replays many notebooks (the mistake catalogues).

Plain helpers that modules need at import time (the planted mistakes) are in support.py.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from support import LECTURES, ROOT, time_limit


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and 2 threads collapse on a shared machine.
    Use it in a module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


from hypothesis import settings  # noqa: E402

# Reproducible property tests: the same examples on every run and in CI.
settings.register_profile("normlab", derandomize=True, deadline=None, max_examples=40)
settings.load_profile("normlab")


# --- the assignments: one nbgrader course per assignment and session -----------------------------


class Course:
    """An nbgrader course directory (``out/nbgrader``) in a temporary folder for one
    assignment, whose release (or release and answer key) is made at most once."""

    def __init__(self, assignment_id, out: Path):
        self.assignment_id, self.out, self.dir = assignment_id, out, out / "nbgrader"
        self.rows = None  # build_assignments' rows, once built
        self.released = False

    def build(self):
        """build_assignments for this assignment (its release and its executed answer key
        in out/answers/); returns its rows."""
        from normlab_tools import assignments

        if self.rows is None:
            self.rows = assignments.build_assignments(ROOT, self.out, only=[self.assignment_id])
            self.released = True
        return self.rows

    def release(self) -> Path:
        """The course directory with the release generated (no answer key unless built)."""
        import shutil

        from normlab_tools import assignments

        if not self.released:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "assignments" / "nbgrader_config.py", self.dir)
            assignments.convert_sources(ROOT, self.dir, self.assignment_id)
            result = assignments.nbgrader_api(self.dir).generate_assignment(self.assignment_id)
            assert result["success"], assignments.nbgrader_error(result)
            self.released = True
        return self.dir

    def path(self, kind) -> Path:
        """The course's "source" or "release" notebook."""
        return self.release() / kind / self.assignment_id / f"{self.assignment_id}.ipynb"

    def notebook(self, kind):
        import nbformat

        return nbformat.read(self.path(kind), as_version=4)

    def submit(self, student, notebook):
        import nbformat

        folder = self.release() / "submitted" / student / self.assignment_id
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, folder / f"{self.assignment_id}.ipynb")

    def autograde(self, student):
        """Autograde in-process; ({grade_id: score}, needs_manual_grade) from the gradebook."""
        from nbgrader.api import Gradebook

        from normlab_tools import assignments

        result = assignments.nbgrader_api(self.release()).autograde(self.assignment_id, student)
        assert result["success"], result["log"][-3000:]
        with Gradebook(f"sqlite:///{self.dir / 'gradebook.db'}", course_id=assignments.COURSE_ID) as gradebook:
            submission = gradebook.find_submission(self.assignment_id, student)
            (notebook,) = submission.notebooks
            return {grade.name: grade.score for grade in notebook.grades}, submission.needs_manual_grade

    def grade(self, student, notebook):
        """submit, then autograde."""
        self.submit(student, notebook)
        return self.autograde(student)


@pytest.fixture(scope="session")
def nbgrader_course(tmp_path_factory):
    """nbgrader_course(assignment_id) -> its `Course`, the same one for the whole session."""
    courses = {}

    def course(assignment_id) -> Course:
        if assignment_id not in courses:
            courses[assignment_id] = Course(assignment_id, tmp_path_factory.mktemp(f"{assignment_id}-build"))
        return courses[assignment_id]

    return course


# --- the assignments: replaying notebooks in one grading kernel -----------------------------------

# Runs a notebook's code cells inside the kernel with IPython's run_cell after emptying the
# namespace, and prints, per cell, whether it raised or wrote to stderr (nbgrader's rule
# for a test cell: either scores 0). One request per notebook instead of one per cell.
# The namespace is emptied by %reset ("magic": it also removes this runner, sent again
# each time) or, cheaper, by deleting the user's names ("names": IPython's own are in
# user_ns_hidden; %reset ends with gc.collect(), about 1 s with torch loaded).
KERNEL_RUNNER = r"""
def _run_notebook_cells(cells, reset):
    import contextlib, io, json
    shell = get_ipython()
    if reset == "magic":
        shell.run_line_magic("reset", "-f")
    else:
        [shell.user_ns.pop(name) for name in list(shell.user_ns)
         if name not in shell.user_ns_hidden and not name.startswith('__')]
    failed = {}
    for name, source in cells:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            result = shell.run_cell(source, store_history=False)
        failed[name] = not result.success or bool(stderr.getvalue())
    print("\nRESULT " + json.dumps(failed))
"""
RESETS = ("magic", "names")


class GradingKernel:
    def __init__(self, client):
        self.client = client

    def failed(self, cells, reset="magic"):
        """Run `cells` ((name, source) pairs) in a fresh namespace; {name: raised or wrote to stderr}."""
        import nbformat

        assert reset in RESETS, reset
        run = nbformat.v4.new_code_cell(KERNEL_RUNNER + f"_run_notebook_cells({list(cells)!r}, {reset!r})")
        self.client.execute_cell(run, 0)
        text = "".join(o.get("text", "") for o in run.outputs if o.output_type == "stream")
        assert "RESULT " in text, run.outputs
        return json.loads(text.rsplit("RESULT ", 1)[1])


@pytest.fixture
def grading_kernel(monkeypatch):
    """A kernel as the grader starts it (NBGRADER_EXECUTION=autograde, this interpreter
    and the execution config), for replaying notebooks with ``.failed(cells, reset)``."""
    import nbformat
    from nbclient import NotebookClient

    from normlab_tools import assignments
    from normlab_tools.kernels import InterpreterKernelManager

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    client = NotebookClient(nbformat.v4.new_notebook(), timeout=10 * assignments.CELL_TIMEOUT,
                            kernel_manager_class=InterpreterKernelManager, config=assignments.execution_config(),
                            allow_errors=True, resources={"metadata": {"path": str(ROOT)}})
    with client.setup_kernel():
        client.nb.cells = [nbformat.v4.new_code_cell()]
        yield GradingKernel(client)


# --- the lectures, executed once per session --------------------------------------------------------

@dataclass
class ExecutedLectures:
    out: Path     # as `normlab build --out` lays it out: out/course/NN_name.ipynb and .html
    errors: dict  # lecture stem -> None, or why it failed (first line: where and what)
    seconds: dict  # lecture stem -> wall time

    def notebook(self, source) -> Path:
        return self.out / "course" / f"{Path(source).stem}.ipynb"


@pytest.fixture(scope="session")
def executed_lectures(tmp_path_factory) -> ExecutedLectures:
    """Every lecture run top to bottom, two at a time, each in its folder
    (out/course/), with a per-cell timeout of three times its budget (60 s, 180 s for
    lecture 08), which only stops a hung notebook: the budget itself is measured by
    `normlab build`'s table, not asserted (wall time on a shared machine is noise)."""
    import time

    from normlab_tools import build, execution_cache

    assert LECTURES, "no lectures in course/"
    out = tmp_path_factory.mktemp("lectures-build")
    executed = ExecutedLectures(out, {}, {})
    execution_cache.open_cache(out)  # run through the build's execution cache, so later builds reuse them

    def run(source):
        target = executed.notebook(source)
        options = build.BuildOptions(root=ROOT, out=out, timeout=3 * time_limit(source))
        start = time.perf_counter()
        _, error = build.executed_notebook(source, target, options)
        seconds = time.perf_counter() - start
        if error is None:
            build.export_html(target, target.with_suffix(".html"))
        executed.errors[source.stem], executed.seconds[source.stem] = error, seconds

    (out / "course").mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, LECTURES))
    return executed
