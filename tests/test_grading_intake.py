"""`normlab grade`'s intake: reading SUBMISSIONS (folders, flat files, Canvas and Gradescope
downloads, zips) into one submission per student -- ids kept as found, links, hidden
folders, duplicates and broken notebooks each a student's problem or a skipped entry,
never a refusal of the class."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from normlab_tools.errors import UserError
from normlab_tools.grading import intake, students
from support import notebook_file


def by_id(intake_result) -> dict:
    return {s.id: s for s in intake_result.submissions}


def test_layouts_folder_flat_and_nbgrader(tmp_path):
    subs = tmp_path / "subs"
    notebook_file(subs / "alice" / "ps1.ipynb")
    notebook_file(subs / "bob" / "ps1" / "ps1.ipynb")
    (subs / "bob" / "ps1" / "data.csv").write_text("1,2\n")
    notebook_file(subs / "carol_12345_ps1_attempt_2.ipynb")
    (subs / ".DS_Store").write_text("junk")
    (subs / "README.txt").write_text("not a submission")
    found = intake.read_submissions(subs, tmp_path / "x")
    assert [s.student for s in found.submissions] == ["alice", "bob", "carol"]
    assert all(s.problem is None for s in found.submissions) and found.layout == "folders"
    files, notes, problem = intake.choose_notebooks(found.submissions[1], ["ps1"], "ps1")
    assert problem is None and sorted(files) == ["data.csv", "ps1.ipynb"] and notes == []
    assert dict(found.skipped) == {".DS_Store": "operating-system or editor junk, not a submission",
                                   "README.txt": "not a notebook (.ipynb) nor a student's folder"}


def test_ids_with_spaces_and_accents_are_kept_with_a_safe_internal_id(tmp_path):
    subs = tmp_path / "subs"
    names = ["José García", "Zoë O'Neil", "李雷", "plain-id", "alice[1]*", "-rf"]
    for name in names:
        notebook_file(subs / name / "ps1.ipynb")
    found = by_id(intake.read_submissions(subs, tmp_path / "x"))
    assert sorted(found) == sorted(names) and not any(s.problem for s in found.values())
    assert found["plain-id"].student == "plain-id"  # a safe id is its own internal id
    internal = {s.student for s in found.values()}
    assert len(internal) == len(names) and all(students.SAFE_ID.fullmatch(i) for i in internal)
    assert not any(set("*?[]") & set(i) for i in internal)  # nbgrader globs student ids
    assert found["José García"].student.startswith("Jose_Garcia-")  # readable, and stable from run to run
    assert found["José García"].student == students.internal_id("José García")
    assert found["李雷"].student.startswith("student-")


def test_what_cannot_be_graded_is_a_row_not_a_refusal(tmp_path):
    """A link, an unreadable name, two submissions for one id: each its own problem, the
    others untouched; a hidden folder is skipped and said so."""
    subs = tmp_path / "subs"
    notebook_file(subs / "alice" / "ps1.ipynb")
    (subs / "mallory").mkdir()
    (subs / "mallory" / "ps1.ipynb").symlink_to(subs / "alice" / "ps1.ipynb")
    (subs / "trudy").symlink_to(subs / "alice")
    notebook_file(subs / "Bob" / "ps1.ipynb")
    notebook_file(subs / "bob_ps1.ipynb")
    notebook_file(subs / os.fsdecode(b"caf\xe9") / "ps1.ipynb")  # Latin-1 bytes: not UTF-8
    notebook_file(subs / ".hidden" / "ps1.ipynb")
    (subs / "empty").mkdir()
    found = by_id(intake.read_submissions(subs, tmp_path / "x"))
    assert found["alice"].problem is None
    assert found["mallory"].problem == "ps1.ipynb: a symbolic link (not followed): upload the file itself"
    assert found["mallory"].files == {}
    assert found["trudy"].problem == "trudy: a symbolic link (not followed): upload the file itself"
    assert found["Bob"].problem == "2 submissions for this student (Bob/; bob_ps1.ipynb): keep one and grade again"
    assert "bob" not in found
    assert found["caf?"].problem.startswith("unreadable student id 'caf?'")
    assert found["empty"].problem is None and found["empty"].files == {}
    assert intake.choose_notebooks(found["empty"], ["ps1"], "ps1")[2] == "an empty submission: no files"
    assert ".hidden" not in found
    skipped = dict(intake.read_submissions(subs, tmp_path / "x").skipped)
    assert skipped[".hidden/"].startswith("hidden (its name starts with '.'), not graded")


def test_nothing_to_grade_says_what_was_skipped(tmp_path):
    notebook_file(tmp_path / "subs" / ".alice" / "ps1.ipynb")
    with pytest.raises(UserError, match=r"no submissions in .*skipped:\n  .alice/: hidden"):
        intake.read_submissions(tmp_path / "subs", tmp_path / "x")


def make_zip(path: Path, entries: dict, wrap: str = "", links: dict | None = None) -> Path:
    """A zip of `entries` (name -> data), and `links` (name -> target) stored as symbolic
    links (Unix mode in external_attr, as `zip -y` writes them)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(wrap + name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(wrap + name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def test_zip_of_either_layout(tmp_path):
    notebook = notebook_file(tmp_path / "nb.ipynb").read_text()
    archive = make_zip(tmp_path / "lms.zip", {"alice_ps1.ipynb": notebook, "bob/ps1.ipynb": notebook},
                       wrap="ps1 submissions/", links={"eve_ps1.ipynb": "/etc/passwd"})
    found = intake.read_submissions(archive, tmp_path / "extracted")
    assert [s.student for s in found.submissions] == ["alice", "bob", "eve"]
    eve = found.submissions[2]
    assert eve.problem == "eve_ps1.ipynb: a symbolic link (not followed): upload the file itself"
    assert not any(p.is_symlink() for p in (tmp_path / "extracted").rglob("*"))


def test_canvas_download(tmp_path):
    """Canvas's Download Submissions: {lastfirst}_[LATE_]{user id}_{file id}_{name}; a
    student's files grouped by user id; late kept; a re-submission's -1 name accepted."""
    notebook = notebook_file(tmp_path / "nb.ipynb").read_text()
    archive = make_zip(tmp_path / "submissions.zip", {
        "garcíajosé_LATE_1001_2001_ps1.ipynb": notebook,
        "garcíajosé_LATE_1001_2002_data.csv": "1,2\n",
        "smithjohn_1002_2003_ps1-1.ipynb": notebook,
        "smithjohn_1003_2004_ps1.ipynb": notebook,  # another John Smith
        "leeann_late_1004_2005_Untitled.ipynb": notebook,
        "__MACOSX/._leeann_late_1004_2005_Untitled.ipynb": "",
    }, links={"doejane_1005_2006_ps1.ipynb": "../../secret"})
    found = intake.read_submissions(archive, tmp_path / "x")
    assert found.layout == "canvas"
    got = by_id(found)
    assert sorted(got) == ["doejane", "garcíajosé", "leeann", "smithjohn (1002)", "smithjohn (1003)"]
    jose = got["garcíajosé"]
    assert (jose.info.lms, jose.info.lms_ids, jose.info.late) == ("canvas", {"user_id": "1001", "file_id": "2001"},
                                                                  True)
    assert sorted(jose.files) == ["data.csv", "ps1.ipynb"]
    assert jose.info.files == ["garcíajosé_LATE_1001_2001_ps1.ipynb", "garcíajosé_LATE_1001_2002_data.csv"]
    assert got["leeann"].info.late and not got["smithjohn (1002)"].info.late
    files, notes, problem = intake.choose_notebooks(got["smithjohn (1002)"], ["ps1"], "ps1")
    assert problem is None and list(files) == ["ps1.ipynb"]
    assert got["doejane"].problem.endswith("a symbolic link (not followed): upload the file itself")
    assert dict(found.skipped) == {"__MACOSX/": "operating-system or editor junk, not a submission"}


GRADESCOPE_METADATA = """\
submission_101:
  :submitters:
  - :name: José García
    :sid: '5001'
    :email: jgarcia@example.edu
  :created_at: 2026-12-01 22:10:05.574245000 -08:00
  :score: 0.0
submission_102:
  :submitters:
  - :name: Pat Lee
    :sid: '5002'
    :email: plee@example.edu
  - :name: Sam Roe
    :sid: ''
    :email: sroe@example.edu
  :created_at: 2026-12-02 09:00:00.000000000 -08:00
submission_103:
  :submitters:
  - :name: No Folder
    :sid: '5004'
    :email: nofolder@example.edu
  :created_at: 2026-12-01 10:00:00.000000000 -08:00
"""


def test_gradescope_export(tmp_path):
    """Gradescope's Export Submissions: submission_metadata.yml names each submission's
    submitters; a group's members each get the submission; --due marks the late ones."""
    notebook = notebook_file(tmp_path / "nb.ipynb").read_text()
    archive = make_zip(tmp_path / "export.zip", {
        "submission_metadata.yml": GRADESCOPE_METADATA,
        "submission_101/ps1.ipynb": notebook,
        "submission_102/ps1.ipynb": notebook,
        "submission_999/ps1.ipynb": notebook,
        ".submission_104/ps1.ipynb": notebook,
    }, wrap="assignment_77_export/")
    due = intake.parse_due("2026-12-02T00:00-08:00")
    found = intake.read_submissions(archive, tmp_path / "x", due)
    assert found.layout == "gradescope"
    got = by_id(found)
    assert sorted(got) == ["José García", "No Folder", "Pat Lee", "Sam Roe"]
    jose = got["José García"]
    assert jose.info.lms_ids == {"submission_id": "101", "sid": "5001", "email": "jgarcia@example.edu"}
    assert not jose.info.late and jose.info.submitted_at == "2026-12-01T22:10:05.574245-08:00"
    assert got["Pat Lee"].info.late and got["Sam Roe"].info.late
    assert got["Sam Roe"].info.lms_ids == {"submission_id": "102", "email": "sroe@example.edu"}
    assert list(got["Sam Roe"].files) == ["ps1.ipynb"]
    assert got["No Folder"].problem == "its folder submission_103/ is not in the export: export it again"
    skipped = dict(found.skipped)
    assert skipped["submission_999/"] == "not in submission_metadata.yml: no student to grade it for"
    assert skipped[".submission_104/"].startswith("hidden")
    assert not any(s.info.late for s in intake.read_submissions(archive, tmp_path / "x").submissions)  # no --due


def test_extracted_downloads_read_like_their_zips(tmp_path):
    """A TA who unzipped the download first: the same students, ids, late flags and problems."""
    notebook = notebook_file(tmp_path / "nb.ipynb").read_text()
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    (canvas / "garcíajosé_LATE_1001_2001_ps1.ipynb").write_text(notebook)
    (canvas / "doejane_1005_2006_ps1.ipynb").symlink_to(tmp_path / "nb.ipynb")
    zipped = make_zip(tmp_path / "canvas.zip", {"garcíajosé_LATE_1001_2001_ps1.ipynb": notebook},
                      links={"doejane_1005_2006_ps1.ipynb": "nb.ipynb"})
    gradescope = tmp_path / "gradescope" / "assignment_77_export"
    (gradescope / "submission_101").mkdir(parents=True)
    (gradescope / "submission_metadata.yml").write_text(GRADESCOPE_METADATA, encoding="utf-8")
    (gradescope / "submission_101" / "ps1.ipynb").write_text(notebook)
    (gradescope / "submission_102").symlink_to(gradescope / "submission_101")

    def seen(path):
        return sorted((s.id, s.student, s.info.late, s.info.lms_ids.get("user_id"), s.problem)
                      for s in intake.read_submissions(path, tmp_path / "x").submissions)

    assert seen(canvas) == seen(zipped)
    assert [row[4] for row in seen(canvas)] == [
        "doejane_1005_2006_ps1.ipynb: a symbolic link (not followed): upload the file itself", None]
    found = by_id(intake.read_submissions(tmp_path / "gradescope", tmp_path / "x"))
    assert found["José García"].problem is None and list(found["José García"].files) == ["ps1.ipynb"]
    assert found["Pat Lee"].problem == found["Sam Roe"].problem == (
        "submission_102: a symbolic link (not followed): upload the file itself")


def test_gradescope_metadata_that_is_not(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "submission_metadata.yml").write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="is not Gradescope's submission metadata"):
        intake.read_submissions(tmp_path / "subs", tmp_path / "x")
    (tmp_path / "subs" / "submission_metadata.yml").write_text("submission_1: [unclosed\n")
    with pytest.raises(UserError, match="cannot read Gradescope's .*export the submissions from Gradescope again"):
        intake.read_submissions(tmp_path / "subs", tmp_path / "x")
    with pytest.raises(UserError, match="not a date and time like"):
        intake.parse_due("next friday")


def test_registry_round_trip(tmp_path):
    jose = students.Student(internal=students.internal_id("José García"), id="José García", lms="gradescope",
                            lms_ids={"sid": "5001"}, late=True)
    students.update_registry(tmp_path, [jose])
    students.update_registry(tmp_path, [students.Student(internal="alice", id="alice")])
    registry = students.read_registry(tmp_path)
    assert registry[jose.internal] == jose and registry["alice"].id == "alice"
    assert "José García" in (tmp_path / "grading" / "students.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("entry", ["../evil/ps1.ipynb", "/etc/evil.ipynb", "a/../../evil.ipynb"])
def test_zip_paths_cannot_escape(tmp_path, entry):
    archive = make_zip(tmp_path / "bad.zip", {entry: "{}"})
    with pytest.raises(UserError, match="points outside the archive"):
        intake.read_submissions(archive, tmp_path / "extracted")
    assert not (tmp_path / "evil").exists()


def test_notebook_problems(tmp_path):
    cases = {"empty.ipynb": b"  \n", "binary.ipynb": b"\xff\xfe\x00",
             "broken.ipynb": b'{"cells": [', "other.ipynb": None}
    for name, data in cases.items():
        if data is None:
            notebook_file(tmp_path / name, "ps2")
        else:
            (tmp_path / name).write_bytes(data)
    assert intake.notebook_problem(tmp_path / "empty.ipynb", "ps1") == "empty file"
    assert intake.notebook_problem(tmp_path / "binary.ipynb", "ps1") == "not a notebook (not UTF-8 text)"
    assert intake.notebook_problem(tmp_path / "broken.ipynb", "ps1").startswith("invalid JSON at line 1, column 12")
    assert intake.notebook_problem(tmp_path / "other.ipynb", "ps1") == "wrong notebook: a notebook of ps2, not ps1"
    assert intake.notebook_problem(notebook_file(tmp_path / "ok.ipynb"), "ps1") is None


def test_renamed_notebook_is_accepted_with_a_note(tmp_path):
    notebook_file(tmp_path / "subs" / "alice" / "Untitled.ipynb")
    (submission,) = intake.read_submissions(tmp_path / "subs", tmp_path / "x").submissions
    files, notes, problem = intake.choose_notebooks(submission, ["ps1"], "ps1")
    assert problem is None and list(files) == ["ps1.ipynb"] and notes == ["graded Untitled.ipynb as ps1.ipynb"]


def test_gradebook_backup_keeps_the_newest_copies(tmp_path):
    import sqlite3

    from normlab_tools.grading import gradebook

    assert gradebook.backup(tmp_path) is None  # no gradebook yet
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        db.execute("create table grade (student text, score real)")
        db.execute("insert into grade values ('José García', 3.5)")
    copies = [gradebook.backup(tmp_path, keep=2) for _ in range(3)]
    assert sorted((tmp_path / "backups").glob("*.db")) == copies[1:]
    with sqlite3.connect(copies[-1]) as db:
        assert db.execute("select * from grade").fetchall() == [("José García", 3.5)]
