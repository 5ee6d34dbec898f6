"""`normlab grade`: intake, ids, zips, and a whole hostile class graded for real.

Fast tests cover reading submissions (layouts, zips, student ids), the reasons and the
command's refusals. Slow tests (``-m slow``) grade a generated class of ps1 submissions
with real nbgrader inside the bubblewrap sandbox -- correct, partial and blank
notebooks and one student per hostile kind of the issue -- and assert each student's
exact score, status and reason; then a re-run (nothing regraded), and a run killed
mid-way and resumed, which must end with the grades.csv of an uninterrupted run.

Hostile notebooks are made from the ps1 release: the correct notebook is the release
with the source's solutions filled in, and each hostile kind changes it in one place.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from normlab_tools import assignments
from normlab_tools.errors import UserError
from normlab_tools.cli import main as normlab_main
from normlab_tools.grading import course, intake, report, run, state
from normlab_tools.grading.events import Event, Kind
from normlab_tools.grading.sandbox import bubblewrap
from support import notebook_file

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 15  # seconds per cell in these tests (a correct ps1 cell needs < 3 s)
FULL = 25
LATE_TESTS = 7  # points of the tests after ps1_test_bn_forward_4d (identity 2 + five questions)



# --- building notebooks -------------------------------------------------------------------------


def source_notebook():
    return assignments.read_jupytext(ROOT / "assignments" / "source" / "ps1" / "ps1.py")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The ps1 student release, made by nbgrader from the project's source."""
    course = tmp_path_factory.mktemp("release-course")
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", course)
    assignments.convert_sources(ROOT, course, "ps1")
    result = assignments.nbgrader_api(course).generate_assignment("ps1")
    assert result["success"], result["log"][-2000:]
    return nbformat.read(course / "release" / "ps1" / "ps1.ipynb", as_version=4)


def copy(notebook):
    return nbformat.from_dict(json.loads(json.dumps(notebook)))


def index_of(notebook, grade_id):
    found = [i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(found) == 1, grade_id
    return found[0]


def solved(release, source=None):
    """The release with every solution cell answered by `source`'s solution (default: the
    project's ps1 source), without the solution markers."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in (source or source_notebook()).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    notebook = copy(release)
    for cell in notebook.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = "\n".join(line for line in answers[gid].splitlines()
                                    if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return notebook


def edit(notebook, grade_id, old, new):
    notebook = copy(notebook)
    cell = notebook.cells[index_of(notebook, grade_id)]
    assert cell.source.count(old) == 1, (grade_id, old)
    cell.source = cell.source.replace(old, new)
    return notebook


def insert_after(notebook, grade_id, code):
    """A copy with a new code cell after `grade_id`; returns (notebook, the cell's name in reasons)."""
    notebook = copy(notebook)
    position = index_of(notebook, grade_id) + 1
    notebook.cells.insert(position, nbformat.v4.new_code_cell(code))
    return notebook, f"cell {position + 1}"


@dataclass
class Student:
    """A generated submission and what grading it must give."""

    name: str
    content: object  # a notebook, or raw bytes/text written as the file
    score: float
    status: str
    reason: str  # a regular expression the whole reason must match
    layout: str = "folder"  # folder: <name>/ps1.ipynb; flat: <name>_ps1.ipynb; nbgrader: <name>/ps1/ps1.ipynb
    filename: str = "ps1.ipynb"


def lost(*grade_ids, more=0) -> str:
    """The regular expression of a reason's "lost points on" part: each cell with its why."""
    cells = [re.escape(gid) + r"( \(.+\))?" for gid in grade_ids[:-1]] + [re.escape(grade_ids[-1]) + r" \(.+\)"]
    return "lost points on " + ", ".join(cells) + (f" and {more} more" if more else "")


def hostile_class(release, course: Path, submissions: Path) -> list[Student]:
    """Every student of the end-to-end test, with the exact expected outcome."""
    correct = solved(release)
    T = TIMEOUT
    students = [
        Student("correct", correct, FULL, "graded", "all tests passed"),
        Student("partial", edit(edit(correct, "ps1_curvature", "return float(eigenvalues[-1] / eigenvalues[0])",
                                     "return float(np.sqrt(eigenvalues[-1] / eigenvalues[0]))"),
                                "ps1_q_identity", 'q_identity = "b"', 'q_identity = "a"'),
                FULL - 3, "graded", lost("ps1_test_curvature", "ps1_test_q_identity"), layout="flat",
                filename="partial_ps1_attempt_2.ipynb"),
        Student("blank", copy(release), 0, "graded",
                r"ps1_curvature_demo raised NotImplementedError; lost points on ps1_test_curvature, "
                r"ps1_test_standardize_train, ps1_test_standardize_splits \(not answered yet \(replace the "
                r"`raise NotImplementedError\(\)`\)\), ps1_test_q_train_only \(NameError: .*\) and 8 more",
                layout="nbgrader"),
        Student("renamed", correct, FULL, "graded", r"graded homework \(1\)\.ipynb as ps1\.ipynb",
                filename="homework (1).ipynb"),
        # broken files
        Student("invalid", json.dumps(correct)[:5000], 0, "failed",
                r"invalid JSON at line 1, column \d+ \(.*\)"),
        Student("empty", b"", 0, "failed", "empty file"),
        Student("wrongnb", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "x = 1", metadata={"nbgrader": {"grade": False, "grade_id": "ps2_setup", "locked": True,
                                            "schema_version": 3, "solution": False, "task": False}})]),
                0, "failed", "wrong notebook: a notebook of ps2, not ps1"),
        Student("missing", "my answers are in my head", 0, "failed",
                r"no ps1\.ipynb in the submission \(notebooks found: none\)", filename="answers.txt"),
        # code that runs too long
        Student("loop", edit(correct, "ps1_curvature", '"""Condition number', 'while True:\n        pass\n    """Condition'),
                FULL - 2, "graded", rf"timed out after {T} s: ps1_test_curvature, ps1_curvature_demo; "
                r"lost points on ps1_test_curvature \(timed out: .*\)"),
        Student("sleeper", edit(correct, "ps1_q_bias", 'q_bias = "c"', 'import time\ntime.sleep(10**6)\nq_bias = "c"'),
                FULL - 1, "graded", rf"timed out after {T} s: ps1_q_bias; lost points on ps1_test_q_bias "
                r"\(NameError: name 'q_bias' is not defined .*\)"),
        # leaving
        Student("sysexit", edit(correct, "ps1_q_sheet", 'q_sheet = "d"', 'import sys\nsys.exit(1)\nq_sheet = "d"'),
                FULL - 1, "graded", r"ps1_q_sheet raised SystemExit: 1; " + lost("ps1_test_q_sheet")),
        # a warning in a solution: the tests that call it write to stderr, and score 0
        Student("warner", edit(correct, "ps1_curvature", '"""Condition number',
                               'import warnings\n    warnings.warn("careful")\n    """Condition number'),
                FULL - 2, "graded", r"lost points on ps1_test_curvature \(wrote to stderr \(a test cell that does "
                r"scores 0\): .*UserWarning: careful\)"),
    ]
    late = "ps1_test_bn_forward_4d"
    lost_late = lost("ps1_test_identity", "ps1_test_q_axes", "ps1_test_q_identity", "ps1_test_q_bias", more=2)

    def after_tests(name, code, status, reason):
        notebook, cell = insert_after(correct, late, code)
        students.append(Student(name, notebook, FULL - LATE_TESTS, status, reason.replace("CELL", cell)))

    after_tests("osexit", "import os\nos._exit(3)", "graded",
                rf"the kernel died in CELL: the kernel process exited with code 3; later tests not run; {lost_late}")
    after_tests("segfault", "import ctypes\nctypes.string_at(0)", "graded",
                rf"the kernel died in CELL: segmentation fault; later tests not run; {lost_late}")
    after_tests("flood", "for _ in range(3000):\n    print('x' * 1_000_000)", "graded",
                rf"output limit: CELL printed more than 8 MB of output; later tests not run; {lost_late}")
    after_tests("killer", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                "for pid in sorted({int(p) for p in os.listdir('/proc') if p.isdigit()}):\n"
                "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass",
                "graded", rf"the kernel died in CELL: killed; later tests not run; {lost_late}")
    # resources
    students.append(Student("hog", edit(correct, "ps1_q_batch_of_one", 'q_batch_of_one = "c"',
                                        'hog = []\nwhile True:\n    hog.append(bytearray(50 * 2**20))\nq_batch_of_one = "c"'),
                            FULL - 1, "graded", r"ps1_q_batch_of_one raised MemoryError; "
                            + lost("ps1_test_q_batch_of_one")))
    # Which limit stops a fork bomb first is a race: on a quiet machine the process limit (every
    # CI run before); with the cores busy elsewhere the cell's time limit can come first (seen once,
    # with a scoreboard training beside CI). Either way the student loses exactly these tests.
    students.append(Student("forkbomb", edit(correct, "ps1_q_axes", 'q_axes = "b"',
                                             'import os\nwhile True:\n    os.fork()\nq_axes = "b"'),
                            FULL - 5, "graded", r"(the kernel died in ps1_q_axes: over the process limit \(killed\)|"
                            r"ps1_q_axes ran past the time limit and did not stop); "
                            r"later tests not run; " + lost("ps1_test_q_axes", "ps1_test_q_identity",
                                                            "ps1_test_q_bias", "ps1_test_q_batch_of_one", more=1)))
    # the test cells
    notebook = copy(correct)
    del notebook.cells[index_of(notebook, "ps1_test_curvature")]
    students.append(Student("deleter", notebook, FULL, "graded",
                            "restored from the release: test cell ps1_test_curvature deleted"))
    notebook = copy(correct)
    position = index_of(notebook, "ps1_test_identity")
    duplicate = copy(notebook.cells[position])
    duplicate.id = "a-copy-of-the-test"
    notebook.cells.insert(position, duplicate)
    students.append(Student("duplicator", notebook, FULL, "graded",
                            "restored from the release: test cell ps1_test_identity duplicated"))
    notebook = copy(correct)
    cell = notebook.cells[index_of(notebook, "ps1_test_standardize_train")]
    cell.cell_type = "markdown"
    del cell["outputs"], cell["execution_count"]
    students.append(Student("retyper", notebook, FULL, "graded",
                            "restored from the release: test cell ps1_test_standardize_train changed to markdown"))
    notebook = edit(correct, "ps1_identity", "gamma = np.sqrt(x.var(axis=axes) + eps)", "gamma = x.std(axis=axes)")
    notebook.cells[index_of(notebook, "ps1_test_identity")].source = "pass  # all good"
    students.append(Student("editor", notebook, FULL - 2, "graded",
                            "restored from the release: test cell ps1_test_identity edited; "
                            + lost("ps1_test_identity")))
    # the test helpers
    wrong_bn = edit(correct, "ps1_bn_forward", "gamma.reshape(per_feature) * xhat + beta.reshape(per_feature)",
                    "beta.reshape(per_feature) * xhat + gamma.reshape(per_feature)")  # gamma and beta swapped
    notebook, cell = insert_after(wrong_bn, "ps1_setup",
                                  "import normlab.grading_helpers as helpers\n"
                                  "helpers.assert_close = lambda *args, **kwargs: None\n"
                                  "assert_close = helpers.assert_close")
    students.append(Student("patcher", notebook, 0, "flagged",
                            r"test helpers tampered with \(normlab.grading_helpers.assert_close was replaced\): "
                            r"12 test\(s\) scored 0; lost points on ps1_test_curvature, ps1_test_standardize_train, "
                            r"ps1_test_standardize_splits, ps1_test_q_train_only \(GradingIntegrityError: this test was "
                            r"not trusted: normlab.grading_helpers.assert_close was replaced\) and 8 more"))
    notebook, cell = insert_after(wrong_bn, "ps1_setup", "assert_close = lambda *args, **kwargs: None")
    students.append(Student("rebinder", notebook, FULL - 10, "flagged",
                            r"redefined the test helper\(s\) assert_close; the tests used the originals; "
                            + lost("ps1_test_bn_forward_2d", "ps1_test_bn_forward_4d")))
    # the sandbox: nothing of the course, the other students or the network
    course_source = course / "source" / "ps1" / "ps1.ipynb"
    notebook, cell = insert_after(copy(release), "ps1_setup",
                                  "import json\n"
                                  f"answers = json.load(open({str(course_source)!r}))\n"
                                  "for c in answers['cells']:\n"
                                  "    if c['metadata'].get('nbgrader', {}).get('solution'):\n"
                                  "        exec(''.join(c['source']))")
    students.append(Student("spy", notebook, 0, "graded",
                            rf"{cell} raised FileNotFoundError: \[Errno 2\] No such file or directory: "
                            rf"'{re.escape(str(course_source))}'; lost points on .* and 8 more"))
    gradebook = course / "gradebook.db"
    notebook, cell = insert_after(correct, "ps1_setup", f"open({str(gradebook)!r}, 'rb').read()")
    students.append(Student("dbreader", notebook, FULL, "graded",
                            rf"{cell} raised FileNotFoundError: \[Errno 2\] No such file or directory: "
                            rf"'{re.escape(str(gradebook))}'"))
    target = submissions / "correct" / "ps1.ipynb"
    notebook, cell = insert_after(correct, "ps1_setup", f"open({str(target)!r}, 'w').write('{{}}')")
    students.append(Student("vandal", notebook, FULL, "graded",
                            rf"{cell} raised FileNotFoundError: \[Errno 2\] No such file or directory: "
                            rf"'{re.escape(str(target))}'"))
    notebook, cell = insert_after(correct, "ps1_setup",
                                  "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=5)")
    students.append(Student("caller", notebook, FULL, "graded",
                            rf"{cell} raised OSError: \[Errno 101\] Network is unreachable"))
    return students


def write_class(students: list[Student], submissions: Path) -> None:
    for student in students:
        if student.layout == "flat":
            path = submissions / student.filename
        elif student.layout == "nbgrader":
            path = submissions / student.name / "ps1" / student.filename
        else:
            path = submissions / student.name / student.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(student.content, bytes):
            path.write_bytes(student.content)
        elif isinstance(student.content, str):
            path.write_text(student.content, encoding="utf-8")
        else:
            nbformat.write(student.content, path)


def read_csv(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def grade(capsys, *argv) -> tuple[int, str, str]:
    code = normlab_main(["grade", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# --- fast: intake -----------------------------------------------------------------------------------


def test_describe_reasons():
    assert report.describe({"ok": True}, [], []) == ("graded", "all tests passed")
    assert report.describe({"ok": False, "error": "boom"}, [], []) == ("failed", "grading failed: boom")
    status, reason = report.describe({"ok": True, "events": [
        {"kind": "dead", "cell": "cell 3", "detail": "in cell 3: segmentation fault"}]}, [],
        [("a", "AssertionError: out[0, 0] should be 1 but is 2"), ("b", "")])
    assert (status, reason) == ("graded", "the kernel died in cell 3: segmentation fault; later tests not run; "
                                          "lost points on a (AssertionError: out[0, 0] should be 1 but is 2), b")
    status, _ = report.describe({"ok": True, "events": [{"kind": "tamper", "cell": "t", "detail": "x"}]}, [], [])
    assert status == "flagged"
    # typed events, as the executor records them (and as they travel from a worker: dicts)
    stuck = Event(Kind.STUCK, "ps1_test_a", "ignored the interrupt")
    restored = Event(Kind.RESTORED, "ps1_test_b", "assert_close", names=["assert_close"])
    for events in ([stuck, restored], [stuck.to_dict(), restored.to_dict()]):
        assert report.describe({"ok": True, "events": events}, [], []) == (
            "flagged", "ps1_test_a ran past the time limit and did not stop; later tests not run; "
                       "redefined the test helper(s) assert_close; the tests used the originals")
    assert Event.from_dict(stuck.to_dict()) == stuck


def test_refuses_without_bwrap_unless_no_sandbox(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bubblewrap, "bwrap_path", lambda: None)
    notebook_file(tmp_path / "subs" / "alice" / "ps1.ipynb")
    code, _, err = grade(capsys, "ps1", tmp_path / "subs", "--course-dir", tmp_path / "course")
    assert code == 2
    assert "bubblewrap (bwrap) is not installed" in err and "--no-sandbox" in err
    assert not (tmp_path / "course").exists()


def test_bad_arguments(tmp_path, capsys):
    code, _, err = grade(capsys, "homework", tmp_path, "--no-sandbox")
    assert code == 2 and "not an assignment name" in err
    code, _, err = grade(capsys, "ps1", tmp_path / "nope", "--course-dir", tmp_path / "c", "--no-sandbox")
    assert code == 2 and "no such file or folder" in err
    code, _, err = grade(capsys, "ps1", tmp_path, "--workers", "0", "--no-sandbox")
    assert code == 2 and "--workers" in err


def test_imported_modules():
    modules = course.imported_modules(source_notebook())
    assert {"numpy", "normlab.data", "normlab.grading_helpers", "matplotlib.pyplot"} <= set(modules)


def test_sandbox_command_hides_the_course(tmp_path):
    settings = bubblewrap.TemplateSettings(sandbox=True, preload=[])
    command = bubblewrap.bwrap_command("bwrap", settings, forbidden=[str(tmp_path)])
    joined = " ".join(command)
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--remount-ro /"):
        assert flag in joined
    binds = [command[i + 1] for i, arg in enumerate(command) if arg in ("--bind", "--ro-bind")]
    assert "--bind" not in command  # nothing of the machine is writable
    assert not [b for b in binds if str(tmp_path).startswith(b + "/") and b != "/"] or \
        f"--tmpfs {tmp_path}" in joined
    assert str(ROOT / "assignments") not in binds and str(ROOT) not in binds


def test_answers_left_for_a_person_flag_the_row_and_say_so(tmp_path, monkeypatch):
    """ps4's written answers: nbgrader marks the submission needs_manual_grade."""
    monkeypatch.setattr(report, "read_scores", lambda *args: {"ann": ({"ps4_test_a": 2.0}, True),
                                                           "bob": ({"ps4_test_a": 1.0}, False)})
    for student in ("ann", "bob"):
        state.write_state(tmp_path, student, {"digest": "x", "status": "graded", "reason": "all tests passed"})
    ann, bob = report.rows(tmp_path, "ps4", ["ann", "bob"], tmp_path, [("ps4", "ps4_test_a", 2.0)])
    assert (ann.status, ann.reason) == ("flagged", f"all tests passed; {report.MANUAL_NOTE}")
    assert (bob.status, bob.reason, bob.total) == ("graded", "all tests passed", 1.0)


@pytest.mark.skipif(os.geteuid() != 0, reason="kernels get a uid of their own only when grading as root")
def test_kernels_can_read_a_python_installation_below_tmp(tmp_path):
    """CI grades from a clone in /tmp with its .venv there: the folders bwrap makes above a
    bound path must survive the empty /tmp and be searchable by the kernels' uid."""
    folder = tmp_path / "clone" / "lib"
    folder.mkdir(parents=True)
    (folder / "module.py").write_text("x = 1\n")
    settings = bubblewrap.TemplateSettings(sandbox=True, preload=[], readable=[str(folder)])
    command = bubblewrap.bwrap_command(bubblewrap.bwrap_path(), settings, forbidden=[])
    as_kernel = ["setpriv", "--reuid", "2000001", "--regid", "2000001", "--clear-groups"]
    done = subprocess.run(command + as_kernel + ["cat", str(folder / "module.py")], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "x = 1\n"), done.stderr


def test_feedback_hides_the_hidden_tests_code_and_traceback_but_keeps_the_message():
    from traitlets.config import Config

    from normlab_tools.grading.feedback import HideHiddenTests

    source = ("assert_close(f(1), 2, 'f(1)')\n### BEGIN HIDDEN TESTS\n_ref = torch_reference(x)\n"
              "assert_close(f(x), _ref, 'f on random data')\n### END HIDDEN TESTS\n")
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="f on random data: 3 should be 4",
                                   traceback=["----> 4 assert_close(f(x), _ref, 'f on random data')", "AssertionError"])
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source, outputs=[error])])
    shown, _ = HideHiddenTests().preprocess(nbformat.from_dict(json.loads(json.dumps(notebook))), {})
    cell = shown.cells[0]
    assert "torch_reference" not in cell.source and "assert_close(f(1), 2, 'f(1)')" in cell.source
    assert cell.source.count("hidden tests: not shown in feedback") == 1
    assert cell.outputs[0]["traceback"] == ["AssertionError: f on random data: 3 should be 4"]
    config = Config()
    config.HideHiddenTests.enabled = False  # an instructor who wants students to see them
    kept, _ = HideHiddenTests(config=config)(nbformat.from_dict(json.loads(json.dumps(notebook))), {})
    assert kept.cells[0].source == source and len(kept.cells[0].outputs[0]["traceback"]) == 2


# --- slow: a whole class, for real ----------------------------------------------------------------


@pytest.fixture(scope="module")
def graded_class(release, tmp_path_factory):
    """The hostile class graded in one run (2 workers, sandboxed): (students, course,
    submissions, summary, grades.csv as graded)."""
    base = tmp_path_factory.mktemp("class")
    course, submissions = base / "course", base / "submissions"
    students = hostile_class(release, course, submissions)
    write_class(students, submissions)
    outcome = run.grade_class("ps1", submissions, course, workers=2, timeout=TIMEOUT, progress=False)
    csv_text = (course / "grading" / "ps1" / "grades.csv").read_text(encoding="utf-8")
    return students, course, submissions, report.summary(outcome, "ps1"), csv_text


@pytest.mark.slow
def test_every_student_gets_the_exact_score_and_reason(graded_class):
    students, course, _, _, _ = graded_class
    rows = read_csv(course / "grading" / "ps1" / "grades.csv")
    assert sorted(rows) == sorted(s.name for s in students)
    wrong = []
    for student in students:
        row = rows[student.name]
        if (float(row["total"]), row["status"]) != (student.score, student.status) \
                or not re.fullmatch(student.reason, row["reason"]):
            wrong.append(f"{student.name}: got {row['total']} {row['status']} {row['reason']!r}, expected "
                         f"{student.score:g} {student.status} {student.reason!r}")
    assert not wrong, "\n".join(wrong)
    assert all(row["max"] == "25" for row in rows.values())


@pytest.mark.slow
def test_gradebook_csv_and_feedback_agree(graded_class):
    """One submission per student, one grade row per test cell, the csv's points; a
    feedback page per student; nbgrader's own tree in the course directory."""
    from nbgrader.api import Gradebook

    students, course, submissions, summary, _ = graded_class
    rows = read_csv(course / "grading" / "ps1" / "grades.csv")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="normlab") as gradebook:
        for student in students:
            submission = gradebook.find_submission("ps1", student.name)
            (notebook,) = submission.notebooks
            grades = {g.name: g.score for g in notebook.grades}
            assert len(notebook.grades) == 12
            for gid, score in grades.items():
                assert float(rows[student.name][gid]) == score, (student.name, gid)
            assert submission.score == float(rows[student.name]["total"])
        assert len(gradebook.find_assignment("ps1").submissions) == len(students)
    for student in students:
        page = course / "feedback" / student.name / "ps1" / "ps1.html"
        assert page.is_file() and page.stat().st_size > 0, student.name
        assert (course / "submitted" / student.name / "ps1").is_dir()
    assert "Score: 0 / 25" in (course / "feedback" / "empty" / "ps1" / "ps1.html").read_text()
    # feedback shows each test's name and points, and not the hidden tests' code
    for student in students:
        page = (course / "feedback" / student.name / "ps1" / "ps1.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in page and "default_rng(101)" not in page, student.name
    correct_page = (course / "feedback" / "correct" / "ps1" / "ps1.html").read_text()
    assert "hidden tests: not shown in feedback" in correct_page and "ps1_test_curvature" in correct_page
    # the vandal could not touch the correct student's file
    assert nbformat.read(submissions / "correct" / "ps1.ipynb", as_version=4).cells
    assert "failed (0 points):" in summary and "flagged for manual grading:" in summary
    assert re.search(r"28 submissions: 22 graded, 4 failed, 2 flagged for manual grading", summary), summary


@pytest.mark.slow
def test_rerun_grades_only_new_or_changed_submissions(graded_class, capsys):
    students, course, submissions, _, _ = graded_class
    csv_before = (course / "grading" / "ps1" / "grades.csv").read_text()
    code, out, err = grade(capsys, "ps1", submissions, "--course-dir", course, "--timeout", TIMEOUT,
                           "--workers", "2", "--quiet")
    assert code == 0, err
    assert f"({len(students)} unchanged since the last run and not regraded" in out
    assert (course / "grading" / "ps1" / "grades.csv").read_text() == csv_before
    # blank hands in the correct notebook: only blank is regraded
    shutil.copy(submissions / "correct" / "ps1.ipynb", submissions / "blank" / "ps1" / "ps1.ipynb")
    code, out, err = grade(capsys, "ps1", submissions, "--course-dir", course, "--timeout", TIMEOUT, "--quiet")
    assert code == 0, err
    assert f"({len(students) - 1} unchanged" in out  # everyone but blank
    after = read_csv(course / "grading" / "ps1" / "grades.csv")
    assert (after["blank"]["total"], after["blank"]["reason"]) == ("25", "all tests passed")
    assert after["correct"] == read_csv_text(csv_before)["correct"]


def read_csv_text(text: str) -> dict:
    return {row["student"]: row for row in csv.DictReader(text.splitlines())}


INTERRUPTED = ["correct", "partial", "blank", "invalid", "sysexit", "osexit", "editor", "deleter"]


@pytest.mark.slow
def test_interrupted_runs_end_with_the_grades_of_an_uninterrupted_run(graded_class, release, tmp_path):
    """Ctrl-C a run, kill -9 the next one, run again: grades.csv equals the
    uninterrupted run's rows (the class fixture) for these students, and the gradebook
    holds each grade once."""
    from nbgrader.api import Gradebook

    students, _, _, _, reference_csv = graded_class
    chosen = [s for s in students if s.name in INTERRUPTED]
    course, submissions = tmp_path / "course", tmp_path / "submissions"
    write_class(chosen, submissions)
    state = course / "grading" / "ps1" / "state"
    command = [sys.executable, "-m", "normlab_tools", "grade", "ps1", str(submissions), "--course-dir", str(course),
               "--workers", "2", "--timeout", str(TIMEOUT)]

    def run_until(graded: int, signum: int) -> subprocess.CompletedProcess:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 600
        while len(list(state.glob("*.json"))) < graded and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.2)
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(command, process.returncode, out, err)

    first = run_until(2, signal.SIGINT)
    assert first.returncode == 130, first.stderr[-2000:]
    assert "interrupted" in first.stderr and "grading ps1" in first.stderr  # the progress bar was there
    done = len(list(state.glob("*.json")))
    assert 2 <= done < len(chosen)
    second = run_until(done + 2, signal.SIGKILL)
    assert second.returncode == -signal.SIGKILL
    time.sleep(1)
    assert not _leftover_processes(course), "a killed grader left processes behind"
    final = subprocess.run(command + ["--quiet"], capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    assert "unchanged since the last run" in final.stdout
    reference = read_csv_text(reference_csv)
    assert read_csv(course / "grading" / "ps1" / "grades.csv") == {s.name: reference[s.name] for s in chosen}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="normlab") as gradebook:
        submissions_rows = gradebook.find_assignment("ps1").submissions
        assert sorted(s.student.id for s in submissions_rows) == sorted(INTERRUPTED)
        assert all(len(s.notebooks) == 1 and len(s.notebooks[0].grades) == 12 for s in submissions_rows)


def _leftover_processes(course: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "normlab" in cmdline and str(course) in cmdline:  # the grader and its workers
            found.append(f"{pid}: {cmdline[:120]}")
    return found


@pytest.mark.slow
def test_no_sandbox_grades_the_same(release, tmp_path, capsys):
    """--no-sandbox (what a machine without bwrap can do): same grades, same reasons."""
    correct = solved(release)
    partial = edit(correct, "ps1_q_identity", 'q_identity = "b"', 'q_identity = "a"')
    students = [Student("correct", correct, FULL, "graded", "all tests passed"),
                Student("partial", partial, FULL - 1, "graded", lost("ps1_test_q_identity")),
                Student("empty", b"", 0, "failed", "empty file")]
    write_class(students, tmp_path / "submissions")
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((tmp_path / "submissions").rglob("*")):
            zipped.write(path, Path("downloads") / path.relative_to(tmp_path / "submissions"))
    code, out, err = grade(capsys, "ps1", archive, "--course-dir", tmp_path / "course", "--no-sandbox",
                           "--timeout", TIMEOUT, "--quiet")
    assert code == 0, err
    rows = read_csv(tmp_path / "course" / "grading" / "ps1" / "grades.csv")
    assert {name: (float(r["total"]), r["status"]) for name, r in rows.items()} == {
        s.name: (s.score, s.status) for s in students}
    assert all(re.fullmatch(s.reason, rows[s.name]["reason"]) for s in students), rows
    assert "3 submissions: 2 graded, 1 failed, 0 flagged" in out
    # nbgrader's own submitted/ folder can be the input: nothing changed, nothing regraded
    code, out, err = grade(capsys, "ps1", tmp_path / "course" / "submitted", "--course-dir", tmp_path / "course",
                           "--no-sandbox", "--timeout", TIMEOUT, "--quiet")
    assert code == 0, err
    assert "(3 unchanged since the last run" in out
