"""Autograding a class: ``normlab grade psK SUBMISSIONS [--course-dir DIR] [--workers N]
[--timeout S] [--force] [--no-sandbox]``.

Built on nbgrader: its gradebook (SQLite), its autograde pipeline (sanitize, restore
test cells, execute, score) and its feedback are used as they are; what this package
adds is intake, a sandbox, parallelism, a safe way into the gradebook, and resumable
runs.

Modules
-------
``intake``   SUBMISSIONS (folder per student, flat ``<student>_<anything>.ipynb``, or a
             zip of either) -> one `Submission` per validated student id.
``run``      the command: the course directory, planning, the gradebook, grades.csv,
             the summary.
``pool``     worker processes (``python -m normlab.grading.jobs``).
``jobs``     one student, inside a worker: nbgrader autograde + feedback in a private
             course directory.
``execute``  nbgrader's Execute, hardened (dead kernels, stuck kernels, output limit,
             test-helper integrity probe).
``sandbox``  bubblewrap, the worker's kernel template, and the kernel manager nbgrader
             drives.
``zygote``   the kernel template process (runs inside bubblewrap).

Design
------
**Sandbox.** Each worker starts one bubblewrap sandbox holding a "zygote": a Python
process that has already imported ipykernel and everything the assignment's source
imports (numpy, torch via normlab.data, matplotlib, scikit-learn). The sandbox has no
network (``--unshare-net``), its own pid/IPC/UTS namespaces, dies with its worker, and
sees a read-only file system made of the system folders, the Python installation and
normlab's code only -- not the course directory, the gradebook, the assignment source
(hidden tests), the submissions or the work folders. For every submission the zygote
forks a kernel into fresh user, mount and pid namespaces: a private size-limited tmpfs
is its home, working folder and TMPDIR (everything else read-only), it runs under a uid
of its own per worker (when grading as root), with rlimits on CPU time, data size,
processes+threads, file size and open files, no capabilities, and a watchdog over the
whole job (processes, total private memory, CPU cores) that kills fork bombs and
thread storms before they slow the other worker down. Notebook outputs are capped (8
MB) and single messages too (64 MB), so gigabytes of output never reach the grader.
The grader reaches the kernel's ZeroMQ ipc sockets through ``/proc/<pid>/root``: no
folder of the machine is writable from a kernel. Without bwrap the command says so and
refuses, unless ``--no-sandbox`` (kernels still fork from the zygote and get rlimits,
without namespaces).

**Speed.** What each submission really has to pay for is its own cells, not a Python
start-up and the import of torch: forking the pre-imported zygote costs milliseconds
where a fresh kernel costs seconds of CPU. Workers grade in parallel, one student each.

**Parallelism and gradebook safety.** A worker grades one student in a private nbgrader
course directory (a copy of the course's gradebook without submissions, the source, the
submission) with nbgrader's own ``autograde`` and ``generate_feedback``; nothing it does
touches the course directory. Results come back to the parent process, the only writer
of the course's gradebook: each student's grades are copied from the job's gradebook
into it by nbgrader's Gradebook API, updating that student's rows in place in one
transaction (rows are never added twice: nbgrader's schema has one grade per cell and
submission; manual grades a TA gave are kept). The worker count changes nothing in what
is written.

**Idempotency and interruption.** After a student's grades are committed and their
autograded notebook and feedback are in place, the parent writes
``grading/psK/state/<student>.json`` with a fingerprint of the submission's files and
of the grading settings (assignment source, timeout, sandbox). A re-run skips students
whose fingerprint matches (``--force`` regrades all); a run stopped by Ctrl-C or a kill
at any point leaves students either finished (state written) or to be regraded from
scratch, and grading is deterministic, so the re-run ends with the grades of an
uninterrupted run. A lock file keeps two runs off the same course.

**Outputs.** ``COURSE/grading/psK/grades.csv`` (a row per student: points per test cell,
total, max, status graded/flagged/failed, a one-line reason), nbgrader's
``COURSE/feedback/<student>/psK/*.html``, ``autograded/``, the gradebook, and a closing
summary (graded, failed with reason, flagged for manual grading).

**Hostile submissions** get a grade (0 for what they break) and a reason: unreadable
files fail with 0; a cell that runs too long is interrupted (a kernel that ignores the
interrupt is killed); a dying kernel (``os._exit``, segfault, killing itself, limits)
keeps the points of the tests before it; deleted, duplicated, re-typed or edited test
cells are restored by nbgrader; replaced test helpers are detected by a probe before
each test cell (a rebound name is put back, a patched module scores the test 0 and
flags the submission).
"""


def add_parser(subparsers):
    from normlab.grading.run import add_parser as add

    return add(subparsers)
