"""Worker processes that grade one student at a time and send the result back.

A small pool of our own rather than multiprocessing.Pool or concurrent.futures:

- workers are plain ``python -m normlab_tools.grading.jobs`` processes talking over a socket
  pair, so nothing depends on how the grader itself was started (no re-import of
  ``__main__`` as multiprocessing's spawn does, no fork of a process with threads);
- a worker that dies (it should not: student code runs in its sandboxed kernel, not in
  the worker) is replaced and its student retried once, instead of breaking the pool;
- results come back in completion order to the one process that writes the gradebook;
  a worker gets its next student before the parent records the last one, so it never
  waits for the gradebook;
- workers die with the parent (PR_SET_PDEATHSIG), so a killed grader leaves nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import deque
from multiprocessing.connection import Connection, wait

from normlab_tools.errors import UserError

RETRIES = 1  # a student whose worker crashed is tried once more
SETUP_FAILURES = 3  # workers that may die while starting before the run gives up


class _Worker:
    def __init__(self, config: dict, index: int):
        self.index = index
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "normlab_tools.grading.jobs", str(theirs.fileno()), json.dumps(config)],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self.connection = Connection(ours.detach())
        self.ready = False
        self.job: dict | None = None
        self.asked_to_stop = False

    def ask_to_stop(self) -> None:
        if self.process.poll() is None and not self.asked_to_stop:
            self.asked_to_stop = True
            try:
                self.connection.send(None)
            except OSError:
                pass

    def stop(self, graceful: bool) -> None:
        if graceful and self.process.poll() is None:
            self.ask_to_stop()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.connection.close()


class WorkerPool:
    def __init__(self, config: dict, workers: int):
        self.config = config
        self.size = workers

    def _config_for(self, index: int) -> dict:
        from normlab_tools.grading.sandbox.bubblewrap import kernel_uid

        config = dict(self.config)
        if config.get("sandbox"):
            config["uid"] = kernel_uid(index)
        return config

    def run(self, specs: list[dict], finished) -> None:
        """Grade `specs`; call finished(student, result) in this process for each."""
        pending = deque(specs)
        tries = {spec["student"]: 0 for spec in specs}
        workers = [_Worker(self._config_for(i), i) for i in range(self.size)]
        setup_failures = 0
        graceful = False

        def dispatch() -> None:
            for worker in workers:
                if worker.ready and worker.job is None and pending:
                    worker.job = pending.popleft()
                    worker.connection.send(worker.job)

        try:
            while pending or any(w.job for w in workers):
                dispatch()
                for worker in list(workers):
                    message = None
                    if worker.connection in wait([worker.connection], timeout=0):
                        try:
                            message = worker.connection.recv()
                        except (EOFError, OSError):
                            message = None
                    if message is not None:
                        kind, payload = message
                        if kind == "ready":
                            worker.ready = True
                            dispatch()
                        elif kind == "setup-failed":
                            raise UserError(f"a grading worker could not start its kernel template: {payload}")
                        elif kind == "result":
                            job, worker.job = worker.job, None
                            dispatch()  # the next student first: the worker need not wait for this one's record
                            finished(job["student"], payload)
                        continue
                    if worker.process.poll() is None:
                        continue
                    # the worker is gone: replace it, retry its student once
                    if not worker.ready:
                        setup_failures += 1
                        if setup_failures >= SETUP_FAILURES:
                            raise UserError(f"grading workers keep dying while starting (exit code "
                                            f"{worker.process.returncode})")
                    job = worker.job
                    worker.stop(graceful=False)
                    workers[workers.index(worker)] = _Worker(self._config_for(worker.index), worker.index)
                    if job is not None:
                        tries[job["student"]] += 1
                        if tries[job["student"]] > RETRIES:
                            finished(job["student"], {"student": job["student"], "ok": False, "job_dir": "",
                                                      "error": "the grading worker crashed twice on it"})
                        else:
                            pending.appendleft(job)
                # a message, or EOF from a worker that died
                wait([w.connection for w in workers], timeout=1)
            graceful = True
        finally:
            if graceful:
                for worker in workers:  # all at once: each takes a moment to stop its template
                    worker.ask_to_stop()
            for worker in workers:
                worker.stop(graceful)
