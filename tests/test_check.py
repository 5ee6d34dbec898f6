"""`normlab check`: the grader's pipeline on the release's tests, from the command line and
from a cell of the notebook, and its agreement with `normlab grade`.

Fast-ish tests run the command on single notebooks (a kernel each). Slow tests: a
notebook with the check cell executed the way a student runs it (JupyterLab sets
JPY_SESSION_NAME) prints the command line's table and does not recurse; and, per
assignment, every planted mistake of its catalogue and every kind of tampering is both
checked and graded for real (`normlab grade`, sandboxed), and the two must agree on every
visible test and on every note.
"""

from __future__ import annotations

import importlib
import json
import re

import nbformat
import pytest

from normlab_tools import check
from normlab_tools.cli import main as normlab_main
from normlab_tools.grading import run
from support import ROOT, cell_by_id, copy_notebook, plant, source_notebook

CHECK_CELL = "from normlab_tools.check import check\n\ncheck()"


def release_form(notebook):
    """What a student holds: the source without its hidden tests (solutions in place)."""
    from nbgrader.preprocessors import ClearHiddenTests

    return ClearHiddenTests().preprocess(copy_notebook(notebook), {})[0]


def write(path, notebook):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def run_cli(capsys, *argv):
    code = normlab_main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def table(out: str) -> str:
    """The check's table: its output without the first line (what is being run)."""
    return out.split("\n", 1)[1].strip()


# --- the command ------------------------------------------------------------------------------


def test_correct_notebook_scores_full_visible_points(tmp_path, capsys):
    """Also: known benign stderr (BENIGN_STDERR) in a test cell costs nothing, as in grading."""
    notebook = release_form(source_notebook("ps2"))
    cell_by_id(notebook, "ps2_q_all_ones").source += (
        '\nimport sys\nprint("Matplotlib is building the font cache; this may take a moment.", file=sys.stderr)')
    code, out, err = run_cli(capsys, "ps2", write(tmp_path / "ps2.ipynb", notebook))
    assert code == 0, out + err
    assert "visible tests: 25 of 25 points" in out and "FAILED" not in out
    assert check.GRADER_NOTE not in out and check.HIDDEN_NOTE in out


def test_failures_say_why_and_hidden_tests_are_not_run(tmp_path, capsys):
    """A visible test's failure is reported with its message; a wrong answer that only a
    hidden test catches passes; the check's course holds no hidden test at all."""
    mistakes = importlib.import_module("mistakes.ps2").MISTAKES
    notebook = source_notebook("ps2")
    for m in mistakes:
        if m.name in ("4-D: m = N", "q_all_ones wrong"):
            notebook = plant(notebook, m)
    code, out, err = run_cli(capsys, write(tmp_path / "ps2.ipynb", release_form(notebook)))
    assert code == 1, out + err
    assert re.search(r"ps2_test_backward_dx_4d\s+0/3\s+FAILED\n\s+AssertionError: dx", out), out
    assert "visible tests: 22 of 25 points" in out
    assert re.search(r"ps2_test_q_all_ones\s+1/1\n", out)
    course = check.check_course("ps2")
    stored = [p.read_bytes() for p in course.rglob("*") if p.is_file()]
    assert stored and not [data for data in stored if b"BEGIN HIDDEN TESTS" in data]


def test_written_answers_are_left_for_a_ta(tmp_path, capsys):
    """ps4's hand-graded answers: the check names them and their points, never as lost."""
    report = check.check_notebook("ps4", write(tmp_path / "ps4.ipynb", release_form(source_notebook("ps4"))))
    manual = [t for t in report.tests if t.manual]
    assert manual and sum(t.max_points for t in manual) == 12
    assert report.points == report.max_points
    text = check.format_report(report)
    assert "left for a TA: 12 points of written answers" in text and "lost points" not in text


def test_wrong_or_unreadable_notebooks(tmp_path, capsys):
    path = write(tmp_path / "ps2.ipynb", release_form(source_notebook("ps2")))
    code, _, err = run_cli(capsys, "ps1", path)
    assert code == 2 and err.count("\n") == 1 and "is a notebook of ps2, not ps1" in err
    code, _, err = run_cli(capsys, "ps1", tmp_path / "nope.ipynb")
    assert code == 2 and err.count("\n") == 1 and "no such file" in err
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [{"cell_type": "code",', encoding="utf-8")
    code, _, err = run_cli(capsys, "ps1", broken)
    assert code == 2 and err.count("\n") == 1 and "invalid JSON at line 1" in err
    foreign = write(tmp_path / "mine.ipynb", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]))
    code, _, err = run_cli(capsys, "ps1", foreign)
    assert code == 2 and "has no nbgrader cells" in err
    code, _, err = run_cli(capsys, "homework", foreign)
    assert code == 2 and "not an assignment name" in err


def test_assignment_from_the_notebook_any_case_and_the_ipynb_suggestion(tmp_path, capsys):
    path = write(tmp_path / "ps1.ipynb", release_form(source_notebook("ps1")))
    code, out, err = run_cli(capsys, path)
    assert code == 0, out + err
    code_upper, out_upper, _ = run_cli(capsys, "PS1", path)
    assert code_upper == 0 and table(out_upper) == table(out)
    code, _, err = run_cli(capsys, tmp_path / "ps1")
    assert code == 2 and f"did you mean {tmp_path / 'ps1.ipynb'}?" in err


def test_check_does_nothing_inside_a_grading_run(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert check.check("does-not-matter.ipynb") is None
    assert capsys.readouterr() == ("", "")


# --- from a cell of the notebook ----------------------------------------------------------------


@pytest.mark.slow
def test_the_check_cell_prints_the_command_line_table_without_recursion(tmp_path, monkeypatch, capsys):
    """A student's notebook with the check cell, run the way JupyterLab runs it: the cell
    runs the saved notebook in another process, where the cell itself does nothing; its
    table is the command line's. The notebook is a release with one visible mistake."""
    from nbclient import NotebookClient

    from normlab_tools.kernels import InterpreterKernelManager

    mistakes = importlib.import_module("mistakes.ps1").MISTAKES
    m = next(m for m in mistakes if m.name == "gamma and beta swapped")
    notebook = release_form(plant(source_notebook("ps1"), m))
    if not any(CHECK_CELL in cell.source for cell in notebook.cells):  # the release's own check cell
        notebook.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    path = write(tmp_path / "student" / "ps1.ipynb", notebook)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    NotebookClient(notebook, timeout=300, kernel_manager_class=InterpreterKernelManager, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    (cell,) = [c for c in notebook.cells if CHECK_CELL in c.source]
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert not [o for o in cell.outputs if o.output_type == "error" or o.get("name") == "stderr"], cell.outputs
    assert printed.startswith(f"checking ps1.ipynb as saved at ")
    assert printed.count("visible tests:") == 1 and "visible tests: 15 of 25 points" in printed
    code, out, _ = run_cli(capsys, path)
    assert code == 1 and table(out) in printed


# --- check agrees with grade ------------------------------------------------------------------------


def tampered(assignment_id):
    """(name, notebook) per kind of tampering the grader notes, from the correct release form."""
    correct = release_form(source_notebook(assignment_id))
    tests = [c for c in correct.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    solutions = [c for c in correct.cells if c.metadata.get("nbgrader", {}).get("solution")
                 and c.cell_type == "code"]
    setup = next(c for c in correct.cells if c.metadata.get("nbgrader", {}).get("locked")
                 and "grading_helpers import" in c.source)
    kinds = []

    def variant(name, change):
        notebook = copy_notebook(correct)
        change(notebook)
        kinds.append((name, notebook))

    def find(notebook, cell):
        return next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                    == cell.metadata.nbgrader["grade_id"])

    def after(notebook, cell, source):
        notebook.cells.insert(notebook.cells.index(find(notebook, cell)) + 1, nbformat.v4.new_code_cell(source))

    variant("deleted test cell", lambda nb: nb.cells.remove(find(nb, tests[0])))
    variant("edited test cell", lambda nb: setattr(find(nb, tests[-1]), "source", "pass  # fine"))
    def duplicate(notebook, cell):
        copy = nbformat.from_dict(json.loads(json.dumps(find(notebook, cell))))
        copy.id = "a-copy-of-the-test"
        notebook.cells.insert(notebook.cells.index(find(notebook, cell)), copy)

    variant("duplicated test cell", lambda nb: duplicate(nb, tests[1]))
    variant("redefined test helper", lambda nb: after(nb, setup, "assert_close = lambda *args, **kwargs: None"))
    variant("patched helper module", lambda nb: after(nb, setup, "import normlab.grading_helpers as h\n"
                                                      "h.assert_close = lambda *args, **kwargs: None"))
    variant("syntax error in a solution", lambda nb: setattr(find(nb, solutions[0]), "source",
                                                             find(nb, solutions[0]).source + "\nprint((1"))
    variant("warning on stderr in a solution", lambda nb: setattr(
        find(nb, solutions[0]), "source", find(nb, solutions[0]).source.replace(
            "### BEGIN SOLUTION", "### BEGIN SOLUTION\n    import warnings\n    warnings.warn('careful')", 1)))
    return kinds


def grader_notes(reason: str) -> str:
    """The notes of a grades.csv reason: everything before its "lost points on" part."""
    from normlab_tools.grading import report

    reason = reason.replace(f"; {report.MANUAL_NOTE}", "")
    cut = reason.find("lost points on ")
    notes = reason if cut < 0 else reason[:cut]
    notes = notes.rstrip("; ")
    return "" if notes == "all tests passed" else notes


AGREEMENT = {"ps1": None, "ps2": None, "ps3": None, "ps4": "nbgrader", "ps5": None}  # ps4: one mistake per function


@pytest.mark.slow
@pytest.mark.parametrize("assignment_id", sorted(AGREEMENT))
def test_check_agrees_with_grade_on_every_mistake_and_tampering(assignment_id, tmp_path):
    """Every planted mistake (ps4: those graded end to end, ps4 trains) and every kind of
    tampering, checked and graded: each visible test cell without hidden tests scores the
    same with the same reason; one with hidden tests never scores more when graded, and
    scores 0 when the check gives 0; and the grader's notes are the check's, word for word."""
    import csv

    from normlab_tools.grading import report as grading_report

    mistakes = importlib.import_module(f"mistakes.{assignment_id}").MISTAKES
    if AGREEMENT[assignment_id] == "nbgrader":
        mistakes = [m for m in mistakes if m.nbgrader or m.category]
    cases = [(m.name, release_form(plant(source_notebook(assignment_id), m))) for m in mistakes]
    cases += tampered(assignment_id) if assignment_id in ("ps1", "ps4") else []
    folder = tmp_path / "class"
    students = {}
    for i, (name, notebook) in enumerate(cases):
        student = f"s{i:03d}"
        students[student] = name
        write(folder / student / f"{assignment_id}.ipynb", notebook)
    checked = dict(zip(students, check.check_notebooks(
        assignment_id, [folder / s / f"{assignment_id}.ipynb" for s in students])))
    outcome = run.grade_class(assignment_id, folder, tmp_path / "course", workers=2, progress=False)
    with open(outcome.csv_path, encoding="utf-8") as f:
        graded = {row["student"]: row for row in csv.DictReader(f)}
    source = source_notebook(assignment_id)
    hidden = {c.metadata.nbgrader["grade_id"] for c in source.cells
              if c.metadata.get("nbgrader", {}).get("grade") and "BEGIN HIDDEN TESTS" in c.source}
    problems = []
    for student, name in students.items():
        report, row = checked[student], graded[student]
        scores = {t.grade_id: float(row[t.grade_id]) for t in report.automatic}
        why = dict(grading_report.lost_points(tmp_path / "course" / "autograded" / student / assignment_id,
                                              [assignment_id], scores, set()))
        for test in report.automatic:
            grade = scores[test.grade_id]
            if test.grade_id in hidden:
                ok = grade <= test.points and (test.points > 0 or grade == 0)
            else:
                ok = grade == test.points and (test.failure or "").split("\n")[0] == why.get(test.grade_id, "")
            if not ok:
                problems.append(f"{name}: {test.grade_id}: check {test.points:g} ({test.failure}), "
                                f"grade {grade:g} ({why.get(test.grade_id)})")
        if report.notes != grader_notes(row["reason"]):
            problems.append(f"{name}: notes differ: check {report.notes!r}, grade {grader_notes(row['reason'])!r}")
    assert not problems, "\n".join(problems)
