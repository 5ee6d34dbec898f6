"""Every lecture and solution runs top to bottom; every lecture has the course's shape.

The execution tests are slow (`-m "not slow"` leaves them out): the lectures run once per
session in conftest's `executed_lectures` (into a temporary folder, where
tests/test_slides.py makes its slides from them), each solution here in tmp_path. The
shape checks read the sources only and stay in the fast suite.
"""

import re

import nbformat
import pytest

from normlab_tools.build import execute_notebook, read_source
from support import LECTURES, SOLUTIONS, time_limit


def name(path):
    return f"{path.parent.name}/{path.stem}"


def assert_ran_to_the_end(source, notebook_path, seconds, error):
    assert error is None, f"{name(source)} failed after {seconds:.1f} s:\n{error}"
    cells = nbformat.read(notebook_path, as_version=4).cells
    skipped = [number for number, cell in enumerate(cells, 1)
               if cell.cell_type == "code" and cell.source.strip() and cell.execution_count is None]
    assert not skipped, f"{name(source)}: cells {skipped} were not executed"


@pytest.mark.slow
@pytest.mark.parametrize("source", LECTURES, ids=name)
def test_lecture_runs_top_to_bottom(source, executed_lectures):
    assert_ran_to_the_end(source, executed_lectures.notebook(source), executed_lectures.seconds[source.stem],
                          executed_lectures.errors[source.stem])
    assert executed_lectures.notebook(source).with_suffix(".html").exists()


@pytest.mark.slow
@pytest.mark.parametrize("source", SOLUTIONS, ids=name)
def test_solution_runs_top_to_bottom(source, tmp_path):
    """The time budget is measured by `normlab build`'s table, not asserted here; the
    per-cell timeout of three budgets only stops a hung notebook."""
    target = tmp_path / f"{source.stem}.ipynb"
    seconds, error = execute_notebook(source, target, timeout=3 * time_limit(source), cwd=tmp_path)
    assert_ran_to_the_end(source, target, seconds, error)


def headings(notebook):
    return [line for cell in notebook.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if re.match(r"#{1,6}\s", line)]


@pytest.mark.parametrize("source", LECTURES, ids=name)
def test_lecture_has_slides_speaker_notes_summary_and_exercises(source):
    notebook = read_source(source)
    slide_types = [cell.metadata.get("slideshow", {}).get("slide_type") for cell in notebook.cells]
    missing = [what for what, present in [
        ("a cell with slideshow slide_type 'slide'", "slide" in slide_types),
        ("a speaker-notes cell (slide_type 'notes')", "notes" in slide_types),
        ("a markdown heading containing 'Summary'", any("Summary" in line for line in headings(notebook))),
        ("a markdown heading containing 'Exercises'", any("Exercises" in line for line in headings(notebook))),
    ] if not present]
    assert not missing, f"{name(source)} lacks {'; '.join(missing)}"


def test_every_lecture_has_worked_solutions_and_every_solution_a_lecture():
    assert LECTURES and SOLUTIONS, "course/*.py and solutions/*.py must both exist"
    lectures = {path.name for path in LECTURES}
    solutions = {path.name for path in SOLUTIONS}
    assert not lectures - solutions, f"no solutions/ file for {sorted(lectures - solutions)}"
    assert not solutions - lectures, f"solutions/ files without a lecture: {sorted(solutions - lectures)}"
