"""`normlab check` wall time per assignment: what a student waits for.

Run: python benchmarks/check.py [--assignments ps1,ps2,ps3,ps4] [--repeat 3]

Per assignment, a correct notebook as a student holds it (the source with its hidden
tests removed) is checked with the real command, ``normlab check psK.ipynb``, in a fresh
process each time: once to warm the check's cached course (not counted), then `--repeat`
times. Prints the fastest and the median wall time, the phases of one more check in a
fresh process (when the kernel template starts and how long it takes to be ready, which
overlaps preparing the course and importing the grader, and the graded run), the target
(6 s on a quiet 2-core machine) and the machine's load average before and after (other
processes share the CPU: a busy machine is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests

from normlab_tools import assignments

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 6.0
NORMLAB = Path(sys.executable).with_name("normlab")


def student_notebook(assignment: str, folder: Path) -> Path:
    notebook = assignments.read_jupytext(ROOT / "assignments" / "source" / assignment / f"{assignment}.py")
    notebook, _ = ClearHiddenTests().preprocess(notebook, {})
    path = folder / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


def check_once(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    completed = subprocess.run([str(NORMLAB), "check", path.name], cwd=path.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"normlab check {path} failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
    return seconds, completed.returncode


PHASES = r"""
import json, sys, time
start = time.perf_counter()  # the interpreter is up
from normlab_tools import check
from normlab_tools.grading import jobs

timed = {}


def timing(name, function):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        timed.setdefault(name + " starts", began - start)
        try:
            return function(*args, **kwargs)
        finally:
            timed[name] = time.perf_counter() - began
    return wrapper


jobs.worker_setup, jobs.grade = timing("template", jobs.worker_setup), timing("graded run", jobs.grade)
check.check_notebook(sys.argv[1], sys.argv[2])
timed["whole"] = time.perf_counter() - start
print(json.dumps(timed))
"""


def phases(assignment: str, path: Path) -> dict:
    """One check in a fresh process, as the command runs it, its parts timed from the
    interpreter's start: when the kernel template starts (it pre-imports torch and the
    rest in its own process, while the check's process prepares the course and imports the
    grader) and how long it takes to be ready, the graded run (nbgrader autograde of the
    notebook: sanitizing, a kernel forked from the template, the notebook's cells, scoring),
    and the whole."""
    completed = subprocess.run([sys.executable, "-c", PHASES, assignment, str(path)], capture_output=True,
                               text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", default="ps1,ps2,ps3,ps4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows, load_before = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for assignment in args.assignments.split(","):
            path = student_notebook(assignment, Path(folder))
            check_once(path)  # the check's course is generated and cached once per source
            times = [check_once(path)[0] for _ in range(args.repeat)]
            rows.append((assignment, min(times), statistics.median(times), phases(assignment, path)))
    print(f"normlab check, correct notebooks, {args.repeat} runs each (load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after)")
    print(f"{'assignment':<11}{'fastest s':>10}{'median s':>10}{'/ target':>10}"
          f"{'template at s':>15}{'template s':>12}{'graded run s':>14}{'whole s':>9}")
    for assignment, fastest, median, timed in rows:
        print(f"{assignment:<11}{fastest:>10.2f}{median:>10.2f}{median / TARGET_SECONDS:>10.2f}"
              f"{timed.get('template starts', 0):>15.2f}{timed.get('template', 0):>12.2f}"
              f"{timed.get('graded run', 0):>14.2f}{timed.get('whole', 0):>9.2f}")


if __name__ == "__main__":
    main()
