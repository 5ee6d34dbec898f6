"""The graded assignments ps1 and ps2, end to end with real nbgrader.

Slow tests (``-m slow``) build each assignment (release and answer key) once per session,
into a temporary nbgrader course (conftest's `nbgrader_course`), and check, per assignment: the source scores full marks and its test cells write no stderr
(nbgrader validate); the release scores 0; one plausible mistake per graded function
loses that function's points and no others (exact scores per grade_id from the
gradebook); a deleted test cell is put back. The mistake catalogue (every planted
mistake, `MISTAKES`) is replayed in one kernel per assignment, scored with nbgrader's
own rule. Fast tests cover the sources' metadata and the configuration; `normlab check`
is tests/test_check.py.
"""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from normlab_tools import assignments
from mistakes import ps1 as ps1_catalogue
from mistakes import ps2 as ps2_catalogue
from support import ROOT, cell_by_id, graded, plant, source_notebook

ASSIGNMENTS = ["ps1", "ps2"]
TOTAL_POINTS = {"ps1": 25, "ps2": 25}


MISTAKES = {"ps1": ps1_catalogue.MISTAKES, "ps2": ps2_catalogue.MISTAKES}

# --- helpers (the shared ones are in support.py and conftest.py) --------------------------------


def expected_scores(assignment_id, loses=frozenset()):
    points = graded(source_notebook(assignment_id))
    return {gid: (0.0 if gid in loses else float(p)) for gid, p in points.items()}


def autograde(course, student, notebook):
    """Submit and autograde; {grade_id: score}. ps1 and ps2 have nothing graded by hand."""
    scores, needs_manual_grade = course.grade(student, notebook)
    assert not needs_manual_grade
    return scores


# --- fast: the sources and the configuration -----------------------------------------------------


def test_no_notebook_files_are_committed():
    assert not list((ROOT / "assignments").rglob("*.ipynb"))


def test_assignment_ids_and_unknown_names(tmp_path):
    assert set(ASSIGNMENTS) <= set(assignments.assignment_ids(ROOT))
    with pytest.raises(assignments.UserError, match="no assignment ps99"):
        assignments.build_assignments(ROOT, tmp_path / "build", only=["ps99"])
    assert not (tmp_path / "build").exists()  # refused before anything is written


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_metadata(assignment_id):
    notebook = source_notebook(assignment_id)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "duplicate grade_ids"
    assert all(gid.startswith(assignment_id + "_") for gid in ids), "every grade_id names its assignment"
    tests = graded(notebook)
    assert all(points > 0 for points in tests.values())
    assert sum(tests.values()) == TOTAL_POINTS[assignment_id]
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta["locked"] and not meta["solution"], meta["grade_id"]
        if meta.get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and not meta["locked"], meta["grade_id"]
    every_mistake_cell = {m.cell for m in MISTAKES[assignment_id]}
    solution_cells = {c.metadata.nbgrader["grade_id"] for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("solution")}
    assert every_mistake_cell == solution_cells, "every solution cell has planted mistakes"
    graded_end_to_end = {m.cell for m in MISTAKES[assignment_id] if m.nbgrader}
    functions = {cell for cell in solution_cells if not cell.startswith(f"{assignment_id}_q_")}
    assert graded_end_to_end == functions, "one mistake per graded function goes through nbgrader"


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_every_test_cell_is_covered_by_a_mistake(assignment_id):
    """Each test cell has at least one planted mistake that it alone (or with its siblings) catches."""
    caught = set().union(*(m.loses for m in MISTAKES[assignment_id]))
    assert caught == set(graded(source_notebook(assignment_id)))


def test_course_config(tmp_path):
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", tmp_path)
    config = assignments.load_course_config(tmp_path)
    assert config.CourseDirectory.course_id == "normlab"
    assert config.CourseDirectory.root == str(tmp_path.resolve())
    assert config.Execute.timeout == assignments.CELL_TIMEOUT
    assert config.Execute.kernel_manager_class == "normlab_tools.kernels.InterpreterKernelManager"
    assert config.ClearSolutions.code_stub == {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    assert config.IgnorePattern.enabled and config.IgnorePattern.pattern == assignments.BENIGN_STDERR
    assert config.OverwriteCells.add_missing_cells is True
    assert config.GenerateFeedback.preprocessors[0] == assignments.HIDE_HIDDEN_TESTS  # then nbgrader's own


def test_benign_stderr_pattern():
    pattern = re.compile(assignments.BENIGN_STDERR)
    assert pattern.search("Matplotlib is building the font cache; this may take a moment.\n")
    assert not pattern.search("RuntimeWarning: divide by zero encountered in divide")


# --- slow: the real nbgrader pipeline --------------------------------------------------------------


@pytest.fixture
def course(nbgrader_course, assignment_id):
    """The assignment's course (conftest), built once per session with build_assignments:
    the release and the executed answer key."""
    course = nbgrader_course(assignment_id)
    course.build()
    return course


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_build_assignments(course, assignment_id):
    aid = assignment_id
    assert [(row.name, row.status) for row in course.build()] == [
        (f"nbgrader/release/{aid}", "ok"), (f"answers/{aid}/{aid}", "ok")]
    release = course.path("release").read_text()
    assert "BEGIN SOLUTION" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "raise NotImplementedError()" in release
    assert "not the right choice" not in release  # hidden tests are gone
    answers = nbformat.read(course.out / "answers" / aid / f"{aid}.ipynb", as_version=4)
    outputs = [o for c in answers.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    assert not list((course.dir / "source" / aid).glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_full_marks_release_zero(course, assignment_id):
    assert autograde(course, "perfect", course.notebook("source")) == expected_scores(assignment_id)
    assert autograde(course, "blank", course.notebook("release")) == {
        gid: 0.0 for gid in expected_scores(assignment_id)}


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_validate_source_no_stderr(course, assignment_id):
    """nbgrader validate (in-process) passes the source: every test passes, no stderr."""
    from nbgrader.validator import Validator

    validator = Validator(config=assignments.load_course_config(course.dir))
    assert validator.validate(str(course.path("source"))) == {}


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id, m", [(aid, m) for aid in ASSIGNMENTS for m in MISTAKES[aid] if m.nbgrader],
                         ids=lambda v: v if isinstance(v, str) else v.cell)
def test_planted_mistake_loses_only_its_points(course, assignment_id, m):
    student = re.sub(r"\W+", "_", m.name)[:40]
    assert autograde(course, student, plant(source_notebook(assignment_id), m)) == \
        expected_scores(assignment_id, m.loses)


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ["ps1"])
def test_deleted_or_edited_test_cells_are_restored(course, assignment_id):
    """add_missing_cells puts a deleted test cell back; an edited one is overwritten."""
    m = next(m for m in MISTAKES["ps1"] if m.cell == "ps1_identity" and m.nbgrader)
    notebook = plant(source_notebook("ps1"), m)
    cell_by_id(notebook, "ps1_test_identity").source = "pass  # the student made the test pass"
    notebook.cells.remove(cell_by_id(notebook, "ps1_test_curvature"))
    assert autograde(course, "tamperer", notebook) == expected_scores("ps1", {"ps1_test_identity"})


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_mistake_catalogue(assignment_id, grading_kernel):
    """Every planted mistake in `MISTAKES` loses exactly the points of its `loses` test
    cells and no others. Replayed in one grading kernel (conftest's `grading_kernel`,
    NBGRADER_EXECUTION=autograde), the namespace reset with %reset before each notebook.
    The ungraded demonstrations (cells named *_demo) are skipped: no test may depend on
    them, which the unplanted run checks; the nbgrader tests above run them."""
    points = graded(source_notebook(assignment_id))

    def scores(notebook):
        cells = [(c.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}"), c.source)
                 for i, c in enumerate(notebook.cells) if c.cell_type == "code"
                 and not c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("_demo")]
        failed = grading_kernel.failed(cells, reset="magic")
        return {gid: 0.0 if failed[gid] else float(p) for gid, p in points.items()}

    failures = []
    assert scores(source_notebook(assignment_id)) == expected_scores(assignment_id)
    for m in MISTAKES[assignment_id]:
        got = scores(plant(source_notebook(assignment_id), m))
        if got != expected_scores(assignment_id, m.loses):
            lost = sorted(gid for gid, score in got.items() if score < points[gid])
            failures.append(f"{m.name}: lost {lost}, expected {sorted(m.loses)}")
    assert not failures, "\n".join(failures)
