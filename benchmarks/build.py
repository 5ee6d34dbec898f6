"""`normlab build` wall time: a full build with -j 1 and -j 2, a no-op rebuild, one lecture edited.

Run: python benchmarks/build.py [--lecture 01] [--keep]

Exports the committed course/, solutions/, assignments/ and lib/ (``git archive HEAD``)
into a temporary project, so edits in the checkout during the run change nothing (the
command and its kernels import the copy's lib/ through PYTHONPATH), and times the real
command, ``normlab build --root COPY --out OUT -j N``, in one run:

1. full -j 1   into an empty OUT1 (no cache)
2. full -j 2   into an empty OUT2 (no cache)
3. no-op -j 2  into OUT2 again: nothing changed
4. one lecture edited -j 2: a line added to the first code cell of lecture `--lecture`

Prints each build's wall time against its target (issue 16), what ran (rows "ok") and
what came from the cache ("cached"), and the machine's load average before and after each
(other processes share the 2 cores: a busy machine is slower).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NORMLAB = Path(sys.executable).with_name("normlab")
TARGETS = {"full -j 1": None, "full -j 2": 150.0, "no-op -j 2": 10.0, "one lecture edited -j 2": 45.0}


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def timed_build(project: Path, out: Path, jobs: int) -> tuple[float, list[tuple[str, str, str]], str]:
    """Run the command; (seconds, [(task, seconds, status)], its output)."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(project / "lib")}
    done = subprocess.run([str(NORMLAB), "build", "--root", str(project), "--out", str(out), "-j", str(jobs)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    rows, in_table = [], False
    for line in done.stdout.splitlines():
        if line.split()[:3] == ["notebook", "seconds", "status"]:
            in_table = True
        elif in_table and len(line.split()) >= 3 and re.fullmatch(r"\d+\.\d", line.split()[1]):
            name, task_seconds, status = line.split(None, 2)
            rows.append((name, task_seconds, status))
    if done.returncode != 0:
        print(f"normlab build exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", file=sys.stderr)
    return seconds, rows, done.stdout


def edit_lecture(project: Path, number: str) -> Path:
    """Add a line to the first code cell of lecture `number`; returns the file."""
    (path,) = sorted((project / "course").glob(f"{number}_*.py"))
    lines = path.read_text().splitlines(keepends=True)
    first_code = next(i for i, line in enumerate(lines) if line.startswith("# %%") and "[markdown]" not in line)
    lines.insert(first_code + 1, "_benchmark_edit = 1  # benchmarks/build.py\n")
    path.write_text("".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lecture", default="01", help="the lecture to edit (default 01)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project and builds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="normlab-build-bench-"))
    project = work / "project"
    project.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "course", "solutions", "assignments", "lib"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(project)], input=archive, check=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results = []

    def measure(label: str, out: Path, jobs: int) -> None:
        before = load()
        seconds, rows, _ = timed_build(project, out, jobs)
        ran = [name for name, _, status in rows if status == "ok"]
        cached = [name for name, _, status in rows if status == "cached"]
        failed = [f"{name}: {status}" for name, _, status in rows if status.startswith("failed")]
        results.append((label, seconds, before, load(), ran, cached, failed))
        print(f"{label}: {seconds:.1f} s  ({len(ran)} ran, {len(cached)} cached, {len(failed)} failed)", flush=True)

    print(f"benchmarks/build.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, "
          f"{os.cpu_count()} cores, load average at start {load()}", flush=True)
    measure("full -j 1", work / "out1", 1)
    measure("full -j 2", work / "out2", 2)
    measure("no-op -j 2", work / "out2", 2)
    edited = edit_lecture(project, args.lecture)
    measure("one lecture edited -j 2", work / "out2", 2)

    full_1 = results[0][1]
    print(f"\nedited: course/{edited.name}\n")
    print("| build                    | seconds | target | × full -j 1 | load before | load after |")
    print("|--------------------------|---------|--------|-------------|-------------|------------|")
    for label, seconds, before, after, *_ in results:
        target = TARGETS[label]
        print(f"| {label:<24} | {seconds:7.1f} | {('≤ %.0f' % target) if target else '':>6} | "
              f"{seconds / full_1:10.2f}× | {before:<11} | {after:<10} |")
    print()
    for label, _, _, _, ran, cached, failed in results[2:]:
        print(f"{label}: ran {', '.join(ran) or 'nothing'}; {len(cached)} cached")
    for label, *_, failed in results:
        if failed:
            print(f"{label}: FAILED {'; '.join(failed)}")
    if args.keep:
        print(f"kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
