"""Problem sets 3 and 4 end to end with real nbgrader, on the machinery of conftest.py and
support.py that test_assignments.py uses too.

Slow tests (``-m slow``) make an nbgrader course per problem set, once per session
(conftest's `nbgrader_course`: the release generated, no answer key: ps4's trains for
minutes) and check, per problem set: the
source scores full autograded marks (ps4's written answers wait for manual grading), the
release scores 0 and needs no manual grading, and nbgrader validate sees every test pass
without stderr. For ps3, one plausible mistake per graded class or function goes through
nbgrader and loses exactly its own test cells' points. In one grading kernel per problem
set (ps4 in grading mode, where its training is short): each solution cell replaced by its
release stub loses exactly its own test cells (a function's tests depend on that function
only), and every planted mistake of the catalogue `MISTAKES` loses exactly its `loses`.
"""

from __future__ import annotations

import re

import pytest

from normlab_tools import assignments
from mistakes import ps3 as ps3_catalogue
from mistakes import ps4 as ps4_catalogue
from support import cell_by_id, copy_notebook, graded, plant, source_notebook

ASSIGNMENTS = ["ps3", "ps4"]
TOTAL_POINTS = {"ps3": 30, "ps4": 30}
MANUAL_POINTS = {"ps3": 0, "ps4": 12}

MISTAKES = {"ps3": ps3_catalogue.MISTAKES, "ps4": ps4_catalogue.MISTAKES}

# --- helpers (the shared ones are in support.py and conftest.py) --------------------------------


def expected_scores(assignment_id, loses=frozenset()):
    """Autograded cells: full points unless lost; written answers: 0 until a TA grades them."""
    notebook = source_notebook(assignment_id)
    scores = {gid: (0.0 if gid in loses else float(p)) for gid, p in graded(notebook, "code").items()}
    return scores | {gid: 0.0 for gid in graded(notebook, "markdown")}


def owners(notebook):
    """grade_id of every autograded test cell -> the solution cell it tests: the last one before it."""
    owner, result = None, {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            owner = meta["grade_id"]
        elif cell.cell_type == "code" and meta.get("grade"):
            result[meta["grade_id"]] = owner
    return result


def released(notebook):
    """A copy of the notebook with nbgrader's release stubs in place of the solutions."""
    from nbgrader.preprocessors import ClearSolutions

    return ClearSolutions(code_stub={"python": assignments.CODE_STUB}).preprocess(copy_notebook(notebook), {})[0]


# --- fast: the sources -------------------------------------------------------------------------


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_metadata(assignment_id):
    notebook = source_notebook(assignment_id)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "duplicate grade_ids"
    assert all(gid.startswith(assignment_id + "_") for gid in ids), "every grade_id names its assignment"
    tests, written = graded(notebook, "code"), graded(notebook, "markdown")
    assert all(points > 0 for points in {**tests, **written}.values())
    assert sum(tests.values()) + sum(written.values()) == TOTAL_POINTS[assignment_id]
    assert sum(written.values()) == MANUAL_POINTS[assignment_id]
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            assert meta["locked"] and not meta["solution"], meta["grade_id"]
        if meta.get("grade") and cell.cell_type == "markdown":  # a written answer, graded by hand
            assert meta["solution"] and not meta["locked"], meta["grade_id"]
        if meta.get("solution") and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source and not meta["locked"], meta["grade_id"]
        if cell.cell_type == "code" and not meta.get("solution"):
            assert "BEGIN SOLUTION" not in cell.source, meta.get("grade_id")
    solution_cells = {c.metadata.nbgrader["grade_id"] for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    assert {m.cell for m in MISTAKES[assignment_id]} == solution_cells, "every solution cell has planted mistakes"
    if assignment_id == "ps3":
        functions = {cell for cell in solution_cells if not cell.startswith("ps3_q_")}
        assert {m.cell for m in MISTAKES["ps3"] if m.nbgrader} == functions, \
            "one mistake per graded class or function goes through nbgrader"


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_every_test_cell_is_covered_by_a_mistake(assignment_id):
    caught = set().union(*(m.loses for m in MISTAKES[assignment_id]))
    assert caught == set(graded(source_notebook(assignment_id), "code"))


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_mistakes_lose_only_their_own_tests(assignment_id):
    """A mistake in a function can only cost the test cells of that function; only a
    correct float32 variant (category float32) costs nothing."""
    owner = owners(source_notebook(assignment_id))
    for m in MISTAKES[assignment_id]:
        assert (m.loses or m.category == "float32") and all(owner[gid] == m.cell for gid in m.loses), m.name


def test_ps4_shortens_training_when_graded():
    """Under NBGRADER_EXECUTION the experiments run with fewer epochs, images and seeds."""
    setup = cell_by_id(source_notebook("ps4"), "ps4_setup").source
    assert 'GRADING = "NBGRADER_EXECUTION" in os.environ' in setup
    for name in ("EPOCHS", "TRAIN_LIMIT", "SEEDS"):
        assert re.search(rf"^{name} = .+ if GRADING else ", setup, re.M), name


# --- slow: the real nbgrader pipeline -------------------------------------------------------------


@pytest.fixture
def course(nbgrader_course, assignment_id):
    """The problem set's course (conftest), its release generated once per session."""
    course = nbgrader_course(assignment_id)
    course.release()
    return course


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_release(course, assignment_id):
    release = course.path("release").read_text()
    assert "BEGIN SOLUTION" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "raise NotImplementedError()" in release
    assert "not the right choice" not in release and "_reference_probe" not in release  # hidden tests are gone
    notebook = course.notebook("release")
    for gid in graded(source_notebook(assignment_id), "markdown"):
        assert cell_by_id(notebook, gid).source == "YOUR ANSWER HERE", gid


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_full_marks_release_zero(course, assignment_id):
    scores, needs_manual = course.grade("perfect", course.notebook("source"))
    assert scores == expected_scores(assignment_id)
    assert needs_manual == bool(MANUAL_POINTS[assignment_id])  # the written answers wait for a TA
    scores, needs_manual = course.grade("blank", course.notebook("release"))
    assert scores == {gid: 0.0 for gid in expected_scores(assignment_id)} and not needs_manual


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_validate_source_no_stderr(course, assignment_id):
    """nbgrader validate (in-process) passes the source: every test passes, no stderr."""
    from nbgrader.validator import Validator

    validator = Validator(config=assignments.load_course_config(course.dir))
    assert validator.validate(str(course.path("source"))) == {}


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ["ps3"])
@pytest.mark.parametrize("m", [m for m in MISTAKES["ps3"] if m.nbgrader], ids=lambda m: m.cell)
def test_ps3_planted_mistake_loses_only_its_points(course, assignment_id, m):
    student = re.sub(r"\W+", "_", m.name)[:40]
    scores, _ = course.grade(student, plant(source_notebook("ps3"), m))
    assert scores == expected_scores("ps3", m.loses)


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_tests_depend_only_on_their_function_and_mistake_catalogue(assignment_id, grading_kernel):
    """In one grading kernel (conftest's `grading_kernel`, NBGRADER_EXECUTION=autograde),
    the namespace emptied before each notebook by deleting the user's names (the cheaper
    reset: ~50 notebooks here); the ungraded demonstrations (*_demo, among them ps4's
    grid of experiments) are skipped, so no test may depend on them.

    1. Each solution cell alone answered, every other one left as its release stub (raise
       NotImplementedError): its own tests (the test cells after it) pass and all others
       fail. So a function's tests depend on that function only (and the given cells), and
       the source's answers pass their tests.
    2. So each planted mistake in `MISTAKES` needs only its own function's tests: it must
       lose exactly its `loses` cells.
    """
    assert_tests_depend_only_on_their_function(assignment_id, MISTAKES[assignment_id], grading_kernel)


def assert_tests_depend_only_on_their_function(assignment_id, mistakes, grading_kernel):
    """The body of the test above, for any assignment and its catalogue's `mistakes`."""
    source = source_notebook(assignment_id)
    owner = owners(source)
    stubs = released(source)

    def lost(notebook, tests=None):
        """The test cells that fail (raise or write to stderr): all of them, or only `tests`."""
        cells = []
        for i, c in enumerate(notebook.cells):
            gid = c.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
            if c.cell_type != "code" or gid.endswith("_demo"):
                continue
            if tests is None or gid not in owner or gid in tests:
                cells.append((gid, c.source))
        failed = grading_kernel.failed(cells, reset="names")
        return {gid for gid in owner if failed.get(gid)}

    failures = []
    for function in sorted(set(owner.values())):
        notebook = copy_notebook(stubs)
        cell_by_id(notebook, function).source = cell_by_id(source, function).source
        others = {gid for gid, f in owner.items() if f != function}
        got = lost(notebook)
        if got != others:
            failures.append(f"only {function} answered: lost {sorted(got)}, expected all tests but its own")
    for m in mistakes:
        got = lost(plant(source, m), tests={gid for gid, f in owner.items() if f == m.cell})
        if got != m.loses:
            failures.append(f"{m.name}: lost {sorted(got)}, expected {sorted(m.loses)}")
    assert not failures, "\n".join(failures)
