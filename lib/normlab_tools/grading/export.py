"""Grades and feedback back to the LMS: nbgrader export plugins and the feedback archive.

Each format is an `nbgrader.plugins.ExportPlugin`, so ``nbgrader export
--exporter=normlab_tools.grading.export.CanvasExportPlugin --to OUT`` works as
``normlab export psK --to canvas`` does. Scores are nbgrader's (score minus the late
penalty, as nbgrader's CsvExportPlugin computes it); ids, names and LMS ids come from the
students registry (`students`), status and reason from the state files (`state`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

from normlab_tools.errors import UserError
from normlab_tools.grading import state, students
from normlab_tools.grading.intake import CANVAS_FILE
from normlab_tools.grading.report import MANUAL_NOTE

CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS = "Points Possible"
CANVAS_COLUMN = re.compile(r"(?P<name>.*) \((?P<id>\d+)\)")
GRADESCOPE_KEYS = ["SID", "Email"]
GRADESCOPE_NAMES = ["Full Name", "Name", "First Name", "Last Name"]


@dataclass
class Result:
    """One graded student of an assignment, as exported."""

    student: students.Student
    score: float
    max_score: float
    status: str
    reason: str


def results(gradebook: Gradebook, course_dir: Path, assignment: str) -> dict[str, Result]:
    """internal id -> Result of every submission of `assignment` in the gradebook:
    score = max(0, score - late penalty) (nbgrader's CsvExportPlugin), reason from its state file."""
    try:
        record = gradebook.find_assignment(assignment)
    except MissingEntry:
        raise UserError(f"the gradebook of {course_dir} has no assignment {assignment}: "
                        f"grade it first (normlab grade {assignment} SUBMISSIONS)") from None
    registry = students.read_registry(course_dir)
    state_dir = Path(course_dir) / "grading" / assignment
    found = {}
    for submission in record.submissions:
        internal = submission.student.id
        student = registry.get(internal) or students.Student(internal=internal, id=internal)
        saved = state.read_state(state_dir, internal) or {}
        status = saved.get("status", "graded")
        reason = saved.get("reason", "")
        if submission.needs_manual_grade and status == "graded":  # as grades.csv says it (`report.rows`)
            status, reason = "flagged", "; ".join(filter(None, [reason, MANUAL_NOTE]))
        score = max(0.0, float(submission.score) - float(submission.late_submission_penalty or 0.0))
        found[internal] = Result(student, score, float(record.max_score), status, reason)
    return found


def skipped_by_user(course_dir: Path, assignment: str) -> dict[str, str]:
    """Canvas user id -> why their file in SUBMISSIONS was not graded (e.g. a hidden
    copy), from the run's skipped.json: the reason of their row instead of "no submission"."""
    try:
        skipped = json.loads((Path(course_dir) / "grading" / assignment / "skipped.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = {}
    for item in skipped if isinstance(skipped, list) else []:
        entry = Path(str(item.get("entry", "")).rstrip("/")).name
        match = CANVAS_FILE.fullmatch(entry.lstrip("."))
        if match:
            found.setdefault(match["user_id"], f"not graded: {entry}: {item.get('why', '')}")
    return found


def number(value: float) -> str:
    return f"{value:g}"


def read_csv(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file (UTF-8, a byte-order mark allowed)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the {what} {path}: {error}") from None
    table = list(csv.reader(io.StringIO(text)))
    if not table:
        raise UserError(f"the {what} {path} is empty: export it again from the LMS")
    return table[0], table[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(buffer.getvalue(), encoding="utf-8")


def unmatched_error(unmatched: list[Result], roster: Path, keys: str) -> UserError:
    shown = ", ".join(f"{r.student.id!r}" for r in unmatched[:10])
    more = f" and {len(unmatched) - 10} more" if len(unmatched) > 10 else ""
    return UserError(f"{len(unmatched)} graded student(s) are not in the roster {roster} "
                     f"(matched on {keys}): {shown}{more}; export a fresh roster from the LMS "
                     "or remove their submissions and regrade")


class NormlabExportPlugin(ExportPlugin):
    """What every normlab format shares: one assignment, the course directory, a roster."""

    roster = Unicode("", help="the roster CSV exported from the LMS").tag(config=True)
    course_dir = Unicode("", help="the nbgrader course directory (default: nbgrader's CourseDirectory.root)"
                         ).tag(config=True)

    def course_root(self) -> Path:
        if self.course_dir:
            return Path(self.course_dir)
        coursedir = getattr(self.parent, "coursedir", None)
        return Path(coursedir.root if coursedir is not None else ".")

    def the_assignment(self) -> str:
        if len(self.assignment) != 1:
            raise UserError("export one assignment at a time: --assignment psK")
        return str(self.assignment[0])

    def destination(self, default: str) -> Path:
        return Path(self.to or default)


class CsvExportPlugin(NormlabExportPlugin):
    """A plain CSV: id (as the TA knows it), name, score, max, late, status, reason."""

    def export(self, gradebook: Gradebook) -> None:
        assignment = self.the_assignment()
        found = results(gradebook, self.course_root(), assignment)
        rows = [[r.student.id, r.student.name, number(r.score), number(r.max_score),
                 "yes" if r.student.late else "", r.status, r.reason]
                for r in sorted(found.values(), key=lambda r: r.student.id)]
        write_csv(self.destination(f"{assignment}-grades.csv"),
                  ["id", "name", "score", "max", "late", "status", "reason"], rows)


class CanvasExportPlugin(NormlabExportPlugin):
    """Canvas's gradebook-import CSV, filled from the roster exported from its gradebook
    (Student, ID, SIS User ID, SIS Login ID, Section, "Name (assignment id)" columns, a
    "Points Possible" row). Every roster student gets a row: their score, or 0. Canvas's
    import has no comment column: the reasons go to the side file ``OUT.reasons.csv``.
    A graded student is matched on their Canvas user id (ID), else on SIS User ID or
    SIS Login ID equal to their id."""

    column = Unicode("", help='the roster\'s assignment column, e.g. "ps1 (4321)" '
                     "(default: the one whose name is the assignment)").tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        assignment = self.the_assignment()
        if not self.roster:
            raise UserError("Canvas export needs the roster: Grades > Export > Export Entire Gradebook, "
                            "then --roster FILE")
        roster = Path(self.roster)
        header, rows = read_csv(roster, "Canvas roster")
        missing = [c for c in CANVAS_FIXED if c not in header]
        if missing:
            raise UserError(f"the Canvas roster {roster} has no column(s) {', '.join(missing)} in its first row: "
                            "use the CSV of Canvas's Grades > Export")
        column = self.pick_column(header, assignment, roster)
        at = {name: header.index(name) for name in CANVAS_FIXED + [column]}
        bad = [n for n, row in enumerate(rows, start=2) if len(row) < len(header)]
        if bad:
            raise UserError(f"the Canvas roster {roster} has row(s) {', '.join(map(str, bad[:10]))} with fewer "
                            f"than {len(header)} columns: export it again from Canvas")
        found = results(gradebook, self.course_root(), assignment)
        not_graded = skipped_by_user(self.course_root(), assignment)
        by_key = {}
        for result in found.values():
            for key in (result.student.lms_ids.get("user_id"), result.student.id):
                if key:
                    by_key.setdefault(str(key), result)
        out_rows, side, used, seen = [], [], set(), {}
        points = number(next(iter(found.values())).max_score) if found else ""
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            canvas_id = row[at["ID"]].strip()
            if not canvas_id:  # "Points Possible", "Manual Posting" and other rows about the columns
                if row[at["Student"]].strip() == CANVAS_POINTS:
                    points = row[at[column]].strip() or points
                continue
            if canvas_id in seen:
                raise UserError(f"the Canvas roster {roster} lists ID {canvas_id} twice (rows {seen[canvas_id]} "
                                f"and {line}): export it again from Canvas")
            seen[canvas_id] = line
            result = next((by_key[k] for k in (canvas_id, row[at["SIS User ID"]].strip(),
                                                row[at["SIS Login ID"]].strip()) if k and k in by_key), None)
            if result is None:
                score, status, late = 0.0, "missing", ""
                reason = not_graded.get(canvas_id, f"no submission of {assignment}")
            else:
                used.add(result.student.internal)
                score, status, reason = result.score, result.status, result.reason
                late = "late" if result.student.late else ""
            out_rows.append([row[at[c]] for c in CANVAS_FIXED] + [number(score)])
            side.append([row[at["Student"]], canvas_id, result.student.id if result else "", number(score),
                         late, status, reason])
        unmatched = [r for i, r in found.items() if i not in used]
        if unmatched:
            raise unmatched_error(unmatched, roster, "ID, SIS User ID or SIS Login ID")
        out = self.destination(f"{assignment}-canvas.csv")
        points_row = ["    " + CANVAS_POINTS, "", "", "", "", points]
        write_csv(out, CANVAS_FIXED + [column], [points_row] + out_rows)
        write_csv(reasons_path(out), ["Student", "ID", "graded as", "score", "late", "status", "reason"], side)

    def pick_column(self, header: list[str], assignment: str, roster: Path) -> str:
        if self.column:
            if self.column not in header:
                raise UserError(f"the Canvas roster {roster} has no column {self.column!r}")
            return self.column
        named = [h for h in header if (m := CANVAS_COLUMN.fullmatch(h)) and m["name"].strip() == assignment]
        if len(named) != 1:
            columns = [h for h in header if CANVAS_COLUMN.fullmatch(h)]
            raise UserError(f"the Canvas roster {roster} has {len(named)} column(s) named "
                            f"'{assignment} (<id>)' (its assignment columns: {', '.join(columns) or 'none'}); "
                            "name one with --column")
        return named[0]


class GradescopeExportPlugin(NormlabExportPlugin):
    """Gradescope's score CSV, one row per student of its roster (Roster > Download Roster:
    a name column -- Full Name, or First Name and Last Name -- SID, Email, ...): the roster's
    name columns, SID, Email, Total Score, Max Points, Late, Status, Comments. A graded
    student is matched on their SID, else their Email (both from Gradescope's export), else
    on their id equal to one of them; Gradescope's score import matches on Email or SID."""

    def export(self, gradebook: Gradebook) -> None:
        assignment = self.the_assignment()
        if not self.roster:
            raise UserError("Gradescope export needs the roster: Roster > Download Roster, then --roster FILE")
        roster = Path(self.roster)
        header, rows = read_csv(roster, "Gradescope roster")
        header = [h.strip() for h in header]
        if not any(k in header for k in GRADESCOPE_KEYS):
            raise UserError(f"the Gradescope roster {roster} has neither a SID nor an Email column in its "
                            "first row: use the CSV of Gradescope's Roster > Download Roster")
        found = results(gradebook, self.course_root(), assignment)
        by_key = {}
        for result in found.values():
            ids = result.student.lms_ids
            for key in (ids.get("sid"), ids.get("email"), result.student.id):
                if key:
                    by_key.setdefault(str(key).strip().casefold(), result)
        names = [h for h in GRADESCOPE_NAMES if h in header]
        fields = names + GRADESCOPE_KEYS
        out_rows, used, seen = [], set(), {}
        max_score = number(next(iter(found.values())).max_score) if found else ""
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            cells = dict(zip(header, row))
            keys = [cells.get(k, "").strip().casefold() for k in GRADESCOPE_KEYS]
            if not any(keys):
                raise UserError(f"row {line} of the Gradescope roster {roster} has no SID and no Email: "
                                "fill one in or delete the row")
            for key in filter(None, keys):
                if key in seen:
                    raise UserError(f"the Gradescope roster {roster} lists {key!r} twice (rows {seen[key]} and "
                                    f"{line}): download it again from Gradescope")
                seen[key] = line
            result = next((by_key[k] for k in keys if k and k in by_key), None)
            if result is None:
                score, status, reason, late = 0.0, "missing", f"no submission of {assignment}", ""
            else:
                used.add(result.student.internal)
                score, status, reason = result.score, result.status, result.reason
                late = "late" if result.student.late else ""
            out_rows.append([cells.get(f, "").strip() for f in fields]
                            + [number(score), max_score, late, status, reason])
        unmatched = [r for i, r in found.items() if i not in used]
        if unmatched:
            raise unmatched_error(unmatched, roster, "SID or Email")
        write_csv(self.destination(f"{assignment}-gradescope.csv"),
                  fields + ["Total Score", "Max Points", "Late", "Status", "Comments"], out_rows)


EXPORTERS = {"canvas": CanvasExportPlugin, "gradescope": GradescopeExportPlugin, "csv": CsvExportPlugin}


def reasons_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + ".reasons.csv")


def feedback_name(student: students.Student, page: str) -> str:
    """The archive name of `student`'s feedback `page`: for Canvas, the prefix their file
    had in the download, ``{lastfirst}_[LATE_]{user id}_{file id}_`` -- Canvas's
    "Upload Submissions" (re-upload) reads the user id and file id from it and attaches the
    file to that student's submission as a comment; for others, ``{id as found}_``."""
    if student.lms == "canvas":
        for name in student.files:
            match = CANVAS_FILE.fullmatch(Path(name).name)
            if match:
                return f"{name[:match.start('name')]}{page}"
    return f"{student.id.replace('/', '_').replace(chr(92), '_')}_{page}"  # a name, never a folder


def feedback_zip(course_dir: Path, assignment: str, out: Path) -> tuple[int, list[str]]:
    """Write every graded student's feedback HTML into one zip named for the LMS
    (`feedback_name`); return (files written, ids of graded students without feedback)."""
    course_dir = Path(course_dir)
    registry = students.read_registry(course_dir)
    graded = sorted(p.stem for p in (course_dir / "grading" / assignment / "state").glob("*.json"))
    written, without = 0, []
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        names = set()
        for internal in graded:
            student = registry.get(internal) or students.Student(internal=internal, id=internal)
            pages = sorted((course_dir / "feedback" / internal / assignment).glob("*.html"))
            if not pages:
                without.append(student.id)
            for page in pages:
                name = feedback_name(student, page.name)
                if name in names:
                    raise UserError(f"two feedback files would be named {name!r} in {out}: "
                                    "check the registry COURSE/grading/students.json")
                names.add(name)
                archive.write(page, name)
                written += 1
    temporary.replace(out)
    return written, without
