"""`normlab grade --scheduler`: a class graded on a real Dask cluster.

The cluster is real processes on loopback, started by the tests: a ``dask scheduler``
and two ``dask worker`` processes (nannies, so a killed worker comes back). A small
hostile class (tests/test_grading.py's kinds: crashing, looping, flooding, tampering,
spying kernels and broken files) is graded once with local workers (``--workers 2``)
and once on the cluster; both must give every student the same scores, statuses and
reasons (the course folder's path aside), the ones tests/test_grading.py expects. A run
whose worker is killed with SIGKILL while it grades must end with the same grades.csv;
``local:2`` grades like the rest. An unreachable scheduler, or a worker without
bubblewrap, is refused before anything is graded.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client

from normlab_tools.dask_cluster import CONNECT_SECONDS
from normlab_tools.grading import distributed, report, run
from test_grading import TIMEOUT, Student, grade, hostile_class, read_csv, release, write_class  # noqa: F401 (release: fixture)

DASK = Path(sys.executable).parent / "dask"
CLASS = ["correct", "partial", "blank", "invalid", "sleeper", "osexit", "segfault", "flood", "killer", "deleter",
         "patcher", "spy", "dbreader", "vandal", "caller"]
SMALL_CLASS = ["correct", "partial", "blank"]  # for the tests that start a cluster of their own, and local:2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1; `stop` ends them all."""

    def __init__(self, base: Path, scheduler_env: dict | None = None):
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []
        self._start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                                  "--no-dashboard"], scheduler_env)

    def add_worker(self, name: str, env: dict | None = None) -> None:
        self._start(name, [DASK, "worker", self.address, "--name", name, "--nworkers", "1", "--nthreads", "1",
                           "--host", "127.0.0.1", "--no-dashboard", "--local-directory", self.base / name], env)

    def _start(self, name: str, command: list, env: dict | None = None) -> None:
        with open(self.base / f"{name}.log", "wb") as log:  # each process group is ours to stop
            self.processes.append(subprocess.Popen([str(part) for part in command], stdin=subprocess.DEVNULL,
                                                   stdout=log, stderr=subprocess.STDOUT, env=env,
                                                   start_new_session=True))

    def workers(self, count: int) -> dict:
        """Wait for `count` workers; name -> address."""
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(count, timeout=120)
            return {w["name"]: address for address, w in client.scheduler_info(n_workers=-1)["workers"].items()}

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two workers, for the module."""
    started = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        for name in ("worker-a", "worker-b"):
            started.add_worker(name)
        started.workers(2)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def the_class(release, tmp_path_factory):
    """(base folder, submissions) of the hostile class, written once. Every run grades it
    into base/course, then moves that folder aside: the spying students look for the
    course being graded, and the reasons name it."""
    base = tmp_path_factory.mktemp("dask-class")
    write_class(list(expected(release, base).values()), base / "submissions")
    return base, base / "submissions"


def expected(release, base: Path) -> dict:
    return {s.name: s for s in hostile_class(release, base / "course", base / "submissions") if s.name in CLASS}


def graded_aside(base: Path, name: str, grade_it) -> Path:
    """Run grade_it(course) on base/course, then move the course to base/name."""
    grade_it(base / "course")
    (base / "course").rename(base / name)
    return base / name


def rows(course: Path) -> dict:
    return read_csv(course / "grading" / "ps1" / "grades.csv")


def cell_scores(course: Path) -> dict:
    """(student, grade_id) -> score in the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="normlab") as gradebook:
        return {(s.student.id, g.name): g.score for s in gradebook.find_assignment("ps1").submissions
                for nb in s.notebooks for g in nb.grades}


@pytest.fixture(scope="module")
def local_run(the_class):
    """The class graded with two local workers: (course, summary)."""
    base, submissions = the_class
    outcome = []
    course = graded_aside(base, "local", lambda course: outcome.append(
        run.grade_class("ps1", submissions, course, workers=2, timeout=TIMEOUT, progress=False)))
    return course, report.summary(outcome[0], "ps1")


@pytest.fixture(scope="module")
def dask_run(local_run, the_class, cluster):
    """The class graded on the cluster, after `local_run`: (course, summary)."""
    base, submissions = the_class
    outcome = []
    course = graded_aside(base, "dask", lambda course: outcome.append(
        run.grade_class("ps1", submissions, course, timeout=TIMEOUT, progress=False, scheduler=cluster.address)))
    return course, report.summary(outcome[0], "ps1")


def wrong_rows(course: Path, release, base: Path) -> list[str]:
    """Students whose grades.csv row is not what tests/test_grading.py expects."""
    wrong = []
    for name, student in expected(release, base).items():
        row = rows(course)[name]
        if (float(row["total"]), row["status"]) != (student.score, student.status) \
                or not re.fullmatch(student.reason, row["reason"]):
            wrong.append(f"{name}: got {row['total']} {row['status']} {row['reason']!r}, expected "
                         f"{student.score:g} {student.status} {student.reason!r}")
    return wrong


@pytest.mark.slow
def test_the_cluster_grades_like_local_workers(local_run, dask_run, the_class, release):
    (local, local_summary), (dask, dask_summary) = local_run, dask_run
    base, _ = the_class
    assert not wrong_rows(local, release, base), "\n".join(wrong_rows(local, release, base))
    assert not wrong_rows(dask, release, base), "\n".join(wrong_rows(dask, release, base))
    assert rows(dask) == rows(local)
    assert cell_scores(dask) == cell_scores(local) and len(cell_scores(dask)) == 12 * len(CLASS)
    assert dask_summary == local_summary
    for name in CLASS:  # the files the workers sent back, in place
        assert (dask / "feedback" / name / "ps1" / "ps1.html").stat().st_size > 0, name
        assert (dask / "autograded" / name / "ps1").is_dir() == (local / "autograded" / name / "ps1").is_dir()
    for course in (local, dask):
        page = (course / "feedback" / "partial" / "ps1" / "ps1.html").read_text()
        assert "Score: 22.0 / 25.0" in page or "Score: 22 / 25" in page, page[:2000]
    assert not (dask / "grading" / "ps1" / ".work").exists()


@pytest.mark.slow
def test_the_workers_end_each_run_with_nothing_left(dask_run, cluster):
    """The plugin's teardown stopped each worker's template and removed its WORK folder."""
    with Client(cluster.address, timeout=30) as client:
        left = client.run(lambda dask_worker: sorted(p.name for p in Path(dask_worker.local_directory).iterdir()
                                                     if p.name.startswith("normlab-")))
        plugins = client.run(lambda dask_worker: [n for n in dask_worker.plugins if n.startswith("normlab-")])
    assert set(map(tuple, left.values())) == {()} and set(map(tuple, plugins.values())) == {()}
    for worker in ("worker-a", "worker-b"):
        assert not list((cluster.base / worker).rglob("normlab-grading-*"))


def executing(client: Client) -> dict:
    """worker address -> (pid, keys of the tasks it runs now)."""
    return client.run(lambda dask_worker: (os.getpid(), sorted(str(t.key) for t in dask_worker.state.executing)))


def kill_a_busy_worker(client: Client):
    """SIGKILL a worker process that is running a task; the keys it ran (None: none was busy)."""
    busy = [(pid, keys) for pid, keys in executing(client).values() if keys]
    if not busy:
        return None
    pid, keys = busy[0]
    os.kill(pid, signal.SIGKILL)
    return keys


def graded_any(course: Path) -> bool:
    return bool(list((course / "grading" / "ps1" / "state").glob("*.json")))


def grade_meanwhile(submissions: Path, course: Path, address: str, act, waiting_for: str):
    """Run ``normlab grade ps1`` on the cluster at `address` in another process; while it
    runs, call act() every 0.1 s until it returns something; once the run has ended
    well, return (that, the run's stdout)."""
    command = [sys.executable, "-m", "normlab_tools", "grade", "ps1", str(submissions), "--course-dir", str(course),
               "--timeout", str(TIMEOUT), "--scheduler", address, "--quiet"]
    grader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while (done := act()) is None:
            assert grader.poll() is None, grader.communicate()[1][-3000:]
            assert time.monotonic() < deadline, waiting_for
            time.sleep(0.1)
        out, err = grader.communicate(timeout=900)
    finally:
        if grader.poll() is None:
            grader.kill()
            grader.communicate()
    assert grader.returncode == 0, err[-3000:]
    return done, out


def without_bwrap() -> dict:
    """The environment of a worker on a machine without bubblewrap: only the venv's bin on PATH."""
    return dict(os.environ, PATH=str(DASK.parent))


def write_small_class(release, folder: Path) -> None:
    write_class([s for s in hostile_class(release, folder / "course", folder / "submissions")
                 if s.name in SMALL_CLASS], folder / "submissions")


def small_rows(course: Path) -> dict:
    return {name: row for name, row in rows(course).items() if name in SMALL_CLASS}


@pytest.mark.slow
def test_a_worker_killed_mid_run_ends_with_the_uninterrupted_grades(dask_run, the_class, cluster):
    """SIGKILL a worker process while it grades a student: the scheduler gives its tasks
    to the other worker (and to the nanny's new worker), the grades are those of the
    uninterrupted run."""
    dask, _ = dask_run
    base, submissions = the_class
    course = base / "course"
    with Client(cluster.address, timeout=30) as client:
        killed, out = grade_meanwhile(submissions, course, cluster.address,
                                      lambda: kill_a_busy_worker(client) if graded_any(course) else None,
                                      "the run never had a task running after its first grade")
    course.rename(base / "killed")
    assert killed and killed[0].startswith("grade-"), killed
    assert rows(base / "killed") == rows(dask)
    assert cell_scores(base / "killed") == cell_scores(dask)
    assert f"{len(CLASS)} submissions" in out
    cluster.workers(2)  # the nanny replaced the worker


@pytest.mark.slow
def test_local_n_starts_a_cluster_for_the_run(local_run, release, tmp_path, capsys, monkeypatch):
    """local:2, with a window of 2 tasks on the cluster (one per worker thread) for a class of 3."""
    local, _ = local_run
    write_small_class(release, tmp_path)
    monkeypatch.setattr(distributed, "MIN_WINDOW", 1)
    monkeypatch.setattr(distributed, "TASKS_PER_THREAD", 1)
    on_cluster = []  # tasks the client held as each result came in
    received = distributed.DaskPool._received

    def counted(pool, future, student, job_dir):
        on_cluster.append(len(pool.client.futures))
        return received(pool, future, student, job_dir)
    monkeypatch.setattr(distributed.DaskPool, "_received", counted)
    code, out, err = grade(capsys, "ps1", tmp_path / "submissions", "--course-dir", tmp_path / "course",
                           "--timeout", TIMEOUT, "--scheduler", "local:2")
    assert code == 0, err
    assert "grading ps1" in err  # the progress bar
    assert rows(tmp_path / "course") == small_rows(local)
    assert "3 submissions: 3 graded, 0 failed, 0 flagged" in out
    assert len(on_cluster) == 3 and max(on_cluster) == 2, on_cluster


@pytest.mark.slow
def test_a_student_whose_workers_keep_dying_gets_0_with_why_and_the_others_their_grades(local_run, release,
                                                                                       tmp_path, capsys):
    """With ``distributed.scheduler.allowed-failures`` 0, one worker killed while it grades
    is one death too many: each student it held fails with 0 and a reason saying so (none
    is dropped), every other student gets the grade of the local run, and regrading a
    failed student alone (``--student``) gives it the local run's grade."""
    local, _ = local_run
    local_rows = small_rows(local)
    write_small_class(release, tmp_path)
    cluster = Cluster(tmp_path / "dask", scheduler_env=dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0"))
    try:
        for name in ("worker-a", "worker-b"):
            cluster.add_worker(name)
        cluster.workers(2)
        with Client(cluster.address, timeout=30) as client:
            killed, out = grade_meanwhile(tmp_path / "submissions", tmp_path / "course", cluster.address,
                                          lambda: kill_a_busy_worker(client), "no task ever ran")
        victim = killed[0].split("-")[1]
        after = rows(tmp_path / "course")
        failed = {name for name, row in after.items() if row["status"] == "failed"}
        assert victim in failed and set(after) == set(SMALL_CLASS)
        for name in failed:
            assert (after[name]["total"], after[name]["reason"]) == (
                "0", "grading failed: every Dask worker that graded it died (distributed.scheduler.allowed-failures)")
        assert {name: after[name] for name in after if name not in failed} == \
            {name: local_rows[name] for name in after if name not in failed}
        assert f"3 submissions: {3 - len(failed)} graded, {len(failed)} failed" in out
        for name in failed:
            code, _, err = grade(capsys, "ps1", tmp_path / "submissions", "--course-dir", tmp_path / "course",
                                 "--timeout", TIMEOUT, "--scheduler", cluster.address, "--student", name)
            assert code == 0, err
        assert rows(tmp_path / "course") == local_rows
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_worker_without_bubblewrap_joining_mid_run_is_given_no_student(release, tmp_path):
    """One sandboxed worker grades eight correct notebooks; a worker without bwrap joins
    after the first grade. It cannot start a kernel template, so it never offers the
    grading slot: every student is graded (25 points) by the sandboxed worker."""
    correct = next(s for s in hostile_class(release, tmp_path / "course", tmp_path / "submissions")
                   if s.name == "correct")
    names = [f"student{i}" for i in range(8)]
    write_class([Student(name, correct.content, correct.score, correct.status, correct.reason) for name in names],
                tmp_path / "submissions")
    cluster = Cluster(tmp_path / "dask")
    try:
        cluster.add_worker("sandboxed")
        cluster.workers(1)

        def add_an_unsandboxed_worker():
            """After the first grade: the worker joins; the grading slot of each worker."""
            if not graded_any(tmp_path / "course"):
                return None
            cluster.add_worker("unsandboxed", env=without_bwrap())
            cluster.workers(2)
            with Client(cluster.address, timeout=30) as client:
                return {w["name"]: w["resources"].get(distributed.SLOT)
                        for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        slots, out = grade_meanwhile(tmp_path / "submissions", tmp_path / "course", cluster.address,
                                     add_an_unsandboxed_worker, "no student was ever graded")
        addresses = cluster.workers(2)
        assert slots == {"sandboxed": 1, "unsandboxed": None}
        after = rows(tmp_path / "course")
        assert {name: (row["total"], row["status"]) for name, row in after.items()} == \
            {name: ("25", "graded") for name in names}
        assert "8 submissions: 8 graded, 0 failed" in out
        log = (cluster.base / "unsandboxed.log").read_text()
        assert "bubblewrap (bwrap) is not installed" in log and addresses["unsandboxed"] in log
    finally:
        cluster.stop()


def test_an_unreachable_scheduler_is_refused_at_once(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    (tmp_path / "submissions" / "alice").mkdir(parents=True)
    start = time.monotonic()
    code, _, err = grade(capsys, "ps1", tmp_path / "submissions", "--course-dir", tmp_path / "course",
                         "--scheduler", address)
    assert code == 2
    assert f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS} s" in err
    assert "Start one with `dask scheduler`" in err and "--scheduler local:N" in err
    assert time.monotonic() - start < 30
    assert not (tmp_path / "course").exists()  # nothing graded, nothing written


def test_a_bad_local_cluster_size_is_refused(tmp_path, capsys):
    for wrong in ("local:0", "local:two", "local:99"):
        with pytest.raises(SystemExit) as exit_info:  # the argument parser's refusal
            grade(capsys, "ps1", tmp_path, "--course-dir", tmp_path / "course", "--scheduler", wrong)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "local:N starts N Dask workers on this machine" in err, err
    with pytest.raises(SystemExit) as exit_info:  # students are graded here or on the cluster, not both
        grade(capsys, "ps1", tmp_path, "--course-dir", tmp_path / "course", "--scheduler", "local:2", "--workers", "2")
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "course").exists()


@pytest.mark.slow
def test_workers_without_bubblewrap_are_named_before_anything_is_graded(tmp_path, release, capsys):
    """One worker finds no bwrap on its PATH (as on a machine without bubblewrap): refused,
    naming that worker only."""
    assert shutil.which("bwrap", path=str(DASK.parent)) is None
    cluster = Cluster(tmp_path)
    try:
        cluster.add_worker("sandboxed")
        cluster.add_worker("unsandboxed", env=without_bwrap())
        addresses = cluster.workers(2)
        write_small_class(release, tmp_path)
        code, _, err = grade(capsys, "ps1", tmp_path / "submissions", "--course-dir", tmp_path / "course",
                             "--scheduler", cluster.address)
    finally:
        cluster.stop()
    assert code == 2
    assert (f"1 of 2 Dask workers cannot build a sandbox ({addresses['unsandboxed']}: bubblewrap (bwrap) is not "
            "installed") in err, err
    assert addresses["sandboxed"] not in err and "--no-sandbox" in err
    assert not (tmp_path / "course").exists()
