"""The course's gradebook (`course.db_url`: SQLite, or a server several graders share).
Only the parent process of a run writes it, one student per transaction."""

from __future__ import annotations

from pathlib import Path

from normlab_tools.grading.course import course_gradebook, db_url, on_server, scratch_db_url, sqlite_path


def _student(gradebook, student: str) -> None:
    """Make sure `student` is in the gradebook: the run grading another assignment of a
    shared gradebook may add them at the same moment (one insert wins, the other finds it)."""
    from nbgrader.api import InvalidEntry

    try:
        gradebook.update_or_create_student(student)
    except InvalidEntry:
        gradebook.find_student(student)


def merge_into_gradebook(course_dir: Path, job_dir: Path, assignment: str, student: str) -> None:
    """Copy one student's autograde results from a job's gradebook into the course's.

    Rows are updated in place (a re-grade never adds rows), manual scores and comments a
    TA gave are kept, and the update is one transaction.
    """
    from nbgrader.api import Gradebook

    from normlab_tools.assignments import COURSE_ID

    with Gradebook(scratch_db_url(job_dir), course_id=COURSE_ID) as job:
        submitted = job.find_submission(assignment, student)
        timestamp = submitted.timestamp
        grades = {(nb.name, g.name): (g.auto_score, g.needs_manual_grade)
                  for nb in submitted.notebooks for g in nb.grades}
        comments = {(nb.name, c.name): c.auto_comment for nb in submitted.notebooks for c in nb.comments}
        penalties = {nb.name: nb.late_submission_penalty for nb in submitted.notebooks}
    with course_gradebook(course_dir) as gradebook:
        _student(gradebook, student)
        extra = {"timestamp": timestamp} if timestamp is not None else {}
        submission = gradebook.update_or_create_submission(assignment, student, **extra)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score, grade.needs_manual_grade = grades[(notebook.name, grade.name)]
            for comment in notebook.comments:
                comment.auto_comment = comments.get((notebook.name, comment.name))
            notebook.late_submission_penalty = penalties.get(notebook.name)
        gradebook.db.commit()


def record_zero(course_dir: Path, assignment: str, student: str) -> None:
    """A submission that could not be graded: every test scores 0 (as nbgrader does for
    a missing notebook), nothing left for manual grading."""
    with course_gradebook(course_dir) as gradebook:
        _student(gradebook, student)
        submission = gradebook.update_or_create_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score, grade.needs_manual_grade = 0.0, False
            for comment in notebook.comments:
                comment.auto_comment = None
        gradebook.db.commit()


def read_scores(course_dir: Path, assignment: str, students: list[str]) -> dict:
    """student -> ({grade_id: score}, needs_manual_grade) from the course's gradebook."""
    from nbgrader.api import MissingEntry

    scores = {}
    with course_gradebook(course_dir) as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            scores[student] = ({g.name: (float(g.score) if g.score is not None else 0.0)
                                for nb in submission.notebooks for g in nb.grades},
                               bool(submission.needs_manual_grade))
    return scores


def pending_manual(course_dir: Path, assignment: str, student: str) -> set[str]:
    """The grade_ids of `student`'s cells still waiting for a TA (nbgrader formgrader)."""
    from nbgrader.api import MissingEntry

    with course_gradebook(course_dir) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return set()
        return {g.name for nb in submission.notebooks for g in nb.grades if g.needs_manual_grade}


BACKUPS_KEPT = 5


def backup(course_dir: Path, keep: int = BACKUPS_KEPT) -> Path | None:
    """Copy a SQLite course gradebook (COURSE/gradebook.db unless db_url names another
    file) to COURSE/backups/gradebook-<UTC time>.db with SQLite's backup API (consistent
    even while it is open); keep the newest `keep` copies. Returns the copy, or None when
    there is no gradebook yet, or it is a server's: its own backups keep it (a grader's
    copy of a database other graders write would be neither whole nor theirs to restore)."""
    import contextlib
    import sqlite3
    from datetime import datetime, timezone

    url = db_url(course_dir)
    if on_server(url):
        return None
    source = sqlite_path(url)
    if not source.is_file():
        return None
    folder = Path(course_dir) / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"gradebook-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}.db"
    with contextlib.closing(sqlite3.connect(source)) as db, contextlib.closing(sqlite3.connect(target)) as copy:
        db.backup(copy)
    for old in sorted(folder.glob("gradebook-*.db"))[:-keep]:
        old.unlink()
    return target
