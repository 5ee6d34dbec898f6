"""`normlab grade psK SUBMISSIONS`: the whole class, in parallel, sandboxed, resumable.

The steps (see `normlab_tools.grading` for the design):

1. lock the course directory's grading state; make sure it has the assignment (its
   source notebooks, nbgrader_config.py, and the assignment in the gradebook), built
   from the project's assignments/ when missing;
2. read the submissions (`intake`), refuse bad or colliding student ids;
3. per student: pick the notebook, fingerprint the files and the grading settings;
   skip students whose fingerprint matches the last run (unless --force); copy the
   rest into nbgrader's submitted/<student>/psK/;
4. submissions that are not a usable notebook (empty, invalid JSON, wrong or missing
   notebook) get 0 at once; the others go to the workers (`jobs`), each grading one
   student at a time with nbgrader in a private course directory and a sandboxed kernel;
5. this process alone writes the course's gradebook: each result is copied into it in
   one transaction, then autograded/ and feedback/ are moved in place, then the
   student's state file records the fingerprint (so an interrupted run resumes where it
   stopped, and a finished one is not redone);
6. grades.csv and the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from normlab_tools.errors import UserError

MAX_WORKERS = 32
REASON_LENGTH = 300
MANUAL_NOTE = "answers to grade by hand (nbgrader formgrader)"


@dataclass
class Row:
    """One student's line of grades.csv."""

    student: str
    status: str  # graded | flagged | failed
    reason: str
    scores: dict = field(default_factory=dict)  # grade_id -> points
    total: float = 0.0
    max_score: float = 0.0


@dataclass
class Outcome:
    rows: list[Row]
    unchanged: int  # students skipped because nothing changed since their last grading
    csv_path: Path
    feedback_dir: Path


# --- the course directory -------------------------------------------------------------------------


def prepare_course(course_dir: Path, assignment: str) -> list[str]:
    """Make sure `course_dir` can grade `assignment`; return its notebook names."""
    from normlab_tools import assignments

    source = course_dir / "source" / assignment
    project_source = assignments.PACKAGE_ROOT / "assignments" / "source" / assignment
    if not list(source.glob("*.ipynb")):
        if not project_source.is_dir():
            raise UserError(f"no notebooks in {source}, and the project has no assignment {assignment}")
        course_dir.mkdir(parents=True, exist_ok=True)
        assignments.convert_sources(assignments.PACKAGE_ROOT, course_dir, assignment)
    config = course_dir / "nbgrader_config.py"
    if not config.is_file():
        project_config = assignments.PACKAGE_ROOT / "assignments" / "nbgrader_config.py"
        if not project_config.is_file():
            raise UserError(f"{config} is missing")
        shutil.copy2(project_config, config)
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_db_url(course_dir), course_id=assignments.COURSE_ID) as gradebook:
        try:
            gradebook.find_assignment(assignment)
            known = True
        except MissingEntry:
            known = False
    if not known:
        result = assignments.nbgrader_api(course_dir).generate_assignment(assignment)
        if not result.get("success"):
            raise UserError(f"nbgrader generate_assignment {assignment} failed: "
                            f"{assignments.nbgrader_error(result)}")
    return sorted(p.stem for p in source.glob("*.ipynb"))


def course_timeout(course_dir: Path) -> int:
    """The per-cell timeout the course's nbgrader_config.py sets (the project's default)."""
    from normlab_tools.assignments import CELL_TIMEOUT, load_course_config

    timeout = load_course_config(course_dir).Execute.get("timeout")
    return int(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else CELL_TIMEOUT


def _db_url(course_dir: Path) -> str:
    return f"sqlite:///{course_dir / 'gradebook.db'}"


def make_template(course_dir: Path, template: Path, assignment: str) -> None:
    """A course directory with the course's gradebook minus every submission: what each
    job's private course directory is copied from (the assignment's cells, checksums and
    points are the course's own)."""
    import sqlite3

    from nbgrader.api import Comment, Grade, Gradebook, SubmittedAssignment, SubmittedNotebook

    from normlab_tools.assignments import COURSE_ID

    if template.exists():
        shutil.rmtree(template)
    (template / "source").mkdir(parents=True)
    shutil.copy2(course_dir / "nbgrader_config.py", template / "nbgrader_config.py")
    shutil.copytree(course_dir / "source" / assignment, template / "source" / assignment)
    with contextlib.closing(sqlite3.connect(course_dir / "gradebook.db")) as source, \
            contextlib.closing(sqlite3.connect(template / "gradebook.db")) as copy:
        source.backup(copy)
    with Gradebook(_db_url(template), course_id=COURSE_ID) as gradebook:
        for model in (Grade, Comment, SubmittedNotebook, SubmittedAssignment):
            gradebook.db.query(model).delete()
        gradebook.db.commit()
    with contextlib.closing(sqlite3.connect(template / "gradebook.db")) as copy:
        copy.execute("VACUUM")  # every job copies this file


def grade_ids_in_order(course_dir: Path, assignment: str, notebooks: list[str]) -> list[tuple[str, str, float]]:
    """(notebook, grade_id, points) of every graded cell, in notebook order."""
    import nbformat

    cells = []
    for name in notebooks:
        notebook = nbformat.read(course_dir / "source" / assignment / f"{name}.ipynb", as_version=4)
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") or (meta.get("task") and meta.get("points")):
                cells.append((name, meta["grade_id"], float(meta.get("points", 0))))
    return cells


def settings_key(course_dir: Path, assignment: str, timeout: int, sandboxed: bool) -> str:
    """What else decides a grade: the assignment's source, the timeout, the sandbox."""
    from normlab import __version__

    import nbformat

    h = hashlib.sha256(f"{__version__}|{timeout}|{sandboxed}".encode())
    for path in sorted((course_dir / "source" / assignment).rglob("*")):
        if path.suffix == ".ipynb":  # cells only: ids and metadata change on every conversion
            cells = nbformat.read(path, as_version=4).cells
            content = [(c.cell_type, c.source, c.metadata.get("nbgrader", {})) for c in cells]
            h.update(path.name.encode() + json.dumps(content, sort_keys=True).encode())
        elif path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def course_lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `normlab grade` is running on this course (lock: {path})") from None
        yield


# --- the gradebook: only this process writes it -----------------------------------------------------


def merge_into_gradebook(course_dir: Path, job_dir: Path, assignment: str, student: str) -> None:
    """Copy one student's autograde results from a job's gradebook into the course's.

    Rows are updated in place (a re-grade never adds rows), manual scores and comments a
    TA gave are kept, and the update is one transaction.
    """
    from nbgrader.api import Gradebook

    from normlab_tools.assignments import COURSE_ID

    with Gradebook(_db_url(job_dir), course_id=COURSE_ID) as job:
        submitted = job.find_submission(assignment, student)
        timestamp = submitted.timestamp
        grades = {(nb.name, g.name): (g.auto_score, g.needs_manual_grade)
                  for nb in submitted.notebooks for g in nb.grades}
        comments = {(nb.name, c.name): c.auto_comment for nb in submitted.notebooks for c in nb.comments}
        penalties = {nb.name: nb.late_submission_penalty for nb in submitted.notebooks}
    with Gradebook(_db_url(course_dir), course_id=COURSE_ID) as gradebook:
        gradebook.update_or_create_student(student)
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
    from nbgrader.api import Gradebook

    from normlab_tools.assignments import COURSE_ID

    with Gradebook(_db_url(course_dir), course_id=COURSE_ID) as gradebook:
        gradebook.update_or_create_student(student)
        submission = gradebook.update_or_create_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score, grade.needs_manual_grade = 0.0, False
            for comment in notebook.comments:
                comment.auto_comment = None
        gradebook.db.commit()


def read_scores(course_dir: Path, assignment: str, students: list[str]) -> dict:
    """student -> ({grade_id: score}, needs_manual_grade) from the course's gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    from normlab_tools.assignments import COURSE_ID

    scores = {}
    with Gradebook(_db_url(course_dir), course_id=COURSE_ID) as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            scores[student] = ({g.name: (float(g.score) if g.score is not None else 0.0)
                                for nb in submission.notebooks for g in nb.grades},
                               bool(submission.needs_manual_grade))
    return scores


# --- reasons ------------------------------------------------------------------------------


def describe(result: dict, notes: list[str], lost: list[str]) -> tuple[str, str]:
    """(status, one-line reason) of a graded submission."""
    parts, flagged = [], False
    events = result.get("events", [])
    by_kind: dict[str, list[dict]] = {}
    for event in events:
        by_kind.setdefault(event["kind"], []).append(event)
    if not result.get("ok"):
        return "failed", _one_line(f"grading failed: {result.get('error') or 'nbgrader failed'}")
    for event in by_kind.get("output", []):
        parts.append(f"output limit: {event['detail']}; later tests not run")
    for event in by_kind.get("dead", []):
        parts.append(f"the kernel died {event['detail']}; later tests not run")
    timeouts = by_kind.get("timeout", [])
    stuck = [e for e in timeouts if e["detail"] in ("ignored the interrupt", "no answer to the grader")]
    normal = [e for e in timeouts if e not in stuck]
    if normal:
        parts.append(f"timed out after {normal[0]['detail']}: " + ", ".join(e["cell"] for e in normal[:3]))
    if stuck:
        parts.append(f"{stuck[0]['cell']} ran past the time limit and did not stop; later tests not run")
    tampered = by_kind.get("tamper", [])
    if tampered:
        flagged = True
        parts.append(f"test helpers tampered with ({tampered[0]['detail']}): "
                     f"{len(tampered)} test(s) scored 0")
    restored = by_kind.get("restored", [])
    if restored:
        flagged = True
        names = sorted({n for e in restored for n in e["detail"].split(", ")})
        parts.append(f"redefined the test helper(s) {', '.join(names)}; the tests used the originals")
    changes = result.get("changes", [])
    if changes:
        parts.append("restored from the release: " + ", ".join(changes[:4])
                     + (f" and {len(changes) - 4} more" if len(changes) > 4 else ""))
    errors = by_kind.get("error", [])
    if errors and not (by_kind.get("dead") or by_kind.get("output")):
        parts.append(f"{errors[0]['cell']} raised {errors[0]['detail']}")
    parts.extend(notes)
    if lost:
        parts.append("lost points on " + ", ".join(lost[:4]) + (f" and {len(lost) - 4} more" if len(lost) > 4 else ""))
    elif not parts:
        parts.append("all tests passed")
    return ("flagged" if flagged else "graded"), _one_line("; ".join(parts))


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_LENGTH else text[:REASON_LENGTH - 3] + "..."


# --- the run --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    student: str
    digest: str
    files: dict
    notes: list[str]
    problem: str | None


def grade_class(assignment: str, submissions: Path, course_dir: Path, workers: int = 1,
                timeout: int | None = None, force: bool = False, sandboxed: bool = True,
                progress: bool = True, limits=None) -> Outcome:
    """Grade every submission (see the module docstring). Raises UserError on bad input."""
    from normlab_tools import assignments
    from normlab_tools.grading import intake, sandbox

    if not assignments.ASSIGNMENT_ID.fullmatch(assignment):
        raise UserError(f"{assignment!r} is not an assignment name like ps1")
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError(f"--workers must be between 1 and {MAX_WORKERS}")
    quiet_nbgrader()
    assignments.scripts_on_path()  # nbgrader runs `alembic` when it creates a gradebook
    if timeout is not None and timeout <= 0:
        raise UserError("--timeout must be a positive number of seconds")
    if sandboxed:
        try:
            sandbox.check_sandbox()
        except sandbox.SandboxUnavailable as error:
            raise UserError(f"{error}. Refusing to run students' code without a sandbox; "
                            "--no-sandbox grades anyway (only for submissions you trust)") from None
    course_dir = Path(course_dir).resolve()
    submissions = Path(submissions).resolve()
    state_dir = course_dir / "grading" / assignment
    work = state_dir / ".work"
    with course_lock(course_dir / "grading" / ".lock"):
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        notebooks = prepare_course(course_dir, assignment)
        timeout = timeout or course_timeout(course_dir)
        found = intake.read_submissions(submissions, work / "intake")
        key = settings_key(course_dir, assignment, timeout, sandboxed)
        plans = []
        for submission in found:
            files, notes, problem = intake.choose_notebooks(submission, notebooks, assignment)
            if problem is None:
                for name in notebooks:
                    problem = intake.notebook_problem(files[f"{name}.ipynb"], assignment)
                    if problem:
                        problem = problem if len(notebooks) == 1 else f"{name}.ipynb: {problem}"
                        break
            files = files or dict(submission.files)
            plans.append(Plan(submission.student, intake.digest(files, key), files, notes, problem))
        states = {p.student: _read_state(state_dir, p.student) for p in plans}
        in_gradebook = read_scores(course_dir, assignment, [p.student for p in plans])
        todo = [p for p in plans if force or p.student not in in_gradebook
                or (states[p.student] or {}).get("digest") != p.digest]
        unchanged = len(plans) - len(todo)
        in_place = (course_dir / "submitted").resolve()
        for plan in todo:
            target = course_dir / "submitted" / plan.student / assignment
            if not all(Path(f).resolve().is_relative_to(in_place) for f in plan.files.values()):
                intake.place(plan.files, target)
        columns = grade_ids_in_order(course_dir, assignment, notebooks)
        feedback_root = course_dir / "feedback"
        broken = [p for p in todo if p.problem]
        for plan in broken:
            record_zero(course_dir, assignment, plan.student)
            _write_failure_feedback(feedback_root / plan.student / assignment, notebooks, assignment,
                                    plan.problem, sum(c[2] for c in columns))
            _write_state(state_dir, plan.student, {"digest": plan.digest, "status": "failed",
                                                   "reason": _one_line(plan.problem)})
        runnable = [p for p in todo if not p.problem]
        interrupted = False
        if runnable:
            make_template(course_dir, work / "template", assignment)
            config = _worker_config(course_dir, work, assignment, timeout, sandboxed, limits,
                                    submissions, notebooks)
            try:
                _run_workers(config, runnable, workers, progress, course_dir, assignment, state_dir, columns,
                             notebooks)
            except KeyboardInterrupt:
                interrupted = True
        rows = _rows(course_dir, assignment, [p.student for p in plans], state_dir, columns)
        csv_path = state_dir / "grades.csv"
        _write_csv(csv_path, rows, columns)
        if not interrupted:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        raise KeyboardInterrupt
    return Outcome(rows, unchanged, csv_path, feedback_root)


def quiet_nbgrader() -> None:
    """nbgrader 0.9's gradebook code trips SQLAlchemy 2's session warnings (harmless)."""
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)


def _worker_config(course_dir, work, assignment, timeout, sandboxed, limits, submissions, notebooks) -> dict:
    import nbformat

    from normlab_tools import assignments
    from normlab_tools.grading import jobs, sandbox

    preload = []
    for name in notebooks:
        preload += imported_modules(nbformat.read(course_dir / "source" / assignment / f"{name}.ipynb",
                                                  as_version=4))
    forbidden = [str(course_dir), str(submissions if submissions.is_dir() else submissions.parent), str(work),
                 str(assignments.PACKAGE_ROOT / "assignments")]
    config = jobs.WorkerConfig(work_dir=str(work), assignment=assignment, timeout=timeout, sandbox=sandboxed,
                               preload=list(dict.fromkeys(preload)), limits=limits or sandbox.Limits(),
                               uid=None, forbidden=forbidden, course_id=assignments.COURSE_ID)
    return config.to_dict()


def imported_modules(notebook) -> list[str]:
    """Modules the notebook's code imports at top level (what every kernel pays for)."""
    import ast

    names = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return names


def _run_workers(config: dict, plans: list[Plan], workers: int, progress: bool, course_dir: Path,
                 assignment: str, state_dir: Path, columns, notebooks: list[str]) -> None:
    from tqdm import tqdm

    from normlab_tools.grading.pool import WorkerPool

    workers = min(workers, len(plans))
    by_student = {p.student: p for p in plans}
    bar = tqdm(total=len(plans), desc=f"grading {assignment}", unit="submission", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)

    def finished(student: str, result: dict) -> None:
        plan = by_student[student]
        job_dir = Path(result["job_dir"])
        if result.get("ok"):
            merge_into_gradebook(course_dir, job_dir, assignment, student)
            _move(job_dir / "autograded" / student / assignment, course_dir / "autograded" / student / assignment)
            _move(job_dir / "feedback" / student / assignment, course_dir / "feedback" / student / assignment)
        else:
            record_zero(course_dir, assignment, student)
            _write_failure_feedback(course_dir / "feedback" / student / assignment, notebooks, assignment,
                                    result.get("error") or "grading failed", sum(c[2] for c in columns))
        scores, _ = read_scores(course_dir, assignment, [student]).get(student, ({}, False))
        lost = [gid for _, gid, points in columns if scores.get(gid, 0.0) < points]
        status, reason = describe(result, plan.notes, lost)
        _write_state(state_dir, student, {"digest": plan.digest, "status": status, "reason": reason,
                                          "seconds": round(result.get("seconds", 0.0), 2)})
        shutil.rmtree(job_dir, ignore_errors=True)
        bar.set_postfix_str(f"{student}: {status}", refresh=False)
        bar.update(1)

    specs = [{"student": p.student, "assignment": assignment,
              "submitted": str(course_dir / "submitted" / p.student / assignment), "notes": p.notes}
             for p in plans]
    try:
        WorkerPool(config, workers).run(specs, finished)
    finally:
        bar.close()


def _move(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))


def _write_failure_feedback(folder: Path, notebooks: list[str], assignment: str, problem: str,
                            max_score: float) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{assignment} feedback</title></head>"
            f"<body><h1>{assignment}: not graded</h1><p>Your submission could not be graded: "
            f"<strong>{html.escape(problem)}</strong>.</p><p>Score: 0 / {max_score:g}</p></body></html>\n")
    for name in notebooks:
        (folder / f"{name}.html").write_text(page, encoding="utf-8")


def _state_path(state_dir: Path, student: str) -> Path:
    return state_dir / "state" / f"{student}.json"


def _read_state(state_dir: Path, student: str) -> dict | None:
    try:
        return json.loads(_state_path(state_dir, student).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_state(state_dir: Path, student: str, state: dict) -> None:
    path = _state_path(state_dir, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def _rows(course_dir: Path, assignment: str, students: list[str], state_dir: Path, columns) -> list[Row]:
    scores = read_scores(course_dir, assignment, students)
    max_score = sum(c[2] for c in columns)
    rows = []
    for student in students:
        state = _read_state(state_dir, student)
        if state is None or student not in scores:
            rows.append(Row(student, "not graded", "interrupted before this submission was graded",
                            {}, 0.0, max_score))
            continue
        points, needs_manual = scores[student]
        status, reason = state["status"], state["reason"]
        if needs_manual and status == "graded":  # e.g. ps4's written answers
            status, reason = "flagged", f"{reason}; {MANUAL_NOTE}"
        rows.append(Row(student, status, reason, points,
                        sum(points.get(gid, 0.0) for _, gid, _ in columns), max_score))
    return rows


def _write_csv(path: Path, rows: list[Row], columns) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *(gid for _, gid, _ in columns), "total", "max", "status", "reason"])
    for row in rows:
        writer.writerow([row.student, *(_number(row.scores.get(gid)) for _, gid, _ in columns),
                         _number(row.total), _number(row.max_score), row.status, row.reason])
    temporary = path.with_suffix(".tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(temporary, path)


def _number(value) -> str:
    return "" if value is None else f"{value:g}"


# --- the command --------------------------------------------------------------------------------------


def summary(outcome: Outcome, assignment: str) -> str:
    counts = {status: sum(r.status == status for r in outcome.rows) for status in ("graded", "flagged", "failed")}
    lines = [f"normlab grade {assignment}: {len(outcome.rows)} submissions: {counts['graded']} graded, "
             f"{counts['failed']} failed, {counts['flagged']} flagged for manual grading"]
    if outcome.unchanged:
        lines.append(f"  ({outcome.unchanged} unchanged since the last run and not regraded; --force regrades them)")
    width = max([len(r.student) for r in outcome.rows] + [7])

    def section(title: str, rows: list[Row], limit: int) -> None:
        if rows:
            lines.append(title)
            lines.extend(f"  {r.student:<{width}}  {r.total:g}/{r.max_score:g}  {r.reason}" for r in rows[:limit])
            if len(rows) > limit:
                lines.append(f"  ... and {len(rows) - limit} more (grades.csv has them all)")

    section("failed (0 points):", [r for r in outcome.rows if r.status == "failed"], 100)
    section("flagged for manual grading:", [r for r in outcome.rows if r.status == "flagged"], 100)
    section("not graded (interrupted):", [r for r in outcome.rows if r.status == "not graded"], 10)
    section("graded, with notes:", [r for r in outcome.rows if r.status == "graded" and r.reason != "all tests passed"
                                    and not r.reason.startswith("lost points on")], 20)
    lines.append(f"grades:   {outcome.csv_path}")
    lines.append(f"feedback: {outcome.feedback_dir}/<student>/{assignment}/")
    return "\n".join(lines)


def grade_main(args: argparse.Namespace) -> int:
    course_dir = Path(args.course_dir)
    try:
        outcome = grade_class(args.assignment, Path(args.submissions), course_dir, workers=args.workers,
                              timeout=args.timeout, force=args.force, sandboxed=not args.no_sandbox,
                              progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"normlab grade: interrupted; the grades so far are saved: run the same command again "
              f"to grade the rest", file=sys.stderr)
        return 130
    print(summary(outcome, args.assignment))
    return 0
