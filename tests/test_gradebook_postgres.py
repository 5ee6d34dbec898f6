"""A shared gradebook: nbgrader's ``c.CourseDirectory.db_url`` naming a PostgreSQL server.

A private PostgreSQL cluster (Debian's server binaries, `make test` installs them) runs
for the session on a Unix socket in a temporary folder, and each test gets a fresh
database. Fast tests: the course's db_url, an unreachable server (a clear error before
anything is graded), a second grader of the same assignment refused (in the same
course directory, and from another one sharing the gradebook). Slow tests grade real
classes with `normlab grade` in the sandbox: the same grades as a SQLite gradebook, the
same export, manual grades kept by a regrade, and two TAs grading two assignments of
one course at the same time with nothing lost.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from normlab_tools import assignments
from normlab_tools.cli import main as normlab_main
from normlab_tools.grading import course, gradebook, run
from support import notebook_file
from test_grading import FULL, TIMEOUT, Student, edit, read_csv, solved, write_class

ROOT = Path(__file__).resolve().parents[1]
SERVER_BINARIES = "/usr/lib/postgresql/*/bin"
PORT = 5432  # names the socket file only: the server listens on no TCP address
PASSWORD = "not-to-be-printed"


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A running private PostgreSQL cluster, reached on the Unix socket in `sockets`."""

    sockets: Path
    port: int

    def url(self, database: str, user: str = "postgres", port: int | None = None) -> str:
        return f"postgresql+psycopg://{user}@/{database}?host={self.sockets}&port={port or self.port}"

    def new_database(self) -> str:
        """A fresh empty database; its db_url."""
        import psycopg

        name = f"gradebook_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.sockets), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def server_binaries() -> Path:
    """The newest installed PostgreSQL's bin folder (initdb, pg_ctl)."""
    found = [Path(p) for p in glob.glob(SERVER_BINARIES) if (Path(p) / "initdb").is_file()]
    if not found:
        pytest.fail(f"no PostgreSQL server in {SERVER_BINARIES}: run `make test`, which installs Debian's "
                    "postgresql", pytrace=False)
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


@pytest.fixture(scope="session")
def postgres():
    """A private cluster for the session: initdb'd in a temporary folder below /tmp (as the
    postgres user when the tests run as root: initdb refuses root), started on a Unix
    socket only, stopped at the end."""
    binaries = server_binaries()
    root = Path(tempfile.mkdtemp(prefix="normlab-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_server = []
    if os.geteuid() == 0:
        as_server = ["runuser", "-u", "postgres", "--"]
        for folder in (root, sockets):
            shutil.chown(folder, "postgres")

    def server(command: str, *args) -> None:
        done = subprocess.run(as_server + [str(binaries / command), *map(str, args)], capture_output=True, text=True,
                              timeout=120)
        if done.returncode:
            log = (root / "server.log").read_text() if (root / "server.log").is_file() else ""
            pytest.fail(f"{command} failed ({done.returncode}): {done.stdout}{done.stderr}{log}", pytrace=False)

    server("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    server("pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-o",
           f"-k {sockets} -p {PORT} -c listen_addresses='' -c fsync=off", "start")
    try:
        yield Server(sockets, PORT)
    finally:
        server("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db_url(postgres) -> str:
    """A fresh database of the session's server."""
    return postgres.new_database()


def course_on(folder: Path, url: str) -> Path:
    """A course directory whose nbgrader_config.py is the project's with `url` as db_url."""
    folder.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "assignments" / "nbgrader_config.py").read_text(encoding="utf-8")
    (folder / "nbgrader_config.py").write_text(f"{config}\nc.CourseDirectory.db_url = {url!r}\n", encoding="utf-8")
    return folder


def normlab(capsys, *argv) -> tuple[int, str, str]:
    code = normlab_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- fast -----------------------------------------------------------------------------------------


def test_a_runs_kept_gradebook_ends_its_transaction_after_each_use(tmp_path, db_url, postgres):
    """A run keeps one Gradebook (`course.keep_gradebook`: one engine, its queries compiled
    once). Between two uses it must leave no transaction open on the server (another
    grader's writes would wait on its locks) and keep no row from before: the next use
    sees what another grader wrote meanwhile."""
    import psycopg

    folder = course_on(tmp_path / "course", db_url)
    with course.keep_gradebook(folder):
        with course.course_gradebook(folder) as first:
            first.add_student("ann")
        with course.course_gradebook(folder) as second:
            assert second is first
            ann = second.find_student("ann")  # still referenced after this use
            assert ann.first_name is None
        database = db_url.split("?")[0].rsplit("/", 1)[1]
        with psycopg.connect(host=str(postgres.sockets), port=postgres.port, user="postgres", dbname=database,
                             autocommit=True) as other:
            states = other.execute("SELECT state FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                                   (database,)).fetchall()
            assert states and ("idle in transaction",) not in states, states
            other.execute("UPDATE student SET first_name = 'Ann' WHERE id = 'ann'")
        with course.course_gradebook(folder) as third:
            assert third.find_student("ann").first_name == "Ann"
    assert not course._KEPT
    with course.course_gradebook(folder) as fresh:  # outside a run: a Gradebook of its own
        assert fresh is not first


def test_the_course_config_names_the_gradebook(tmp_path, postgres):
    default = tmp_path / "default"
    default.mkdir()
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", default)
    assert course.db_url(default) == f"sqlite:///{default / 'gradebook.db'}"
    assert not course.on_server(course.db_url(default))
    url = postgres.url("somewhere", user=f"grader:{PASSWORD}")
    shared = course_on(tmp_path / "shared", url)
    assert course.db_url(shared) == url and course.on_server(url)
    assert PASSWORD not in course.shown_url(url) and "grader:***@" in course.shown_url(url)
    assert gradebook.backup(shared) is None and not (shared / "backups").exists()  # the server's own backups


def test_an_unreachable_gradebook_stops_the_run_before_anything_is_graded(tmp_path, postgres, capsys):
    """No server on the socket the db_url names (as when it is stopped): `normlab grade`
    and `normlab export` fail at once, naming the gradebook (no password) and what to do."""
    url = postgres.url("gradebook", user=f"grader:{PASSWORD}", port=PORT + 1)
    course_dir = course_on(tmp_path / "course", url)
    notebook_file(tmp_path / "submissions" / "ann" / "ps1.ipynb")
    shown = course.shown_url(url)
    code, _, err = normlab(capsys, "grade", "ps1", tmp_path / "submissions", "--course-dir", course_dir,
                           "--timeout", TIMEOUT, "--quiet")
    assert code == 2, err
    assert f"cannot open the course's gradebook {shown}" in err and PASSWORD not in err, err
    assert "Start the database server or fix c.CourseDirectory.db_url in" in err
    assert str(course_dir / "nbgrader_config.py") in err
    for made in ("submitted", "autograded", "feedback", "grading/ps1/state", "grading/ps1/grades.csv"):
        assert not (course_dir / made).exists(), made
    code, _, err = normlab(capsys, "export", "ps1", "--to", "csv", "--out", tmp_path / "out.csv",
                           "--course-dir", course_dir)
    assert code == 2 and f"cannot open the course's gradebook {shown}" in err and PASSWORD not in err, err
    assert not (tmp_path / "out.csv").exists()


def test_a_second_grader_of_the_same_assignment_is_refused(tmp_path, db_url, capsys):
    """While ps1 is being graded: another `normlab grade ps1` on the course is refused,
    and so is one from another course directory sharing the gradebook (another TA's
    machine); ps2 is not held up."""
    first, second = course_on(tmp_path / "course", db_url), course_on(tmp_path / "elsewhere", db_url)
    notebook_file(tmp_path / "submissions" / "ann" / "ps1.ipynb")
    with course.grading_lock(first, "ps1"):
        for course_dir, where in ((first, "on this course"), (second, "on the course's gradebook")):
            code, _, err = normlab(capsys, "grade", "ps1", tmp_path / "submissions", "--course-dir", course_dir,
                                   "--timeout", TIMEOUT, "--quiet", "--no-sandbox")
            assert code == 2, err
            assert f"another `normlab grade ps1` is running {where}" in err and "wait for it to finish" in err, err
            assert not (course_dir / "submitted").exists()
        with course.grading_lock(first, "ps2"), course.grading_lock(second, "ps3"):
            pass


# --- slow: real classes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """releases(aid) -> the student release of the project's assignment, made by nbgrader."""
    made = {}

    def release(aid: str):
        if aid not in made:
            folder = tmp_path_factory.mktemp(f"{aid}-release")
            shutil.copy(ROOT / "assignments" / "nbgrader_config.py", folder)
            assignments.convert_sources(ROOT, folder, aid)
            result = assignments.nbgrader_api(folder).generate_assignment(aid)
            assert result["success"], result["log"][-2000:]
            made[aid] = nbformat.read(folder / "release" / aid / f"{aid}.ipynb", as_version=4)
        return made[aid]

    return release


def small_class(release) -> list[Student]:
    correct = solved(release)
    partial = edit(edit(correct, "ps1_curvature", "return float(eigenvalues[-1] / eigenvalues[0])",
                        "return float(np.sqrt(eigenvalues[-1] / eigenvalues[0]))"),
                   "ps1_q_identity", 'q_identity = "b"', 'q_identity = "a"')
    deleter = solved(release)
    deleter.cells = [c for c in deleter.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "ps1_test_curvature"]
    return [Student("correct", correct, FULL, "graded", "all tests passed"),
            Student("partial", partial, FULL - 3, "graded", ".*"),
            Student("blank", release, 0, "graded", ".*", layout="nbgrader"),
            Student("deleter", deleter, FULL, "graded", ".*"),
            Student("empty", b"", 0, "failed", "empty file")]


def export_csv(capsys, course_dir: Path, out: Path) -> str:
    code, _, err = normlab(capsys, "export", "ps1", "--to", "csv", "--out", out, "--course-dir", course_dir)
    assert code == 0, err
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def graded_twice(releases, postgres, tmp_path_factory):
    """The same small ps1 class graded into a SQLite course and a PostgreSQL course
    (2 workers, sandboxed): {kind: (course, submissions, grades.csv, export csv)}."""
    base = tmp_path_factory.mktemp("twice")
    students = small_class(releases("ps1"))
    write_class(students, base / "submissions")
    courses = {"sqlite": base / "sqlite", "postgres": course_on(base / "postgres", postgres.new_database())}
    graded = {}
    for kind, course_dir in courses.items():
        run.grade_class("ps1", base / "submissions", course_dir, workers=2, timeout=TIMEOUT, progress=False)
        code = normlab_main(["export", "ps1", "--to", "csv", "--out", str(base / f"{kind}.csv"),
                             "--course-dir", str(course_dir)])
        assert code == 0
        graded[kind] = (course_dir, base / "submissions",
                        (course_dir / "grading" / "ps1" / "grades.csv").read_text(encoding="utf-8"),
                        (base / f"{kind}.csv").read_text(encoding="utf-8"))
    return students, graded


@pytest.mark.slow
def test_postgres_gives_the_grades_and_export_of_sqlite(graded_twice):
    students, graded = graded_twice
    (sqlite_course, _, sqlite_csv, sqlite_export), (pg_course, _, pg_csv, pg_export) = graded["sqlite"], \
        graded["postgres"]
    assert pg_csv == sqlite_csv
    assert pg_export == sqlite_export
    rows = read_csv(pg_course / "grading" / "ps1" / "grades.csv")
    assert {name: (float(r["total"]), r["status"]) for name, r in rows.items()} == {
        s.name: (s.score, s.status) for s in students}
    names = [s.name for s in students]
    assert gradebook.read_scores(pg_course, "ps1", names) == gradebook.read_scores(sqlite_course, "ps1", names)
    assert not (pg_course / "gradebook.db").exists()  # everything went to the server
    assert not (pg_course / "backups").exists()
    for name in names:
        assert (pg_course / "feedback" / name / "ps1" / "ps1.html").is_file(), name


@pytest.mark.slow
def test_manual_grades_survive_a_regrade_and_reach_the_export(graded_twice, capsys, tmp_path):
    """A TA overrides a score in the PostgreSQL gradebook (formgrader's manual_score),
    then the student is regraded: the override stays, and `normlab export` shows it."""
    _, graded = graded_twice
    course_dir, submissions, _, _ = graded["postgres"]
    with course.course_gradebook(course_dir) as book:
        grade = book.find_grade("ps1_test_curvature", "ps1", "ps1", "partial")
        assert grade.auto_score == 0
        grade.manual_score = 2.0
        book.db.commit()
    code, out, err = normlab(capsys, "grade", "ps1", submissions, "--course-dir", course_dir, "--student", "partial",
                             "--timeout", TIMEOUT, "--quiet")
    assert code == 0, err
    assert "(4 unchanged since the last run and not regraded" in out
    assert gradebook.read_scores(course_dir, "ps1", ["partial"])["partial"][0]["ps1_test_curvature"] == 2.0
    exported = {row["id"]: row for row in csv.DictReader(io.StringIO(export_csv(capsys, course_dir,
                                                                                 tmp_path / "plain.csv")))}
    assert exported["partial"]["score"] == str(FULL - 3 + 2)
    assert exported["correct"]["score"] == str(FULL) and exported["empty"]["status"] == "failed"


@pytest.mark.slow
def test_two_tas_grade_two_assignments_of_one_course_at_the_same_time(releases, db_url, tmp_path):
    """Two `normlab grade` processes started together, ps1 and ps2 of one course, each from
    its own folder of submissions: both finish, and every student's grades of both
    assignments are in the gradebook."""
    from nbgrader.api import Gradebook

    from normlab_tools.assignments import COURSE_ID

    course_dir = course_on(tmp_path / "course", db_url)
    ps2_source = assignments.read_jupytext(ROOT / "assignments" / "source" / "ps2" / "ps2.py")
    partial = {"ps1": ("ps1_q_identity", 'q_identity = "b"', 'q_identity = "a"'),
               "ps2": ("ps2_q_all_ones", 'q_all_ones = "b"', 'q_all_ones = "a"')}
    expected, processes = {}, {}
    for aid, source in (("ps1", None), ("ps2", ps2_source)):
        correct = solved(releases(aid), source)
        students = [Student("ann", correct, FULL, "graded", "", filename=f"{aid}.ipynb"),
                    Student("bob", edit(correct, *partial[aid]), FULL - 1, "graded", "", filename=f"{aid}.ipynb"),
                    Student("cat", b"", 0, "failed", "", filename=f"{aid}.ipynb")]
        write_class(students, tmp_path / f"{aid}-submissions")
        expected[aid] = {s.name: (s.score, s.status) for s in students}
    for aid in expected:
        processes[aid] = subprocess.Popen(
            [sys.executable, "-m", "normlab_tools", "grade", aid, str(tmp_path / f"{aid}-submissions"),
             "--course-dir", str(course_dir), "--workers", "1", "--timeout", str(TIMEOUT), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for aid, process in processes.items():
        out, err = process.communicate(timeout=1200)
        assert process.returncode == 0, f"{aid}: {err[-3000:]}"
        assert "3 submissions: 2 graded, 1 failed" in out, out
    for aid, wanted in expected.items():
        rows = read_csv(course_dir / "grading" / aid / "grades.csv")
        assert {name: (float(r["total"]), r["status"]) for name, r in rows.items()} == wanted, aid
    with Gradebook(db_url, course_id=COURSE_ID) as book:
        assert sorted(s.id for s in book.students) == ["ann", "bob", "cat"]
        for aid, wanted in expected.items():
            submissions = book.find_assignment(aid).submissions
            assert {s.student.id: s.score for s in submissions} == {n: score for n, (score, _) in wanted.items()}
            assert all(len(s.notebooks[0].grades) == 12 for s in submissions), aid
