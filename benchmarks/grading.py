"""Grading throughput: plain `nbgrader autograde psK` against `normlab grade`.

Run: python benchmarks/grading.py [--assignment ps1] [--submissions 60] [--methods plain,w1,w2] [--keep DIR]

A class of submissions (a third correct, a third partial -- one planted mistake each,
several kinds --, a third blank: the release as handed out) is graded three ways, each
from a fresh copy of the same nbgrader course directory:

  plain  `nbgrader autograde psK`, one call for the whole class, as a TA would
         (a fresh kernel per notebook, no sandbox, one at a time);
  w1     `normlab grade psK SUBMISSIONS --workers 1` (sandboxed, + feedback HTML);
  w2     the same with --workers 2.

It prints the wall time of each, submissions per minute and the ratio to plain, checks
that the three agree on every student's total, and prints the machine's load average
(other processes share the CPU: compare ratios measured in one run, not times across
runs). No CPU times: a sandboxed kernel's process is reaped inside its pid namespace, so
the rusage of the grader's children does not include it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from normlab_tools import assignments

ROOT = Path(__file__).resolve().parents[1]
MISTAKES = {  # (solution cell, correct text, wrong text): plausible slips, one per partial notebook
    "ps1": [
        ("ps1_curvature", "return float(eigenvalues[-1] / eigenvalues[0])",
         "return float(np.sqrt(eigenvalues[-1] / eigenvalues[0]))"),
        ("ps1_standardize", "std = x_train.std(axis=0)", "std = x_train.std(axis=0, ddof=1)"),
        ("ps1_bn_forward", "np.sqrt(var + eps)", "np.sqrt(var)"),
        ("ps1_identity", "return gamma, beta", "return beta, gamma"),
        ("ps1_q_bias", 'q_bias = "c"', 'q_bias = "a"'),
    ],
    "ps4": [
        ("ps4_epochs_to_accuracy", "enumerate(history.val_acc, start=1)", "enumerate(history.val_acc)"),
        ("ps4_run_condition", "_, test_acc = train.evaluate(model, test_loader)",
         "_, test_acc = train.evaluate(model, val_loader)"),
        ("ps4_scoreboard", "threshold = max(margin, 2 * se)", "threshold = max(margin, se)"),
        ("ps4_probe", "theta - eta * g", "theta + eta * g"),
        ("ps4_epochs_to_accuracy", "if accuracy >= target:", "if accuracy > target:"),
    ],
}


def make_course(base: Path, assignment: str) -> tuple[Path, nbformat.NotebookNode]:
    """An nbgrader course directory with the assignment generated (source, release, gradebook)."""
    course = base / "course-template"
    course.mkdir(parents=True)
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", course)
    assignments.convert_sources(ROOT, course, assignment)
    result = assignments.nbgrader_api(course).generate_assignment(assignment)
    if not result["success"]:
        raise SystemExit(f"generate_assignment failed: {assignments.nbgrader_error(result)}")
    return course, nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)


def solved(release, source):
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    notebook = nbformat.from_dict(json.loads(json.dumps(release)))
    for cell in notebook.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = "\n".join(line for line in answers[gid].splitlines() if "SOLUTION ###" not in line
                                    and "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return notebook


def make_class(release, count: int, assignment: str) -> dict:
    source = assignments.read_jupytext(ROOT / "assignments" / "source" / assignment / f"{assignment}.py")
    correct = solved(release, source)
    mistakes = MISTAKES[assignment]
    students = {}
    for i in range(count):
        kind = ("correct", "partial", "blank")[i % 3]
        notebook = nbformat.from_dict(json.loads(json.dumps(release if kind == "blank" else correct)))
        if kind == "partial":
            cell_id, old, new = mistakes[(i // 3) % len(mistakes)]
            cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id)
            assert old in cell.source, (cell_id, old)
            cell.source = cell.source.replace(old, new)
        students[f"student{i:03d}_{kind}"] = notebook
    return students


def totals(course: Path, assignment: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=assignments.COURSE_ID) as gradebook:
        return {s.student.id: s.score for s in gradebook.find_assignment(assignment).submissions}


def timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    """Run `command`; return (wall seconds, the completed process)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - start, done


def run_plain(template: Path, base: Path, students: dict, assignment: str) -> tuple[float, dict]:
    course = base / "plain"
    shutil.copytree(template, course)
    for student, notebook in students.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    seconds, done = timed([str(nbgrader), "autograde", assignment], cwd=course, env=env)
    if done.returncode != 0:
        raise SystemExit(f"nbgrader autograde failed:\n{done.stderr[-3000:]}")
    return seconds, totals(course, assignment)


def run_normlab(template: Path, base: Path, submissions: Path, workers: int, assignment: str
                ) -> tuple[float, dict]:
    course = base / f"normlab-w{workers}"
    shutil.copytree(template, course)
    seconds, done = timed([sys.executable, "-m", "normlab_tools", "grade", assignment, str(submissions),
                           "--course-dir", str(course), "--workers", str(workers), "--quiet"])
    if done.returncode != 0:
        raise SystemExit(f"normlab grade failed:\n{done.stderr[-3000:]}")
    return seconds, totals(course, assignment)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps1", choices=sorted(MISTAKES))
    parser.add_argument("--submissions", type=int, default=60)
    parser.add_argument("--methods", default="plain,w1,w2")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    assignments.scripts_on_path()
    base = Path(args.keep or tempfile.mkdtemp(prefix="normlab-bench-grading-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        assignment = args.assignment
        template, release = make_course(base, assignment)
        students = make_class(release, args.submissions, assignment)
        submissions = base / "submissions"
        for student, notebook in students.items():
            (submissions / student).mkdir(parents=True)
            nbformat.write(notebook, submissions / student / f"{assignment}.ipynb")
        load_before = os.getloadavg()
        results = {}
        for method in args.methods.split(","):
            print(f"grading {len(students)} submissions: {method} ...", file=sys.stderr, flush=True)
            if method == "plain":
                results[method] = run_plain(template, base, students, assignment)
            else:
                results[method] = run_normlab(template, base, submissions, int(method.lstrip("w")), assignment)
        load_after = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    labels = {"plain": f"nbgrader autograde {assignment} (one call)", "w1": "normlab grade --workers 1",
              "w2": "normlab grade --workers 2"}
    reference = results.get("plain", next(iter(results.values())))
    print(f"{len(students)} {assignment} submissions (correct / partial / blank), {os.cpu_count()} cores, "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"| {'method':<36} | {'seconds':>8} | {'submissions/min':>15} | {'× plain':>7} |")
    print(f"|{'-' * 38}|{'-' * 10}|{'-' * 17}|{'-' * 9}|")
    for method, (seconds, _) in results.items():
        print(f"| {labels.get(method, method):<36} | {seconds:8.1f} | {60 * len(students) / seconds:15.1f} | "
              f"{reference[0] / seconds:6.2f}× |")
    disagreements = [student for student in students
                     if len({round(r[1].get(student, -1.0), 6) for r in results.values()}) > 1]
    print(f"totals agree for {len(students) - len(disagreements)} of {len(students)} students"
          + (f"; differ: {', '.join(disagreements[:5])}" if disagreements else ""))
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
