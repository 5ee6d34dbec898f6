"""`normlab grade psK SUBMISSIONS`: the whole class, in parallel, sandboxed, resumable.

The steps (see `normlab_tools.grading` for the design):

1. lock the course directory's grading state; make sure it has the assignment (its
   source notebooks, nbgrader_config.py, and the assignment in the gradebook), built
   from the project's assignments/ when missing;
2. read the submissions (`intake`: folders, Canvas and Gradescope downloads); record
   each student's id as found, LMS ids and late flag in the registry (`students`), under
   a safe internal id where the id is not one;
3. per student: pick the notebook, fingerprint the files and the grading settings;
   skip students whose fingerprint matches the last run (unless --force; --student
   regrades that one student only); copy the rest into nbgrader's submitted/<student>/psK/;
4. submissions that cannot be graded (a symbolic link, an unreadable id, two
   submissions for one student, empty, invalid JSON, wrong or missing notebook) get 0
   and their reason at once; the others go to the workers (`jobs`), each grading one
   student at a time with nbgrader in a private course directory and a sandboxed kernel;
5. this process alone writes the course's gradebook: each result is copied into it in
   one transaction, then autograded/ and feedback/ are moved in place, then the
   student's state file records the fingerprint (so an interrupted run resumes where it
   stopped, and a finished one is not redone);
6. grades.csv (ids as found) and the summary, which also lists what in SUBMISSIONS was
   not a submission (hidden, junk, stray files) and why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from pathlib import Path

from normlab_tools.errors import UserError
from normlab_tools.grading import course, gradebook, planning, report, state, students

MAX_WORKERS = 32


def grade_class(assignment: str, submissions: Path, course_dir: Path, workers: int = 1,
                timeout: int | None = None, force: bool = False, sandboxed: bool = True,
                progress: bool = True, student: str | None = None, due: str | None = None,
                scheduler: str | None = None) -> report.Outcome:
    """Grade every submission (see the module docstring); `student`: regrade only this one
    (an id as found, or the internal id); `due`: the deadline (ISO 8601) that marks a
    Gradescope submission late; `scheduler`: grade on a Dask cluster (a scheduler's
    address, or local:N; see `normlab_tools.grading.distributed`) instead of `workers`
    local processes. Raises UserError on bad input."""
    from normlab_tools import assignments
    from normlab_tools.grading import intake
    from normlab_tools.grading.pool import WorkerPool
    from normlab_tools.grading.sandbox import bubblewrap

    if not assignments.ASSIGNMENT_ID.fullmatch(assignment):
        raise UserError(f"{assignment!r} is not an assignment name like ps1")
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError(f"--workers must be between 1 and {MAX_WORKERS}")
    course.quiet_nbgrader()
    assignments.scripts_on_path()  # nbgrader runs `alembic` when it creates a gradebook
    if timeout is not None and timeout <= 0:
        raise UserError("--timeout must be a positive number of seconds")
    if sandboxed and scheduler is None:  # on a cluster, the workers' sandboxes are checked
        try:
            bubblewrap.check_sandbox()
        except bubblewrap.SandboxUnavailable as error:
            raise UserError(f"{error}. Refusing to run students' code without a sandbox; "
                            "--no-sandbox grades anyway (only for submissions you trust)") from None
    deadline = intake.parse_due(due) if due else None
    course_dir = Path(course_dir).resolve()
    submissions = Path(submissions).resolve()
    state_dir = course_dir / "grading" / assignment
    work = state_dir / ".work"
    cluster = None
    with contextlib.ExitStack() as stack:
        if scheduler is not None:  # reached, and its workers checked, before anything is graded
            from normlab_tools.grading.distributed import DaskCluster

            cluster = stack.enter_context(DaskCluster(scheduler, sandboxed))
        stack.enter_context(course.grading_lock(course_dir, assignment))
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        gradebook.backup(course_dir)  # before this run writes anything
        notebooks = course.prepare_course(course_dir, assignment)
        timeout = timeout or course.course_timeout(course_dir)
        found = intake.read_submissions(submissions, work / "intake", deadline)
        with course.course_step(course_dir):  # students.json is the whole course's; other assignments may be grading
            students.update_registry(course_dir, [s.info for s in found.submissions if s.info])
        registry = students.read_registry(course_dir)
        _write_skipped(state_dir, found.skipped)
        key = course.settings_key(course_dir, assignment, timeout, sandboxed)
        plans = planning.plan_submissions(found.submissions, notebooks, assignment, key)
        states = {p.student: state.read_state(state_dir, p.student) for p in plans}
        in_gradebook = gradebook.read_scores(course_dir, assignment, [p.student for p in plans])
        if student is not None:
            chosen = _the_student(plans, student, submissions)
            todo = [chosen]
            plans = [p for p in plans if p is chosen or states[p.student] is not None]
        else:
            todo = planning.to_grade(plans, states, in_gradebook, force)
        unchanged = len(plans) - len(todo)
        in_place = (course_dir / "submitted").resolve()
        for plan in todo:  # submitted/<internal id>/: what nbgrader and formgrader read
            target = course_dir / "submitted" / plan.student / assignment
            if not all(Path(f).resolve().is_relative_to(in_place) for f in plan.files.values()):
                intake.place(plan.files, target)
        columns = course.grade_ids_in_order(course_dir, assignment, notebooks)
        feedback_root = course_dir / "feedback"
        broken = [p for p in todo if p.problem]
        for plan in broken:
            gradebook.record_zero(course_dir, assignment, plan.student)
            report.write_failure_feedback(feedback_root / plan.student / assignment, notebooks, assignment,
                                    plan.problem, sum(c[2] for c in columns))
            state.write_state(state_dir, plan.student, {"digest": plan.digest, "status": "failed",
                                                   "reason": report.one_line(plan.problem)})
        runnable = [p for p in todo if not p.problem]
        interrupted = False
        if runnable:
            course.make_template(course_dir, work / "template", assignment)
            config = _worker_config(course_dir, work, assignment, timeout, sandboxed, submissions, notebooks)
            try:
                pool = WorkerPool(config, min(workers, len(runnable))) if cluster is None else cluster.pool(config)
                _run_workers(pool, runnable, progress, course_dir, assignment, state_dir, columns, notebooks)
            except KeyboardInterrupt:
                interrupted = True
        rows = report.rows(course_dir, assignment, [p.student for p in plans], state_dir, columns, registry)
        csv_path = state_dir / "grades.csv"
        report.write_csv(csv_path, rows, columns)
        if not interrupted:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        raise KeyboardInterrupt
    return report.Outcome(rows, unchanged, csv_path, feedback_root, found.skipped)


def _the_student(plans: list[planning.Plan], wanted: str, submissions: Path) -> planning.Plan:
    """--student: the plan whose id as found (exactly, else up to case) or internal id is `wanted`."""
    for same in (lambda p: p.shown == wanted, lambda p: p.shown.casefold() == wanted.casefold(),
                 lambda p: p.student == wanted):
        matches = [p for p in plans if same(p)]
        if len(matches) == 1:
            return matches[0]
    ids = ", ".join(repr(p.shown) for p in plans[:20]) + (" ..." if len(plans) > 20 else "")
    raise UserError(f"--student {wanted!r}: no such student in {submissions} (its students: {ids})")


def _write_skipped(state_dir: Path, skipped: list[tuple[str, str]]) -> None:
    """What SUBMISSIONS held that was not graded, for `normlab export`'s reasons."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "skipped.json").write_text(json.dumps([{"entry": e, "why": w} for e, w in skipped], indent=1,
                                                       ensure_ascii=False), encoding="utf-8")


def _worker_config(course_dir, work, assignment, timeout, sandboxed, submissions, notebooks) -> dict:
    import nbformat

    from normlab_tools import assignments
    from normlab_tools.grading import jobs
    from normlab_tools.grading.sandbox import bubblewrap

    preload = []
    for name in notebooks:
        preload += course.imported_modules(nbformat.read(course_dir / "source" / assignment / f"{name}.ipynb",
                                                  as_version=4))
    forbidden = [str(course_dir), str(submissions if submissions.is_dir() else submissions.parent), str(work),
                 str(assignments.PACKAGE_ROOT / "assignments")]
    config = jobs.WorkerConfig(work_dir=str(work), assignment=assignment, timeout=timeout, sandbox=sandboxed,
                               preload=list(dict.fromkeys(preload)), limits=bubblewrap.Limits(),
                               uid=None, forbidden=forbidden, course_id=assignments.COURSE_ID)
    return config.to_dict()


def _run_workers(pool, plans: list[planning.Plan], progress: bool, course_dir: Path, assignment: str,
                 state_dir: Path, columns, notebooks: list[str]) -> None:
    """Grade `plans` on `pool` (a `pool.WorkerPool` or a `distributed.DaskPool`), recording
    each result as it comes."""
    from tqdm import tqdm

    by_student = {p.student: p for p in plans}
    bar = tqdm(total=len(plans), desc=f"grading {assignment}", unit="submission", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)

    def finished(student: str, result: dict) -> None:
        plan = by_student[student]
        job_dir = Path(result["job_dir"]) if result.get("job_dir") else None
        if result.get("ok"):
            gradebook.merge_into_gradebook(course_dir, job_dir, assignment, student)
            _move(job_dir / "autograded" / student / assignment, course_dir / "autograded" / student / assignment)
            _move(job_dir / "feedback" / student / assignment, course_dir / "feedback" / student / assignment)
        else:
            gradebook.record_zero(course_dir, assignment, student)
            report.write_failure_feedback(course_dir / "feedback" / student / assignment, notebooks, assignment,
                                    result.get("error") or "grading failed", sum(c[2] for c in columns))
        scores, _ = gradebook.read_scores(course_dir, assignment, [student]).get(student, ({}, False))
        lost = report.lost_points(course_dir / "autograded" / student / assignment, notebooks, scores,
                                  gradebook.pending_manual(course_dir, assignment, student)) \
            if result.get("ok") else []
        status, reason = report.describe(result, plan.notes, lost)
        state.write_state(state_dir, student, {"digest": plan.digest, "status": status, "reason": reason,
                                          "seconds": round(result.get("seconds", 0.0), 2)})
        if job_dir is not None:  # never Path(""): that is the working folder
            shutil.rmtree(job_dir, ignore_errors=True)
        bar.set_postfix_str(f"{plan.shown or student}: {status}", refresh=False)
        bar.update(1)

    specs = [{"student": p.student, "assignment": assignment,
              "submitted": str(course_dir / "submitted" / p.student / assignment), "notes": p.notes}
             for p in plans]
    try:
        with course.keep_gradebook(course_dir):
            pool.run(specs, finished)
    finally:
        bar.close()


def _move(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))


def grade_main(args: argparse.Namespace) -> int:
    course_dir = Path(args.course_dir)
    try:
        outcome = grade_class(args.assignment, Path(args.submissions), course_dir, workers=args.workers,
                              timeout=args.timeout, force=args.force, sandboxed=not args.no_sandbox,
                              progress=not args.quiet, student=args.student, due=args.due,
                              scheduler=args.scheduler)
    except KeyboardInterrupt:
        print("normlab grade: interrupted; the grades so far are saved: run the same command again "
              "to grade the rest", file=sys.stderr)
        return 130
    print(report.summary(outcome, args.assignment))
    return 0
