"""Problem set 5 (makemore part 4's whole-network manual backprop) end to end with real
nbgrader, on the machinery of conftest.py and support.py and the helpers of
test_assignments_ps34.py (expected scores, which solution cell a test cell tests, the release stubs).

Fast: the source's metadata and points, every test cell caught by a planted mistake, each
mistake costing only its own function's cells, the training shortened when graded.
Slow (``-m slow``): the source scores full marks and the release 0 under nbgrader
autograde; nbgrader validate passes the source without stderr; one planted mistake per
graded function goes through nbgrader and loses exactly its cells; in one grading kernel,
each solution cell alone answered passes only its own tests, and every planted mistake of
tests/mistakes/ps5.py loses exactly its `loses`.
"""

from __future__ import annotations

import re

import pytest

from mistakes import ps5 as catalogue
from support import cell_by_id, graded, plant, source_notebook
from test_assignments_ps34 import assert_tests_depend_only_on_their_function, expected_scores, owners

AID = "ps5"
TOTAL_POINTS = 25


def test_source_metadata():
    notebook = source_notebook(AID)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)) and all(gid.startswith("ps5_") for gid in ids)
    tests = graded(notebook, "code")
    assert all(points > 0 for points in tests.values()) and sum(tests.values()) == TOTAL_POINTS
    assert not graded(notebook, "markdown")  # everything is autograded
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta["locked"] and not meta["solution"], meta["grade_id"]
        if meta.get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and not meta["locked"], meta["grade_id"]
        elif cell.cell_type == "code":
            assert "BEGIN SOLUTION" not in cell.source, meta.get("grade_id")
    solution_cells = {c.metadata.nbgrader["grade_id"] for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("solution")}
    assert {m.cell for m in catalogue.MISTAKES} == solution_cells, "every solution cell has planted mistakes"
    functions = {cell for cell in solution_cells if not cell.startswith("ps5_q_")}
    assert {m.cell for m in catalogue.MISTAKES if m.nbgrader} == functions, \
        "one mistake per graded function goes through nbgrader"


def test_every_test_cell_is_covered_by_a_mistake():
    assert set().union(*(m.loses for m in catalogue.MISTAKES)) == set(graded(source_notebook(AID), "code"))


def test_mistakes_lose_only_their_own_tests():
    owner = owners(source_notebook(AID))
    for m in catalogue.MISTAKES:
        assert m.loses and all(owner[gid] == m.cell for gid in m.loses), m.name


def test_ps5_shortens_training_when_graded():
    """Under NBGRADER_EXECUTION Part 4 trains for fewer steps; the demonstration uses STEPS."""
    notebook = source_notebook(AID)
    setup = cell_by_id(notebook, "ps5_setup").source
    assert 'GRADING = "NBGRADER_EXECUTION" in os.environ' in setup
    match = re.search(r"^STEPS = (\d+) if GRADING else (\d+)", setup, re.M)
    assert match and int(match[1]) < int(match[2]) / 10
    assert "steps=STEPS" in cell_by_id(notebook, "ps5_train_demo").source


# --- slow: the real nbgrader pipeline -------------------------------------------------------------


@pytest.fixture
def course(nbgrader_course):
    course = nbgrader_course(AID)
    course.release()
    return course


@pytest.mark.slow
def test_release(course):
    release = course.path("release").read_text()
    assert "BEGIN SOLUTION" not in release and "BEGIN HIDDEN TESTS" not in release
    stubs = [c for c in course.notebook("release").cells
             if c.cell_type == "code" and "raise NotImplementedError()" in c.source]
    assert len(stubs) == 5  # three functions, two questions
    assert "not the right choice" not in release and "bessel_batchnorm_gradients" not in release


@pytest.mark.slow
def test_source_full_marks_release_zero(course):
    scores, needs_manual = course.grade("perfect", course.notebook("source"))
    assert scores == expected_scores(AID) and not needs_manual
    scores, needs_manual = course.grade("blank", course.notebook("release"))
    assert scores == {gid: 0.0 for gid in expected_scores(AID)} and not needs_manual


@pytest.mark.slow
def test_validate_source_no_stderr(course):
    from nbgrader.validator import Validator

    from normlab_tools import assignments

    validator = Validator(config=assignments.load_course_config(course.dir))
    assert validator.validate(str(course.path("source"))) == {}


@pytest.mark.slow
@pytest.mark.parametrize("m", [m for m in catalogue.MISTAKES if m.nbgrader], ids=lambda m: m.cell)
def test_planted_mistake_loses_only_its_points(course, m):
    student = re.sub(r"\W+", "_", m.name)[:40]
    scores, _ = course.grade(student, plant(source_notebook(AID), m))
    assert scores == expected_scores(AID, m.loses)


@pytest.mark.slow
def test_tests_depend_only_on_their_function_and_mistake_catalogue(grading_kernel):
    """As test_assignments_ps34's test of the same name: in one grading kernel
    (NBGRADER_EXECUTION set, demonstrations skipped), each solution cell alone answered
    loses exactly the other functions' tests, and every planted mistake loses exactly its `loses`."""
    assert_tests_depend_only_on_their_function(AID, catalogue.MISTAKES, grading_kernel)
