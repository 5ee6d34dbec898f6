"""A TA's round trip: an LMS download in, every student graded or explained, grades and
feedback back in the LMS's formats -- with real nbgrader and the real sandbox.

Slow tests (``-m slow``) grade a class of twelve as Canvas's "Download Submissions" zip
and as Gradescope's "Export Submissions" zip, both built in the documented formats
(Canvas: flat files ``{lastfirst}_[LATE_]{user id}_{file id}_{name}``; Gradescope:
``submission_metadata.yml`` and a ``submission_<id>/`` folder per submission), with a
non-ASCII name, a late student, a symbolic link, a hidden entry, an empty and an invalid
submission, and correct / partial / blank notebooks; then export against the LMS's roster
and check every roster student's score or 0 with its reason, the feedback archive's names,
a regrade of one student that keeps a TA's manual grade, and an export after a real
``make clean``. Fast tests check the export's refusals of bad rosters on a gradebook with
zeros recorded (no kernel runs).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from normlab_tools.cli import main as normlab_main
from normlab_tools.grading import course, gradebook, students
from test_grading import FULL, TIMEOUT, copy, edit, solved

ROOT = Path(__file__).resolve().parents[1]
PARTIAL = FULL - 3  # the square root in curvature and a wrong letter for q_identity
ONE_WRONG = FULL - 1  # a wrong letter for q_identity
LOST_BOTH = r"lost points on ps1_test_curvature \(.+\), ps1_test_q_identity \(.+\)"
LOST_ONE = r"lost points on ps1_test_q_identity \(.+\)"
BLANK = r"ps1_curvature_demo raised NotImplementedError; lost points on .*"
LINK = r".*a symbolic link \(not followed\): upload the file itself"


def notebooks(course_dir: Path) -> dict:
    """The notebooks a class hands in, as JSON text, made from the release of the course
    they are graded in (so a change to the assignment's source while tests run -- another
    session editing it -- cannot make the class differ from its release)."""
    from normlab_tools.assignments import scripts_on_path

    scripts_on_path()
    course.quiet_nbgrader()
    course.prepare_course(course_dir, "ps1")
    release = nbformat.read(course_dir / "release" / "ps1" / "ps1.ipynb", as_version=4)
    source = nbformat.read(course_dir / "source" / "ps1" / "ps1.ipynb", as_version=4)
    correct = solved(release, source)
    partial = edit(edit(correct, "ps1_curvature", "return float(eigenvalues[-1] / eigenvalues[0])",
                        "return float(np.sqrt(eigenvalues[-1] / eigenvalues[0]))"),
                   "ps1_q_identity", 'q_identity = "b"', 'q_identity = "a"')
    one_wrong = edit(correct, "ps1_q_identity", 'q_identity = "b"', 'q_identity = "a"')
    wrong = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "grade": False, "grade_id": "ps2_setup", "locked": True, "schema_version": 3, "solution": False,
        "task": False}})])
    return {name: nbformat.writes(nb) for name, nb in [("correct", correct), ("partial", partial),
                                                       ("one_wrong", one_wrong), ("blank", copy(release)),
                                                       ("wrong", wrong)]}


def write_zip(path: Path, files: dict, links: dict = ()) -> Path:
    """A zip of `files` (name -> text) and `links` (name -> target, stored as symbolic
    links the way `zip -y` stores them)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in dict(links).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8-sig")  # as spreadsheets save it
    return path


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def normlab(capsys, *argv) -> tuple[int, str, str]:
    code = normlab_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist())


def check_rows(got: dict, expected: dict) -> None:
    """got/expected: key -> (score, status, reason regex); every mismatch listed."""
    assert sorted(got) == sorted(expected)
    wrong = [f"{key}: got {got[key]}, expected {want}" for key, want in expected.items()
             if (got[key][0], got[key][1]) != want[:2] or not re.fullmatch(want[2], got[key][2])]
    assert not wrong, "\n".join(wrong)


# --- Canvas --------------------------------------------------------------------------------------

# Canvas user id -> (roster name, lastfirst in the download, what they hand in, late,
#                    expected score, status, reason). The download names the file
# {lastfirst}_[LATE_]{user id}_{file id}_{name as uploaded}.
CANVAS = {
    "1001": ("García Márquez, José", "garcíamárquezjosé", "correct", False, FULL, "graded", "all tests passed"),
    "1002": ("Lee, Ann", "leeann", "correct", True, FULL, "graded", "all tests passed"),
    "1003": ("Smith, John", "smithjohn", "partial", False, PARTIAL, "graded", LOST_BOTH),
    "1004": ("Doe, Jane", "doejane", "blank", False, 0, "graded", BLANK),
    "1005": ("Mallory, Eve", "malloryeve", "link", False, 0, "failed", LINK),
    "1006": ("Hidden, Hank", "hiddenhank", "hidden", False, 0, "missing",
             r"not graded: \.hiddenhank_1006_2006_ps1\.ipynb: hidden \(its name starts with '\.'\).*"),
    "1007": ("Empty, Emma", "emptyemma", "empty", False, 0, "failed", "empty file"),
    "1008": ("Invalid, Ivan", "invalidivan", "invalid", False, 0, "failed", r"invalid JSON at line \d+, .*"),
    "1009": ("Resubmit, Rita", "resubmitrita", "correct-1", False, FULL, "graded", "all tests passed"),
    "1010": ("Nguyen, Bao", "nguyenbao", "one_wrong", True, ONE_WRONG, "graded", LOST_ONE),
    "1011": ("Wrong, Will", "wrongwill", "wrong", False, 0, "failed", "wrong notebook: a notebook of ps2, not ps1"),
    "1012": ("Python, Paula", "pythonpaula", "py", False, 0, "failed",
             r"no ps1\.ipynb in the submission \(notebooks found: none\)"),
    "1099": ("Absent, Abby", "", "", False, 0, "missing", "no submission of ps1"),
}
CANVAS_COLUMN = "ps1 (4321)"


def canvas_download(course_dir: Path, path: Path) -> Path:
    texts = notebooks(course_dir)
    files, links = {"__MACOSX/._leeann_LATE_1002_2002_ps1.ipynb": "\0"}, {}
    for user_id, (_, lastfirst, kind, late, *_) in CANVAS.items():
        if not kind:
            continue
        prefix = f"{lastfirst}_{'LATE_' if late else ''}{user_id}_{2000 + int(user_id) - 1000}_"
        if kind == "link":
            links[prefix + "ps1.ipynb"] = "/etc/passwd"
        elif kind == "hidden":
            files["." + prefix + "ps1.ipynb"] = texts["correct"]
        elif kind == "empty":
            files[prefix + "ps1.ipynb"] = ""
        elif kind == "invalid":
            files[prefix + "ps1.ipynb"] = texts["correct"][:3000]
        elif kind == "correct-1":  # a second upload: Canvas names it ps1-1.ipynb
            files[prefix + "ps1-1.ipynb"] = texts["correct"]
        elif kind == "py":
            files[prefix + "ps1.py"] = "print('my answers')\n"
        else:
            files[prefix + "ps1.ipynb"] = texts[kind]
    return write_zip(path, files, links)


def canvas_roster(path: Path) -> Path:
    """The CSV of Canvas's Grades > Export (a "Points Possible" row, columns it adds)."""
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", CANVAS_COLUMN, "ps2 (4322)",
              "Current Points", "Final Points"]
    rows = [header, ["    Points Possible", "", "", "", "", "25", "25", "(read only)", "(read only)"]]
    for user_id, (name, *_) in CANVAS.items():
        rows.append([name, user_id, f"S{user_id}", f"login{user_id}", "Section A", "", "", "", ""])
    return write_csv(path, rows)


@pytest.fixture(scope="module")
def canvas_class(tmp_path_factory):
    """The Canvas class graded in a project folder with a build/ (for `make clean`):
    (project, course dir, download zip, roster)."""
    project = tmp_path_factory.mktemp("canvas-project")
    (project / "build" / "course").mkdir(parents=True)
    course_dir = project / "nbgrader-course"
    download = canvas_download(course_dir, project / "submissions.zip")
    roster = canvas_roster(project / "roster.csv")
    code = normlab_main(["grade", "ps1", str(download), "--course-dir", str(course_dir), "--workers", "2",
                         "--timeout", str(TIMEOUT), "--quiet"])
    assert code == 0
    return project, course_dir, download, roster


@pytest.mark.slow
def test_canvas_download_to_canvas_import(canvas_class, capsys):
    project, course_dir, download, roster = canvas_class
    out_csv = project / "ps1-canvas.csv"
    code, out, err = normlab(capsys, "export", "ps1", "--to", "canvas", "--roster", roster, "--out", out_csv,
                             "--course-dir", course_dir)
    assert code == 0, err
    table = read_csv(out_csv)
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", CANVAS_COLUMN]
    assert table[1][0].strip() == "Points Possible" and table[1][5] == "25"
    scores = {row[1]: row for row in table[2:]}
    assert list(scores) == list(CANVAS)  # every roster student, in the roster's order
    assert scores["1001"][:5] == ["García Márquez, José", "1001", "S1001", "login1001", "Section A"]
    reasons = read_csv(project / "ps1-canvas.reasons.csv")
    assert reasons[0] == ["Student", "ID", "graded as", "score", "late", "status", "reason"]
    by_id = {row[1]: row for row in reasons[1:]}
    check_rows({uid: (float(scores[uid][5]), by_id[uid][5], by_id[uid][6]) for uid in CANVAS},
               {uid: (float(want[4]), want[5], want[6]) for uid, want in CANVAS.items()})
    assert by_id["1001"][2] == "garcíamárquezjosé"  # the id as found in the download
    assert {uid for uid, row in by_id.items() if row[4] == "late"} == {"1002", "1010"}


@pytest.mark.slow
def test_canvas_grades_csv_summary_and_registry_keep_the_ids_as_found(canvas_class):
    project, course_dir, _, _ = canvas_class
    rows = {row["student"]: row for row in csv.DictReader(
        (course_dir / "grading" / "ps1" / "grades.csv").read_text(encoding="utf-8").splitlines())}
    found = {lastfirst for _, lastfirst, kind, *_ in CANVAS.values() if kind and kind != "hidden"}
    assert set(rows) == found
    assert rows["garcíamárquezjosé"]["total"] == "25" and rows["leeann"]["late"] == "late"
    assert rows["malloryeve"]["status"] == "failed" and re.fullmatch(LINK, rows["malloryeve"]["reason"])
    registry = students.read_registry(course_dir)
    jose = next(s for s in registry.values() if s.id == "garcíamárquezjosé")
    assert jose.internal != jose.id and students.SAFE_ID.fullmatch(jose.internal)
    assert (course_dir / "feedback" / jose.internal / "ps1" / "ps1.html").is_file()
    assert jose.lms_ids == {"user_id": "1001", "file_id": "2001"}
    skipped = (course_dir / "grading" / "ps1" / "skipped.json").read_text(encoding="utf-8")
    assert ".hiddenhank_1006_2006_ps1.ipynb" in skipped and "__MACOSX/" in skipped


@pytest.mark.slow
def test_canvas_feedback_archive_is_named_for_canvas_reupload(canvas_class, capsys):
    project, course_dir, _, _ = canvas_class
    archive = project / "feedback.zip"
    code, out, err = normlab(capsys, "feedback", "ps1", "--zip", archive, "--course-dir", course_dir)
    assert code == 0, err
    expected = sorted(f"{lastfirst}_{'LATE_' if late else ''}{uid}_{2000 + int(uid) - 1000}_ps1.html"
                      for uid, (_, lastfirst, kind, late, *_) in CANVAS.items() if kind and kind != "hidden")
    assert zip_names(archive) == expected
    assert f"wrote {archive}: {len(expected)} feedback page(s)" in out
    with zipfile.ZipFile(archive) as zipped:
        assert "Score: 0 / 25" in zipped.read("malloryeve_1005_2005_ps1.html").decode()
        assert "ps1_test_curvature" in zipped.read("garcíamárquezjosé_1001_2001_ps1.html").decode()


@pytest.mark.slow
def test_regrading_one_student_keeps_manual_grades(canvas_class, capsys):
    """A TA overrides a score in formgrader (nbgrader's manual_score), then regrades one
    student: only that student runs again, the override stays and reaches the export."""
    from nbgrader.api import Gradebook

    from normlab_tools.assignments import COURSE_ID

    project, course_dir, download, roster = canvas_class
    smith = students.internal_id("smithjohn")
    with Gradebook(course.db_url(course_dir), course_id=COURSE_ID) as book:
        grade = book.find_grade("ps1_test_curvature", "ps1", "ps1", smith)
        assert grade.auto_score == 0
        grade.manual_score = 2.0  # the TA's judgement: the sqrt was a typo
        book.db.commit()
    code, out, err = normlab(capsys, "grade", "ps1", download, "--course-dir", course_dir, "--student", "SmithJohn",
                             "--timeout", TIMEOUT, "--quiet")
    assert code == 0, err
    assert "(10 unchanged since the last run and not regraded" in out
    assert gradebook.read_scores(course_dir, "ps1", [smith])[smith][0]["ps1_test_curvature"] == 2.0
    code, _, err = normlab(capsys, "export", "ps1", "--to", "csv", "--out", project / "plain.csv",
                           "--course-dir", course_dir)
    assert code == 0, err
    plain = {row["id"]: row for row in csv.DictReader(io.StringIO((project / "plain.csv").read_text("utf-8")))}
    assert plain["smithjohn"]["score"] == str(PARTIAL + 2)
    assert plain["leeann"]["late"] == "yes" and plain["garcíamárquezjosé"]["score"] == "25"
    code, _, err = normlab(capsys, "grade", "ps1", download, "--course-dir", course_dir, "--student", "nobody",
                           "--quiet")
    assert code == 2 and "--student 'nobody': no such student in" in err and "'garcíamárquezjosé'" in err


@pytest.mark.slow
def test_export_after_make_clean(canvas_class, capsys):
    """`make clean` (the Makefile's own target) deletes build/ and nothing of the course."""
    project, course_dir, _, roster = canvas_class
    before = project / "before.csv"
    assert normlab(capsys, "export", "ps1", "--to", "canvas", "--roster", roster, "--out", before,
                   "--course-dir", course_dir)[0] == 0
    subprocess.run(["make", "-f", str(ROOT / "Makefile"), "clean"], cwd=project, check=True, capture_output=True)
    assert not (project / "build").exists() and (course_dir / "gradebook.db").is_file()
    after = project / "after.csv"
    code, _, err = normlab(capsys, "export", "ps1", "--to", "canvas", "--roster", roster, "--out", after,
                           "--course-dir", course_dir)
    assert code == 0, err
    assert after.read_text(encoding="utf-8") == before.read_text(encoding="utf-8")
    assert len(read_csv(after)) == 2 + len(CANVAS)


# --- Gradescope ----------------------------------------------------------------------------------

DUE = "2026-12-02T00:00:00-08:00"
ON_TIME, LATE = "2026-12-01 20:00:00.000000000 -08:00", "2026-12-02 03:15:00.000000000 -08:00"
# submission id -> (submitters: (name, sid, email)), what is in its folder, created_at)
GRADESCOPE_SUBMISSIONS = {
    "101": ([("José García Márquez", "5001", "jgarcia@example.edu")], "correct", ON_TIME),
    "102": ([("Ann Lee", "5002", "alee@example.edu")], "correct", LATE),
    "103": ([("John Smith", "5003", "jsmith@example.edu")], "partial", ON_TIME),
    "104": ([("Jane Doe", "5004", "jdoe@example.edu")], "blank", ON_TIME),
    "105": ([("Eve Mallory", "5005", "emallory@example.edu")], "link", ON_TIME),
    "106": ([("Hank Hidden", "5006", "hhidden@example.edu")], "hidden", ON_TIME),
    "107": ([("Emma Empty", "5007", "eempty@example.edu")], "empty", ON_TIME),
    "108": ([("Ivan Invalid", "5008", "iinvalid@example.edu")], "invalid", ON_TIME),
    "109": ([("Pat Group", "5009", "pgroup@example.edu"), ("Sam Group", "", "sgroup@example.edu")], "correct",
            ON_TIME),
    "110": ([("Will Wrong", "5011", "wwrong@example.edu")], "wrong", ON_TIME),
    "111": ([("Bao Nguyen", "5012", "bnguyen@example.edu")], "one_wrong", LATE),
}
# email -> (roster first name, last name, expected score, status, reason)
GRADESCOPE = {
    "jgarcia@example.edu": ("José", "García Márquez", FULL, "graded", "all tests passed"),
    "alee@example.edu": ("Ann", "Lee", FULL, "graded", "all tests passed"),
    "jsmith@example.edu": ("John", "Smith", PARTIAL, "graded", LOST_BOTH),
    "jdoe@example.edu": ("Jane", "Doe", 0, "graded", BLANK),
    "emallory@example.edu": ("Eve", "Mallory", 0, "failed", LINK),
    "hhidden@example.edu": ("Hank", "Hidden", 0, "failed",
                            r"its folder submission_106/ is not in the export: export it again"),
    "eempty@example.edu": ("Emma", "Empty", 0, "failed", "an empty submission: no files"),
    "iinvalid@example.edu": ("Ivan", "Invalid", 0, "failed", r"invalid JSON at line \d+, .*"),
    "pgroup@example.edu": ("Pat", "Group", FULL, "graded", "all tests passed"),
    "sgroup@example.edu": ("Sam", "Group", FULL, "graded", "all tests passed"),
    "wwrong@example.edu": ("Will", "Wrong", 0, "failed", "wrong notebook: a notebook of ps2, not ps1"),
    "bnguyen@example.edu": ("Bao", "Nguyen", ONE_WRONG, "graded", LOST_ONE),
    "aabsent@example.edu": ("Abby", "Absent", 0, "missing", "no submission of ps1"),
}


def yaml_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def gradescope_export(course_dir: Path, path: Path) -> Path:
    texts = notebooks(course_dir)
    top = "assignment_4242_export/"
    lines, files, links = [], {top + ".DS_Store": "\0"}, {}
    for sid, (submitters, kind, created) in GRADESCOPE_SUBMISSIONS.items():
        lines.append(f"submission_{sid}:")
        lines.append("  :submitters:")
        for name, student_id, email in submitters:
            lines += [f"  - :name: {yaml_text(name)}", f"    :sid: {yaml_text(student_id)}",
                      f"    :email: {email}"]
        lines += [f"  :created_at: {created}", "  :score: 0.0", "  :status: processed"]
        folder = f"{top}submission_{sid}/"
        if kind == "link":
            links[folder + "ps1.ipynb"] = "/etc/passwd"
        elif kind == "hidden":
            files[f"{top}.submission_{sid}/ps1.ipynb"] = texts["correct"]
        elif kind == "empty":
            files[folder] = ""  # a folder entry, nothing in it
        elif kind == "invalid":
            files[folder + "ps1.ipynb"] = texts["correct"][:3000]
        else:
            files[folder + "ps1.ipynb"] = texts[kind]
    files[top + "submission_metadata.yml"] = "\n".join(lines) + "\n"
    return write_zip(path, files, links)


def gradescope_roster(path: Path) -> Path:
    """The CSV of Gradescope's Roster > Download Roster."""
    rows = [["First Name", "Last Name", "SID", "Email", "Role", "Sections"]]
    sids = {email: sid for submitters, _, _ in GRADESCOPE_SUBMISSIONS.values() for _, sid, email in submitters}
    for email, (first, last, *_) in GRADESCOPE.items():
        rows.append([first, last, sids.get(email, ""), email, "Student", ""])
    return write_csv(path, rows)


@pytest.mark.slow
def test_gradescope_export_to_gradescope_import(tmp_path, capsys):
    project = tmp_path
    (project / "build").mkdir()
    course_dir = project / "nbgrader-course"
    download = gradescope_export(course_dir, project / "export.zip")
    roster = gradescope_roster(project / "roster.csv")
    code, out, err = normlab(capsys, "grade", "ps1", download, "--course-dir", course_dir, "--workers", "2",
                             "--timeout", TIMEOUT, "--due", DUE, "--quiet")
    assert code == 0, err
    assert "12 submissions: 7 graded, 5 failed, 0 flagged" in out
    assert "late (as the LMS marked them): Ann Lee, Bao Nguyen" in out
    assert "skipped (not a submission):" in out and ".submission_106/: hidden" in out
    assert ".DS_Store: operating-system or editor junk" in out
    subprocess.run(["make", "-f", str(ROOT / "Makefile"), "clean"], cwd=project, check=True, capture_output=True)
    assert not (project / "build").exists()
    out_csv = project / "ps1-gradescope.csv"
    code, _, err = normlab(capsys, "export", "ps1", "--to", "gradescope", "--roster", roster, "--out", out_csv,
                           "--course-dir", course_dir)
    assert code == 0, err
    table = read_csv(out_csv)
    assert table[0] == ["First Name", "Last Name", "SID", "Email", "Total Score", "Max Points", "Late", "Status",
                        "Comments"]
    by_email = {row[3]: row for row in table[1:]}
    assert list(by_email) == list(GRADESCOPE)  # every roster student, in order
    check_rows({email: (float(row[4]), row[7], row[8]) for email, row in by_email.items()},
               {email: tuple(want[2:]) for email, want in GRADESCOPE.items()})
    assert by_email["jgarcia@example.edu"][:4] == ["José", "García Márquez", "5001", "jgarcia@example.edu"]
    assert {email for email, row in by_email.items() if row[6] == "late"} == {"alee@example.edu",
                                                                             "bnguyen@example.edu"}
    grades = {row["student"]: row for row in csv.DictReader(
        (course_dir / "grading" / "ps1" / "grades.csv").read_text(encoding="utf-8").splitlines())}
    assert grades["José García Márquez"]["total"] == "25" and grades["Ann Lee"]["late"] == "late"
    assert grades["Sam Group"]["total"] == "25" and "Hank Hidden" in grades
    archive = project / "feedback.zip"
    code, _, err = normlab(capsys, "feedback", "ps1", "--zip", archive, "--course-dir", course_dir)
    assert code == 0, err
    named = sorted(f"{name}_ps1.html" for submitters, _, _ in GRADESCOPE_SUBMISSIONS.values()
                   for name, _, _ in submitters)
    assert zip_names(archive) == named


# --- fast: the export's refusals ---------------------------------------------------------------


@pytest.fixture(scope="module")
def zeros_course(tmp_path_factory):
    """A course with ps1 and three students recorded at 0 (no kernel runs), registered
    as a Canvas download would register them."""
    from normlab_tools.assignments import scripts_on_path
    from normlab_tools.grading import state

    scripts_on_path()
    course_dir = tmp_path_factory.mktemp("zeros") / "course"
    course.quiet_nbgrader()
    course.prepare_course(course_dir, "ps1")
    people = [students.Student(internal=students.internal_id(lastfirst), id=lastfirst, lms="canvas",
                               lms_ids={"user_id": uid, "file_id": str(int(uid) + 1000)},
                               files=[f"{lastfirst}_{uid}_{int(uid) + 1000}_ps1.ipynb"])
              for lastfirst, uid in [("garcíajosé", "1001"), ("leeann", "1002"), ("smithjohn", "1003")]]
    students.update_registry(course_dir, people)
    for person in people:
        gradebook.record_zero(course_dir, "ps1", person.internal)
        state.write_state(course_dir / "grading" / "ps1", person.internal,
                          {"digest": "x", "status": "failed", "reason": "empty file"})
    return course_dir


def roster_rows(*users) -> list[list[str]]:
    rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ps1 (4321)"]]
    return rows + [[name, uid, "", "", "A", ""] for name, uid in users]


def test_canvas_export_refuses_bad_rosters(zeros_course, tmp_path, capsys):
    everyone = [("García, José", "1001"), ("Lee, Ann", "1002"), ("Smith, John", "1003")]

    def export(rows, *extra):
        roster = write_csv(tmp_path / "roster.csv", rows)
        return normlab(capsys, "export", "ps1", "--to", "canvas", "--roster", roster, "--out",
                       tmp_path / "out.csv", "--course-dir", zeros_course, *extra)

    code, _, err = export(roster_rows(*everyone[:2]))
    assert code == 2 and "1 graded student(s) are not in the roster" in err and "'smithjohn'" in err
    code, _, err = export([["Name", "Score"], ["x", "1"]])
    assert code == 2 and "has no column(s) Student, ID, SIS User ID, SIS Login ID, Section" in err
    code, _, err = export([row[:5] + ["ps2 (4322)"] for row in roster_rows(*everyone)])
    assert code == 2 and "has 0 column(s) named 'ps1 (<id>)'" in err and "--column" in err
    code, _, err = export(roster_rows(*everyone, ("Lee, Ann", "1002")))
    assert code == 2 and "lists ID 1002 twice" in err
    code, _, err = export(roster_rows(*everyone) + [["Short", "1004"]])
    assert code == 2 and "row(s) 5 with fewer than 6 columns" in err
    code, _, err = export([])
    assert code == 2 and "is empty: export it again from the LMS" in err
    code, _, err = normlab(capsys, "export", "ps1", "--to", "canvas", "--course-dir", zeros_course)
    assert code == 2 and "--to canvas needs --roster FILE" in err
    code, out, err = export(roster_rows(*everyone, ("Absent, Abby", "1099")))
    assert code == 0, err
    table = read_csv(tmp_path / "out.csv")
    assert [row[1] for row in table[2:]] == ["1001", "1002", "1003", "1099"]
    assert all(row[5] == "0" for row in table[2:])
    reasons = {row[1]: row[6] for row in read_csv(tmp_path / "out.reasons.csv")[1:]}
    assert reasons == {"1001": "empty file", "1002": "empty file", "1003": "empty file",
                       "1099": "no submission of ps1"}


def test_gradescope_export_refuses_bad_rosters(zeros_course, tmp_path, capsys):
    def export(rows):
        roster = write_csv(tmp_path / "roster.csv", rows)
        return normlab(capsys, "export", "ps1", "--to", "gradescope", "--roster", roster, "--out",
                       tmp_path / "out.csv", "--course-dir", zeros_course)

    code, _, err = export([["Full Name", "Role"], ["José García", "Student"]])
    assert code == 2 and "neither a SID nor an Email column" in err
    code, _, err = export([["Full Name", "SID", "Email"], ["José García", "", ""]])
    assert code == 2 and "row 2 of the Gradescope roster" in err and "no SID and no Email" in err
    code, _, err = export([["Full Name", "SID", "Email"], ["Ann Lee", "9", "a@x.edu"], ["Ann Lee", "", "A@x.edu"]])
    assert code == 2 and "lists 'a@x.edu' twice (rows 2 and 3)" in err
    code, _, err = export([["Full Name", "SID", "Email"], ["Ann Lee", "9", "a@x.edu"]])
    assert code == 2 and "3 graded student(s) are not in the roster" in err


def test_export_without_a_gradebook_or_assignment(tmp_path, zeros_course, capsys):
    code, _, err = normlab(capsys, "export", "ps1", "--to", "csv", "--course-dir", tmp_path / "nowhere")
    assert code == 2 and "no gradebook in" in err
    code, _, err = normlab(capsys, "export", "ps2", "--to", "csv", "--course-dir", zeros_course,
                           "--out", tmp_path / "x.csv")
    assert code == 2 and "has no assignment ps2: grade it first" in err
    code, _, err = normlab(capsys, "feedback", "ps2", "--zip", "--course-dir", zeros_course)
    assert code == 2 and "ps2 has not been graded in" in err


def test_nbgrader_export_runs_the_same_plugin(zeros_course, tmp_path, capsys):
    """The formats are nbgrader export plugins: `nbgrader export --exporter=...` in the
    course directory writes what `normlab export` writes."""
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    assert normlab(capsys, "export", "ps1", "--to", "csv", "--out", ours, "--course-dir", zeros_course)[0] == 0
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export", "--assignment=ps1",
                           "--exporter=normlab_tools.grading.export.CsvExportPlugin", f"--to={theirs}"],
                          cwd=zeros_course, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert theirs.read_text(encoding="utf-8") == ours.read_text(encoding="utf-8")
    assert ours.read_text(encoding="utf-8").splitlines() == [
        "id,name,score,max,late,status,reason", "garcíajosé,,0,25,,failed,empty file",
        "leeann,,0,25,,failed,empty file", "smithjohn,,0,25,,failed,empty file"]


def test_feedback_names_for_canvas_reupload():
    from normlab_tools.grading.export import feedback_name

    late = students.Student(internal="x", id="garcíajosé", lms="canvas", late=True,
                            files=["garcíajosé_LATE_1001_2001_ps1.ipynb", "garcíajosé_LATE_1001_2002_data.csv"])
    assert feedback_name(late, "ps1.html") == "garcíajosé_LATE_1001_2001_ps1.html"
    plain = students.Student(internal="Jose_Garcia-1", id="José García")
    assert feedback_name(plain, "ps1.html") == "José García_ps1.html"
