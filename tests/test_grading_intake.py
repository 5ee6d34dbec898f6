"""`normlab grade`'s intake: reading SUBMISSIONS (folders, flat LMS downloads, zips) into
one submission per student, with ids, links, hidden folders and broken notebooks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from normlab_tools.errors import UserError
from normlab_tools.grading import intake
from support import notebook_file


def test_layouts_folder_flat_and_nbgrader(tmp_path):
    subs = tmp_path / "subs"
    notebook_file(subs / "alice" / "ps1.ipynb")
    notebook_file(subs / "bob" / "ps1" / "ps1.ipynb")
    (subs / "bob" / "ps1" / "data.csv").write_text("1,2\n")
    notebook_file(subs / "carol_12345_ps1_attempt_2.ipynb")
    (subs / ".DS_Store").write_text("junk")
    (subs / "README.txt").write_text("ignored")
    found = intake.read_submissions(subs, tmp_path / "x")
    assert [s.student for s in found] == ["alice", "bob", "carol"]
    files, notes, problem = intake.choose_notebooks(found[1], ["ps1"], "ps1")
    assert problem is None and sorted(files) == ["data.csv", "ps1.ipynb"] and notes == []


@pytest.mark.parametrize("name, problem", [
    ("..", "invalid student id"), (".hidden", None), ("a b", "invalid student id"),
    ("-rf", "invalid student id"), ("x" * 65, "invalid student id"), ("ok.name-1_2", None)])
def test_student_ids(tmp_path, name, problem):
    assert (intake.check_student_id(name) or "").startswith(problem or "") and (
        (intake.check_student_id(name) is None) == (problem is None) or name.startswith("."))


def test_invalid_ids_and_collisions_refuse_the_run(tmp_path):
    subs = tmp_path / "subs"
    notebook_file(subs / "a b" / "ps1.ipynb")
    notebook_file(subs / "Alice" / "ps1.ipynb")
    notebook_file(subs / "alice_ps1.ipynb")
    notebook_file(subs / "bob_first.ipynb")
    notebook_file(subs / "bob_second.ipynb")
    with pytest.raises(UserError) as error:
        intake.read_submissions(subs, tmp_path / "x")
    message = str(error.value)
    assert "3 problem(s)" in message and "nothing was graded" in message
    assert "invalid student id 'a b'" in message
    assert "two submissions for student 'alice': Alice/ and alice_ps1.ipynb" in message
    assert "two submissions for student 'bob': bob_first.ipynb and bob_second.ipynb" in message


def test_symlinks_are_not_followed(tmp_path):
    subs = tmp_path / "subs"
    notebook_file(subs / "alice" / "ps1.ipynb")
    (subs / "mallory").mkdir()
    (subs / "mallory" / "ps1.ipynb").symlink_to(subs / "alice" / "ps1.ipynb")
    with pytest.raises(UserError, match="mallory/ps1.ipynb: a symbolic link"):
        intake.read_submissions(subs, tmp_path / "x")


def make_zip(path: Path, entries: dict, wrap: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(wrap + name, data)
    return path


def test_zip_of_either_layout(tmp_path):
    notebook = notebook_file(tmp_path / "nb.ipynb").read_text()
    archive = make_zip(tmp_path / "lms.zip", {"alice_ps1.ipynb": notebook, "bob/ps1.ipynb": notebook},
                       wrap="ps1 submissions/")
    found = intake.read_submissions(archive, tmp_path / "extracted")
    assert [s.student for s in found] == ["alice", "bob"]


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
    (submission,) = intake.read_submissions(tmp_path / "subs", tmp_path / "x")
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
