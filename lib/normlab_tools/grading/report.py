"""What a grading run reports: each student's reason, grades.csv, failure feedback, the summary.

`describe` turns a job's result and typed events (`normlab_tools.grading.events`) into a
status (graded / flagged / failed) and a one-line reason; a new grading rule that shows
in the reason goes there.
"""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from normlab_tools.grading.events import Event, Kind
from normlab_tools.grading.gradebook import read_scores
from normlab_tools.grading.state import read_state

REASON_LENGTH = 600
MANUAL_NOTE = "waiting for manual grading (nbgrader formgrader)"


@dataclass
class Row:
    """One student's line of grades.csv."""

    student: str  # the internal id (nbgrader's)
    status: str  # graded | flagged | failed
    reason: str
    scores: dict = field(default_factory=dict)  # grade_id -> points
    total: float = 0.0
    max_score: float = 0.0
    shown: str = ""  # the id as the TA knows it (`students.Student.id`); the internal id when empty
    late: bool = False  # the LMS marked the submission late (`students.Student.late`)

    @property
    def student_id(self) -> str:
        return self.shown or self.student


@dataclass
class Outcome:
    rows: list[Row]
    unchanged: int  # students skipped because nothing changed since their last grading
    csv_path: Path
    feedback_dir: Path
    skipped: list = field(default_factory=list)  # (entry of SUBMISSIONS, why it is not a submission)


def describe(result: dict, notes: list[str], lost: list[tuple[str, str]]) -> tuple[str, str]:
    """(status, one-line reason) of a graded submission; `result` is a job's result
    (`jobs.JobResult` as a dict), its events as dicts or `Event`s; `lost`: (grade_id, why)
    of the cells that lost points (`verdicts.lost_points`)."""
    if not result.get("ok"):
        return "failed", one_line(f"grading failed: {result.get('error') or 'nbgrader failed'}")
    events = [e if isinstance(e, Event) else Event.from_dict(e) for e in result.get("events", [])]
    by_kind: dict[Kind, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)
    parts, flagged = [], False
    for event in by_kind.get(Kind.OUTPUT, []):
        parts.append(f"output limit: {event.detail}; later tests not run")
    for event in by_kind.get(Kind.DEAD, []):
        parts.append(f"the kernel died {event.detail}; later tests not run")
    timeouts = by_kind.get(Kind.TIMEOUT, [])
    if timeouts:
        parts.append(f"timed out after {timeouts[0].detail}: " + ", ".join(e.cell for e in timeouts[:3]))
    stuck = by_kind.get(Kind.STUCK, [])
    if stuck:
        parts.append(f"{stuck[0].cell} ran past the time limit and did not stop; later tests not run")
    tampered = by_kind.get(Kind.TAMPER, [])
    if tampered:
        flagged = True
        parts.append(f"test helpers tampered with ({tampered[0].detail}): {len(tampered)} test(s) scored 0")
    restored = by_kind.get(Kind.RESTORED, [])
    if restored:
        flagged = True
        names = sorted({name for e in restored for name in e.names})
        parts.append(f"redefined the test helper(s) {', '.join(names)}; the tests used the originals")
    changes = result.get("changes", [])
    if changes:
        parts.append("restored from the release: " + ", ".join(changes[:4])
                     + (f" and {len(changes) - 4} more" if len(changes) > 4 else ""))
    errors = by_kind.get(Kind.ERROR, [])
    if errors and not (by_kind.get(Kind.DEAD) or by_kind.get(Kind.OUTPUT)):
        parts.append(f"{errors[0].cell} raised {errors[0].detail}")
    parts.extend(notes)
    if lost:
        from normlab_tools.grading.verdicts import lost_text

        parts.append(lost_text(lost))
    elif not parts:
        parts.append("all tests passed")
    return ("flagged" if flagged else "graded"), one_line("; ".join(parts))


def lost_points(autograded: Path, notebooks: list[str], scores: dict, pending: set) -> list[tuple[str, str]]:
    """(grade_id, why) of the cells that lost points, read from the autograded notebooks
    in `autograded` (`verdicts.lost_points`); a notebook that cannot be read gives no reasons."""
    import nbformat

    from normlab_tools.grading import verdicts

    read = []
    for name in notebooks:
        try:
            read.append(nbformat.read(autograded / f"{name}.ipynb", as_version=4))
        except (OSError, ValueError):
            continue
    return verdicts.lost_points(read, scores, pending)


def one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_LENGTH else text[:REASON_LENGTH - 3] + "..."


def rows(course_dir: Path, assignment: str, students: list[str], state_dir: Path, columns,
         registry: dict | None = None) -> list[Row]:
    """A row per student (internal ids); `registry` (internal id -> `students.Student`)
    gives the id to print and the late flag."""
    registry = registry or {}
    scores = read_scores(course_dir, assignment, students)
    max_score = sum(c[2] for c in columns)
    rows = []
    for student in students:
        known = registry.get(student)
        shown, late = (known.id, known.late) if known else ("", False)
        state = read_state(state_dir, student)
        if state is None or student not in scores:
            rows.append(Row(student, "not graded", "interrupted before this submission was graded",
                            {}, 0.0, max_score, shown, late))
            continue
        points, needs_manual = scores[student]
        status, reason = state["status"], state["reason"]
        if needs_manual and status == "graded":  # e.g. ps4's written answers
            status, reason = "flagged", f"{reason}; {MANUAL_NOTE}"
        rows.append(Row(student, status, reason, points,
                        sum(points.get(gid, 0.0) for _, gid, _ in columns), max_score, shown, late))
    return rows


def write_csv(path: Path, rows: list[Row], columns) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *(gid for _, gid, _ in columns), "total", "max", "late", "status", "reason"])
    for row in rows:
        writer.writerow([row.student_id, *(number(row.scores.get(gid)) for _, gid, _ in columns),
                         number(row.total), number(row.max_score), "late" if row.late else "", row.status,
                         row.reason])
    temporary = path.with_suffix(".tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(temporary, path)


def number(value) -> str:
    return "" if value is None else f"{value:g}"


def write_failure_feedback(folder: Path, notebooks: list[str], assignment: str, problem: str,
                            max_score: float) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{assignment} feedback</title></head>"
            f"<body><h1>{assignment}: not graded</h1><p>Your submission could not be graded: "
            f"<strong>{html.escape(problem)}</strong>.</p><p>Score: 0 / {max_score:g}</p></body></html>\n")
    for name in notebooks:
        (folder / f"{name}.html").write_text(page, encoding="utf-8")


def summary(outcome: Outcome, assignment: str) -> str:
    counts = {status: sum(r.status == status for r in outcome.rows) for status in ("graded", "flagged", "failed")}
    lines = [f"normlab grade {assignment}: {len(outcome.rows)} submissions: {counts['graded']} graded, "
             f"{counts['failed']} failed, {counts['flagged']} flagged for manual grading"]
    if outcome.unchanged:
        lines.append(f"  ({outcome.unchanged} unchanged since the last run and not regraded; --force regrades them)")
    width = max([len(r.student_id) for r in outcome.rows] + [7])

    def section(title: str, rows: list[Row], limit: int) -> None:
        if rows:
            lines.append(title)
            lines.extend(f"  {r.student_id:<{width}}  {r.total:g}/{r.max_score:g}  {r.reason}" for r in rows[:limit])
            if len(rows) > limit:
                lines.append(f"  ... and {len(rows) - limit} more (grades.csv has them all)")

    section("failed (0 points):", [r for r in outcome.rows if r.status == "failed"], 100)
    section("flagged for manual grading:", [r for r in outcome.rows if r.status == "flagged"], 100)
    section("not graded (interrupted):", [r for r in outcome.rows if r.status == "not graded"], 10)
    section("graded, with notes:", [r for r in outcome.rows if r.status == "graded" and r.reason != "all tests passed"
                                    and not r.reason.startswith("lost points on")], 20)
    late = [r.student_id for r in outcome.rows if r.late]
    if late:
        lines.append(f"late (as the LMS marked them): {', '.join(late)}")
    if outcome.skipped:
        lines.append("skipped (not a submission):")
        lines.extend(f"  {entry}: {why}" for entry, why in outcome.skipped)
    lines.append(f"grades:   {outcome.csv_path}")
    lines.append(f"feedback: {outcome.feedback_dir}/<student>/{assignment}/ (one zip named for the LMS: "
                 f"normlab feedback {assignment} --zip)")
    lines.append(f"to the LMS: normlab export {assignment} --to canvas|gradescope|csv")
    return "\n".join(lines)
