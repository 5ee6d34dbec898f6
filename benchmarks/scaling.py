"""Grading 10,000 submissions: measure one submission's cost here, write docs/scaling.md.

Run: python benchmarks/scaling.py [--assignment ps1] [--small 6] [--large 36] [--page docs/scaling.md]

Grades a class of SMALL and then LARGE submissions (built as benchmarks/grading.py builds
them: a third correct, a third partial, a third blank) with `normlab grade --workers 1`,
and LARGE again with `--workers 2`, each from a fresh copy of one nbgrader course. The
difference of the two one-worker wall times, per extra submission, is what a submission
costs one worker; what is left of the small run is the start-up (the gradebook template,
the worker's kernel template and imports). A sampler reads /proc every `SAMPLE_SECONDS`
while a run grades: the grading process's own CPU time (its per-submission part is the
gradebook merge, which stays in one process however many workers grade) and the memory
(PSS) of the grading process and of each worker with everything it started.

From these it computes the cluster arithmetic for `SUBMISSIONS` submissions (`plan`) and
writes the page: the measurements, the arithmetic, and the deployment plan. Every number
on the page is computed here; tests/test_scaling_page.py recomputes the arithmetic from
the page's own measured inputs.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = 10_000
TARGET_MINUTES = (15, 60, 240)  # wall times asked of the cluster
CLUSTER_WORKERS = (1, 8, 32, 128, 512)  # cluster sizes whose wall time the page gives
SAMPLE_SECONDS = 0.25
HEADROOM = 1.5  # a worker's memory request: its measured peak times this

# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, its own CPU ticks, the CPU ticks of the children it has reaped)
    of every process /proc shows."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    return table


def _memory_kb(pid: int) -> int:
    """A process's proportional set size (shared pages split among their users), in kB;
    0 when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples a process tree until stopped: the root's own CPU seconds, the whole tree's
    (the largest sum over its live processes of their own and their reaped children's:
    the sandboxed kernels, which the grader's rusage never sees, are reaped inside the
    tree), and the peak memory (MB) of the root alone and of its largest child subtree
    (a worker)."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.cpu_seconds, self.tree_cpu_seconds, self.root_mb, self.worker_mb = root, 0.0, 0.0, 0.0, 0.0
        self.done = threading.Event()

    def run(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self.done.wait(SAMPLE_SECONDS):
            table = _process_table()
            if self.root not in table:
                return
            self.cpu_seconds = table[self.root][1] / ticks
            children = defaultdict(list)
            for pid, (parent, _, _) in table.items():
                children[parent].append(pid)

            def subtree(pid):
                return [pid] + [p for child in children[pid] for p in subtree(child)]

            # the largest sum seen: a worker's sandbox that outlives its worker at the end leaves the tree
            self.tree_cpu_seconds = max(self.tree_cpu_seconds,
                                        sum(table[pid][1] + table[pid][2] for pid in subtree(self.root)) / ticks)

            self.root_mb = max(self.root_mb, _memory_kb(self.root) / 1024)
            for worker in children[self.root]:
                self.worker_mb = max(self.worker_mb, sum(map(_memory_kb, subtree(worker))) / 1024)


def grade(template: Path, base: Path, students: dict, assignment: str, workers: int) -> dict:
    """`normlab grade` of ``students`` with ``workers`` from a fresh copy of the course:
    its wall seconds, its own CPU seconds and the peak memory of it and of one worker."""
    label = f"{len(students)}-w{workers}"
    course, submissions = base / f"course-{label}", base / f"submissions-{label}"
    shutil.copytree(template, course)
    for student, notebook in students.items():
        (submissions / student).mkdir(parents=True)
        nbformat.write(notebook, submissions / student / f"{assignment}.ipynb")
    command = [sys.executable, "-m", "normlab_tools", "grade", assignment, str(submissions), "--course-dir",
               str(course), "--workers", str(workers), "--quiet"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"normlab grade failed:\n{stderr[-3000:]}")
    return {"seconds": seconds, "cpu": sampler.cpu_seconds, "tree_cpu": sampler.tree_cpu_seconds,
            "parent_mb": sampler.root_mb,
            "worker_mb": sampler.worker_mb}


def measure(assignment: str, small: int, large: int) -> dict:
    """The page's measured inputs, rounded as the page shows them."""
    sys.path.insert(0, str(Path(__file__).parent))
    from grading import make_class, make_course

    from normlab_tools import assignments

    assignments.scripts_on_path()
    base = Path(tempfile.mkdtemp(prefix="normlab-bench-scaling-"))
    try:
        template, release = make_course(base, assignment)
        runs = {}
        for count, workers in ((small, 1), (large, 1), (large, 2)):
            print(f"grading {count} {assignment} submissions with --workers {workers} ...", file=sys.stderr, flush=True)
            runs[count, workers] = grade(template, base, make_class(release, count, assignment), assignment, workers)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    one_small, one_large, two_large = runs[small, 1], runs[large, 1], runs[large, 2]
    return {
        "n_small": small, "n_large": large,
        "wall_small_w1": round(one_small["seconds"], 1), "wall_large_w1": round(one_large["seconds"], 1),
        "wall_large_w2": round(two_large["seconds"], 1),
        "cpu_small_w1": round(one_small["tree_cpu"], 1), "cpu_large_w1": round(one_large["tree_cpu"], 1),
        "parent_cpu_small": round(one_small["cpu"], 2), "parent_cpu_large": round(one_large["cpu"], 2),
        "worker_mb": round(max(r["worker_mb"] for r in runs.values())),
        "parent_mb": round(max(r["parent_mb"] for r in runs.values())),
    }


# --------------------------------------------------------------------------------------
# The arithmetic
# --------------------------------------------------------------------------------------


def plan(m: dict) -> dict:
    """The cluster arithmetic from the measured inputs ``m`` (as `measure` returns them).

    The costs are CPU seconds, which a shared machine's load hardly changes, while wall
    seconds grow with it; a worker with a core of its own takes about its CPU time. A
    submission costs one worker ``s`` seconds (the run's CPU less the grading process's
    own, per extra submission) and the grading process ``p`` seconds (the gradebook
    merge, serial); a run starts up in ``o`` seconds (the small run's CPU less its
    submissions' share; counted whole, as if the grader's and the workers' start-ups
    came one after the other), the same with any number of workers. With W workers, N submissions
    take o + max(ceil(N / W) * s, N * p): the workers' share, unless the one grading
    process is slower. A target wall time T needs the fewest W with ceil(N / W) * s <=
    T - o, and, when N * p > T - o, K = ceil(N * p / (T - o)) grading processes, each
    with its own part of the class (and its own gradebook).
    """
    extra = m["n_large"] - m["n_small"]
    p = (m["parent_cpu_large"] - m["parent_cpu_small"]) / extra
    s = (m["cpu_large_w1"] - m["cpu_small_w1"]) / extra - p
    o = m["cpu_small_w1"] - m["n_small"] * (s + p)
    clusters = [{"workers": w, "minutes": (o + max(math.ceil(SUBMISSIONS / w) * s, SUBMISSIONS * p)) / 60,
                 "memory_gb": (w * m["worker_mb"] + m["parent_mb"]) / 1024} for w in CLUSTER_WORKERS]
    targets = []
    for minutes in TARGET_MINUTES:
        budget = 60 * minutes - o
        per_worker = math.floor(budget / s) if budget > 0 else 0
        targets.append({"minutes": minutes,
                        "workers": math.ceil(SUBMISSIONS / per_worker) if per_worker else None,
                        "graders": max(1, math.ceil(SUBMISSIONS * p / budget)) if budget > 0 else None})
    return {"s": s, "o": o, "p": p, "s_wall": (m["wall_large_w1"] - m["wall_small_w1"]) / extra,
            "speedup_w2": m["wall_large_w1"] / m["wall_large_w2"],
            "core_hours": SUBMISSIONS * s / 3600, "grader_minutes": SUBMISSIONS * p / 60,
            "clusters": clusters, "targets": targets}


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------

MEASURED = [  # (key, what it is, format)
    ("n_small", "submissions in the small class", "{}"),
    ("n_large", "submissions in the large class", "{}"),
    ("wall_small_w1", "wall seconds, small class, `--workers 1`", "{:.1f}"),
    ("wall_large_w1", "wall seconds, large class, `--workers 1`", "{:.1f}"),
    ("wall_large_w2", "wall seconds, large class, `--workers 2`", "{:.1f}"),
    ("cpu_small_w1", "CPU seconds of the whole run (grader, worker, sandbox, kernels), small class, "
     "`--workers 1`", "{:.1f}"),
    ("cpu_large_w1", "CPU seconds of the whole run, large class, `--workers 1`", "{:.1f}"),
    ("parent_cpu_small", "CPU seconds of the grading process itself, small class, `--workers 1`", "{:.2f}"),
    ("parent_cpu_large", "CPU seconds of the grading process itself, large class, `--workers 1`", "{:.2f}"),
    ("worker_mb", "peak memory of one worker with its sandbox and kernels (PSS, MB)", "{}"),
    ("parent_mb", "peak memory of the grading process (PSS, MB)", "{}"),
]
DERIVED = [
    ("s", "CPU seconds a submission costs one worker: the large run's extra CPU per extra submission, less `p`",
     "{:.2f}"),
    ("p", "CPU seconds a submission costs the grading process (the gradebook merge; serial)", "{:.3f}"),
    ("o", "start-up CPU seconds of a grading run: the small run's CPU less its submissions' share", "{:.1f}"),
    ("s_wall", "wall seconds per extra submission with one worker on this shared machine (for comparison)",
     "{:.2f}"),
    ("speedup_w2", "`--workers 2` against `--workers 1` on this machine's 2 cores, large class", "{:.2f}"),
    ("core_hours", f"worker core-hours for {SUBMISSIONS:,} submissions: N·s", "{:.1f}"),
    ("grader_minutes", f"minutes of the one grading process for {SUBMISSIONS:,} submissions: N·p", "{:.1f}"),
]


def key_table(rows, values) -> str:
    lines = ["| quantity | value | what |", "|---|---|---|"]
    lines += [f"| `{key}` | {fmt.format(values[key])} | {what} |" for key, what, fmt in rows]
    return "\n".join(lines)


def cluster_table(derived) -> str:
    lines = ["| workers | wall time (minutes) | memory (GB) |", "|---|---|---|"]
    lines += [f"| {c['workers']} | {c['minutes']:.1f} | {c['memory_gb']:.1f} |" for c in derived["clusters"]]
    return "\n".join(lines)


def target_table(derived) -> str:
    lines = ["| target wall time (minutes) | workers | grading processes |", "|---|---|---|"]
    for t in derived["targets"]:
        workers = t["workers"] if t["workers"] is not None else "out of reach (start-up alone)"
        lines.append(f"| {t['minutes']} | {workers} | {t['graders'] if t['graders'] is not None else '-'} |")
    return "\n".join(lines)


def tables(measured: dict) -> list[str]:
    """The page's four tables, in order, from the measured inputs."""
    derived = plan(measured)
    return [key_table(MEASURED, measured), key_table(DERIVED, derived), cluster_table(derived),
            target_table(derived)]


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def grade_has_scheduler() -> bool:
    """Whether the commit's `normlab grade` takes --scheduler (grading on a Dask cluster)."""
    return "--scheduler" in _git("show", "HEAD:lib/normlab_tools/commands/grade.py")


def page(measured: dict, command: str, started: str, load: tuple, assignment: str) -> str:
    measured_md, derived_md, clusters_md, targets_md = tables(measured)
    derived = plan(measured)
    commit = _git("rev-parse", "--short", "HEAD")
    changed = [line[3:] for line in _git("status", "--porcelain", "--", "lib").splitlines()]
    dirty = f" with uncommitted changes to {', '.join(f'`{name}`' for name in changed)}" if changed else ""
    worker_gb = math.ceil(measured["worker_mb"] / 1024 * HEADROOM * 2) / 2  # in steps of half a gigabyte
    fastest = next(t for t in derived["targets"] if t["workers"] is not None)
    if grade_has_scheduler():
        grade_command = f"normlab grade {assignment} SUBMISSIONS --scheduler $SCHEDULER"
        transport = ("The grading process (the Dask client) keeps the course directory and the gradebook; the "
                     "workers get the course template and each submission as data and send the results back, so "
                     "no shared file system is needed.")
    else:
        grade_command = f"normlab grade {assignment} SUBMISSIONS --workers N   # one machine's cores only, for now"
        transport = ("At this commit `normlab grade` has no `--scheduler` yet (issue 17's grading on a Dask "
                     "cluster is under way): until it has, grading spreads over one machine's cores "
                     "(`--workers N`) and the cluster plan applies to `normlab experiments --scheduler`.")
    return f"""# Grading {SUBMISSIONS:,} submissions

<!-- Written by benchmarks/scaling.py; do not edit by hand, run it again.
     tests/test_scaling_page.py recomputes the arithmetic from the measured inputs below. -->

A plan on paper, with numbers: what one submission costs `normlab grade` on this
machine, the arithmetic from that to a cluster's size and wall time for {SUBMISSIONS:,}
submissions, and how to deploy it with existing tools.

Command: `{command}`<br>
Run: {started} UTC, commit {commit}{dirty}, {os.cpu_count()} CPUs, load average
{load[0]:.2f} before and {load[1]:.2f} after (the machine is shared with other sessions'
tests: absolute times are this run's, the arithmetic is what carries over).

## What one submission costs

The class: {assignment}, a third correct, a third partial (one planted mistake each), a
third blank, as in `benchmarks/grading.py`. Each run grades from a fresh copy of one
course (sandboxed, with feedback pages), so every run pays the whole start-up.

{measured_md}

Derived (the script's `plan`):

{derived_md}

The plan counts CPU seconds: the machine is shared, and other sessions' load stretches
wall times (compare `s_wall` with `s` + `p`) but hardly CPU times, and a cluster's
worker with a core of its own takes about its CPU time. The load also changes from one
run to the next, so the wall-time ratio `speedup_w2` says as much about the load as about
the second worker. The two one-worker runs give a
line: CPU = `o` + n·(`s` + `p`). `p` is the part of a submission the grading process
does itself, beside the workers: copying the student's grades into the course's
gradebook and writing the reason; it does not shrink with more workers. The workers' memory is what a cluster must give each worker; the grading
process runs wherever the course's gradebook is.

## The arithmetic

With W workers (one core each, as here) and N = {SUBMISSIONS:,} submissions, the wall
time is `o + max(ceil(N / W)·s, N·p)`: the workers' share, or the one grading process
if that is slower. Assumptions: every submission costs `s` (a correct {assignment} costs
more than a blank one; the classes mix them in equal thirds); the workers start in
parallel in `o`; a cluster's workers are as fast as this machine's cores; the scheduler's
own cost per task (milliseconds), waits that are not CPU time, and the transfer of a notebook and its results (under a
megabyte a student: the job gradebook, the autograded notebook, the feedback page) are left out; the time a batch system or Kubernetes takes to give the workers
(queue wait, image pull) is not measured here and comes on top.

Wall time and memory by cluster size:

{clusters_md}

Workers needed for a target wall time (the fewest W with `ceil(N / W)·s <= T - o`), and
the grading processes needed so that the serial part `N·p` fits too (`ceil(N·p / (T -
o))`). `normlab grade` runs one grading process per assignment and gradebook (a second
run of the same assignment is refused), so a target that needs more than one is out of
reach with one gradebook, whose floor is `o + N·p` (the last rows of the table above);
splitting the class among that many course directories, each with its own gradebook,
would reach it:

{targets_md}

For {fastest['minutes']} minutes, {fastest['workers']} workers of one core and
{worker_gb:.1f} GB each (the measured peak times {HEADROOM}, rounded up to half a gigabyte).

## Deploying it

Every worker needs the same environment as the grader: this project's virtual
environment (`tools/venv.sh`, the pinned `tools/constraints.txt`) or a container image
built from it, and bubblewrap with unprivileged user namespaces, since every kernel runs
in a sandbox (`normlab grade` refuses without one unless `--no-sandbox`). {transport}
The commands, once a cluster's scheduler runs:

```sh
{grade_command}
normlab experiments --scheduler $SCHEDULER          # the BatchNorm runs, the same numbers as locally
```

### On a SLURM cluster: dask-jobqueue

```python
from dask_jobqueue import SLURMCluster

cluster = SLURMCluster(cores=1, processes=1, memory="{worker_gb:.1f}GiB", walltime="02:00:00",
                       python="/path/to/normlab/.venv/bin/python", queue="batch")
cluster.scale(jobs={fastest['workers']})   # one single-core job per worker
print(cluster.scheduler_address)          # -> --scheduler <that address>
```

Run it on the login node (or in a small job) next to the course directory; each
worker is one SLURM job, so the queue wait adds to the wall time above. Check once that
a compute node can build the sandbox (`bwrap --unshare-all --ro-bind / / true` in an
`srun`): some sites disable unprivileged user namespaces.

### On Kubernetes: the Dask Helm chart, or dask-kubernetes

An image: this project's environment plus bubblewrap. The Helm chart (a scheduler and a
fixed set of workers):

```sh
helm install grading dask --repo https://helm.dask.org \\
  --set worker.replicas={fastest['workers']} --set worker.image.repository=REGISTRY/normlab \\
  --set worker.image.tag=COMMIT --set worker.resources.limits.cpu=1 \\
  --set worker.resources.limits.memory={worker_gb:.1f}Gi --set worker.threads_per_worker=1
```

or the Dask operator from Python (`dask-kubernetes`):

```python
from dask_kubernetes.operator import KubeCluster

cluster = KubeCluster(name="grading", image="REGISTRY/normlab:COMMIT", n_workers={fastest['workers']},
                      resources={{"requests": {{"cpu": "1", "memory": "{worker_gb:.1f}Gi"}},
                                 "limits": {{"cpu": "1", "memory": "{worker_gb:.1f}Gi"}}}})
```

bubblewrap in a pod needs user namespaces the pod's security profile allows (the default
seccomp profile of some runtimes blocks them); try the `bwrap` line above in a worker pod
first.

### A JupyterHub course with nbgrader's exchange

Students work on the hub; `nbgrader release_assignment {assignment}` puts the release into
the exchange, students fetch it and submit from the Assignments tab (each submission
lands in the exchange's inbound folder with a timestamp), and the instructor's
`nbgrader collect {assignment}` copies the latest submission of each student into the
course directory's `submitted/<student>/{assignment}/`: the layout `normlab grade` reads
(`normlab grade {assignment} COURSE/submitted --course-dir COURSE`). The grading process runs in the
instructor's server or a job next to it, with the cluster's scheduler address; its
feedback pages go back through `nbgrader release_feedback {assignment}` and the Assignments
tab. The course's gradebook is nbgrader's database (`c.CourseDirectory.db_url`): SQLite in
the course directory, or a PostgreSQL server when several TAs grade one course
(`docs/grading.md`); either way one grading run per assignment at a time.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps1")
    parser.add_argument("--small", type=int, default=6, help="submissions in the small class (default 6)")
    parser.add_argument("--large", type=int, default=36, help="submissions in the large class (default 36)")
    parser.add_argument("--page", default=str(ROOT / "docs" / "scaling.md"), help="where to write the page")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.large:
        parser.error("need 0 < --small < --large")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()[0]
    measured = measure(args.assignment, args.small, args.large)
    command = "python benchmarks/scaling.py" + "".join(
        f" --{name} {value}" for name, value, default in (("assignment", args.assignment, "ps1"),
                                                          ("small", args.small, 6), ("large", args.large, 36))
        if value != default)
    text = page(measured, command, started, (load_before, os.getloadavg()[0]), args.assignment)
    Path(args.page).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
