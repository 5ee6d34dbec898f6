"""Grading on a Dask cluster against local workers: `normlab grade --scheduler` vs `--workers 2`.

Run: python benchmarks/grading_dask.py [--submissions 60] [--methods w2,dask,local2] [--rounds 1] [--keep DIR]

The class of benchmarks/grading.py (a third correct, a third partial, a third blank ps1
notebooks) is graded from fresh copies of the same nbgrader course directory:

  w2      `normlab grade ps1 SUBMISSIONS --workers 2` (local worker processes);
  dask    the same with `--scheduler tcp://127.0.0.1:P`: a `dask scheduler` and two
          `dask worker --nworkers 1 --nthreads 1` processes on loopback, started by this
          script before the timed runs (as a cluster that is already running); the timed
          run includes the workers' kernel templates starting (the grading plugin), as w2's
          includes its workers starting;
  local2  `--scheduler local:2`: a LocalCluster of two worker processes started by the
          grader, its start-up included.

`--rounds N` repeats the methods in turn (w2, dask, local2, w2, ...), so that a change of
load on the shared machine falls on every method alike. It prints each run's wall time,
the median per method and its ratio to w2's median (time ÷ w2's: above 1 is slower), checks that all runs agree on every
student's total, and prints the load average (compare ratios within one run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from grading import make_class, make_course, timed, totals
from normlab_tools import assignments

DASK = Path(sys.executable).parent / "dask"
LABELS = {"w2": "normlab grade --workers 2", "dask": "--scheduler (dask scheduler + 2 workers)",
          "local2": "--scheduler local:2"}


def start_cluster(base: Path) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and two single-threaded workers on 127.0.0.1; (address, their processes)."""
    from distributed import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    commands = [[DASK, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]]
    commands += [[DASK, "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--local-directory", base / f"worker-{i}"] for i in range(2)]
    processes = []
    for i, command in enumerate(commands):
        with open(base / f"cluster-{i}.log", "wb") as log:
            processes.append(subprocess.Popen([str(part) for part in command], stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True))
    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    return address, processes


def stop_cluster(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        os.killpg(process.pid, signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_normlab(template: Path, course: Path, submissions: Path, options: list[str]) -> tuple[float, dict]:
    shutil.copytree(template, course)
    seconds, done = timed([sys.executable, "-m", "normlab_tools", "grade", "ps1", str(submissions),
                           "--course-dir", str(course), "--quiet", *options])
    if done.returncode != 0:
        raise SystemExit(f"normlab grade {' '.join(options)} failed:\n{done.stderr[-3000:]}")
    return seconds, totals(course, "ps1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=60)
    parser.add_argument("--methods", default="w2,dask,local2")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    assignments.scripts_on_path()
    base = Path(args.keep or tempfile.mkdtemp(prefix="normlab-bench-dask-"))
    base.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        template, release = make_course(base, "ps1")
        students = make_class(release, args.submissions, "ps1")
        submissions = base / "submissions"
        for student, notebook in students.items():
            (submissions / student).mkdir(parents=True)
            nbformat.write(notebook, submissions / student / "ps1.ipynb")
        address = None
        if "dask" in methods:
            address, processes = start_cluster(base)
        options = {"w2": ["--workers", "2"], "dask": ["--scheduler", address], "local2": ["--scheduler", "local:2"]}
        load_before = os.getloadavg()
        results: dict[str, list[tuple[float, dict]]] = {method: [] for method in methods}
        for round_ in range(args.rounds):
            for method in methods:
                print(f"grading {len(students)} submissions: {method} (round {round_ + 1}) ...", file=sys.stderr,
                      flush=True)
                results[method].append(run_normlab(template, base / f"{method}-{round_}", submissions,
                                                   options[method]))
        load_after = os.getloadavg()
    finally:
        stop_cluster(processes)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    medians = {method: statistics.median(seconds for seconds, _ in runs) for method, runs in results.items()}
    reference = medians.get("w2", next(iter(medians.values())))
    print(f"{len(students)} ps1 submissions (correct / partial / blank), {os.cpu_count()} cores, {args.rounds} "
          f"round(s), load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"| {'method':<42} | {'seconds (each run)':>20} | {'median':>7} | {'submissions/min':>15} | {'÷ w2':>6} |")
    print(f"|{'-' * 44}|{'-' * 22}|{'-' * 9}|{'-' * 17}|{'-' * 8}|")
    for method, runs in results.items():
        each = ", ".join(f"{seconds:.1f}" for seconds, _ in runs)
        print(f"| {LABELS.get(method, method):<42} | {each:>20} | {medians[method]:7.1f} | "
              f"{60 * len(students) / medians[method]:15.1f} | {medians[method] / reference:5.3f} |")
    every_run = [grades for runs in results.values() for _, grades in runs]
    disagreements = [student for student in students
                     if len({round(grades.get(student, -1.0), 6) for grades in every_run}) > 1]
    print(f"totals agree for {len(students) - len(disagreements)} of {len(students)} students"
          + (f"; differ: {', '.join(disagreements[:5])}" if disagreements else ""))
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
