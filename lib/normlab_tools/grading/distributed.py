"""Grading on a Dask cluster: ``normlab grade psK SUBMISSIONS --scheduler ADDRESS``.

The design of local grading (`normlab_tools.grading.pool`), with Dask distributed's
workers in place of our own worker processes. No file system is assumed shared between
this process (the client) and the workers:

- `DaskCluster` reaches the scheduler (or starts a local cluster for ``local:N``), waits
  for workers and checks that every one can build a bubblewrap sandbox -- all before
  anything is graded;
- `GradingPlugin`, a worker plugin, gives every worker (those present and those joining
  later, such as a dead worker's replacement) the template course folder as bytes and
  starts its kernel template (`jobs.worker_setup`) in a WORK folder inside the worker's
  local directory, then offers one `SLOT` (a Dask resource every task needs): a worker
  joining mid-run that cannot start a template (no bubblewrap) is given no student; the
  teardown withdraws the slot, stops the template and removes the folder;
- each student is one task: the submission travels to the worker as bytes, the worker
  grades it (`jobs.grade`) and returns the result with the job folder's gradebook.db,
  autograded/ and feedback/ as bytes (`pack`); `DaskPool` unpacks them into the local
  WORK/jobs/<student>/ and calls ``finished`` as `pool.WorkerPool` does: this process
  stays the only writer of the gradebook. It keeps a window of tasks on the cluster
  (`MIN_WINDOW`, `TASKS_PER_THREAD`) and submits the next as one finishes: the scheduler
  holds a task's submission until it runs, and need not hold a whole class of them;
- a worker that dies mid-job: the scheduler gives its tasks to other workers, and the
  student is graded again from scratch; a student whose tasks keep killing workers
  (``distributed.scheduler.allowed-failures``, 3 by default) gets 0 with that reason.

One grading run at a time per cluster: a worker's kernel template belongs to one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections import deque
from dataclasses import asdict
from pathlib import Path

from distributed import WorkerPlugin

from normlab_tools.dask_cluster import dask_client
from normlab_tools.errors import UserError

RESULT_FOLDERS = ("gradebook.db", "autograded", "feedback")  # what a job sends back
MIN_WINDOW, TASKS_PER_THREAD = 16, 4  # tasks on the cluster at once: the larger of 16 and 4 per worker thread
SLOT = "normlab-grading"  # the Dask resource a worker offers, once, while its kernel template runs
UID_SLOT = 63  # a Dask worker's slot of kernel uids (bubblewrap.kernel_uid); local pools use 0-31


# --- folders as bytes --------------------------------------------------------------------------


def pack(folder: Path, names: tuple[str, ...] | None = None) -> bytes:
    """The folder's files (or only its entries `names`, those that exist) as a tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(os.listdir(folder)) if names is None else names:
            if (Path(folder) / name).exists():
                archive.add(Path(folder) / name, arcname=name)
    return buffer.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    """Replace `folder` with the contents of a `pack` archive."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        archive.extractall(folder, filter="data")


# --- on a worker ---------------------------------------------------------------------------------


def _sandbox_problem() -> str | None:
    """Why this worker cannot build a sandbox, or None (run on every worker)."""
    from normlab_tools.grading.sandbox import bubblewrap

    try:
        bubblewrap.check_sandbox()
    except bubblewrap.SandboxUnavailable as error:
        return str(error)
    return None


class GradingPlugin(WorkerPlugin):
    """Starts a worker's kernel template for one grading run, and stops it.

    The template is started from a thread of the plugin's own that lives until teardown:
    bubblewrap dies with the thread that started it (--die-with-parent), and a Dask
    worker's event loop must not wait the seconds the template takes to import."""

    def __init__(self, config: dict, template: bytes):
        self.config = config  # `jobs.WorkerConfig.to_dict()` of the client's run
        self.template = template  # `pack` of the client's WORK/template
        self.work: Path | None = None
        self.error: str | None = None

    async def setup(self, worker) -> None:
        self._ready, self._stop = threading.Event(), threading.Event()
        self._keeper = threading.Thread(target=self._keep, args=(worker.local_directory,),
                                        name="normlab-kernel-template", daemon=True)
        self._keeper.start()
        while not self._ready.is_set():
            await asyncio.sleep(0.05)
        if self.error:
            raise RuntimeError(f"could not start its kernel template: {self.error}")
        await worker.set_resources(**{SLOT: 1})

    async def teardown(self, worker) -> None:
        await worker.set_resources(**{SLOT: 0})
        self._stop.set()
        while self._keeper.is_alive():
            await asyncio.sleep(0.05)

    def _keep(self, local_directory: str) -> None:
        """Set up, wait for teardown, tear down. WORK is in the worker's own folder, which
        Dask removes when a worker that died before its teardown is replaced."""
        from normlab_tools.grading import jobs
        from normlab_tools.grading.course import quiet_nbgrader
        from normlab_tools.grading.sandbox.bubblewrap import kernel_uid

        self.work = Path(tempfile.mkdtemp(prefix="normlab-grading-", dir=local_directory))
        try:
            quiet_nbgrader()
            unpack(self.template, self.work / "template")
            config = dict(self.config, work_dir=str(self.work), forbidden=[*self.config["forbidden"], str(self.work)],
                          uid=kernel_uid(UID_SLOT) if self.config["sandbox"] else None)
            jobs.worker_setup(jobs.WorkerConfig.from_dict(config), warm_up=True)
        except Exception as error:  # noqa: BLE001 (reported to the client, and by every task here)
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self._ready.set()
        self._stop.wait()
        jobs.worker_teardown()
        shutil.rmtree(self.work, ignore_errors=True)


def _grade_on_worker(plugin_name: str, spec: dict, submitted: bytes) -> dict:
    """A task: grade one student on this worker; the job's result with its files as bytes."""
    from distributed import get_worker

    from normlab_tools.grading import jobs

    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if plugin is None or plugin.error:
        why = plugin.error if plugin is not None else "the grading plugin is not set up"
        return {"student": spec["student"], "ok": False, "files": b"",
                "error": f"the Dask worker {worker.address} could not start its kernel template: {why}"}
    folder = plugin.work / "submitted" / spec["student"]
    unpack(submitted, folder)
    result = asdict(jobs.grade(jobs.JobSpec(**dict(spec, submitted=str(folder)))))
    job_dir = Path(result.pop("job_dir"))
    result["files"] = pack(job_dir, RESULT_FOLDERS) if job_dir.is_dir() else b""
    shutil.rmtree(job_dir, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return result


# --- the client ----------------------------------------------------------------------------------


class DaskCluster:
    """A client of a Dask cluster whose workers can grade (a context manager): `address`
    is a running scheduler's (tcp://host:8786), or local:N to start N local workers."""

    def __init__(self, address: str, sandboxed: bool):
        self.address = address
        self.sandboxed = sandboxed
        self.client = None
        self._connection = contextlib.ExitStack()

    def __enter__(self) -> DaskCluster:
        try:
            self.client = self._connection.enter_context(dask_client(self.address))
            self._check_workers()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def pool(self, config: dict) -> DaskPool:
        return DaskPool(self.client, config)

    def _check_workers(self) -> None:
        """Each worker can run normlab's grader and build a sandbox."""
        try:
            problems = self.client.run(_sandbox_problem) if self.sandboxed else {}
        except Exception as error:  # noqa: BLE001 (a worker without normlab: cannot unpickle the function)
            raise UserError(f"the Dask workers cannot run normlab's grader ({type(error).__name__}: {error}); "
                            "they need this project's Python environment") from None
        unsandboxed = {worker: why for worker, why in problems.items() if why}
        if unsandboxed:
            listed = "; ".join(f"{worker}: {why}" for worker, why in sorted(unsandboxed.items()))
            raise UserError(f"{len(unsandboxed)} of {len(problems)} Dask workers cannot build a sandbox ({listed}). "
                            "Refusing to run students' code without a sandbox; --no-sandbox grades anyway "
                            "(only for submissions you trust)")


class DaskPool:
    """`pool.WorkerPool`'s contract on a Dask cluster: `run(specs, finished)`."""

    def __init__(self, client, config: dict):
        self.client = client
        self.config = config

    def run(self, specs: list[dict], finished) -> None:
        """Grade `specs` on the cluster; call finished(student, result) in this process for
        each, in completion order, with the job's files unpacked into WORK/jobs/<student>."""
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        plugin_name = f"normlab-grading-{run_id}"
        work = Path(self.config["work_dir"])
        try:
            self.client.register_plugin(GradingPlugin(self.config, pack(work / "template")), name=plugin_name)
        except Exception as error:  # noqa: BLE001 (raised on a worker)
            self.client.unregister_worker_plugin(plugin_name)
            raise UserError(f"a Dask worker {error}") from None
        pending, futures, done = deque(specs), {}, as_completed()

        def submit_more() -> None:
            """Keep a window of tasks on the cluster, not the whole class: the scheduler holds
            each task's submission until it runs."""
            window = max(MIN_WINDOW, TASKS_PER_THREAD * sum(self.client.nthreads().values()))
            while pending and len(futures) < window:
                spec = pending.popleft()
                future = self.client.submit(_grade_on_worker, plugin_name, spec, pack(Path(spec["submitted"])),
                                            key=f"grade-{spec['student']}-{run_id}", pure=False,
                                            resources={SLOT: 1})
                futures[future] = spec["student"]
                done.add(future)

        try:
            submit_more()
            for future in done:
                student = futures.pop(future)
                result = self._received(future, student, work / "jobs" / student)
                future.release()
                submit_more()  # before this student's record: the workers need not wait for it
                finished(student, result)
        finally:
            if self.client.status == "running":  # not after the scheduler is lost
                if futures:
                    self.client.cancel(list(futures))
                self.client.unregister_worker_plugin(plugin_name)  # stops the templates

    def _received(self, future, student: str, job_dir: Path) -> dict:
        """The task's result, its files unpacked into `job_dir`."""
        from distributed import CancelledError, KilledWorker

        try:
            result = future.result()
        except KilledWorker:
            return {"student": student, "ok": False, "job_dir": str(job_dir),
                    "error": "every Dask worker that graded it died (distributed.scheduler.allowed-failures)"}
        except CancelledError:
            raise UserError("lost the Dask cluster (the scheduler cancelled the grading tasks); the grades "
                            "so far are saved: run the same command again to grade the rest") from None
        except Exception as error:  # noqa: BLE001 (the task failed outside nbgrader)
            return {"student": student, "ok": False, "job_dir": str(job_dir),
                    "error": f"{type(error).__name__}: {error}"}
        files = result.pop("files")
        if files:
            unpack(files, job_dir)
        result["job_dir"] = str(job_dir)
        return result
