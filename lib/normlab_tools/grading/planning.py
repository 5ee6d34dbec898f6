"""Who is graded this run: one `Plan` per submission, and which plans need grading.

A plan is the student's chosen notebook files, their fingerprint (files + grading
settings), intake's notes (e.g. a renamed notebook) and, for a submission that cannot be
graded (intake's problem: a symbolic link, an unreadable id, two submissions; or not a
usable notebook), the problem (graded 0 at once, never sent to a worker).
"""

from __future__ import annotations

from dataclasses import dataclass

from normlab_tools.grading import intake


@dataclass
class Plan:
    student: str  # the internal id
    digest: str
    files: dict
    notes: list[str]
    problem: str | None
    shown: str = ""  # the id as found (`intake.Submission.id`)


def plan_submissions(found: list, notebooks: list[str], assignment: str, key: str) -> list[Plan]:
    """A plan per `intake.Submission`; `key` is the settings' fingerprint."""
    plans = []
    for submission in found:
        if submission.problem:
            files, notes, problem = dict(submission.files), [], submission.problem
        else:
            files, notes, problem = intake.choose_notebooks(submission, notebooks, assignment)
            if problem is None:
                for name in notebooks:
                    problem = intake.notebook_problem(files[f"{name}.ipynb"], assignment)
                    if problem:
                        problem = problem if len(notebooks) == 1 else f"{name}.ipynb: {problem}"
                        break
            files = files or dict(submission.files)
        plans.append(Plan(submission.student, intake.digest(files, key + "|" + (problem or "")), files, notes,
                          problem, submission.id))
    return plans


def to_grade(plans: list[Plan], states: dict, in_gradebook, force: bool) -> list[Plan]:
    """The plans to grade: all with `force`, else those new to the gradebook or whose
    fingerprint differs from their state file's."""
    return [p for p in plans if force or p.student not in in_gradebook
            or (states[p.student] or {}).get("digest") != p.digest]
