"""Grading one submission, inside a worker process.

A worker owns a kernel template (`normlab_tools.grading.sandbox.bubblewrap.KernelTemplate`)
and grades one student at a
time in a private nbgrader course directory made for the job::

    WORK/jobs/<student>/nbgrader_config.py     the course's settings
    WORK/jobs/<student>/source -> WORK/template/source
    WORK/jobs/<student>/gradebook.db           a copy of the template gradebook (the
                                               assignment, no submissions)
    WORK/jobs/<student>/submitted/<student>/psK/   the submission

and runs nbgrader's own ``autograde`` and ``generate_feedback`` there (in-process
NbGraderAPI), with `SandboxedExecute` in place of nbgrader's Execute. The job's
gradebook then holds exactly this student's grades; the parent process copies them into
the course's gradebook (`normlab_tools.grading.gradebook`). Nothing here touches the course
directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from normlab_tools.grading import events
from normlab_tools.grading.sandbox import bubblewrap, client

SANITIZE_PREPROCESSORS = [  # nbgrader's, plus one fix (see DropEmptyGraderMetadata)
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "normlab_tools.grading.execute.DropEmptyGraderMetadata",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
AUTOGRADE_PREPROCESSORS = [  # nbgrader's, with SandboxedExecute for Execute
    "normlab_tools.grading.execute.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]


@dataclass
class JobSpec:
    """What a worker needs to grade one student."""

    student: str
    assignment: str
    submitted: str  # COURSE/submitted/<student>/<assignment> (read only)
    notes: list[str] = field(default_factory=list)
    feedback: bool = True  # also write the feedback HTML (`normlab check` needs none)


@dataclass
class JobResult:
    student: str
    ok: bool  # nbgrader autograde succeeded
    job_dir: str
    error: str | None = None  # why autograde failed
    events: list[dict] = field(default_factory=list)  # `events.Event.to_dict()`s
    changes: list[str] = field(default_factory=list)  # test cells the submission changed
    seconds: float = 0.0


@dataclass
class WorkerConfig:
    work_dir: str  # WORK: template/ and jobs/
    assignment: str
    timeout: int
    sandbox: bool
    preload: list[str]
    limits: bubblewrap.Limits
    uid: int | None
    forbidden: list[str]
    course_id: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> WorkerConfig:
        """The inverse of `to_dict` (what a worker receives)."""
        return cls(**dict(config, limits=bubblewrap.Limits(**config["limits"])))


_STATE: dict = {}


def worker_setup(config: WorkerConfig, warm_up: bool = False) -> dict:
    """Start this worker's kernel template; return its ready event (what it preloaded).
    With `warm_up`, import the grader meanwhile (see `_warm_up`)."""
    import tempfile
    import threading

    # Without a sandbox the kernels' scratch folders and ipc sockets are on this machine:
    # a short temporary path (a socket path has at most 107 characters).
    kernels_dir = None if config.sandbox else tempfile.mkdtemp(prefix="nlg-")
    template = bubblewrap.KernelTemplate(
        bubblewrap.TemplateSettings(sandbox=config.sandbox, preload=config.preload, limits=config.limits,
                                    uid=config.uid),
        forbidden=config.forbidden, work_dir=Path(kernels_dir or config.work_dir))
    warmer = threading.Thread(target=_warm_up, args=(config,), daemon=True) if warm_up else None
    if warmer is not None:
        warmer.start()
    ready = template.start()
    if warmer is not None:
        warmer.join()
    client.use_template(template)
    _STATE.update(config=config, template=template, kernels_dir=kernels_dir)
    _scratch_gradebooks(Path(config.work_dir) / "jobs")
    return ready


def _warm_up(config: WorkerConfig) -> None:
    """Import, while the template imports torch & co. in its own process, what the first
    student would otherwise wait for: nbgrader's API, converters and gradebook, nbconvert's
    HTML exporter, the executor, and the teaching library's modules the test cells call
    (`execute.helper_digests` fingerprints their functions here; they import torch) --
    two seconds of CPU. Best effort: what fails here fails, and is reported, when grading."""
    import sys

    try:
        import nbformat
        import nbgrader.api  # noqa: F401
        import nbgrader.apps  # noqa: F401
        import nbgrader.converters  # noqa: F401
        import nbgrader.preprocessors  # noqa: F401
        from sqlalchemy.orm import configure_mappers

        from normlab_tools.grading import execute

        configure_mappers()
        nbformat.validator.get_validator(version=4, version_minor=5)
        getattr(sys.modules[__name__], "FeedbackExporter")  # builds it: nbconvert's exporters
        for path in sorted((Path(config.work_dir) / "template" / "source" / config.assignment).glob("*.ipynb")):
            execute.helper_digests(execute.helper_bindings(nbformat.read(path, as_version=4).cells))
    except Exception:  # noqa: BLE001
        pass


_SCRATCH: dict = {}


def _scratch_gradebooks(jobs_dir: Path) -> None:
    """SQLite without fsync for the jobs' gradebooks: they are scratch copies (a job whose
    worker dies is graded again from a fresh copy; the parent reads the finished file),
    and nbgrader commits after every graded cell, each commit two fsyncs -- a fifth of a
    second per submission when other processes write to the disk. The course's gradebook
    is written by the parent only, with SQLite's defaults."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _SCRATCH["prefix"] = str(jobs_dir.resolve()) + os.sep
    if _SCRATCH.get("listening"):
        return
    _SCRATCH["listening"] = True

    @event.listens_for(Engine, "connect")
    def _no_fsync(dbapi_connection, _record) -> None:
        import sqlite3

        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        databases = dbapi_connection.execute("PRAGMA database_list").fetchall()
        if any(row[1] == "main" and (row[2] or "").startswith(_SCRATCH["prefix"]) for row in databases):
            dbapi_connection.execute("PRAGMA synchronous = OFF")


def worker_teardown() -> None:
    template = _STATE.get("template")
    if template is not None:
        template.stop()
    if _STATE.get("kernels_dir"):
        shutil.rmtree(_STATE["kernels_dir"], ignore_errors=True)


def grade(spec: JobSpec) -> JobResult:
    """Autograde and write feedback for one student in a private course directory."""
    import time

    start = time.monotonic()
    config: WorkerConfig = _STATE["config"]
    work = Path(config.work_dir)
    job_dir = work / "jobs" / spec.student
    result = JobResult(spec.student, ok=False, job_dir=str(job_dir))
    try:
        _prepare(job_dir, work / "template", spec)
        result.changes = test_cell_changes(job_dir, spec)
        client.set_kernel_files(_kernel_files(job_dir, spec))
        events.reset()
        api = _api(job_dir, config)
        outcome = api.autograde(spec.assignment, spec.student)
        result.events = [event.to_dict() for event in events.RECORDED]
        if not outcome.get("success"):
            from normlab_tools.assignments import nbgrader_error

            result.error = nbgrader_error(outcome)
        elif not spec.feedback:
            result.ok = True
        else:
            feedback = api.generate_feedback(spec.assignment, spec.student)
            if not feedback.get("success"):
                from normlab_tools.assignments import nbgrader_error

                result.events.append(events.Event(events.Kind.FEEDBACK, detail=nbgrader_error(feedback)).to_dict())
            result.ok = True
    except Exception as error:  # noqa: BLE001 (a grader bug must not stop the class)
        result.error = f"{type(error).__name__}: {error}"
        result.events.append(events.Event(events.Kind.CRASH, detail=traceback.format_exc(limit=3)).to_dict())
    result.seconds = time.monotonic() - start
    return result


def _prepare(job_dir: Path, template: Path, spec: JobSpec) -> None:
    if job_dir.exists():
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    shutil.copy2(template / "nbgrader_config.py", job_dir / "nbgrader_config.py")
    shutil.copy2(template / "gradebook.db", job_dir / "gradebook.db")
    os.symlink(template / "source", job_dir / "source")
    shutil.copytree(spec.submitted, job_dir / "submitted" / spec.student / spec.assignment)


def _api(job_dir: Path, config: WorkerConfig):
    from nbgrader.apps import NbGraderAPI

    from normlab_tools.assignments import load_course_config, scripts_on_path
    from normlab_tools.grading.course import scratch_db_url

    scripts_on_path()
    course = load_course_config(job_dir)
    course.CourseDirectory.course_id = config.course_id
    course.CourseDirectory.db_url = scratch_db_url(job_dir)  # never the course's (it may be a shared server)
    course.Autograde.sanitize_preprocessors = SANITIZE_PREPROCESSORS
    course.Autograde.autograde_preprocessors = AUTOGRADE_PREPROCESSORS
    for section in ("Execute", "SandboxedExecute"):
        course[section].timeout = config.timeout
    course.SandboxedExecute.kernel_manager_class = "normlab_tools.grading.sandbox.client.SandboxKernelManager"
    course.SandboxedExecute.output_limit = config.limits.output
    course.GenerateFeedback.exporter_class = "normlab_tools.grading.jobs.FeedbackExporter"
    return NbGraderAPI(config=course)


def _feedback_exporter():
    """nbconvert's HTMLExporter whose Jinja templates are compiled once per worker: nbgrader
    makes a new exporter, hence a new Jinja environment, for every feedback page, and
    compiling nbconvert's and nbgrader's templates again was a fifth of its time. The
    page is the same (a template's code is reused only while its source is unchanged)."""
    import jinja2
    from nbconvert.exporters import HTMLExporter

    class CompiledTemplates(jinja2.BytecodeCache):
        def __init__(self):
            self.compiled: dict[str, tuple[str, bytes]] = {}

        def load_bytecode(self, bucket):
            checksum, code = self.compiled.get(bucket.key, (None, None))
            if code is not None and checksum == bucket.checksum:
                bucket.code = code

        def dump_bytecode(self, bucket):
            self.compiled[bucket.key] = (bucket.checksum, bucket.code)

    compiled = CompiledTemplates()

    class FeedbackExporter(HTMLExporter):
        def _create_environment(self):
            environment = super()._create_environment()
            environment.bytecode_cache = compiled
            return environment

    return FeedbackExporter


def __getattr__(name: str):
    if name == "FeedbackExporter":  # built on first use: nbconvert loads only in workers that write feedback
        globals()[name] = _feedback_exporter()
        return globals()[name]
    raise AttributeError(name)


def _kernel_files(job_dir: Path, spec: JobSpec) -> dict:
    """Non-notebook files the kernel finds in its folder: the submission's, overwritten
    by the assignment's own (as nbgrader does in autograded/)."""
    import base64

    files = {}
    for folder in (job_dir / "submitted" / spec.student / spec.assignment, job_dir / "source" / spec.assignment):
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and path.suffix != ".ipynb" and path.name != "timestamp.txt":
                files[path.relative_to(folder).as_posix()] = base64.b64encode(path.read_bytes()).decode()
    return files


def test_cell_changes(job_dir: Path, spec: JobSpec) -> list[str]:
    """How the submission differs from the release in its locked cells: deleted,
    duplicated, re-typed or edited (nbgrader puts every one of them back)."""
    import nbformat

    changes = []
    for source_path in sorted((job_dir / "source" / spec.assignment).glob("*.ipynb")):
        submitted = job_dir / "submitted" / spec.student / spec.assignment / source_path.name
        if not submitted.exists():
            continue
        source = nbformat.read(source_path, as_version=4)
        try:
            notebook = nbformat.read(submitted, as_version=4)
        except Exception:  # noqa: BLE001 (reported elsewhere)
            continue
        by_id: dict[str, list] = {}
        for cell in notebook.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                by_id.setdefault(gid, []).append(cell)
        for cell in source.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("locked"):
                continue
            gid = meta["grade_id"]
            kind = "test cell" if meta.get("grade") else "locked cell"
            copies = by_id.get(gid, [])
            if not copies:
                changes.append(f"{kind} {gid} deleted")
                continue
            if len(copies) > 1:
                changes.append(f"{kind} {gid} duplicated")
            last = copies[-1]  # nbgrader keeps the last copy
            released = (_normalize(_HIDDEN.sub("", cell.source)), _normalize(cell.source))
            if last.cell_type != cell.cell_type:
                changes.append(f"{kind} {gid} changed to {last.cell_type}")
            elif _normalize(last.source) not in released:
                changes.append(f"{kind} {gid} edited")
    return changes


_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)


def _normalize(source) -> str:
    text = "".join(source) if isinstance(source, list) else source
    return re.sub(r"\s+\n", "\n", text).strip()


# --- the worker process ------------------------------------------------------------------------


def worker_main(fd: int, config_dict: dict) -> None:
    """Entry point of a worker process: set up, then grade what the parent sends."""
    import ctypes
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the parent
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before we could ask to die with it
        return
    from normlab_tools.grading.course import quiet_nbgrader

    quiet_nbgrader()
    connection = Connection(fd)
    config = WorkerConfig.from_dict(config_dict)
    try:
        ready = worker_setup(config, warm_up=True)
        connection.send(("ready", ready))
    except Exception as error:  # noqa: BLE001
        connection.send(("setup-failed", f"{type(error).__name__}: {error}"))
        return
    try:
        while True:
            try:
                message = connection.recv()
            except EOFError:
                break
            if message is None:
                break
            connection.send(("result", asdict(grade(JobSpec(**message)))))
    finally:
        worker_teardown()
        connection.close()


if __name__ == "__main__":
    import json
    import sys

    worker_main(int(sys.argv[1]), json.loads(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the template is stopped and the connection closed: skip the interpreter's slow teardown
